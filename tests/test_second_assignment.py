"""A second assignment (autograder/chapters/warmup) through the same commands as chapter 3: built, graded, self-checked,
bundled and exported. Nothing in the kit was written for it: it is a folder."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from autograder import api
from autograder.assignment import load
from autograder.config import Config
from tests.conftest import FILES, ROOT

WARMUP = ROOT / "autograder" / "chapters" / "warmup"
SOLUTION = WARMUP / "solutions" / "en" / "warmup.ipynb"
HANDOUT = WARMUP / "handouts" / "en" / "warmup.ipynb"
FIXTURES = FILES / "warmup"


def warmup_config(**changes) -> Config:
    return Config(assignment=load(WARMUP), **changes)


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """The real command line, told the assignment as a course would: AUTOGRADER_ASSIGNMENT."""
    env = {**os.environ, "AUTOGRADER_ASSIGNMENT": str(WARMUP)}
    return subprocess.run([sys.executable, "-m", "autograder", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


def solution_regions(notebook: Path) -> set[str]:
    """Every line between nbgrader's BEGIN SOLUTION and END SOLUTION markers (the answers students must not get)."""
    import nbformat

    lines, inside = set(), False
    for cell in nbformat.read(notebook, as_version=4).cells:
        for line in cell.source.splitlines():
            inside = (inside or "### BEGIN SOLUTION" in line) and "### END SOLUTION" not in line
            if inside and "###" not in line and line.strip():
                lines.add(line.strip())
    return lines


def by_part(record) -> dict[str, float]:
    return {part: score for part, (score, _) in record.parts.items()}


def test_the_warmup_is_read_from_its_folder():
    warmup = load(WARMUP)
    assert warmup.graded == ("row_softmax", "DotProductAttention") and sum(warmup.points.values()) == 10
    assert warmup.solutions == WARMUP / "solutions" and warmup.explainer == ""
    assert Config(assignment=warmup).reference_notebook == SOLUTION, "the solutions are the folder's own"


@pytest.mark.parametrize("path, parts", [
    (SOLUTION, {"row_softmax": 4, "DotProductAttention": 6}),
    (FIXTURES / "correct_functional.py", {"row_softmax": 4, "DotProductAttention": 6}),
    (FIXTURES / "bug_softmax_columns.py", {"row_softmax": 0, "DotProductAttention": 6}),
    (FIXTURES / "bug_unscaled.py", {"row_softmax": 4, "DotProductAttention": 3}),
    (FIXTURES / "fake_values_only.py", {"row_softmax": 0, "DotProductAttention": 1}),  # the signature's point only
    (HANDOUT, {"row_softmax": 0, "DotProductAttention": 0}),
], ids=lambda value: value.name if isinstance(value, Path) else "")
def test_the_warmup_is_graded_by_what_the_code_does(path, parts):
    record = api.grade_file(path, warmup_config())
    assert record.error is None and record.max_score == 10, record.output
    assert by_part(record) == parts, [(t.check_id, t.status, t.output[:200]) for t in record.tests]
    titles = {t.check_id: t.name for t in record.tests}
    assert titles["test_row_softmax_on_two_rows"] == "row_softmax turns each row into weights that sum to 1", \
        "the check titles come from the assignment's own catalogue"


def test_a_class_that_only_looks_like_attention_is_told_so():
    record = api.grade_file(FIXTURES / "fake_values_only.py", warmup_config())
    shapes = next(t for t in record.tests if t.check_id == "test_dot_product_shapes")
    assert shapes.status == "failed" and shapes.message_key == "fail.not_attention", shapes


def test_the_self_check_in_a_kernel_runs_the_warmups_visible_checks(monkeypatch):
    from autograder.integrations.selfcheck import check_in_notebook
    from autograder.load.submission import load_submission
    from autograder.sandbox.inside.execute import execute

    monkeypatch.setenv("AUTOGRADER_ASSIGNMENT", str(WARMUP))
    namespace, failures = execute(load_submission(FIXTURES / "bug_unscaled.py").chunk_dicts(), "warmup_kernel")
    assert not failures, failures
    done = check_in_notebook(namespace["row_softmax"], lang="zh_TW", namespace=namespace)
    assert done.passed and {t.visibility for t in done.result.tests} == {"visible"}
    assert "row_softmax 把每一列變成總和為 1 的權重" in repr(done), repr(done)
    with pytest.raises(ValueError, match="check one of: row_softmax, DotProductAttention"):
        check_in_notebook("CausalAttention", namespace=namespace)


