"""A real nbgrader course: generate, autograde, feedback; its gradebook agrees with `autograder grade` part by part."""
from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.assignment import load
from tests.conftest import ROOT, SUBMISSIONS

GRADED = load().graded

pytestmark = pytest.mark.slow

ASSIGNMENT = "ch03"
NOTEBOOK = "ch03_attention"
SOURCE = ROOT / "solutions" / "en" / f"{NOTEBOOK}.ipynb"
MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")

# Students of the course: graded names they leave as stubs, and graded names they replace with a
# buggy variant taken from a fixture submission (the class or function of that name in the file).
STUDENTS: dict[str, dict] = {
    # everything solved: full marks
    "solved": {"stubs": [], "bugs": {}},
    # stopped after part 2: parts 3 and 4 are still `raise NotImplementedError()`
    "unfinished": {"stubs": ["CausalAttention", "MultiHeadAttentionWrapper", "exercise_3_2",
                             "MultiHeadAttention", "exercise_3_3"], "bugs": {}},
    # three bugs: the naive softmax divides by the raw sum, the causal mask hides the past
    # (tril for triu), MultiHeadAttention has no out_proj
    "buggy": {"stubs": [], "bugs": {"softmax_naive": "bug_softmax_naive_no_exp_in_denominator.py",
                                    "CausalAttention": "bug_causal_tril_mask.py",
                                    "MultiHeadAttention": "bug_mha_no_out_proj.py"}},
}


