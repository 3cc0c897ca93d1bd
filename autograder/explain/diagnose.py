"""Name every mistake behind a failed part: measured facts for the attention classes, then the mutant catalogue."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from autograder.explain.facts import GLOBAL, measure
from autograder.i18n import t
from autograder.explain.misconceptions import CATALOGUE, Misconception
from autograder.explain.mistakes import name as name_mistakes
from autograder.explain.mutant_probes import OutOfTime, run_probes, same
from autograder.judge.subjects import StudentError, Subject

DEPENDS = {"MultiHeadAttentionWrapper": "CausalAttention", "exercise_3_2": "MultiHeadAttentionWrapper",
           "exercise_3_3": "MultiHeadAttention"}
"""Parts built on another graded name: their failures may be that name's mistakes showing through."""
STABLE_KEYS = {"student.raised", "student.names_differ", "student.param_shape", "student.not_implemented"}
"""Failures of the student's code that probes can safely meet again (anything else: hangs, crashes, limits)."""
SKIP_KEYS = {"student.not_implemented", "refused.missing"}
"""A part whose failures are all of these kinds is simply unfinished: there is nothing to diagnose."""
MEASURED = ("CausalAttention", "MultiHeadAttention")
"""Parts whose facts are measured one by one, so several mistakes at once are named."""
__all__ = ["Diagnoser", "Explainer", "failed_parts", "run_probes", "same", "unstable_parts"]


def _hint_params(params: dict, lang: str) -> dict:
    """Hint parameters in the student's language (e.g. which layer makes the queries)."""
    if "pairs" in params:
        joiner = "、" if lang == "zh_TW" else ", "
        return {"detail": joiner.join(t("diagnosis.made_with", lang, role=t(f"diagnosis.role.{role}", lang), layer=layer)
                                      for role, layer in params["pairs"])}
    return params


def wrapper_facts(sub: Subject) -> list[tuple[str, dict]]:
    """Structural mistakes of MultiHeadAttentionWrapper: layers beside the heads, heads nobody registered."""
    try:
        module = sub.new("MultiHeadAttentionWrapper", 3, 2, 6, 0.0, 2)
    except StudentError as error:
        missing = GLOBAL.search(str(error.params.get("message", "")))
        return [("wrapper_uses_global", {"name": missing.group(1)})] if missing else []
    params = [n for n in module.params if not n.split(".")[-1] == "mask"]
    found = []
    if any(not n.startswith("heads.") for n in params):
        found.append(("wrapper_extra_projection", {}))
    if not params and not any(n.startswith("heads") for n in module.info["modules"]):
        found.append(("wrapper_heads_not_registered", {}))
    return found


class Diagnoser:
    """Holds the mutants (trusted code, like the reference) and their probe outcomes, computed once."""

    def __init__(self, mutant: Callable[[Misconception], Subject]):
        self._mutant = mutant
        self._outcomes: dict[str, dict[str, Any]] = {}

    def outcomes(self, misconception: Misconception) -> dict[str, Any]:
        if misconception.id not in self._outcomes:
            self._outcomes[misconception.id] = run_probes(self._mutant(misconception), misconception.part)
        return self._outcomes[misconception.id]

    def _matched(self, sub: Subject, part: str, deadline: float) -> list[tuple[str, dict]]:
        """The catalogue entry whose outcomes all agree with the student's, as its mistakes."""
        theirs = run_probes(sub, part, deadline)
        for misconception in (m for m in CATALOGUE if m.part == part):  # trusted and cached: no deadline
            ours = self.outcomes(misconception)
            if ours.keys() == theirs.keys() and all(same(theirs[k], ours[k]) for k in ours):
                return [(n, {}) for n in misconception.names]
        return []

    def mistakes(self, sub: Subject, part: str, deadline: float) -> list[tuple[str, dict]]:
        """(mistake id, hint parameters) for every mistake found in `part`; [] when none is recognised."""
        if part in MEASURED:
            found = name_mistakes(measure(sub, part), part)
            if found:
                return found
        found = wrapper_facts(sub) if part == "MultiHeadAttentionWrapper" else []
        return found + [m for m in self._matched(sub, part, deadline) if m[0] not in {id for id, _ in found}]

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
            if DEPENDS.get(part) in parts:
                entry["message"] = t("ui.diagnosis_dependency", lang, part=part, dependency=DEPENDS[part])
                entry["depends_on"] = DEPENDS[part]
            else:
                entry["message"] = t("ui.no_diagnosis", lang, part=part, hint=t(f"diagnosis.hint.{part}", lang))
            entries.append(entry)
        return entries


def _unstable(key: str) -> bool:
    """The code hung, crashed or hit a limit: probing it again would only repeat that, slowly."""
    return key.startswith("student.") and key not in STABLE_KEYS


def failed_parts(results: list) -> list[str]:
    """Parts that lost points for a reason other than being unfinished or unstable, in check order."""
    parts: dict[str, list] = {}
    for result in results:
        parts.setdefault(result.part, []).append(result)
    return [part for part, checks in parts.items()
            if any(c.status == "failed" for c in checks)
            and not all(c.message_key in SKIP_KEYS for c in checks if c.status == "failed")
            and not any(_unstable(c.message_key) for c in checks if c.status == "failed")]


def unstable_parts(results: list) -> set[str]:
    return {r.part for r in results if r.status == "failed" and _unstable(r.message_key)}


class Explainer:
    """What the judge adds to a record beyond the checks: diagnoses and attention pictures' data."""

    def __init__(self, reference: Subject, chunks: list[dict], seconds: float):
        from autograder.explain.misconceptions import mutate
        from autograder.judge.subjects import LocalSubject

        self.reference, self.seconds = reference, seconds
        self.diagnoser = Diagnoser(lambda m: LocalSubject.from_chunks(mutate(chunks, m), f"mutant_{m.id}"))
        self._reference_maps: dict | None = None

    def explain(self, sub: Subject, results: list, lang: str, pictures: bool = True) -> tuple[list[dict], dict]:
        from autograder.explain.attention import attention_maps

        deadline = time.monotonic() + self.seconds
        diagnoses = self.diagnoser.diagnose(sub, failed_parts(results), lang, deadline)
        if not pictures:
            return diagnoses, {}
        if self._reference_maps is None:
            self._reference_maps = attention_maps(self.reference)
        skip = unstable_parts(results)
        if {"CausalAttention", "MultiHeadAttentionWrapper", "MultiHeadAttention"} & skip:
            skip |= {"MultiHeadAttentionWrapper"}  # built from CausalAttention heads
        return diagnoses, {"student": attention_maps(sub, skip, lang), "reference": self._reference_maps}
