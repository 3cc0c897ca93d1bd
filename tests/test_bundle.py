"""The student bundle holds the assignments and the visible self-check, and nothing secret."""
from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from autograder.judge import check_table
from tests.conftest import ROOT, SUBMISSIONS, run_cli


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "student.zip"
    result = run_cli("build", "--student", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_bundle_contains_no_solution_and_no_hidden_check(bundle):
    hidden = [info.check_id for info in check_table() if info.hidden]
    visible = [info.check_id for info in check_table() if not info.hidden]
    assert hidden and visible
    with zipfile.ZipFile(bundle) as archive:
        names = archive.namelist()
        text = "\n".join(archive.read(n).decode("utf-8", "replace") for n in names)
    assert not any(n.startswith("solutions/") for n in names)
    assert {"assignments/en/ch03_attention.ipynb", "assignments/zh_TW/ch03_attention.py"} <= set(names)
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    for check_id in hidden:
        assert check_id not in text, f"hidden check {check_id} leaked into the bundle"
    for check_id in visible:
        assert f"def {check_id}(" in text, f"visible check {check_id} is missing"


@pytest.mark.slow
def test_bundled_self_check_works_without_the_solutions(bundle, tmp_path):
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(tmp_path)
    correct = tmp_path / "mine.py"
    correct.write_text((SUBMISSIONS / "correct_reference.py").read_text())
    for target, code in ((correct, 0), (tmp_path / "assignments/en/ch03_attention.ipynb", 1)):
        result = subprocess.run([sys.executable, "-m", "autograder", "check", str(target)], cwd=tmp_path,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == code, result.stdout + result.stderr
    assert str(ROOT) not in result.stdout
