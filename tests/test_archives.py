"""Nothing silently dropped: every file of a graded folder gets a record or a line, and a .zip (an LMS's "download
all submissions") is graded as it comes, safely, each student's notebook under the name the platform gave it."""
from __future__ import annotations

import csv
import io
import json
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from autograder.config import Limits
from autograder.load.archive import unpack
from autograder.load.discover import discover
from tests.conftest import SUBMISSIONS, run_cli

CORRECT, BUGGY = SUBMISSIONS / "correct_notebook_style.ipynb", SUBMISSIONS / "bug_causal_tril_mask.py"


def rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


def make_zip(path: Path, members: dict[str, bytes | Path], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data.read_bytes() if isinstance(data, Path) else data)
    return path


# --- 1. every file of a folder: a record or a line ---------------------------------------------------------------

def test_every_file_of_a_folder_is_an_entry_or_a_line(tmp_path):
    folder = tmp_path / "class"
    (folder / "alice" / ".ipynb_checkpoints").mkdir(parents=True)
    shutil.copy(CORRECT, folder / "alice" / "ch03_attention.ipynb")
    shutil.copy(CORRECT, folder / "alice" / ".ipynb_checkpoints" / "ch03_attention-checkpoint.ipynb")
    (folder / "alice" / "notes.txt").write_text("I used the book's code.\n")
    (folder / "grades_old.csv").write_text("a,b\n")
    (folder / "screenshot.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (folder / ".DS_Store").write_bytes(bytes(16))
    (folder / "alice" / "timestamp.txt").write_text("2026-11-30 10:00:00.000000 UTC")  # nbgrader's
    lines: list[str] = []
    entries = discover([folder], tmp_path / "unpacked", notice=lines.append)
    by_name = {e.name: e for e in entries}
    assert set(by_name) == {"alice__ch03_attention.ipynb", "alice__notes.txt", "grades_old.csv", "screenshot.png"}, \
        "every visible file is an entry; hidden ones are not"
    assert by_name["alice__ch03_attention.ipynb"].refusal is None
    for name, suffix in (("alice__notes.txt", ".txt"), ("grades_old.csv", ".csv"), ("screenshot.png", ".png")):
        assert by_name[name].refusal == ("load.unknown_type", {"suffix": suffix}), f"{name}: {by_name[name].refusal}"
    skipped = "\n".join(lines)
    assert ".ipynb_checkpoints" in skipped and ".DS_Store" in skipped, f"hidden files are named: {lines}"
    assert "timestamp.txt: nbgrader's submission times" in skipped, "an export's own metadata: a line, no record"


def test_a_folder_of_files_that_are_not_submissions_gets_a_record_each(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "notes.txt").write_text("my answers are in the notebook\n")
    (folder / "roster.csv").write_text("id,email\n")
    out = tmp_path / "out"
    result = run_cli("grade", str(folder), "--out", str(out))
    assert result.returncode == 0, "every file received a record: exit 0, as README says\n" + result.stderr
    assert "0 submission(s)" not in result.stdout, result.stdout
    for name, suffix in (("notes.txt", ".txt"), ("roster.csv", ".csv")):
        record = json.loads((out / f"{name}.json").read_text())
        assert record["error"] == f"Files ending in {suffix} cannot be graded. Submit a Jupyter notebook (.ipynb), " \
                                  "a marimo notebook (.py) or a Python file (.py).", record["error"]
        assert record["score"] == 0 and record["sha256"], "a record that a rerun keeps"
        assert f"NOT GRADED {folder / name}" in result.stderr, result.stderr
        assert (out / f"{name}.html").exists(), "a feedback page, as for every record"
    header, *body = rows(out / "grades.csv")
    assert sorted(r[0] for r in body) == ["notes.txt", "roster.csv"] and all("cannot be graded" in r[-1] for r in body)
    alone = run_cli("grade", str(folder / "notes.txt"), "--out", str(tmp_path / "alone"))
    assert alone.returncode == 0, alone.stderr
    assert json.loads((tmp_path / "alone" / "notes.txt.json").read_text())["error"] == \
        json.loads((out / "notes.txt.json").read_text())["error"], "passed as a file: the same record"


def test_the_grade_folder_inside_the_graded_folder_is_not_graded(tmp_path):
    folder = tmp_path / "class"
    (folder / "out").mkdir(parents=True)
    (folder / "out" / "old.json").write_text("{}")
    (folder / "notes.txt").write_text("x")
    names = [e.name for e in discover([folder], folder / "out" / ".unpacked", exclude=folder / "out")]
    assert names == ["notes.txt"], names


# --- 2. archives: unpacked safely ---------------------------------------------------------------------------------

def test_unpack_refuses_every_member_that_could_harm_the_grader(tmp_path):
    path = tmp_path / "class.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("alice/ch03_attention.py", BUGGY.read_bytes())
        archive.writestr("../escape.py", "print('escaped')")  # climbs out of the folder
        archive.writestr("/tmp/absolute.py", "x = 1")  # an absolute path
        archive.writestr("C:\\Users\\evil.py", "x = 1")  # a Windows drive
        link = zipfile.ZipInfo("bob/link.py")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")  # a symbolic link to a secret
        archive.writestr("carol/zeros.py", b"#" * 90_000)  # 90 KB that pack to a few hundred bytes: a small bomb
        archive.writestr("dan/big.ipynb", bytes(range(256)) * 800, compress_type=zipfile.ZIP_STORED)  # 200 KB
    limits = Limits(archive_member_bytes=100_000, archive_ratio=50)
    dest = tmp_path / "work" / "unpacked"
    result = unpack(path, dest, limits)
    assert result.error is None
    refused = {member: key for member, key, _ in result.refused}
    assert refused == {"../escape.py": "archive.escape", "/tmp/absolute.py": "archive.escape",
                       "C:\\Users\\evil.py": "archive.escape", "bob/link.py": "archive.link",
                       "carol/zeros.py": "archive.ratio", "dan/big.ipynb": "archive.member_too_large"}, refused
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["class.zip", "work/unpacked/alice/ch03_attention.py"], f"only the safe member: {written}"
    assert not Path("/tmp/absolute.py").exists()


def test_unpack_refuses_an_encrypted_member(tmp_path):
    path = make_zip(tmp_path / "secret.zip", {"secret.py": b"x = 1"})
    data = bytearray(path.read_bytes())  # zipfile writes no encryption: set the flag in both headers
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.index(signature) + offset
        data[at] |= 0x1
    path.write_bytes(bytes(data))
    result = unpack(path, tmp_path / "dest", Limits())
    assert [(m, k) for m, k, _ in result.refused] == [("secret.py", "archive.encrypted")], result.refused
    assert not (tmp_path / "dest" / "secret.py").exists()


def test_unpack_never_writes_more_than_a_member_declares(tmp_path):
    path = make_zip(tmp_path / "liar.zip", {"liar.py": b"#" * 5000}, zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())  # declare 10 bytes in both headers; 5000 follow
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.index(signature) + offset
        data[at:at + 4] = (10).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    result = unpack(path, tmp_path / "dest", Limits())
    assert [(m, k) for m, k, _ in result.refused] == [("liar.py", "archive.bad_member")], result.refused
    assert not (tmp_path / "dest" / "liar.py").exists(), "nothing of a member that lied about its size is kept"


@pytest.mark.parametrize("limits, members, key", [
    # more entries than allowed: nothing is unpacked
    (Limits(archive_members=3), {f"s{i}.py": b"x = 1" for i in range(4)}, "archive.too_many"),
    # the files add up to more than allowed (as declared, before anything is written)
    (Limits(archive_bytes=1000), {"a.py": b"#" * 600, "b.py": b"#" * 600}, "archive.too_large"),
])
def test_unpack_refuses_a_whole_archive_beyond_the_limits(tmp_path, limits, members, key):
    result = unpack(make_zip(tmp_path / "a.zip", members), tmp_path / "dest", limits)
    assert result.error is not None and result.error[0] == key, result.error
    assert not any((tmp_path / "dest").iterdir()), "nothing written"


def test_an_archive_that_is_not_a_zip_or_is_nested_too_deep_gets_a_record(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "broken.zip").write_text("this is not a zip file")
    inner = make_zip(tmp_path / "inner.zip", {"ch03_attention.py": BUGGY})
    middle = make_zip(tmp_path / "middle.zip", {"inner.zip": inner})
    make_zip(folder / "outer.zip", {"middle.zip": middle})
    make_zip(folder / "frank.zip", {"ch03_attention.py": BUGGY, "notes.txt": b"x"})  # a student's own zip
    entries = {e.name: e for e in discover([folder], tmp_path / "unpacked", Limits(archive_depth=2))}
    assert entries["broken.zip"].refusal[0] == "archive.unreadable"
    assert entries["outer__middle__inner.zip"].refusal == ("archive.nested", {"depth": 2}), sorted(entries)
    assert entries["frank__ch03_attention.py"].refusal is None, "a zip reads as a folder named after it"
    assert entries["frank__notes.txt"].refusal[0] == "load.unknown_type"
    assert entries["frank__ch03_attention.py"].path.read_bytes() == BUGGY.read_bytes()
    deeper = {e.name: e for e in discover([folder], tmp_path / "unpacked2", Limits(archive_depth=3))}
    assert deeper["outer__middle__inner__ch03_attention.py"].refusal is None


def test_archive_refusals_are_records_with_a_reason(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    make_zip(folder / "download.zip", {"alice/ch03_attention.py": BUGGY, "../../evil.py": b"x = 1"})
    out = tmp_path / "out"
    result = run_cli("grade", str(folder), "--out", str(out), "--limit", "archive_members=1")
    assert result.returncode == 0, result.stderr
    record = json.loads((out / "download.zip.json").read_text())
    assert "holds 2 entries; the limit is 1" in record["error"], record["error"]
    assert not list(tmp_path.rglob("evil.py")), "nothing unpacked"


# --- 2. archives as an LMS hands them out, graded and mapped back ------------------------------------------------

def canvas_zip(path: Path) -> Path:
    """Canvas's "Download Submissions": <sortable name, lower case, no punctuation>[_LATE]_<user id>_<file id>_<file>
    (canvas-lms lib/content_zipper.rb)."""
    return make_zip(path, {"linalice_10231_7700001_ch03_attention.ipynb": CORRECT,
                           "wangbob_LATE_10232_7700002_ch03_attention.py": BUGGY,
                           "chencarol_10233_7700003_ch03_answers.txt": b"see attached"})


def moodle_zip(path: Path) -> Path:
    """Moodle's "Download all submissions" (in folders): <Full name>_<participant id>_assignsubmission_<plugin>_/."""
    return make_zip(path, {"Alice Lin_880001_assignsubmission_file_/ch03_attention.ipynb": CORRECT,
                           "Bob Wang_880002_assignsubmission_file_/ch03_attention.py": BUGGY,
                           "Carol Chen_880003_assignsubmission_onlinetext_/onlinetext.html": b"<p>done</p>"})


GRADESCOPE_METADATA = """\
submission_311001:
  :submitters:
  - :name: Alice Lin
    :sid: S0001
    :email: alice@example.edu
  :created_at: 2026-11-30 10:00:00.000000000 -08:00
  :score: 0.0
submission_311002:
  :submitters:
  - :name: Bob Wang
    :sid: S0002
    :email: bwang@example.edu
  :created_at: 2026-11-30 11:00:00.000000000 -08:00
  :score: 0.0
"""


def gradescope_zip(path: Path) -> Path:
    """Gradescope's "Export Submissions": assignment_<id>_export/ with submission_<id>/ folders and the metadata."""
    return make_zip(path, {"assignment_5501_export/submission_metadata.yml": GRADESCOPE_METADATA.encode(),
                           "assignment_5501_export/submission_311001/ch03_attention.ipynb": CORRECT,
                           "assignment_5501_export/submission_311002/ch03_attention.py": BUGGY})


def test_platform_downloads_are_named_as_the_platform_names_them(tmp_path):
    folder = tmp_path / "downloads"
    folder.mkdir()
    canvas_zip(folder / "canvas.zip")
    moodle_zip(folder / "moodle.zip")
    gradescope_zip(folder / "gradescope.zip")
    lines: list[str] = []
    names = {e.name: e.refusal for e in discover([folder], tmp_path / "unpacked", notice=lines.append)}
    assert names == {
        "canvas__linalice_10231_7700001_ch03_attention.ipynb": None,
        "canvas__wangbob_LATE_10232_7700002_ch03_attention.py": None,
        "canvas__chencarol_10233_7700003_ch03_answers.txt": ("load.unknown_type", {"suffix": ".txt"}),
        "moodle__Alice_Lin_880001_assignsubmission_file___ch03_attention.ipynb": None,
        "moodle__Bob_Wang_880002_assignsubmission_file___ch03_attention.py": None,
        "moodle__Carol_Chen_880003_assignsubmission_onlinetext___onlinetext.html":
            ("load.unknown_type", {"suffix": ".html"}),
        "gradescope__assignment_5501_export__submission_311001__ch03_attention.ipynb": None,
        "gradescope__assignment_5501_export__submission_311002__ch03_attention.py": None,
    }, sorted(names)
    assert any("submission_metadata.yml" in line for line in lines), "the metadata is named, not dropped"
