"""The checks judge behaviour: correct variants get full marks, each realistic bug loses points in its class."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from autograder.assignment import load

GRADED = load().graded

pytestmark = pytest.mark.slow


def failures(record: dict, part: str | None = None) -> list[str]:
    return [f"{t['check_id']}: {t['output']}" for t in record["tests"]
            if t["status"] == "failed" and (part is None or t["part"] == part)]


def test_every_fixture_has_one_record(graded_fixtures, manifest):
    files = {p.name for p in Path(graded_fixtures["__out__"]["path"]).glob("*.json")}
    assert files == {f"{name}.json" for name in manifest} | {"manifest.json.json"}, \
        "one record per submission, no more, no less, and one for the folder's manifest.json, which is not one"
    assert "Files ending in .json cannot be graded" in graded_fixtures["manifest.json"]["error"]


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
    kinds = {"score": float, "max_score": float, "execution_time": float, "output": str, "tests": list}
    for key, kind in kinds.items():
        assert isinstance(record[key], kind), f"{key} should be {kind.__name__}"
    assert record["submission"].endswith("correct_reference.py") and record["error"] is None
    for test in record["tests"]:
        assert set(test) >= {"name", "score", "max_score", "status", "output", "tags", "visibility"}
        assert test["status"] in {"passed", "failed"} and test["visibility"] in {"visible", "hidden"}
        assert test["part"] in test["tags"] and set(test["tags"]) <= set(GRADED), test


def test_gradebook_has_a_row_per_submission_and_a_column_per_part(graded_fixtures, manifest):
    out = Path(graded_fixtures["__out__"]["path"])
    rows = list(csv.DictReader((out / "grades.csv").open()))
    assert {row["submission"] for row in rows} == set(manifest) | {"manifest.json"}, "manifest.json: a row saying why"
    assert list(rows[0])[1 : 1 + len(GRADED)] == list(GRADED)
    by_name = {row["submission"]: row for row in rows}
    for name in manifest:
        parts = sum(float(by_name[name][p]) for p in GRADED)
        assert parts == pytest.approx(float(by_name[name]["total"])) == pytest.approx(graded_fixtures[name]["score"])


def test_wrapper_is_graded_against_the_students_own_heads(graded_fixtures):
    record = graded_fixtures["bug_causal_no_scaling.py"]
    wrapper = [t for t in record["tests"] if t["check_id"] == "test_wrapper_matches_reference"][0]
    assert wrapper["status"] == "passed" and "your own heads" in wrapper["output"], wrapper


ATTENTION_CLASSES = ("SelfAttention_v1", "SelfAttention_v2", "CausalAttention", "MultiHeadAttentionWrapper",
                     "MultiHeadAttention")
DOES_NOTHING = sorted(
    name for name, entry in __import__("json").loads((Path(__file__).parent / "files/submissions/manifest.json")
                                                      .read_text()).items() if entry.get("does_nothing"))


def _structure_checks() -> set[str]:
    from autograder.judge.run import check_table

    return {info.check_id for info in check_table(load().checks) if info.structure}


@pytest.mark.parametrize("name", DOES_NOTHING)
def test_work_that_computes_no_attention_earns_structure_points_only(graded_fixtures, manifest, name):
    structure = _structure_checks()
    assert structure, "no check is marked as a structure check"
    record = graded_fixtures[name]
    for part in ATTENTION_CLASSES:
        earned = {t["check_id"]: t["score"] for t in record["tests"]
                  if t["part"] == part and t["check_id"] not in structure and t["score"] > 0}
        assert not earned, f"{name}: {part} earns behaviour points without computing attention: {earned}"
        behaviour = [t for t in record["tests"] if t["part"] == part and t["check_id"] not in structure]
        assert behaviour, f"{name}: {part} has no behaviour checks, so this test proves nothing"
    for part in manifest[name]["right"]:  # what builds on the classes is judged alone
        assert record["parts"][part]["score"] == record["parts"][part]["max_score"], (
            f"{name}: {part} should keep its points: {failures(record, part)}")


def test_the_honest_floor_keeps_every_structure_point(graded_fixtures):
    structure = _structure_checks()
    record = graded_fixtures["nothing_not_implemented.py"]
    lost = [f"{t['check_id']}: {t['output']}" for t in record["tests"]
            if t["check_id"] in structure and t["status"] == "failed"]
    assert not lost, f"every __init__ is right, so every structure check should pass: {lost}"


BUILDS_ON = [("MultiHeadAttentionWrapper", "CausalAttention"), ("exercise_3_2", "CausalAttention"),
             ("exercise_3_2", "MultiHeadAttentionWrapper"), ("load_v2_weights_into_v1", "SelfAttention_v1"),
             ("load_v2_weights_into_v1", "SelfAttention_v2"), ("exercise_3_3", "MultiHeadAttention")]


@pytest.mark.parametrize("upper, lower", BUILDS_ON)
def test_a_bug_is_charged_only_to_the_class_that_has_it(graded_fixtures, manifest, upper, lower):
    proofs = [name for name, entry in manifest.items()
              if name.startswith("bug_") and lower in entry["wrong"] and upper in entry["right"]]
    assert len(proofs) >= 2, f"need fixtures where {lower} is wrong and {upper} (built on it) is right"
    for name in proofs:
        record = graded_fixtures[name]
        assert record["parts"][lower]["score"] < record["parts"][lower]["max_score"], f"{name}: {lower} is right"
        assert record["parts"][upper]["score"] == record["parts"][upper]["max_score"], (
            f"{name}: {upper} pays for {lower}'s bug: {failures(record, upper)}")


def test_a_wrapper_around_broken_heads_is_judged_with_stand_ins(graded_fixtures):
    record = graded_fixtures["bug_causal_mask_not_sliced.py"]
    wrapper = {t["check_id"]: t for t in record["tests"] if t["part"] == "MultiHeadAttentionWrapper"}
    for check_id in ("test_wrapper_no_peeking", "test_wrapper_gradients_reach_parameters"):
        assert wrapper[check_id]["status"] == "passed", wrapper[check_id]
        assert "stand-in heads" in wrapper[check_id]["output"], wrapper[check_id]


@pytest.mark.parametrize("name, part, differs, matched", [
    ("bug_signature_num_heads_first.py", "MultiHeadAttention", "another order", True),
    ("bug_signature_no_qkv_bias.py", "CausalAttention", "Missing: qkv_bias", False),
    ("bug_signature_context_len.py", "MultiHeadAttention", "the constructor says context_len", True),
])
def test_a_signature_unlike_the_stub_is_named_once_at_the_top(graded_fixtures, name, part, differs, matched):
    """The class's first check names the difference; a constructor matched with the stub's loses that point only,
    one that cannot be matched fails every other check with a short pointer to the first."""
    tests = [t for t in graded_fixtures[name]["tests"] if t["part"] == part]
    first, rest = tests[0], tests[1:]
    assert first["status"] == "failed" and "the stub asks for" in first["output"].lower(), first
    assert differs in first["output"], first
    told = [t["check_id"] for t in tests if "the stub asks for" in t["output"].lower()]
    assert told == [first["check_id"]], f"the signature should be explained once, not in {told}"
    for test in rest:
        assert "cannot be interpreted" not in test["output"], test
        if matched:
            assert test["status"] == "passed", test
        else:
            assert "not checked" in test["output"], test


def test_a_near_miss_attribute_name_is_named(graded_fixtures):
    outputs = {t["check_id"]: t["output"] for t in graded_fixtures["bug_near_miss_names.py"]["tests"]}
    assert "found an nn.Dropout named droput; the stub asks for dropout" in outputs["test_causal_layout"], outputs
    assert "found an nn.Linear named w_query; the stub asks for W_query" in outputs["test_mha_layout"], outputs


def test_refusing_indivisible_d_out_counts_only_from_a_working_constructor(graded_fixtures):
    tests = {t["check_id"]: t for t in graded_fixtures["bug_mha_init_always_raises.py"]["tests"]}
    check = tests["test_mha_rejects_indivisible_d_out"]
    assert check["status"] == "failed" and "arguments are valid" in check["output"], check
    assert graded_fixtures["correct_reference.py"]["parts"]["MultiHeadAttention"]["score"] == 24


def test_statements_that_need_skipped_demo_code_are_kept_from_the_student(graded_fixtures):
    record = graded_fixtures["correct_demo_heavy.ipynb"]
    assert "NameError" not in record["output"], record["output"]
    assert not record.get("instructor_notes"), "statements that need demo values are not run, so nothing fails"
    page = (Path(graded_fixtures["__out__"]["path"]) / "correct_demo_heavy.ipynb.html")
    assert page.exists() and "NameError" not in page.read_text(encoding="utf-8")


def test_the_fallback_grades_every_fixture_as_bubblewrap_does(graded_fixtures, tmp_path):
    """The real-mistake suite under the fallback's fork server (`--sandbox process`): the same scores, checks and
    messages, record by record, as the session's batch under the isolation this machine chose."""
    import json

    from tests.conftest import SUBMISSIONS, run_cli

    result = run_cli("grade", str(SUBMISSIONS), "--out", str(tmp_path), "--jobs", "2", "--sandbox", "process")
    assert result.returncode == 0, result.stderr[-3000:]
    fallback = {p.name[: -len(".json")]: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    assert set(fallback) == set(graded_fixtures) - {"__out__"}, "not the same records"
    for name, record in fallback.items():
        ours = graded_fixtures[name]
        ran = record["tests"] or not record["error"]  # a file that is not a submission gets a record, no worker
        assert record["isolation"] in ("process", "none") or not ran, f"{name}: graded under {record['isolation']}"
        assert record["score"] == ours["score"], f"{name}: {record['score']} under the fallback, {ours['score']}"
        assert [(t["check_id"], t["status"], t["score"], t["message_key"]) for t in record["tests"]] == \
            [(t["check_id"], t["status"], t["score"], t["message_key"]) for t in ours["tests"]], f"{name}: checks"
        assert [d["misconception"] for d in record.get("diagnoses", [])] == \
            [d["misconception"] for d in ours.get("diagnoses", [])], f"{name}: diagnoses differ"
