"""The checks judge behaviour: correct variants get full marks, each realistic bug loses points in its class."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from autograder.config import GRADED

pytestmark = pytest.mark.slow


def failures(record: dict, part: str | None = None) -> list[str]:
    return [f"{t['check_id']}: {t['output']}" for t in record["tests"]
            if t["status"] == "failed" and (part is None or t["part"] == part)]


def test_every_fixture_has_one_record(graded_fixtures, manifest):
    files = {p.name for p in Path(graded_fixtures["__out__"]["path"]).glob("*.json")}
    assert files == {f"{name}.json" for name in manifest}, "one record per submission, no more, no less"


def test_correct_variants_get_full_marks(graded_fixtures, manifest):
    correct = [name for name, entry in manifest.items() if entry["full_marks"]]
    assert len(correct) >= 7, "at least 6 correct-but-different implementations besides the reference"
    for name in correct:
        record = graded_fixtures[name]
        assert record["score"] == record["max_score"] == 100, f"{name} lost points: {failures(record)}"


@pytest.mark.parametrize("bug", sorted(
    name for name in __import__("json").loads((Path(__file__).parent / "files/submissions/manifest.json").read_text())
    if name.startswith("bug_")))
def test_bug_loses_points_in_its_class_only(graded_fixtures, manifest, bug):
    record, entry = graded_fixtures[bug], manifest[bug]
    parts = record["parts"]
    assert record["score"] < record["max_score"], f"{bug} got full marks"
    for name in entry["wrong"]:
        assert parts[name]["score"] < parts[name]["max_score"], f"{bug}: {name} should lose points"
        for message in failures(record, name):
            assert "could not handle" not in message, f"{bug}: a check crashed instead of explaining: {message}"
    for name in entry["right"]:
        assert parts[name]["score"] == parts[name]["max_score"], (
            f"{bug}: {name} should keep its points: {failures(record, name)}")


def test_at_least_fifteen_realistic_bugs(manifest):
    assert sum(name.startswith("bug_") for name in manifest) >= 15


def test_records_follow_gradescope_schema(graded_fixtures, manifest):
    record = graded_fixtures["correct_reference.py"]
    for key, kind in {"score": float, "max_score": float, "execution_time": float, "output": str, "tests": list}.items():
        assert isinstance(record[key], kind), f"{key} should be {kind.__name__}"
    assert record["submission"].endswith("correct_reference.py") and record["error"] is None
    for test in record["tests"]:
        assert set(test) >= {"name", "score", "max_score", "status", "output", "tags", "visibility"}
        assert test["status"] in {"passed", "failed"} and test["visibility"] in {"visible", "hidden"}
        assert test["part"] in test["tags"] and set(test["tags"]) <= set(GRADED), test


def test_gradebook_has_a_row_per_submission_and_a_column_per_part(graded_fixtures, manifest):
    out = Path(graded_fixtures["__out__"]["path"])
    rows = list(csv.DictReader((out / "grades.csv").open()))
    assert {row["submission"] for row in rows} == set(manifest)
    assert list(rows[0])[1 : 1 + len(GRADED)] == list(GRADED)
    by_name = {row["submission"]: row for row in rows}
    for name in manifest:
        parts = sum(float(by_name[name][p]) for p in GRADED)
        assert parts == pytest.approx(float(by_name[name]["total"])) == pytest.approx(graded_fixtures[name]["score"])


def test_wrapper_is_graded_against_the_students_own_heads(graded_fixtures):
    record = graded_fixtures["bug_causal_no_scaling.py"]
    wrapper = [t for t in record["tests"] if t["check_id"] == "test_wrapper_matches_reference"][0]
    assert wrapper["status"] == "passed" and "your own heads" in wrapper["output"], wrapper
