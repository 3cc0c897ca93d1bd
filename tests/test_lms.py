"""`autograder export canvas|moodle`: a graded folder as the CSV each gradebook import reads, students matched
through a roster shaped like each system's own export (tests/files/lms/)."""
from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest

from tests.conftest import FILES, SUBMISSIONS, run_cli
from tests.test_archives import canvas_zip, gradescope_zip, moodle_zip

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
    assert len(users) == 3, "every roster row Moodle can match; Dan Wu has no e-mail: not written, reported"
    problems = rows(tmp_path / "moodle.unmatched.csv")
    assert any(p[:2] == ["row not written", "Dan Wu"] and "no Email address" in p[2] for p in problems), problems
    assert any(p[:2] == ["submission without student", "bob__ch03_attention.py"] for p in problems)


def test_matching_rules_without_grading(tmp_path):
    from autograder.integrations.lms import CANVAS_KEYS, match, read_roster
    from autograder.record import SubmissionResult

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


def saved_records(folder: Path, records: dict[str, tuple[str, float, str | None]]) -> Path:
    """Records as `autograder grade` writes them, without grading: name -> (submission path, score, error)."""
    from autograder.record import SubmissionResult
    from autograder.report.records import save

    folder.mkdir(parents=True, exist_ok=True)
    for name, (submission, score, error) in records.items():
        save(SubmissionResult(submission, score, 100.0, 1.0, error=error), folder / f"{name}.json")
    return folder


def test_plain_roster_rows_that_name_nobody_in_canvas_are_reported_not_written(tmp_path):
    graded = saved_records(tmp_path / "graded", {"alice.ipynb": ("/in/alice.ipynb", 80.0, None),
                                                 "bob__ch03_attention.py": ("/in/bob/ch03_attention.py", 60.0, None),
                                                 "carol.py": ("/in/carol.py", 40.0, None)})
    out = tmp_path / "canvas.csv"
    result = run_cli("export", "canvas", str(graded), "--roster", str(LMS / "plain_roster.csv"), "--out", str(out))
    assert result.returncode == 1, result.stderr
    header, points, *students = rows(out)
    assert students == [], f"rows without ID, SIS User ID or SIS Login ID cannot be imported: {students}"
    problems = rows(tmp_path / "canvas.unmatched.csv")
    unwritten = {p[1] for p in problems if p[0] == "row not written"}
    assert len(unwritten) == 4 and any("alice" in who for who in unwritten), problems
    assert "row not written" in result.stderr and "0 of 4" in result.stdout, result.stdout + result.stderr
    # The same roster with Canvas's columns under other spellings: read under Canvas's names, ignoring case.
    (tmp_path / "roster.csv").write_text(
        "id,sis login id,student\n10231,alice,\"Lin, Alice\"\n10232,bob,\"Wang, Bob\"\n")
    result = run_cli("export", "canvas", str(graded), "--roster", str(tmp_path / "roster.csv"), "--out", str(out))
    header, points, *students = rows(out)
    assert [row[:4] for row in students] == [["Lin, Alice", "10231", "", "alice"], ["Wang, Bob", "10232", "", "bob"]]
    assert [row[5] for row in students] == ["80", "60"]


def test_plain_roster_for_moodle_maps_its_columns_and_reports_rows_without_an_email(tmp_path):
    graded = saved_records(tmp_path / "graded", {"alice.ipynb": ("/in/alice.ipynb", 80.0, None)})
    (tmp_path / "roster.csv").write_text("first name,last name,email\nAlice,Lin,alice@example.edu\nDan,Wu,\n")
    out = tmp_path / "moodle.csv"
    result = run_cli("export", "moodle", str(graded), "--roster", str(tmp_path / "roster.csv"), "--out", str(out))
    assert result.returncode == 1, result.stderr
    header, *users = rows(out)
    assert users == [["Alice", "Lin", "", "alice@example.edu", "80"]], users
    assert any(p[:2] == ["row not written", "Dan Wu"] for p in rows(tmp_path / "moodle.unmatched.csv"))
    assert "row not written: Dan Wu" in result.stderr, result.stderr


