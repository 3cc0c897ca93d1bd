"""`autograder export prairielearn`: the question folder and grader image, run in a folder standing in for /grade."""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import ROOT, SUBMISSIONS, run_cli

# results.json as PrairieLearn's "External Grading" page (docs/externalGrading.md, "Grading results") describes
# it: score in [0, 1] required unless gradable is false; format_errors a string or a list of strings; tests
# rendered by <pl-external-grader-results> with the keys listed there. Extra top-level data is allowed.
IMAGES = {"type": "array", "items": {"anyOf": [
    {"type": "string"},
    {"type": "object", "required": ["url"], "additionalProperties": False,
     "properties": {"url": {"type": "string"}, "label": {"type": "string"}}}]}}
RESULTS_SCHEMA = {
    "type": "object",
    "properties": {
        "gradable": {"type": "boolean"},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "message": {"type": "string"},
        "output": {"type": "string"},
        "format_errors": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "images": IMAGES,
        "tests": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["name", "points", "max_points"],
            "properties": {"name": {"type": "string"}, "description": {"type": "string"},
                           "points": {"type": "number", "minimum": 0}, "max_points": {"type": "number", "minimum": 0},
                           "message": {"type": "string"}, "output": {"type": "string"}, "images": IMAGES}}},
    },
    "if": {"properties": {"gradable": {"const": False}}, "required": ["gradable"]},
    "else": {"required": ["score"]},
}
# info.json's externalGradingOptions as the same page lists them
INFO_SCHEMA = {
    "type": "object", "required": ["uuid", "title", "topic", "type", "gradingMethod", "externalGradingOptions"],
    "properties": {
        "uuid": {"type": "string", "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"},
        "type": {"const": "v3"}, "gradingMethod": {"const": "External"},
        "externalGradingOptions": {
            "type": "object", "required": ["enabled", "image"], "additionalProperties": False,
            "properties": {"enabled": {"type": "boolean"}, "image": {"type": "string", "minLength": 1},
                           "entrypoint": {"type": "string", "pattern": "^/"},
                           "serverFilesCourse": {"type": "array", "items": {"type": "string"}},
                           "timeout": {"type": "integer", "minimum": 1, "maximum": 600},
                           "enableNetworking": {"type": "boolean"},
                           "environment": {"type": "object"}}},
    },
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pl")
    result = run_cli("export", "prairielearn", "--out", str(out), "--image", "course/ch03-grader:1")
    assert result.returncode == 0, result.stderr
    assert "docker build" in result.stdout, "the command says what to do next"
    return out


def test_question_folder_has_info_text_in_both_languages_and_the_files(exported):
    question = exported / "questions" / "ch03_attention"
    info = json.loads((question / "info.json").read_text())
    jsonschema.validate(info, INFO_SCHEMA)
    options = info["externalGradingOptions"]
    assert options["enabled"] and options["image"] == "course/ch03-grader:1" and options["entrypoint"] == "/grader/run"
    page = (question / "question.html").read_text(encoding="utf-8")
    assert '<section lang="en">' in page and '<section lang="zh-TW">' in page and "注意力" in page
    assert re.search(r'<pl-file-upload optional-file-names="ch03_attention.ipynb,ch03_attention.py">', page)
    assert "<pl-external-grader-results>" in page
    files = sorted(p.relative_to(question / "clientFilesQuestion").as_posix()
                   for p in (question / "clientFilesQuestion").rglob("*.*"))
    assert files == ["en/ch03_attention.ipynb", "en/ch03_attention.py", "zh_TW/ch03_attention.ipynb",
                     "zh_TW/ch03_attention.py"], "downloads named as the upload expects them"
    assert all(f"{{{{options.client_files_question_url}}}}/{name}" in page.replace(" ", "") for name in files)
    for lang in ("en", "zh_TW"):
        assert (question / "clientFilesQuestion" / lang / "ch03_attention.ipynb").read_bytes() == (
            ROOT / "assignments" / lang / "ch03_attention.ipynb").read_bytes(), "the students' notebook, no solutions"


def test_grader_image_has_the_kit_without_tests_and_the_cpu_torch(exported):
    grader = exported / "grader"
    dockerfile = (grader / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim$", dockerfile, re.M)
    assert "download.pytorch.org/whl/cpu" in dockerfile and "bubblewrap" in dockerfile
    assert "COPY kit /grader/kit" in dockerfile and "chmod 0700 /grader/kit" in dockerfile
    assert os.stat(grader / "run").st_mode & stat.S_IXUSR
    kit = grader / "kit"
    checks = kit / "autograder" / "chapters" / "ch03_attention" / "checks"
    assert (kit / "solutions" / "en" / "ch03_attention.ipynb").is_file() and checks.is_dir()
    assert not (kit / "tests").exists() and not list(kit.rglob("__pycache__"))
    assert json.loads((kit / "prairielearn.json").read_text())["image"] == "course/ch03-grader:1"


def stand_in(tmp_path: Path, exported: Path, files: dict[str, str]) -> tuple[Path, Path]:
    """A /grade root (student files; no results folder, PrairieLearn does not make it) and a copy of /grader."""
    grader = tmp_path / "grader"
    shutil.copytree(exported / "grader", grader)
    root = tmp_path / "grade"
    (root / "student").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "data" / "data.json").write_text("{}")
    for name, text in files.items():
        (root / "student" / name).write_text(text, encoding="utf-8")
    return root, grader


def run_grader(root: Path, grader: Path) -> dict:
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_SOURCE": str(grader / "kit"),
           "AUTOGRADER_PYTHON": sys.executable, "PYTHONPATH": str(grader / "kit")}
    result = subprocess.run([str(grader / "run")], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    results = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    jsonschema.validate(results, RESULTS_SCHEMA)
    assert len((root / "results" / "results.json").read_bytes()) < 1_000_000
    return results


@pytest.mark.slow
def test_grader_agrees_with_autograder_grade_and_folds_hidden_checks(tmp_path, exported):
    name = "bug_causal_tril_mask.py"
    root, grader = stand_in(tmp_path, exported, {"ch03_attention.py": (SUBMISSIONS / name).read_text()})
    results = run_grader(root, grader)
    graded = run_cli("grade", str(root / "student" / "ch03_attention.py"), "--out", str(tmp_path / "kit"))
    assert graded.returncode == 0, graded.stderr[-2000:]
    record = json.loads((tmp_path / "kit" / "ch03_attention.py.json").read_text())
    assert results["gradable"] is True and 0 < results["score"] < 1
    assert results["score"] == pytest.approx(record["score"] / record["max_score"]), "same score as autograder grade"
    tests = results["tests"]
    assert sum(t["points"] for t in tests) == record["score"] and sum(t["max_points"] for t in tests) == 100
    visible = [t for t in record["tests"] if t["visibility"] == "visible"]
    assert [t["name"] for t in tests[:-1]] == [t["name"] for t in visible], "visible checks one by one, in order"
    hidden = tests[-1]
    assert hidden["name"] == "Hidden checks" and hidden["output"] == ""
    assert hidden["max_points"] == sum(t["max_score"] for t in record["tests"] if t["visibility"] == "hidden")
    failed = [t for t in tests if t["points"] < t["max_points"] and t is not hidden]
    assert failed and all(t["output"] for t in failed), "failed visible checks explain themselves"
    if os.geteuid() == 0:  # the fallback sandbox's worker drops root: the solutions are root's only
        assert stat.S_IMODE(os.stat(grader / "kit").st_mode) == 0o700
        assert stat.S_IMODE(os.stat(root / "results").st_mode) == 0o700


@pytest.mark.slow
def test_grader_without_a_notebook_is_not_gradable(tmp_path, exported):
    root, grader = stand_in(tmp_path, exported, {"notes.txt": "forgot it"})
    results = run_grader(root, grader)
    assert results["gradable"] is False and "ch03_attention.ipynb" in results["format_errors"][0]
    assert "上傳" in results["message"], "both languages: the grader cannot know the student's"


def test_to_prairielearn_shows_hidden_checks_when_asked_and_refuses_unknown_modes():
    from autograder.integrations.prairielearn import PrairieLearnSettings, to_prairielearn
    from autograder.record import CheckResult, SubmissionResult

    checks = [CheckResult("a", "test_a", "softmax_naive", 1.0, 1.0, "passed", "", ["softmax_naive"], "visible"),
              CheckResult("b", "test_b", "softmax_naive", 0.0, 3.0, "failed", "why", ["softmax_naive"], "hidden")]
    record = SubmissionResult("x.py", 1.0, 4.0, 0.1, tests=checks)
    shown = to_prairielearn(record, "x.py", PrairieLearnSettings(hidden_checks="visible"))
    jsonschema.validate(shown, RESULTS_SCHEMA)
    assert [t["name"] for t in shown["tests"]] == ["a", "b"] and shown["tests"][1]["output"] == "why"
    assert shown["score"] == 0.25
    broken = to_prairielearn(SubmissionResult("x.py", 0.0, 0.0, 0.1, error="SyntaxError in cell 3"), "x.py",
                             PrairieLearnSettings())
    jsonschema.validate(broken, RESULTS_SCHEMA)
    assert broken["gradable"] is False and broken["format_errors"] == ["SyntaxError in cell 3"]
    with pytest.raises(ValueError, match="summary, visible"):
        PrairieLearnSettings(hidden_checks="after_due_date")
    with pytest.raises(ValueError, match="600"):
        PrairieLearnSettings(timeout=900)
