"""Before a batch the reference solution is graded under the limits in force: limits it fails are refused."""
from __future__ import annotations

import pytest

from autograder.batch.preflight import refusal
from autograder.config import Limits
from autograder.record import CheckResult, SubmissionResult
from tests.conftest import SUBMISSIONS, run_cli

BUDGET = ("During loading the definitions your code used 1.0 KiB of memory across 1 processes and threads; the limit "
          "is 1.0 KiB for all of them together, so all of them were stopped.")


def _record(*failures: tuple[str, str]) -> SubmissionResult:
    """The reference's record: a passed check, and one failed check per (message key, message)."""
    tests = [CheckResult("t", "test_v1_parameters", "SelfAttention_v1", 2.0, 2.0, "passed", "", [], "visible")]
    tests += [CheckResult("t", f"test_{i}", "CausalAttention", 0.0, 3.0, "failed", message, [], "visible", key)
              for i, (key, message) in enumerate(failures)]
    return SubmissionResult("ref.ipynb", sum(t.score for t in tests), sum(t.max_score for t in tests), 1.0, tests=tests)


def test_full_marks_pass():
    assert refusal(_record(), Limits().with_overrides(["memory=1KiB"]), "en") is None


def test_a_kib_for_gib_slip_is_refused_naming_the_limit():
    message = refusal(_record(("student.memory_budget", BUDGET)), Limits().with_overrides(["memory=1KiB"]), "en")
    assert message is not None, "the reference failed: the batch must be refused"
    assert "memory_bytes=1KiB (default 3GiB)" in message, f"the limit is not named: {message}"
    assert "2/5" in message and BUDGET in message, f"the score or the reference's failure is missing: {message}"


def test_the_limit_the_failures_name_is_blamed_among_several_changed():
    limits = Limits().with_overrides(["memory=1KiB", "call_seconds=0.01", "restarts=3"])
    message = refusal(_record(("student.timeout", "took too long")), limits, "zh_TW")
    assert "call_seconds=0.01" in message and "memory_bytes" not in message, message
    assert "預設值 10" in message, f"not in Traditional Chinese: {message}"


def test_failures_that_name_no_limit_blame_the_changed_ones_or_the_defaults():
    changed = refusal(_record(("fail.values", "differs")), Limits().with_overrides(["source_bytes=100"]), "en")
    assert "source_bytes=100 (default 8MiB)" in changed, changed
    defaults = refusal(_record(("fail.values", "differs")), Limits(), "en")
    assert "the default limits" in defaults, defaults


@pytest.mark.slow
def test_grade_refuses_limits_the_reference_fails_and_grades_nobody(tmp_path):
    out = tmp_path / "out"
    files = [SUBMISSIONS / "correct_reference.py", SUBMISSIONS / "nothing_zeros.py"]
    result = run_cli("grade", *map(str, files), "--out", str(out), "--jobs", "2", "--limit", "memory=1KiB")
    assert result.returncode == 2, f"exit {result.returncode}, expected 2 (wrong usage):\n{result.stderr[-2000:]}"
    assert "memory_bytes=1KiB" in result.stderr and "reference solution scores 0/100" in result.stderr, \
        result.stderr[-2000:]
    assert not list(out.glob("*.json")), "students were graded (and blamed) under limits the reference fails"
    assert not list(out.glob("*.html")) and not (out / "grades.csv").exists(), "pages or a gradebook were written"
