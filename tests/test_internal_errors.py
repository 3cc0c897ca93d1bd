"""Errors of the kit's own: the diagnosis that raised KeyError: None on a running mean, and records that say so."""
from __future__ import annotations

from dataclasses import replace

import pytest

from autograder.api import grade_file
from autograder.assignment import load
from autograder.chapters.ch03_attention.explain import explainer
from autograder.chapters.ch03_attention.explain.facts import measure
from autograder.chapters.ch03_attention.explain.mistakes import name
from autograder.config import Config
from autograder.judge.run import Job, build_record
from autograder.judge.subjects import LocalSubject
from autograder.load.submission import load_submission
from autograder.record import CheckResult
from autograder.report.class_overview import overview_html
from tests.conftest import SUBMISSIONS

UNIFORM = SUBMISSIONS / "nothing_uniform.py"


def test_a_running_mean_is_diagnosed_without_an_error():
    """nothing_uniform.py's CausalAttention averages the values so far: the equal-QKV probe reads a causal mask
    and rows that sum to 1, but every weight of a row is equal, so it shows no scale. `name` used to look that
    missing scale up (KeyError: None), and the whole submission lost its diagnosis."""
    subject = LocalSubject.from_chunks(load_submission(UNIFORM).chunk_dicts(), "uniform")
    facts = measure(subject, "CausalAttention")
    assert facts.readable and facts.scale is None, f"the probe reads this class otherwise now: {facts}"
    named = name(facts, "CausalAttention")
    assert all(id.startswith("causal_") for id, _ in named), f"unexpected names: {named}"


class _Broken(explainer.Explainer):
    """The diagnosis with a defect of the kit's own."""

    def explain(self, *args, **kwargs):
        raise KeyError(None)


def test_an_error_of_the_diagnosis_is_in_the_record_and_the_overview(monkeypatch):
    monkeypatch.setattr(explainer, "Explainer", _Broken)
    record = grade_file(SUBMISSIONS / "nothing_zeros.py", Config(), pictures=False)
    assert record.score < record.max_score, "the fixture must lose points, or nothing is diagnosed"
    assert len(record.internal_errors) == 1, f"the record does not say the diagnosis failed: {record.internal_errors}"
    assert "KeyError: None" in record.internal_errors[0] and "test_internal_errors.py" not in record.internal_errors[0]
    assert "diagnos" in record.internal_errors[0], record.internal_errors[0]
    assert not record.diagnoses, "a diagnosis that failed cannot have named anything"
    page = overview_html([("nothing_zeros.py", record)])
    assert "Errors of the grader" in page and "1 submission(s) met an error" in page, "the overview does not count it"
    clean = overview_html([("nothing_zeros.py", replace(record, internal_errors=[]))])
    assert "Errors of the grader" not in clean, "the overview shows the section without an error to show"


def test_a_check_that_meets_an_unexpected_case_is_noted_as_the_kits_error():
    job = Job(UNIFORM, "en")
    results = [CheckResult("t", "test_causal_shapes", "CausalAttention", 0.0, 2.0, "failed",
                           "The check could not handle what your code returned (TypeError: odd).", ["CausalAttention"],
                           "visible", "fail.unexpected"),
               CheckResult("t", "test_causal_layout", "CausalAttention", 2.0, 2.0, "passed", "", ["CausalAttention"],
                           "visible")]
    record = build_record(job, LocalSubject({}, load()), results, "none", 0.0, load().checks)
    assert len(record.internal_errors) == 1 and "test_causal_shapes" in record.internal_errors[0], \
        record.internal_errors


@pytest.mark.parametrize("lang", ["en", "zh_TW"])
def test_the_overview_names_who_met_an_error(lang):
    job = Job(UNIFORM, lang)
    record = build_record(job, LocalSubject({}, load()), [], "none", 0.0, load().checks)
    record.internal_errors = ["boom"]
    page = overview_html([("alice.ipynb", record)], lang)
    assert "alice.ipynb" in page and "boom" in page, "the overview does not say whose record notes an error"
