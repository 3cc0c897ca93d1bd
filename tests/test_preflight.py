"""Before a batch the reference solution is graded under the limits in force: limits it fails are refused."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

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


def test_a_waiting_judge_grades_ahead_and_hands_in_nothing_before_the_verdict(tmp_path):
    """While the reference is judged, a waiting judge grades what it is handed (each one announced, so a death is
    blamed) but writes no record and says none done until "go"; then it hands in what it has, in order."""
    from autograder.batch.pool import _spec, _start_judge
    from autograder.config import Config
    from autograder.sandbox.capability import isolation_for

    out = tmp_path / "out"
    out.mkdir()
    files = [SUBMISSIONS / "correct_reference.py", SUBMISSIONS / "nothing_zeros.py"]
    judge = _start_judge(_spec(out, Config(), isolation_for("auto"), "en", wait=True))
    try:
        said, handed = [], list(files)
        while len([line for line in said if line == "start"]) < 2:
            line = judge.stdout.readline()
            assert line, f"the judge ended before grading ahead: {said}"
            said.append(line.split("\t")[0])
            if said[-1] == "ready":  # the pool's answer: the next file, or that there is none
                path = handed.pop(0) if handed else None
                judge.stdin.write(f"grade\t{json.dumps({'path': str(path), 'name': path.name, 'outside': None})}\n"
                                  if path else "end\n")
                judge.stdin.flush()
        time.sleep(5)  # both graded by now (a few tenths of a second each), still held
        said.append(judge.stdout.readline().split("\t")[0])  # it asks for more after the second
        assert said == ["ready", "start", "ready", "start", "ready"], \
            f"the judge said more than its starts before the verdict: {said}"
        assert not list(out.iterdir()), "records or pages were written before the verdict"
        judge.stdin.write("end\ngo\n")
        judge.stdin.close()
        rest = [line.split("\t")[:2] for line in judge.stdout.read().splitlines()]
    finally:
        judge.kill()
        judge.wait()
    assert rest == [["done", "correct_reference.py"], ["done", "nothing_zeros.py"]], rest
    assert sorted(p.name for p in out.glob("*.json")) == ["correct_reference.py.json", "nothing_zeros.py.json"]


def _graded(out, cache, profile, *options) -> int:
    """Grade two files with `cache` as the kit's cache; how many notebooks the judges loaded (the preflight's
    reference counts one)."""
    files = [SUBMISSIONS / "correct_reference.py", SUBMISSIONS / "nothing_zeros.py"]
    env = {**os.environ, "AUTOGRADER_CACHE": str(cache), "AUTOGRADER_PROFILE": str(profile)}
    profile.unlink(missing_ok=True)
    result = subprocess.run([sys.executable, "-m", "autograder", "grade", *map(str, files), "--out", str(out),
                             "--jobs", "2", "--force", *options], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode in (0, 2), result.stderr[-2000:]
    lines = profile.read_text().splitlines() if profile.exists() else []  # (a refused batch's judges are killed)
    return sum(json.loads(line)["stages"].get("load", [0, 0])[1] for line in lines)


def test_a_pass_of_the_reference_is_kept_for_the_next_batch_under_the_same_limits(tmp_path):
    """The first batch grades the reference; the next, under the same limits, does not; other limits, or a kept
    pass that someone else could have written, grade it again; limits it fails are never kept."""
    from autograder.sandbox.capability import isolation_for

    if isolation_for("auto") == "process" and os.geteuid() != 0:
        pytest.skip("nothing is kept where a worker runs as the grader's own user")
    cache, profile, out = tmp_path / "cache", tmp_path / "profile.jsonl", tmp_path / "out"
    assert _graded(out, cache, profile) == 3, "the first batch did not grade the reference"
    kept = list(cache.glob("preflight-*.passed"))
    assert len(kept) == 1, f"the pass was not kept: {list(cache.iterdir())}"
    assert _graded(out, cache, profile) == 2, "the reference was graded again under the same limits"
    assert _graded(out, cache, profile, "--limit", "call_seconds=25") == 3, "other limits skipped the preflight"
    assert len(list(cache.glob("preflight-*.passed"))) == 2
    kept[0].chmod(0o666)
    assert _graded(out, cache, profile) == 3, "a pass that anyone could have written was trusted"
    _graded(tmp_path / "refused", cache, profile, "--limit", "memory=1KiB")
    assert len(list(cache.glob("preflight-*.passed"))) == 2, "a refusal was kept as a pass"
    assert not list((tmp_path / "refused").glob("*.json")), "students were graded under limits the reference fails"
