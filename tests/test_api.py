"""The library API, called directly: one file to its record, a class folder to records and grades.csv."""
from __future__ import annotations

import csv
import json
import shutil

import pytest

from autograder import api
from autograder.config import Config
from autograder.i18n import t
from tests.conftest import FILES, SUBMISSIONS, run_cli

PAIR = ("correct_reference.py", "bug_causal_tril_mask.py")
VARIES = {"execution_time"}
"""Record fields that differ between two gradings of the same file."""


@pytest.fixture(scope="module")
def graded_by_cli(tmp_path_factory) -> dict[str, dict]:
    """PAIR graded by `autograder grade`, as the records it wrote."""
    folder = tmp_path_factory.mktemp("pair")
    for name in PAIR:
        shutil.copy(SUBMISSIONS / name, folder / name)
    out = folder / "out"
    result = run_cli("grade", *(str(folder / name) for name in PAIR), "--out", str(out), "--jobs", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    return {name: json.loads((out / f"{name}.json").read_text(encoding="utf-8")) for name in PAIR}


@pytest.mark.slow
@pytest.mark.parametrize("name", PAIR)
def test_grade_file_gives_the_record_autograder_grade_writes(graded_by_cli, name):
    cli = graded_by_cli[name]
    record = api.grade_file(cli["submission"]).to_json()
    assert record["score"] == cli["score"], f"{name}: api {record['score']}, autograder grade {cli['score']}"
    for key in sorted(set(record) | set(cli)):
        if key not in VARIES:
            assert record.get(key) == cli.get(key), f"{name}: the record's {key!r} differs from autograder grade's"
    if name.startswith("bug_"):
        assert record["score"] < record["max_score"] and record["diagnoses"], "the buggy file is caught and explained"


def test_an_unreadable_file_gets_a_record_that_says_why(tmp_path):
    path = tmp_path / "ch03_attention.py"
    path.write_bytes(b"")
    record = api.grade_file(path, Config(sandbox="process"))
    assert record.error == t("load.empty", "en"), record.error
    assert record.score == 0 and record.max_score > 0, "every check is there, and failed"
    assert record.tests and all(c.status == "failed" and c.output == t("load.empty", "en") for c in record.tests)
    assert record.submission == str(path) and record.sha256, "the record names the file it read"


@pytest.mark.slow
def test_grade_folder_writes_records_and_the_gradebook(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    for name in ("empty.py", "binary_junk.py"):
        shutil.copy(FILES / "malformed" / name, folder / name)
    notices: list[str] = []
    records = api.grade_folder([folder], tmp_path / "out", jobs=1, notice=notices.append)
    assert [name for name, _ in records] == ["binary_junk.py", "empty.py"]
    assert all((tmp_path / "out" / f"{name}.json").is_file() for name, _ in records), "a record each"
    with open(tmp_path / "out" / "grades.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["submission"] for row in rows] == ["binary_junk.py", "empty.py"], rows
    assert any(line.startswith("JOBS ") for line in notices), notices


def test_grade_folder_refuses_a_missing_path_before_grading(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        api.grade_folder([tmp_path / "nowhere"], tmp_path / "out")
    assert not (tmp_path / "out").exists(), "nothing was written"


def test_reading_submissions_never_builds_jsonschema_uri_grammar():
    """nbformat's jsonschema would import rfc3987_syntax (1-2 s of grammar building per process) if it were
    imported before load/submission.py refuses it; every judge process and `autograder check` pays that."""
    import subprocess
    import sys

    code = ("import sys, autograder.api, autograder.load.discover, autograder.integrations.gradescope; "
            "print(sys.modules.get('rfc3987_syntax', 'absent'))")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() in ("None", "absent"), f"rfc3987_syntax was imported: {shown.stdout}"
