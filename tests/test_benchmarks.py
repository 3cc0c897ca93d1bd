"""benchmarks/grade_ab.py: each side of an A/B runs the code of its own checkout, and the script runs end to end."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import grade_ab  # noqa: E402 - the benchmarks folder is not a package


def test_a_checkout_runs_its_own_kit(tmp_path):
    (tmp_path / "autograder").mkdir()
    (tmp_path / "autograder" / "__init__.py").write_text("")
    assert grade_ab.code_of(tmp_path) == (tmp_path / "autograder").resolve()
    grade_ab.require_own_code(tmp_path)


def test_a_folder_without_the_kit_is_refused_as_a_side(tmp_path):
    """Such a side would time the installed kit (this checkout) under another name."""
    assert grade_ab.code_of(tmp_path) != (tmp_path / "autograder").resolve()
    with pytest.raises(SystemExit, match="not from that checkout"):
        grade_ab.require_own_code(tmp_path)


@pytest.mark.slow
def test_an_ab_of_head_against_itself_prints_its_pairs_and_medians():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "grade_ab.py"), "HEAD", "--pairs", "1",
                             "-n", "2", "--sandbox", "process"], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("A = ") and lines[1].startswith("B = "), result.stdout
    assert any(line.strip().startswith("pair 1: A ") for line in lines), result.stdout
    assert "--sandbox process, medians of 1: A " in result.stdout and "B faster in " in result.stdout
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "grade-ab-" not in worktrees, worktrees  # the base's worktree is removed afterwards


@pytest.mark.slow
def test_the_cost_of_each_check_is_listed_with_its_setup_and_requests():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "check_cost.py"), "-n", "1", "--sandbox",
                             "process", "--top", "200"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "score 100.0" in result.stdout, result.stdout  # the solution runs every check to its end
    rows = {}
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) == 7 and fields[-1].startswith("test_"):
            rows[fields[-1]] = [float(f) for f in fields[:6]]
    assert len(rows) > 40, result.stdout
    for name, (cpu, judge, worker, setup, _, _) in rows.items():
        assert abs(cpu - judge - worker) < 0.2 and setup <= cpu + 0.1, (name, result.stdout)
    # the judge's comparisons and the student's forwards both cost something, and the worker is asked
    assert rows["test_mha_matches_reference"][1] > 0 and rows["test_mha_matches_reference"][2] > 0
    assert rows["test_mha_matches_reference"][4] >= 1
    # the first behaviour check of a class carries the attention gate in its setup; a later one does not
    assert rows["test_causal_shapes"][3] > 5 * max(rows["test_causal_matches_reference"][3], 0.1), result.stdout
