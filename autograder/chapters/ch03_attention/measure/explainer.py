"""The self-check's explanation stage: what the student's classes show on their own, with no reference solution.

It ships in the student bundle (explain/, which needs the reference, does not): the notebook's check cell,
`autograder check` and its --html page name a mistake when a measurement proves it by itself, and otherwise say
what was measured.
"""
from __future__ import annotations

import time

from autograder.chapters.ch03_attention import CHAPTER
from autograder.chapters.ch03_attention.measure.failed_parts import failed_parts, unstable_parts
from autograder.chapters.ch03_attention.measure.observe import (
    SIZES,
    Observed,
    facts,
    facts_text,
    mask_discarded,
    mask_reversed,
    observe,
)
from autograder.chapters.ch03_attention.measure.pictures import attention_maps
from autograder.i18n import t
from autograder.judge.subjects import Subject

MEASURED = {"CausalAttention": "causal", "MultiHeadAttention": "mha"}


def entry(part: str, id: str, params: dict, lang: str) -> dict:
    """A diagnosis entry naming mistake `id` (the record's and the feedback page's format)."""
    message = t("ui.diagnosis", lang, part=part, name=t(f"misconception.{id}", lang),
                hint=t(f"misconception.{id}.hint", lang, **params))
    return {"part": part, "misconception": id, "message": message}


def proven(found: Observed, part: str) -> tuple[str, dict] | None:
    """(mistake id, hint parameters) for a mistake the measurements prove by themselves, or None."""
    prefix = MEASURED[part]
    if found.cause is not None:
        return f"{prefix}_{found.cause[0]}", found.cause[1]
    if mask_discarded(found):
        return f"{prefix}_mask_missing", {}
    if mask_reversed(found, SIZES[part][3]):
        return f"{prefix}_mask_tril", {}
    return None


def self_check_entries(sub: Subject, part: str, lang: str) -> list[dict]:
    """What the self-check says of a failed attention class: the proven mistake, or the measured facts."""
    found = observe(sub, part)
    named = proven(found, part)
    if named is not None:
        return [entry(part, *named, lang)]
    said = facts(found)
    if not said:
        return []
    return [{"part": part, "misconception": None, "measured": True,
             "message": t("ui.self_check_measured", lang, part=part, facts=facts_text(said, lang))}]


class MeasuredExplainer:
    """The explain stage where no reference solution is (the self-check; pipeline.explainer chooses it)."""

    needs_reference = False

    def __init__(self, reference: Subject | None = None, chunks: list[dict] | None = None, seconds: float = 30.0):
        self.seconds = seconds

    def explain(self, sub: Subject, results: list, lang: str, pictures: bool = True) -> tuple[list[dict], dict]:
        deadline = time.monotonic() + self.seconds
        diagnoses = []
        for part in failed_parts(results):
            if part in MEASURED and time.monotonic() < deadline:
                diagnoses += self_check_entries(sub, part, lang)
        if not pictures:
            return diagnoses, {}
        skip = unstable_parts(results)
        if {"CausalAttention", "MultiHeadAttentionWrapper", "MultiHeadAttention"} & skip:
            skip |= {"MultiHeadAttentionWrapper"}
        return diagnoses, {"student": attention_maps(sub, skip, lang), "reference": {},
                            "tokens": list(CHAPTER.tokens)}
