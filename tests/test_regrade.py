"""`autograder diff`: a real regrade with a changed check module, compared with the first grading."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.config import ROOT
from autograder.integrations.hosted import kit_files as _kit_files
from tests.conftest import SUBMISSIONS, run_cli

LOOSENED = "def test_causal_no_peeking(sub):\n"


@pytest.fixture(scope="module")
def regraded(tmp_path_factory) -> tuple[Path, Path]:
    """The same class graded by this kit and by a copy whose test_causal_no_peeking was loosened to always pass."""
    base = tmp_path_factory.mktemp("regrade")
    folder = base / "class"
    folder.mkdir()
    for name in ("correct_reference.py", "bug_causal_tril_mask.py", "bug_mha_no_out_proj.py"):
        shutil.copy(SUBMISSIONS / name, folder / name)
    old = base / "old"
    first = run_cli("grade", str(folder), "--out", str(old), "--jobs", "2")
    assert first.returncode == 0, first.stderr[-2000:]
    kit = base / "kit"
    for path in _kit_files(ROOT):
        (kit / path.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, kit / path.relative_to(ROOT))
    check = kit / "autograder" / "chapters" / "ch03_attention" / "checks" / "test_3_causal.py"
    source = check.read_text()
    assert LOOSENED in source
    check.write_text(source.replace(LOOSENED, LOOSENED + "    return  # loosened by the test: a regrade\n"))
    new = base / "new"
    second = subprocess.run([sys.executable, "-m", "autograder", "grade", str(folder), "--out", str(new), "--jobs",
                             "2"], cwd=kit, env={**os.environ, "PYTHONPATH": str(kit)}, capture_output=True,
                            text=True, timeout=1800)
    assert second.returncode == 0, second.stderr[-2000:]
    return old, new


@pytest.mark.slow
def test_records_carry_the_kit_version_and_the_checks_digest(regraded):
    old, new = (json.loads((d / "bug_causal_tril_mask.py.json").read_text()) for d in regraded)
    assert old["kit_version"] and old["kit_version"] == new["kit_version"]
    assert old["checks_digest"] != new["checks_digest"], "a changed check module changes the digest"
    changed = {m for m in old["checks_files"] if old["checks_files"][m] != new["checks_files"][m]}
    assert changed == {"test_3_causal.py"}


@pytest.mark.slow
def test_diff_names_who_changed_which_check_flipped_and_why(regraded, tmp_path):
    old, new = regraded
    result = run_cli("diff", str(old), str(new))
    assert result.returncode == 1, "a score moved: exit 1"
    out = result.stdout
    assert "The check module test_3_causal.py changed" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith(("bug_", "correct"))}
    assert set(lines) == {"bug_causal_tril_mask.py"}, "only the submission the loosened check failed changed"
    assert "+3" in lines["bug_causal_tril_mask.py"] and "test_causal_no_peeking failed→passed" in lines[
        "bug_causal_tril_mask.py"]
    assert "2 unchanged" in out
    grades = {d: {row.split(",")[0]: row.split(",")[-3] for row in (d / "grades.csv").read_text().splitlines()[1:]}
              for d in (old, new)}
    assert float(grades[new]["bug_causal_tril_mask.py"]) - float(grades[old]["bug_causal_tril_mask.py"]) == 3, \
        "the diff's +3 is what autograder grade wrote in the two grades.csv"
    page = (new / "diff.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and '<html lang="en">' in page
    assert 'data-name="bug_causal_tril_mask.py"' in page and 'data-check="test_causal_no_peeking"' in page
    assert page.count("<tr data-name=") == 1
    zh = run_cli("diff", str(old), str(new), "--lang", "zh_TW")
    assert "檢查模組 test_3_causal.py 改過了" in zh.stdout
    assert '<html lang="zh-TW">' in (new / "diff.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_diff_of_a_folder_with_itself_changes_nothing(regraded):
    old, _ = regraded
    result = run_cli("diff", str(old), str(old))
    assert result.returncode == 0 and "0 submission(s) changed, 3 unchanged" in result.stdout


def test_diff_lists_submissions_in_one_folder_only_and_resubmissions():
    from autograder.record import CheckResult, SubmissionResult
    from autograder.report.regrade import diff, histogram, reasons, table

    def record(score: float, status: str, sha: str) -> SubmissionResult:
        check = CheckResult("c", "test_c", "softmax_naive", score, 10.0, status, "", ["softmax_naive"], "visible")
        return SubmissionResult("x", score, 10.0, 1.0, tests=[check], sha256=sha)

    old = [("a", record(10, "passed", "1")), ("b", record(0, "failed", "2")), ("gone", record(0, "failed", "3"))]
    new = [("a", record(10, "passed", "1")), ("b", record(10, "passed", "9")), ("late", record(10, "passed", "4"))]
    result = diff(old, new)
    assert [(c.name, c.delta, c.flipped, c.why) for c in result.changes] == [
        ("b", 10, [("test_c", "failed", "passed")], ["submission"])]
    assert result.only_old == ["gone"] and result.only_new == ["late"] and result.unchanged == 1
    assert histogram(result.old_scores, 10) == [2, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert any("1 submission file(s) differ" in line for line in reasons(result, "en"))
    text = table(result, "en")
    assert "Only in the old grading: gone" in text and "Only in the new grading: late" in text


def test_diff_of_missing_folders_is_a_usage_error(tmp_path):
    result = run_cli("diff", str(tmp_path / "a"), str(tmp_path))
    assert result.returncode == 2 and "no such folder" in result.stderr


@pytest.mark.slow
def test_grade_regrades_a_record_made_by_other_checks_without_force(tmp_path):
    name = "bug_causal_tril_mask.py"
    shutil.copy(SUBMISSIONS / name, tmp_path / name)
    out = tmp_path / "out"
    assert run_cli("grade", str(tmp_path / name), "--out", str(out)).returncode == 0
    path = out / f"{name}.json"
    record = json.loads(path.read_text())
    assert run_cli("grade", str(tmp_path / name), "--out", str(out)).returncode == 0
    assert json.loads(path.read_text())["execution_time"] == record["execution_time"], "same checks: resumed, kept"
    record["checks_digest"] = "0123456789ab"  # as if an earlier version of the checks had written it
    path.write_text(json.dumps(record))
    assert run_cli("grade", str(tmp_path / name), "--out", str(out)).returncode == 0
    assert json.loads(path.read_text())["checks_digest"] not in ("0123456789ab", ""), "regraded by today's checks"


def test_message_keys_of_the_course_modules_exist_in_both_languages():
    import re

    from autograder.i18n import catalogue

    used = set()
    for name in ("integrations/prairielearn.py", "report/regrade.py", "report/alttext.py", "report/class_overview.py",
                 "report/templates/diff.html.j2", "report/templates/overview.html.j2",
                 "report/templates/attention_text.html.j2"):
        text = (ROOT / "autograder" / name).read_text()
        used |= set(re.findall(r"""["']((?:pl|diff|alt|ui)\.[a-z_0-9]+)["']""", text))
    used |= {f"pl.{status}" for status in ("passed", "failed")} | {f"diff.status_{s}" for s in ("passed", "failed",
                                                                                                 "absent")}
    used -= {"diff.html", "diff.status_"}  # the page's file name; a key built from a check's status (added above)
    assert len(used) > 40
    for lang in ("en", "zh_TW"):
        missing = used - set(catalogue(lang))
        assert not missing, f"keys used but not in {lang}.json: {sorted(missing)}"
