"""Name every mistake behind a failed part: measured facts for the attention classes, then the mutant catalogue."""
from __future__ import annotations

import time
from collections.abc import Callable

from autograder.chapters.ch03_attention import CHAPTER
from autograder.chapters.ch03_attention.explain.catalogue_match import CatalogueMatcher, OutOfTime
from autograder.chapters.ch03_attention.explain.facts import measure, wrapper_facts
from autograder.chapters.ch03_attention.explain.misconceptions import Misconception
from autograder.chapters.ch03_attention.explain.mistakes import name as name_mistakes
from autograder.chapters.ch03_attention.explain.mistakes import proven_right
from autograder.chapters.ch03_attention.measure.observe import facts, facts_text, observe
from autograder.errors import StudentError
from autograder.i18n import t
from autograder.judge.subjects import Subject

MEASURED = ("CausalAttention", "MultiHeadAttention")
"""Parts whose facts are measured one by one, so several mistakes at once are named."""


def _hint_params(params: dict, lang: str) -> dict:
    """Hint parameters in the student's language (e.g. which layer makes the queries)."""
    if "pairs" in params:
        joiner = "、" if lang == "zh_TW" else ", "
        made = (t("diagnosis.made_with", lang, role=t(f"diagnosis.role.{role}", lang), layer=layer)
                for role, layer in params["pairs"])
        return {"detail": joiner.join(made)}
    return params


def measured_entry(sub: Subject, part: str, lang: str, right: bool) -> dict:
    """No known mistake reproduces `part`'s outputs: say only what was measured on it, each fact true of it."""
    if right:
        heads = t("ui.measured_right.heads", lang) if part == "MultiHeadAttention" else ""
        return {"measured": True, "message": t("ui.measured_right", lang, part=part, heads=heads)}
    said = facts(observe(sub, part))
    if not said:
        said = [("fact.none", {})]
    return {"measured": True, "message": t("ui.measured", lang, part=part, facts=facts_text(said, lang))}


class Diagnoser:
    """Names the mistakes of failed parts, from measured facts and by matching the catalogue's mutants."""

    def __init__(self, mutant: Callable[[Misconception], Subject]):
        self.catalogue = CatalogueMatcher(mutant)
        self.proven_right = False
        """The last measured part computes the chapter's attention on every probe (its points went elsewhere)."""

    def mistakes(self, sub: Subject, part: str, deadline: float) -> list[tuple[str, dict]]:
        """(mistake id, hint parameters) for every mistake found in `part`; [] when none is recognised."""
        if part in MEASURED:
            facts = measure(sub, part)
            self.proven_right = proven_right(facts, part)
            found = name_mistakes(facts, part)
            if found or facts is not None:
                return found  # measured: the catalogue's mutants add nothing the knob search did not try
        found = wrapper_facts(sub) if part == "MultiHeadAttentionWrapper" else []
        return found + [m for m in self.catalogue.match(sub, part, deadline) if m[0] not in {id for id, _ in found}]

    def diagnose(self, sub: Subject, parts: list[str], lang: str, deadline: float) -> list[dict]:
        """Entries for the parts in `parts` (those that lost points), one per mistake, until `deadline`."""
        entries = []
        for part in parts:
            if time.monotonic() > deadline:
                break
            try:
                found = self.mistakes(sub, part, deadline)
            except OutOfTime:
                break
            except StudentError:  # the probes met a failure the checks did not (e.g. a hang): say nothing more
                found = []
            for id, params in found:
                message = t("ui.diagnosis", lang, part=part, name=t(f"misconception.{id}", lang),
                            hint=t(f"misconception.{id}.hint", lang, **_hint_params(params, lang)))
                entries.append({"part": part, "misconception": id, "message": message})
            if found:
                continue
            entry = {"part": part, "misconception": None}
            if part in MEASURED:
                entry.update(measured_entry(sub, part, lang, self.proven_right))
            elif CHAPTER.depends.get(part) in parts:
                entry["message"] = t("ui.diagnosis_dependency", lang, part=part, dependency=CHAPTER.depends[part])
                entry["depends_on"] = CHAPTER.depends[part]
            else:
                entry["message"] = t("ui.no_diagnosis", lang, part=part, hint=t(f"diagnosis.hint.{part}", lang))
            entries.append(entry)
        return entries