def nbgrader(*args: str, cwd: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real `nbgrader` command of this environment."""
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, \
        f"nbgrader {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def course_env(solutions: Path) -> dict:
    # nbgrader runs `alembic` by bare name, so this environment's bin folder goes first on PATH.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, "PATH": path, "AUTOGRADER_SOLUTIONS": str(solutions), "AUTOGRADER_LANG": "en"}


def defined_names(cell: nbformat.NotebookNode) -> set[str]:
    return {n.name for n in ast.parse(cell.source).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def definition_from(path: Path, name: str) -> str:
    """The source of the top-level class or function `name` in a fixture submission."""
    text = path.read_text(encoding="utf-8")
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            return ast.get_source_segment(text, node)
    raise AssertionError(f"{path.name} defines no {name}")


def submission(release: nbformat.NotebookNode, source: nbformat.NotebookNode, stubs: list[str],
               bugs: dict[str, str]) -> nbformat.NotebookNode:
    """A student's notebook: the released one with each answer cell solved, left as a stub, or buggy."""
    nb = nbformat.from_dict(release)
    answers = {c.metadata["nbgrader"]["grade_id"]: c for c in source.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("solution"):
            continue
        names = defined_names(cell)
        if names & set(stubs):
            continue
        answer = answers[meta["grade_id"]].source
        cell.source = "\n".join(line for line in answer.splitlines() if line.strip() not in MARKERS)
        for name in names & set(bugs):
            cell.source = definition_from(SUBMISSIONS / bugs[name], name)
    return nb


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> dict:
    """A course folder with a gradebook, the generated assignment and autograded submissions."""
    root = tmp_path_factory.mktemp("course")
    solutions = root / "reference"  # a copy, so the test proves AUTOGRADER_SOLUTIONS reaches the kernel
    shutil.copytree(ROOT / "solutions", solutions)
    (root / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(root)!r}\n"
        f"c.CourseDirectory.course_id = 'ch03-attention'\n"
        f"c.CourseDirectory.db_url = 'sqlite:///{root / 'gradebook.db'}'\n"
        "c.ExecutePreprocessor.timeout = 600\n",
        encoding="utf-8",
    )
    (root / "source" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(SOURCE, root / "source" / ASSIGNMENT / f"{NOTEBOOK}.ipynb")
    env = course_env(solutions)
    nbgrader("generate_assignment", ASSIGNMENT, "--force", cwd=root, env=env)
    release = nbformat.read(root / "release" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)
    source = nbformat.read(SOURCE, as_version=4)
    for student, spec in STUDENTS.items():
        folder = root / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(submission(release, source, spec["stubs"], spec["bugs"]), folder / f"{NOTEBOOK}.ipynb")
    # `autograder grade` on the same notebooks, meanwhile: nbgrader's kernel waits a lot, so this is nearly free
    kit_out = root / "kit"
    kit = subprocess.Popen([sys.executable, "-m", "autograder", "grade", str(root / "submitted"), "--out", str(kit_out),
                            "--jobs", "1"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        autograde = nbgrader("autograde", ASSIGNMENT, "--force", cwd=root, env=env, timeout=900)
        _, kit_err = kit.communicate(timeout=900)
    finally:
        if kit.poll() is None:
            kit.kill()
    assert kit.returncode == 0, f"autograder grade failed:\n{kit_err[-3000:]}"
    return {"root": root, "env": env, "release": release, "autograde": autograde, "kit": kit_out}


def gradebook_parts(root: Path, student: str) -> dict[str, tuple[float, float]]:
    """Score and max score of every graded name, read from nbgrader's gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(NOTEBOOK, ASSIGNMENT, student)
        return {g.name.removeprefix("test_"): (g.score, g.max_score) for g in nb.grades if g.name.startswith("test_")}


@pytest.fixture(scope="module")
def kit_records(course) -> dict[str, dict]:
    """The same submitted notebooks, graded by `autograder grade`."""
    return {student: json.loads((course["kit"] / f"{student}__{ASSIGNMENT}__{NOTEBOOK}.ipynb.json").read_text())
            for student in STUDENTS}


@pytest.mark.parametrize("student", list(STUDENTS))
def test_gradebook_equals_autograder_grade_part_by_part(course, kit_records, student):
    book = gradebook_parts(course["root"], student)
    record = kit_records[student]
    assert set(book) == set(GRADED), f"gradebook has test cells for {sorted(book)}; expected {sorted(GRADED)}"
    for name in GRADED:
        kit = record["parts"][name]
        assert book[name][1] == kit["max_score"], \
            f"{student} {name}: nbgrader's cell is worth {book[name][1]}, the kit's checks {kit['max_score']}"
        assert book[name][0] == pytest.approx(kit["score"]), \
            f"{student} {name}: nbgrader gave {book[name][0]}, autograder grade gave {kit['score']}"


def test_scores_tell_the_students_apart(course, kit_records):
    book = {s: gradebook_parts(course["root"], s) for s in STUDENTS}
    total = {s: sum(score for score, _ in parts.values()) for s, parts in book.items()}
    assert total["solved"] == 100, f"the solved notebook scored {total['solved']}/100 in nbgrader"
    assert book["unfinished"]["CausalAttention"][0] == 0 and book["unfinished"]["SelfAttention_v2"][0] == 8, \
        f"the unfinished notebook scored {book['unfinished']}"
    buggy = book["buggy"]
    assert buggy["softmax_naive"][0] < 2 and 0 < buggy["CausalAttention"][0] < 24, buggy
    assert buggy["MultiHeadAttention"][0] < 24, buggy
    assert buggy["SelfAttention_v2"][0] == 8, f"a bug elsewhere costs SelfAttention_v2 nothing: {buggy}"


def test_test_cells_write_nothing_to_stderr(course):
    """nbgrader scores a test cell that writes to stderr as 0, whatever its value."""
    for student in STUDENTS:
        nb = nbformat.read(course["root"] / "autograded" / student / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("grade"):
                errors = [o.get("text", "") for o in cell.outputs if o.get("name") == "stderr"]
                assert not errors, f"{student} {cell.metadata['nbgrader']['grade_id']} wrote to stderr: {errors}"


def test_validate_passes_a_solved_notebook_and_fails_an_unfinished_one(course):
    root, env = course["root"], course["env"]
    runs = {}
    for student in ("solved", "unfinished"):  # both at once
        path = root / "submitted" / student / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
        runs[student] = subprocess.Popen([sys.executable, "-m", "nbgrader", "validate", str(path)], cwd=path.parent,
                                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # `nbgrader validate` exits 0 even when tests fail, so its output is what tells.
    out = {student: run.communicate(timeout=600)[0] for student, run in runs.items()}
    assert all(run.returncode == 0 for run in runs.values()), out
    assert "Success! Your notebook passes all the tests." in out["solved"], out["solved"][-3000:]
    unfinished = out["unfinished"]
    assert "VALIDATION FAILED" in unfinished, unfinished[-3000:]
    assert "CausalAttention is not implemented yet" in unfinished, "the failure shows the checklist"


def test_generate_feedback_writes_html_with_the_checklist(course):
    root, env = course["root"], course["env"]
    nbgrader("generate_feedback", ASSIGNMENT, "--force", cwd=root, env=env)
    page = root / "feedback" / "buggy" / ASSIGNMENT / f"{NOTEBOOK}.html"
    assert page.is_file(), f"no feedback at {page}"
    text = page.read_text(encoding="utf-8")
    assert "CausalAttention" in text and "✗" in text, "the feedback shows the failed checks"
    assert "BEGIN SOLUTION" not in text


def test_grade_names_a_missing_reference(monkeypatch, tmp_path):
    from autograder.nbgrader import grade

    monkeypatch.setenv("AUTOGRADER_SOLUTIONS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="set AUTOGRADER_SOLUTIONS"):
        grade("softmax_naive")
