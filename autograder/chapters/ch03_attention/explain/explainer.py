"""The explanation stage as the judge calls it (only where a reference exists: the student bundle has no explain/)."""
from __future__ import annotations

import time

from autograder.chapters.ch03_attention import CHAPTER
from autograder.chapters.ch03_attention.explain.diagnose import Diagnoser
from autograder.chapters.ch03_attention.explain.misconceptions import mutate
from autograder.chapters.ch03_attention.measure.failed_parts import failed_parts, unstable_parts
from autograder.chapters.ch03_attention.measure.pictures import attention_maps
from autograder.judge.subjects import LocalSubject, Subject


class Explainer:
    """What the judge adds to a record beyond the checks: diagnoses and attention pictures' data."""

    def __init__(self, reference: Subject, chunks: list[dict], seconds: float):
        self.reference, self.seconds = reference, seconds
        self.diagnoser = Diagnoser(lambda m: LocalSubject.from_chunks(mutate(chunks, m), f"mutant_{m.id}"))
        self._reference_maps: dict | None = None

    def explain(self, sub: Subject, results: list, lang: str, pictures: bool = True) -> tuple[list[dict], dict]:
        deadline = time.monotonic() + self.seconds
        diagnoses = self.diagnoser.diagnose(sub, failed_parts(results), lang, deadline)
        if not pictures:
            return diagnoses, {}
        if self._reference_maps is None:
            self._reference_maps = attention_maps(self.reference)
        skip = unstable_parts(results)
        if {"CausalAttention", "MultiHeadAttentionWrapper", "MultiHeadAttention"} & skip:
            skip |= {"MultiHeadAttentionWrapper"}  # built from CausalAttention heads
        return diagnoses, {"student": attention_maps(sub, skip, lang), "reference": self._reference_maps,
                            "tokens": list(CHAPTER.tokens)}
