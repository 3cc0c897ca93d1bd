"""`autograder export canvas|moodle`: a graded folder as the CSV each gradebook import reads, students matched
through a roster shaped like each system's own export (tests/files/lms/)."""
from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest

from tests.conftest import FILES, SUBMISSIONS, run_cli

LMS = FILES / "lms"
TEST_STUDENT = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
"""Canvas's test student: its SIS Login ID in an export is a long hash."""


def rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Path:
    """alice.ipynb (correct) and bob/ch03_attention.py (nbgrader-style folder, a causal-mask bug), graded for real."""
    folder = tmp_path_factory.mktemp("class")
    shutil.copy(SUBMISSIONS / "correct_notebook_style.ipynb", folder / "alice.ipynb")
    (folder / "bob").mkdir()
    shutil.copy(SUBMISSIONS / "bug_causal_tril_mask.py", folder / "bob" / "ch03_attention.py")
    out = tmp_path_factory.mktemp("graded")
    result = run_cli("grade", str(folder), "--out", str(out), "--jobs", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    return out


def totals(graded: Path) -> dict[str, str]:
    """grades.csv, written by autograder grade: submission -> total."""
    header, *body = rows(graded / "grades.csv")
    return {row[0]: row[header.index("total")] for row in body}


@pytest.mark.slow
def test_canvas_csv_has_canvas_columns_and_lists_who_did_not_match(graded, tmp_path):
    out = tmp_path / "canvas.csv"
    result = run_cli("export", "canvas", str(graded), "--roster", str(LMS / "canvas_gradebook_export.csv"),
                     "--assignment", "Chapter 3 attention", "--out", str(out))
    assert result.returncode == 1, "something did not match: exit 1, still written"
    header, points, *students = rows(out)
    assert header == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Chapter 3 attention (4821)"], \
        "Canvas's identity columns, and the assignment as Canvas names it, id included"
    assert points[0] == "Points Possible" and points[-1] == "100"
    by_login = {row[3]: row for row in students}
    assert set(by_login) == {"alice", "bwang", "carol", TEST_STUDENT}
    assert by_login["alice"][:5] == ["Lin, Alice", "10231", "S0001", "alice", "LLM 101 (Fall)"]
    assert by_login["alice"][5] == totals(graded)["alice.ipynb"] == "100", "the score autograder grade gave"
    assert by_login["bwang"][5] == "" and by_login["carol"][5] == "", "no submission: the cell stays empty"
    problems = rows(tmp_path / "canvas.unmatched.csv")
    assert ["submission without student", "bob__ch03_attention.py", "no roster row matches its name"] in problems
    assert {tuple(p[:2]) for p in problems if p[0] == "student without submission"} == {
        ("student without submission", "Wang, Bob (bwang)"), ("student without submission", "Chen, Carol (carol)"),
        ("student without submission", f"Student, Test ({TEST_STUDENT})")}
    assert "bob__ch03_attention.py" in result.stderr and "Chen, Carol" in result.stderr


@pytest.mark.slow
def test_canvas_roster_with_a_submission_column_and_one_column_per_part(graded, tmp_path):
    out = tmp_path / "canvas.csv"
    result = run_cli("export", "canvas", str(graded), "--roster", str(LMS / "roster_with_submissions.csv"),
                     "--parts", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Canvas will create a new assignment" in result.stderr, "a name without (id) is a new assignment"
    header, points, alice, bob = rows(out)
    assert header[5] == "Chapter 3 attention" and header[6] == "Chapter 3 attention: softmax_naive"
    assert len(header) == 6 + 10
    assert bob[5] == totals(graded)["bob__ch03_attention.py"] and float(bob[5]) < 100
    causal = header.index("Chapter 3 attention: CausalAttention")
    assert float(bob[causal]) < float(points[causal]) and sum(map(float, bob[6:])) == float(bob[5])
    assert rows(tmp_path / "canvas.unmatched.csv") == [["kind", "name", "detail"]]


@pytest.mark.slow
def test_moodle_csv_keyed_by_email_lists_students_moodle_cannot_match(graded, tmp_path):
    out = tmp_path / "moodle.csv"
    result = run_cli("export", "moodle", str(graded), "--roster", str(LMS / "moodle_grades_export.csv"),
                     "--key", "email", "--out", str(out))
    assert result.returncode == 1
    header, *users = rows(out)
    assert header == ["First name", "Last name", "ID number", "Email address", "Chapter 3 attention"]
    by_mail = {row[3]: row for row in users}
    assert by_mail["alice@example.edu"][4] == "100" and by_mail["bwang@example.edu"][4] == ""
    assert len(users) == 4, "every roster row, even one without an e-mail"
    problems = rows(tmp_path / "moodle.unmatched.csv")
    assert ["student without key", "Dan Wu", "no Email address: Moodle cannot match"] in problems
    assert any(p[:2] == ["submission without student", "bob__ch03_attention.py"] for p in problems)


def test_matching_rules_without_grading(tmp_path):
    from autograder.integrations.lms import CANVAS_KEYS, match, read_roster
    from autograder.report.records import SubmissionResult

    roster = read_roster(LMS / "canvas_gradebook_export.csv")
    assert [r["Student"] for r in roster][:3] == ["Lin, Alice", "Wang, Bob", "Chen, Carol"], "Points Possible skipped"
    records = [(name, SubmissionResult(f"/in/{name}", score, 100.0, 1.0)) for name, score in
               [("alice.ipynb", 60.0), ("alice__ch03_attention.ipynb", 80.0), ("S0003.py", 0.0), ("zed.py", 5.0)]]
    records[2][1].error = "SyntaxError: invalid syntax (cell 4)"
    found = match(records, roster, CANVAS_KEYS)
    assert found.records[0][0] == "alice__ch03_attention.ipynb", "the better of two submissions counts"
    assert found.records[2][0] == "S0003.py", "matched by SIS User ID"
    kinds = {(k, n) for k, n, _ in found.problems}
    assert {("second submission", "alice__ch03_attention.ipynb"), ("not graded", "S0003.py"),
            ("submission without student", "zed.py"), ("student without submission", "Wang, Bob (bwang)")} <= kinds
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty roster"):
        read_roster(tmp_path / "empty.csv")
    with pytest.raises(ValueError, match="none of the columns"):
        match(records, [{"Name": "x"}], CANVAS_KEYS)


def test_export_canvas_needs_its_inputs(tmp_path):
    result = run_cli("export", "canvas", str(tmp_path), "--out", str(tmp_path / "x.csv"))
    assert result.returncode == 2 and "--roster" in result.stderr
    result = run_cli("export", "canvas", str(tmp_path), "--roster", str(LMS / "canvas_gradebook_export.csv"),
                     "--out", str(tmp_path / "x.csv"))
    assert result.returncode == 2 and "no records" in result.stderr
