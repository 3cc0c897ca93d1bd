"""The command line, invoked for real: help, exit codes, the self-check and a small batch."""
from __future__ import annotations

import json

import pytest

from autograder.cli import parser
from tests.conftest import ROOT, SUBMISSIONS, run_cli


def test_every_command_has_help_with_an_example():
    result = run_cli("--help")
    assert result.returncode == 0 and "exit codes" in result.stdout
    assert "examples:" in result.stdout and "autograder export gradescope" in result.stdout, result.stdout
    commands = parser()._subparsers._group_actions[0].choices
    assert set(commands) >= {"check", "grade", "build"}
    for name in commands:
        help_text = run_cli(name, "--help")
        assert help_text.returncode == 0, name
        assert "example" in help_text.stdout and f"autograder {name}" in help_text.stdout, name


def test_unknown_option_is_a_usage_error():
    result = run_cli("grade", "--no-such-option")
    assert result.returncode == 2 and "usage" in result.stderr


def test_check_of_a_missing_file_names_it():
    result = run_cli("check", "nowhere/ch03.ipynb")
    assert result.returncode == 2 and "nowhere/ch03.ipynb" in result.stderr


@pytest.mark.slow
def test_self_check_passes_a_correct_submission():
    result = run_cli("check", str(SUBMISSIONS / "correct_reference.py"))
    assert result.returncode == 0, result.stdout
    assert "✗" not in result.stdout and result.stdout.count("✓") >= 10 and result.stdout.count("done") == 10
    assert "All visible checks pass" in result.stdout


@pytest.mark.slow
def test_self_check_explains_a_bug_and_exits_one():
    result = run_cli("check", str(SUBMISSIONS / "bug_causal_tril_mask.py"), "--part", "CausalAttention")
    assert result.returncode == 1
    assert "✗" in result.stdout and "later tokens leak into earlier ones" in result.stdout
    assert "MultiHeadAttention " not in result.stdout, "--part limits the checklist"
    assert "Traceback" not in result.stdout


@pytest.mark.slow
def test_self_check_on_the_untouched_assignment_says_not_implemented():
    result = run_cli("check", str(ROOT / "assignments" / "en" / "ch03_attention.ipynb"))
    assert result.returncode == 1
    # a line per part, no details for parts not started; --verbose shows every check
    parts = [line for line in result.stdout.splitlines() if line.startswith("·")]
    assert len(parts) == 10 and all("not started" in line for line in parts), result.stdout
    assert "✓" not in result.stdout and "not started yet" in result.stdout, "the summary says why nothing is shown"
    assert len(result.stdout.splitlines()) < 25, result.stdout
    verbose = run_cli("check", str(ROOT / "assignments" / "en" / "ch03_attention.ipynb"), "--verbose")
    assert verbose.returncode == 1 and verbose.stdout.count("not implemented yet") >= 10, verbose.stdout


@pytest.mark.slow
def test_self_check_speaks_traditional_chinese():
    result = run_cli("check", str(SUBMISSIONS / "bug_causal_tril_mask.py"), "--part", "CausalAttention",
                     "--lang", "zh_TW")
    assert result.returncode == 1
    assert "因果" in result.stdout or "遮罩" in result.stdout, result.stdout


@pytest.mark.slow
def test_grade_writes_records_and_resumes(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    for name in ("correct_reference.py", "bug_mha_no_out_proj.py"):
        (folder / name).write_text((SUBMISSIONS / name).read_text())
    out = tmp_path / "out"
    first = run_cli("grade", str(folder), "--out", str(out), "--jobs", "2")
    assert first.returncode == 0, first.stderr
    assert "correct_reference.py" in first.stdout and "100/100" in first.stdout
    records = {p.name: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert set(records) == {"correct_reference.py.json", "bug_mha_no_out_proj.py.json"}
    assert records["bug_mha_no_out_proj.py.json"]["score"] < 100
    stamp = (out / "correct_reference.py.json").stat().st_mtime_ns
    again = run_cli("grade", str(folder), "--out", str(out))
    assert again.returncode == 0 and (out / "correct_reference.py.json").stat().st_mtime_ns == stamp, "resumed"
    forced = run_cli("grade", str(folder), "--out", str(out), "--force")
    assert forced.returncode == 0 and (out / "correct_reference.py.json").stat().st_mtime_ns != stamp
