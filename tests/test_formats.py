"""All four formats of the solution score full marks; the untouched assignments score zero."""
from __future__ import annotations

import json

import nbformat
import pytest

from autograder.authoring.build import to_marimo
from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("formats")
    for lang in ("en", "zh_TW"):
        solution = ROOT / "solutions" / lang / "ch03_attention.ipynb"
        (folder / f"solution_{lang}.ipynb").write_text(solution.read_text())
        (folder / f"solution_{lang}_marimo.py").write_text(to_marimo(nbformat.read(solution, as_version=4)))
        for suffix in (".ipynb", ".py"):
            student = ROOT / "assignments" / lang / f"ch03_attention{suffix}"
            (folder / f"assignment_{lang}{suffix}").write_text(student.read_text())
    out = folder / "out"
    result = run_cli("grade", str(folder), "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    return {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}


@pytest.mark.parametrize("name", ["solution_en.ipynb", "solution_zh_TW.ipynb", "solution_en_marimo.py",
                                  "solution_zh_TW_marimo.py"])
def test_solution_scores_full_marks(graded, name):
    record = graded[name]
    failed = [f"{t['check_id']}: {t['output']}" for t in record["tests"] if t["status"] != "passed"]
    assert record["score"] == record["max_score"] == 100, failed


@pytest.mark.parametrize("name", ["assignment_en.ipynb", "assignment_zh_TW.ipynb", "assignment_en.py",
                                  "assignment_zh_TW.py"])
def test_untouched_assignment_scores_zero_saying_not_implemented(graded, name):
    record = graded[name]
    assert record["score"] == 0 and record["max_score"] == 100
    not_implemented = "還沒有實作" if "zh_TW" in name else "not implemented yet"
    for test in record["tests"]:
        assert not_implemented in test["output"], f"{test['check_id']}: {test['output']}"


def test_feedback_language_follows_the_notebook(graded):
    assert graded["assignment_zh_TW.ipynb"]["language"] == "zh_TW"
    assert graded["assignment_en.ipynb"]["language"] == "en"
