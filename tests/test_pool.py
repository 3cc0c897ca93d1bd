"""The batch's judges (batch/pool.py, batch/siblings.py): the first imports everything and forks the others; each
asks for its submissions one at a time; a judge that dies is replaced, and blamed only for what it was grading."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from autograder.batch import pool
from autograder.batch.preflight import kept_verdict, remember_pass
from autograder.config import Config
from autograder.sandbox.capability import isolation_for
from tests.conftest import SUBMISSIONS, UNCACHED, run_cli

pytestmark = pytest.mark.slow
FILES = ["correct_reference.py", "nothing_zeros.py", "correct_reference.py", "correct_reference.py"]


def _class(folder: Path) -> Path:
    folder.mkdir()
    for i, name in enumerate(FILES):
        (folder / f"student_{i}.py").write_text((SUBMISSIONS / name).read_text())
    return folder


def _scores(out: Path) -> dict[str, tuple[float, str | None]]:
    return {p.name: (json.loads(p.read_text())["score"], json.loads(p.read_text())["error"])
            for p in sorted(out.glob("student_*.json"))}


def test_the_second_judge_is_forked_from_the_first_and_grades_as_it_would(tmp_path, monkeypatch):
    folder, out, profile = _class(tmp_path / "class"), tmp_path / "out", tmp_path / "profile"
    monkeypatch.setenv("AUTOGRADER_PROFILE", str(profile))
    result = run_cli("grade", str(folder), "--out", str(out), "--jobs", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    starts = sorted(stage for line in profile.read_text().splitlines()
                    for stage in json.loads(line)["stages"] if stage.startswith("judge start"))
    assert starts == ["judge start (forked)", "judge start (imports)"], starts
    alone = run_cli("grade", str(folder), "--out", str(tmp_path / "alone"), "--jobs", "1")  # no judge forked
    assert alone.returncode == 0, alone.stderr[-2000:]
    assert _scores(out) == _scores(tmp_path / "alone") and len(_scores(out)) == len(FILES)


def test_a_judge_that_dies_before_forking_blames_one_submission_not_its_unborn_sibling(tmp_path, monkeypatch):
    """The first judge dies before it has forked the second: the second was never born, so nothing it would have
    graded is blamed. With one attempt per submission, only the submission the first would have graded gets an
    error record; new judges grade the rest."""
    folder, out = _class(tmp_path / "class"), tmp_path / "out"
    marker = tmp_path / "died once"
    dies_once = tmp_path / "dies_once.py"
    dies_once.write_text(
        "import os, pathlib, sys\n"
        f"marker = pathlib.Path({str(marker)!r})\n"
        "if not marker.exists():\n"
        "    marker.touch()\n"
        "    os._exit(3)\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'autograder.batch.judge_process'])\n")
    monkeypatch.setattr(pool, "JUDGE", [sys.executable, str(dies_once)])
    monkeypatch.setattr(pool, "JUDGE_ATTEMPTS", 1)
    config, isolation = Config(jobs=2), isolation_for("auto")
    remember_pass(kept_verdict(config, isolation))  # no preflight: a death is not the reference's
    records = dict(pool.grade([folder], out, config, isolation))
    assert marker.exists(), "the first judge did not run"
    errors = {name: record.error for name, record in records.items() if record.error}
    assert list(errors) == ["student_0.py"], errors
    graded = {name: record.score for name, record in records.items() if record.tests}
    assert graded.keys() == {"student_1.py", "student_2.py", "student_3.py"}, graded
    assert graded["student_2.py"] == graded["student_3.py"] == 100.0, graded


def test_a_batch_leaves_the_caller_a_subreaper_as_it_found_it(tmp_path):
    """A batch that forks judges makes its process a subreaper, then gives that up; a caller that was one before (its
    fallback workers' orphans must become its children) is one after, and can become one again later."""
    folder = tmp_path / "class"
    folder.mkdir()
    for i in range(2):
        (folder / f"student_{i}.py").write_text((SUBMISSIONS / "correct_reference.py").read_text())
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from autograder.batch import pool\n"
        "from autograder.config import Config\n"
        "from autograder.sandbox import linux\n"
        "from autograder.sandbox.capability import isolation_for\n"
        "assert not linux.is_subreaper() and linux.become_subreaper() and linux.is_subreaper()\n"
        "records = dict(pool.grade([Path(sys.argv[1])], Path(sys.argv[2]), Config(jobs=2), isolation_for('auto')))\n"
        "assert [r.score for r in records.values()] == [100.0, 100.0], records\n"
        "print('after the batch', linux.is_subreaper())\n"
        "linux.become_subreaper(False)\n"
        "print('off', linux.is_subreaper())\n"
        "linux.become_subreaper()\n"
        "print('on again', linux.is_subreaper())\n"
    )
    import subprocess
    done = subprocess.run([sys.executable, "-c", script, str(folder), str(tmp_path / "out")], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[-4:-1] == ["after the batch True", "off False", "on again True"], done.stdout


@pytest.mark.parametrize("isolation", [
    pytest.param("bwrap", marks=pytest.mark.skipif(isolation_for("auto") != "bwrap", reason="no bubblewrap")),
    "process"])
def test_a_subreaper_caller_keeps_no_zombie_of_a_batch(isolation, tmp_path):
    """A caller that is a subreaper (it has run a fallback worker) adopts what outlives a judge: its sandbox, which
    ends a moment after it. A batch of one judge (not forked) waited for none of them, so each stayed the caller's
    zombie, counted against the process limit of a user id that a later judge given the same pid gets again."""
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "student.py").write_text((SUBMISSIONS / "correct_reference.py").read_text())
    script = (
        "import psutil, sys, time\n"
        "from pathlib import Path\n"
        "from autograder.batch import pool\n"
        "from autograder.config import Config\n"
        "from autograder.sandbox import linux\n"
        "assert linux.become_subreaper()\n"
        "for run in range(2):\n"
        "    records = pool.grade([Path(sys.argv[1])], Path(sys.argv[2]) / str(run), Config(jobs=2), sys.argv[3])\n"
        "    assert [r.score for _, r in records] == [100.0], records\n"
        "time.sleep(0.2)\n"
        "print([(child.name(), child.status()) for child in psutil.Process().children()])\n")
    import subprocess
    done = subprocess.run([sys.executable, "-c", script, str(folder), str(tmp_path / "out"), isolation],
                          env=UNCACHED, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout == "[]\n", (done.stdout, done.stderr[-2000:])
