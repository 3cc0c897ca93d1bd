"""`autograder export gradescope`: the zip Gradescope expects, run in a folder that stands in for /autograder."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest

from autograder.assignment import load
from autograder.integrations.gradescope import find_submission, pick_submission
from tests.conftest import ROOT, SUBMISSIONS, run_cli

GRADED = load().graded

VISIBILITY = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}

# results.json as Gradescope's "Autograder Specifications" page documents it
# (https://gradescope-autograders.readthedocs.io/en/latest/specs/): no other keys are allowed here.
RESULTS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "anyOf": [{"required": ["score"]}, {"required": ["tests"]}],
    "properties": {
        "score": {"type": "number"},
        "execution_time": {"type": "number"},
        "output": {"type": "string"},
        "output_format": {"enum": ["text", "html", "simple_format", "md", "ansi"]},
        "test_output_format": {"enum": ["text", "html", "simple_format", "md", "ansi"]},
        "test_name_format": {"enum": ["text", "html", "simple_format", "md", "ansi"]},
        "visibility": VISIBILITY,
        "stdout_visibility": VISIBILITY,
        "extra_data": {"type": "object"},
        "leaderboard": {"type": "array"},
        "tests": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "score": {"type": "number"},
                    "max_score": {"type": "number"},
                    "status": {"enum": ["passed", "failed"]},
                    "name": {"type": "string"},
                    "name_format": {"enum": ["text", "html", "simple_format", "md", "ansi"]},
                    "number": {"type": "string"},
                    "output": {"type": "string"},
                    "output_format": {"enum": ["text", "html", "simple_format", "md", "ansi"]},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "visibility": VISIBILITY,
                    "extra_data": {"type": "object"},
                },
            },
        },
    },
}


@pytest.fixture(scope="module")
def autograder_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "autograder.zip"
    result = run_cli("export", "gradescope", "--out", str(out), "--hidden-visibility", "after_published")
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout
    return out


def test_zip_has_what_gradescope_runs_and_no_tests(autograder_zip):
    with zipfile.ZipFile(autograder_zip) as archive:
        names = set(archive.namelist())
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
        setup = archive.read("setup.sh").decode()
    assert {"setup.sh", "run_autograder", "pyproject.toml", "gradescope.json"} <= names, sorted(names)
    assert {"solutions/en/ch03_attention.ipynb", "autograder/integrations/gradescope.py",
            "autograder/chapters/ch03_attention/checks/test_3_causal.py", "autograder/locales/en.json"} <= names, \
        "the kit and the reference travel in the zip"
    assert not [n for n in names if n.startswith("tests/") or "__pycache__" in n or n.endswith(".pyc")]
    for script in ("setup.sh", "run_autograder"):
        assert modes[script] & stat.S_IXUSR, f"{script} must be executable in the zip"
    assert "download.pytorch.org/whl/cpu" in setup and "pip install /autograder/source" in setup


def stand_in(tmp_path: Path, autograder_zip: Path, files: dict[str, str]) -> Path:
    """A folder laid out like Gradescope's /autograder: source (the zip), submission, results."""
    root = tmp_path / "autograder"
    with zipfile.ZipFile(autograder_zip) as archive:
        archive.extractall(root / "source")
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    (root / "run_autograder").chmod(0o755)
    (root / "submission").mkdir()
    for name, text in files.items():
        (root / "submission" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "submission" / name).write_text(text, encoding="utf-8")
    return root