def test_lms_downloads_are_matched_through_the_names_the_platform_gave(tmp_path):
    from autograder.integrations.lms import CANVAS_KEYS, MOODLE_KEYS, match, read_roster
    from autograder.record import SubmissionResult

    unpacked = tmp_path / ".unpacked"
    gradescope = unpacked / "gs.zip" / "assignment_5501_export"
    gradescope.mkdir(parents=True)
    (gradescope / "submission_metadata.yml").write_text(
        "submission_311002:\n  :submitters:\n  - :name: Bob Wang\n    :sid: S0002\n    :email: bwang@example.edu\n")
    records = [(name, SubmissionResult(str(path), 50.0, 100.0, 1.0)) for name, path in [
        ("c__linalice_10231_7700001_a.ipynb", unpacked / "c.zip/linalice_10231_7700001_a.ipynb"),
        ("c__wangbob_LATE_10232_7700002_x.py", unpacked / "c.zip/wangbob_LATE_10232_7700002_x.py"),
        ("m__Carol_Chen_880003_assignsubmission_file___a.py",
         unpacked / "m.zip/Carol Chen_880003_assignsubmission_file_/a.py"),
        ("g__assignment_5501_export__submission_311002__a.py", gradescope / "submission_311002" / "a.py")]]
    canvas = match(records, read_roster(LMS / "canvas_gradebook_export.csv"), CANVAS_KEYS)
    assert {i: n for i, (n, _) in canvas.records.items()} == {0: records[0][0], 1: records[1][0]}, \
        "Canvas: the user id in the file name is the gradebook's ID; Gradescope's sid S0002 is Bob's second"
    moodle = match(records, read_roster(LMS / "moodle_grades_export.csv"), [MOODLE_KEYS["email"], "Username"])
    assert {i: n for i, (n, _) in moodle.records.items()} == {1: records[3][0], 2: records[2][0]}, \
        "Moodle: the full name of the folder; Gradescope: the submitter's e-mail from submission_metadata.yml"


# --- an LMS's download (tests/test_archives.py builds them as each platform names its files), graded as it comes
# and exported back to the gradebook

@pytest.fixture(scope="module")
def graded_downloads(tmp_path_factory) -> Path:
    """The three platforms' downloads, as they come, graded in one batch for real."""
    folder = tmp_path_factory.mktemp("downloads")
    canvas_zip(folder / "canvas.zip")
    moodle_zip(folder / "moodle.zip")
    gradescope_zip(folder / "gradescope.zip")
    out = tmp_path_factory.mktemp("graded")
    result = run_cli("grade", str(folder), "--out", str(out), "--jobs", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def scores(graded: Path) -> dict[str, str]:
    header, *body = rows(graded / "grades.csv")
    return {row[0]: row[header.index("total")] for row in body}


@pytest.mark.slow
def test_canvas_download_graded_and_exported_back_to_canvas(graded_downloads, tmp_path):
    out = tmp_path / "canvas.csv"
    result = run_cli("export", "canvas", str(graded_downloads), "--roster", str(LMS / "canvas_gradebook_export.csv"),
            "--out", str(out))
    assert result.returncode == 1, "submissions of the other platforms match nobody: listed, exit 1"
    header, points, *students = rows(out)
    by_id = {row[1]: row for row in students}
    grades = scores(graded_downloads)
    assert grades["canvas__linalice_10231_7700001_ch03_attention.ipynb"] == "100"
    assert by_id["10231"][5] == "100", "Alice's notebook, matched through the Canvas user id in its name"
    assert by_id["10232"][5] == grades["canvas__wangbob_LATE_10232_7700002_ch03_attention.py"] != "100"
    assert by_id["10233"][5] == "0", "Carol handed in a .txt: graded 0, and listed"
    problems = {(p[0], p[1]) for p in rows(tmp_path / "canvas.unmatched.csv")}
    assert ("not graded", "canvas__chencarol_10233_7700003_ch03_answers.txt") in problems


@pytest.mark.slow
def test_moodle_and_gradescope_downloads_graded_and_exported_back_to_moodle(graded_downloads, tmp_path):
    out = tmp_path / "moodle.csv"
    result = run_cli("export", "moodle", str(graded_downloads), "--roster", str(LMS / "moodle_grades_export.csv"),
            "--out", str(out))
    assert result.returncode == 1, result.stderr
    problems = {(p[0], p[1]) for p in rows(tmp_path / "moodle.unmatched.csv")}
    header, *users = rows(out)
    by_mail = {row[3]: row for row in users}
    grades = scores(graded_downloads)
    # Alice and Bob each handed in twice (through Moodle and through Gradescope): the better one counts, both listed.
    assert by_mail["alice@example.edu"][4] == "100"
    bob = "moodle__Bob_Wang_880002_assignsubmission_file___ch03_attention.py"
    assert by_mail["bwang@example.edu"][4] == grades[bob]
    assert ("second submission", "moodle__Bob_Wang_880002_assignsubmission_file___ch03_attention.py") in problems \
        or ("second submission", "gradescope__assignment_5501_export__submission_311002__ch03_attention.py") in problems
    assert by_mail["carol@example.edu"][4] == "0", "Carol's online text: not a notebook, graded 0 and listed"
    assert ("not graded", "moodle__Carol_Chen_880003_assignsubmission_onlinetext___onlinetext.html") in problems
    matched = {p[1] for p in rows(tmp_path / "moodle.unmatched.csv") if p[0] == "submission without student"}
    assert not any(n.startswith(("moodle__", "gradescope__")) for n in matched), f"all matched: {matched}"