def test_nbgraders_hidden_cell_grades_the_warmup_in_the_kernel(monkeypatch, capsys):
    from autograder.load.submission import load_submission
    from autograder.sandbox.inside.execute import execute

    monkeypatch.setenv("AUTOGRADER_ASSIGNMENT", str(WARMUP))
    namespace, failures = execute(load_submission(FIXTURES / "bug_unscaled.py").chunk_dicts(), "warmup_nbgrader")
    assert not failures, failures
    exec("from autograder.nbgrader import grade\npoints = grade('DotProductAttention')", namespace)  # a hidden cell
    assert namespace["points"] == 3, capsys.readouterr().out
    assert "DotProductAttention" in capsys.readouterr().out


def test_the_similarity_report_leaves_out_the_warmups_given_code(monkeypatch, tmp_path):
    from autograder.similarity.corpus import boilerplate

    forced, given = boilerplate(8, warmup_config())
    assert forced and "row_softmax" not in given, "the stub's lines are boilerplate, the graded names are not given"
    folder = tmp_path / "class"
    folder.mkdir()
    for name in ("correct_functional.py", "bug_unscaled.py", "bug_softmax_columns.py"):
        (folder / name).write_bytes((FIXTURES / name).read_bytes())
    (folder / "copy_of_unscaled.py").write_bytes((FIXTURES / "bug_unscaled.py").read_bytes())
    monkeypatch.setenv("AUTOGRADER_ASSIGNMENT", str(WARMUP))
    result = cli("similarity", str(folder), "--out", str(tmp_path / "similar"))
    assert result.returncode == 0, result.stderr[-2000:]
    page = (tmp_path / "similar" / "similarity.html").read_text(encoding="utf-8")
    assert "4 submissions compared with each other" in page, "the class was read"
    # the warmup's code is a few lines: even an exact copy is too little to count as evidence of sharing
    with open(tmp_path / "similar" / "similarity.csv", newline="") as table:
        assert next(csv.reader(table))[:3] == ["rank", "a", "b"]


def test_build_check_grade_and_gradebook_through_the_command_line(tmp_path):
    assert cli("build", "--check").returncode == 0, "the warmup's handouts are built from its solutions"
    checked = cli("check", str(HANDOUT))
    assert checked.returncode == 1 and "row_softmax" in checked.stdout and "DotProductAttention" in checked.stdout
    assert "CausalAttention" not in checked.stdout, checked.stdout
    folder = tmp_path / "class"
    folder.mkdir()
    for name in ("correct_functional.py", "bug_unscaled.py"):
        (folder / name).write_bytes((FIXTURES / name).read_bytes())
    graded = cli("grade", str(folder), "--out", str(tmp_path / "out"), "--jobs", "1")
    assert graded.returncode == 0, graded.stderr[-2000:]
    with open(tmp_path / "out" / "grades.csv", newline="") as table:
        rows = {row["submission"]: row for row in csv.DictReader(table)}
    assert list(next(iter(rows.values())))[:3] == ["submission", "row_softmax", "DotProductAttention"]
    assert rows["correct_functional.py"]["total"] == "10" and rows["bug_unscaled.py"]["total"] == "7", rows
    canvas = tmp_path / "canvas.csv"
    roster = FILES / "lms" / "canvas_gradebook_export.csv"
    exported = cli("export", "canvas", str(tmp_path / "out"), "--roster", str(roster), "--parts", "--out", str(canvas))
    assert exported.returncode in (0, 1) and canvas.is_file(), exported.stderr
    with open(canvas, newline="") as table:
        header = next(csv.reader(table))
    assert header[-3:] == ["Attention warm-up", "Attention warm-up: row_softmax",
                           "Attention warm-up: DotProductAttention"], "the assignment's title and its parts"