def run_autograder(root: Path) -> dict:
    """Run the zip's run_autograder with this environment (setup.sh needs the network) and the zip's code."""
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": sys.executable,
           "PYTHONPATH": str(root / "source")}
    result = subprocess.run([str(root / "run_autograder")], cwd=root, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    results = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    jsonschema.validate(results, RESULTS_SCHEMA)
    return results


@pytest.mark.slow
def test_run_autograder_writes_gradescope_results(tmp_path, autograder_zip):
    notebook = (SUBMISSIONS / "correct_notebook_style.ipynb").read_text(encoding="utf-8")
    bug = (SUBMISSIONS / "bug_causal_tril_mask.py").read_text(encoding="utf-8")
    # the notebook is graded, not the helper file next to it
    root = stand_in(tmp_path, autograder_zip, {"helpers.py": bug, "ch03_attention.ipynb": notebook})
    results = run_autograder(root)
    assert results["score"] == 100, results["output"]
    assert results["extra_data"]["submission"] == "ch03_attention.ipynb"
    tests = results["tests"]
    assert {tag for t in tests for tag in t["tags"]} >= set(GRADED)
    assert sum(t["max_score"] for t in tests) == 100
    hidden = [t for t in tests if t["visibility"] == "after_published"]
    assert hidden and len(hidden) < len(tests), "hidden checks take the exported visibility, visible ones stay visible"
    assert {t["visibility"] for t in tests} == {"visible", "after_published"}
    assert len({t["number"] for t in tests}) == len(tests), "every test has its own number"


@pytest.mark.slow
def test_run_autograder_grades_a_buggy_submission_like_autograder_grade(tmp_path, autograder_zip):
    name = "bug_causal_tril_mask.py"
    root = stand_in(tmp_path, autograder_zip, {name: (SUBMISSIONS / name).read_text(encoding="utf-8")})
    results = run_autograder(root)
    out = tmp_path / "kit"
    graded = run_cli("grade", str(root / "submission" / name), "--out", str(out))
    assert graded.returncode == 0, graded.stderr[-2000:]
    record = json.loads((out / f"{name}.json").read_text())
    assert results["score"] == record["score"] < 100
    assert results["extra_data"]["parts"] == record["parts"]
    failed = [t for t in results["tests"] if t["status"] == "failed"]
    assert failed and all(t["score"] < t["max_score"] for t in failed)
    assert any("CausalAttention" in t["tags"] and t["output"] for t in failed), "failures explain themselves"


@pytest.mark.slow
def test_run_autograder_without_a_notebook_says_what_to_upload(tmp_path, autograder_zip):
    root = stand_in(tmp_path, autograder_zip, {"notes.txt": "I forgot the notebook"})
    results = run_autograder(root)
    assert results["score"] == 0 and results["tests"] == []
    assert "ch03_attention.ipynb" in results["output"]


def test_find_submission_prefers_the_assignment_notebook(tmp_path):
    for name in ("a.py", "scratch/ch03_attention.py", "zz.ipynb", ".ipynb_checkpoints/ch03_attention.ipynb"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x = 1\n")
        os.utime(tmp_path / name, (1_700_000_000, 1_700_000_000))  # alike in content and age: the name decides
    assert find_submission(tmp_path) == tmp_path / "scratch" / "ch03_attention.py"
    (tmp_path / "ch03_attention.ipynb").write_text("{}")
    os.utime(tmp_path / "ch03_attention.ipynb", (1_700_000_000, 1_700_000_000))
    assert find_submission(tmp_path) == tmp_path / "ch03_attention.ipynb"
    (tmp_path / "empty").mkdir()
    assert find_submission(tmp_path / "empty") is None


def test_a_marimo_student_who_uploads_both_files_is_graded_on_the_one_worked_on(tmp_path):
    untouched = tmp_path / "ch03_attention.ipynb"
    shutil.copy(ROOT / "assignments" / "en" / "ch03_attention.ipynb", untouched)
    worked = tmp_path / "ch03_attention.py"
    shutil.copy(SUBMISSIONS / "correct_marimo.py", worked)
    os.utime(worked, (1_700_000_000, 1_700_000_000))  # older than the untouched notebook: content decides
    path, why = pick_submission(tmp_path)
    assert path == worked, f"graded {path}"
    assert "ch03_attention.py" in why and "10 of 10" in why and "ch03_attention.ipynb 0" in why, why
    # two files implemented alike: the one saved last
    shutil.copy(worked, tmp_path / "copy.py")
    os.utime(tmp_path / "copy.py", (1_800_000_000, 1_800_000_000))
    path, why = pick_submission(tmp_path)
    assert path == tmp_path / "copy.py" and "saved last" in why, why
    # a single file needs no explanation
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(worked, alone / worked.name)
    assert pick_submission(alone) == (alone / worked.name, "")


def test_export_names_a_missing_solution(tmp_path):
    from autograder.integrations.gradescope import export

    (tmp_path / "pyproject.toml").write_text("")
    with pytest.raises(FileNotFoundError, match="solutions/en/ch03_attention.ipynb"):
        export(tmp_path / "a.zip", root=tmp_path, torch_version="2.13.0")


def test_visibility_settings_are_checked():
    from autograder.integrations.gradescope import GradescopeSettings

    with pytest.raises(ValueError, match="after_published"):
        GradescopeSettings(hidden_checks="secret")


@pytest.mark.slow
def test_zip_installs_as_setup_sh_does(tmp_path, autograder_zip):
    """setup.sh ends with `pip install /autograder/source`: the package, its checks and catalogues get installed."""
    with zipfile.ZipFile(autograder_zip) as archive:
        archive.extractall(tmp_path / "source")
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                             "--target", str(tmp_path / "site"), str(tmp_path / "source")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    package = tmp_path / "site" / "autograder"
    for name in ("integrations/gradescope.py", "sandbox/inside/worker.py",
                 "chapters/ch03_attention/checks/test_4_multihead.py", "chapters/ch03_attention/assignment.toml",
                 "chapters/ch03_attention/stand_ins.py", "chapters/ch03_attention/locales/zh_TW.json",
                 "locales/zh_TW.json", "report/templates/page.css", "integrations/templates/run_autograder.j2"):
        assert (package / name).is_file(), f"pip install of the zip's source misses autograder/{name}"