def test_the_student_bundle_holds_the_warmup_and_nothing_of_its_solutions(tmp_path):
    out = tmp_path / "warmup.zip"
    names = api.student_bundle(out, warmup_config())
    assert {"assignments/en/warmup.ipynb", "assignments/zh_TW/warmup.py", "autograder/chapters/default",
            "autograder/chapters/warmup/assignment.toml", "autograder/chapters/warmup/checks/test_warmup.py",
            "autograder/chapters/warmup/locales/en.json"} <= set(names), names
    assert not [n for n in names if "ch03_attention" in n or "/solutions/" in n], "only the warmup, no solutions"
    with zipfile.ZipFile(out) as archive:
        checks = archive.read("autograder/chapters/warmup/checks/test_warmup.py").decode()
        titles = json.loads(archive.read("autograder/chapters/warmup/locales/en.json"))
        assert archive.read("autograder/chapters/default").decode().strip() == "warmup"
    assert "test_row_softmax_on_two_rows" in checks and "matches_reference" not in checks, "visible checks only"
    assert not [k for k in titles if "matches_reference" in k], "hidden checks' titles stay behind"
    solution_lines = solution_regions(SOLUTION)
    assert len(solution_lines) >= 6, "the search looks for something"
    with zipfile.ZipFile(out) as archive:
        for name in archive.namelist():
            text = archive.read(name).decode("utf-8", "replace")
            assert not [line for line in solution_lines if line in text], f"{name} holds a solution line"


@pytest.mark.slow
def test_the_unpacked_bundle_checks_the_warmup(tmp_path):
    """The bundle's own code and data suffice (chapter 3's pip install test covers installing a bundle)."""
    out = tmp_path / "warmup.zip"
    api.student_bundle(out, warmup_config())
    with zipfile.ZipFile(out) as archive:
        archive.extractall(tmp_path / "kit")
    env = {k: v for k, v in os.environ.items() if k != "AUTOGRADER_ASSIGNMENT"} | {"PYTHONPATH": str(tmp_path / "kit")}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)

    where = run("-c", "import autograder; print(autograder.__file__)")
    assert where.stdout.startswith(str(tmp_path / "kit")), where.stdout + where.stderr
    result = run("-m", "autograder", "check", str(tmp_path / "kit" / "assignments" / "en" / "warmup.ipynb"))
    assert result.returncode == 1 and "row_softmax" in result.stdout, result.stdout + result.stderr[-2000:]
    assert "DotProductAttention" in result.stdout and "CausalAttention" not in result.stdout, result.stdout
    solved = run("-m", "autograder", "check", str(FIXTURES / "correct_functional.py"))
    assert solved.returncode == 0, solved.stdout + solved.stderr[-2000:]


@pytest.mark.slow
def test_gradescope_and_prairielearn_exports_grade_the_warmup(tmp_path):
    zip_path = tmp_path / "autograder.zip"
    exported = cli("export", "gradescope", "--out", str(zip_path))
    assert exported.returncode == 0, exported.stderr
    with zipfile.ZipFile(zip_path) as archive:
        chosen = json.loads(archive.read("assignment.json"))
        archive.extractall(tmp_path / "gs" / "source")
    assert chosen == {"assignment": "warmup", "solutions": "autograder/chapters/warmup/solutions"}
    root = tmp_path / "gs"
    (root / "submission").mkdir()
    (root / "submission" / "warmup.py").write_bytes((FIXTURES / "bug_unscaled.py").read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "AUTOGRADER_ASSIGNMENT"}
    env |= {"AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": sys.executable, "PYTHONPATH": str(root / "source")}
    ran = subprocess.run(["bash", str(root / "source" / "run_autograder")], cwd=root, env=env, capture_output=True,
                         text=True, timeout=900)
    assert ran.returncode == 0, ran.stderr[-2000:]
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == 7 and results["extra_data"]["parts"]["DotProductAttention"]["score"] == 3, results
    assert [t["number"] for t in results["tests"]][:2] == ["1.1", "1.2"], "numbered in the warmup's order"

    pl = tmp_path / "pl"
    exported = cli("export", "prairielearn", "--out", str(pl))
    assert exported.returncode == 0, exported.stderr
    question = pl / "questions" / "warmup"
    assert (question / "clientFilesQuestion" / "zh_TW" / "warmup.py").is_file()
    assert json.loads((pl / "grader" / "kit" / "assignment.json").read_text())["assignment"] == "warmup"
