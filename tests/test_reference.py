"""The reference's memo: each check's answers are computed once per kit version (kept on disk between runs where no
student code can write them), and never wrong."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from autograder import pipeline
from autograder.config import Config, Limits
from autograder.judge import kept_answers
from autograder.judge.reference import ReferenceSubject
from autograder.judge.session import Checks
from autograder.load.submission import load_submission
from autograder.sandbox.capability import grader_files_safe
from autograder.sandbox.worker_client import WorkerClient
from tests.test_adversarial import ISOLATIONS

CHUNKS = [{"origin": c.origin, "code": c.code} for c in load_submission(Config().reference_notebook).chunks]


def reference() -> tuple[ReferenceSubject, list[dict]]:
    """A reference that records every request it really runs."""
    subject = ReferenceSubject.from_chunks(CHUNKS, "reference_memo_test")
    ran: list[dict] = []
    handle = subject.handler.handle
    subject.handler.handle = lambda message: ran.append(message) or handle(message)
    return subject, ran


def probe(subject: ReferenceSubject, scale: float) -> torch.Tensor:
    """What a check does: build a module, change its weights (from a student's answer), run it."""
    subject.begin("test_probe")
    module = subject.new("CausalAttention", 3, 2, 6, 0.0)
    state = {k: v * scale for k, v in module.state().items() if k != "mask"}
    module.load(state)
    return module(torch.ones(1, 4, 3) * 0.5)


def test_a_history_seen_before_runs_nothing():
    subject, ran = reference()
    first = probe(subject, 1.0)
    count = len(ran)
    again = probe(subject, 1.0)
    assert count == 4, f"the first probe should run its 4 requests, ran {count}"
    assert len(ran) == count, f"the same history ran {len(ran) - count} requests again instead of none"
    assert torch.equal(first, again), "the memo answered differently from the first run"


def test_a_new_request_replays_the_history_and_answers_right():
    subject, ran = reference()
    probe(subject, 1.0)
    count = len(ran)
    changed = probe(subject, 2.0)  # new, state: from the memo; load with other weights: new
    assert len(ran) == count + 4, f"expected the 2 remembered requests replayed and 2 new ones, ran {len(ran) - count}"
    fresh, _ = reference()
    expected = probe(fresh, 2.0)
    assert torch.equal(changed, expected), "after a replay the reference answered differently from a fresh one"


def test_modules_are_numbered_within_a_check():
    subject, ran = reference()
    probe(subject, 1.0)
    subject.new("SelfAttention_v2", 3, 2)  # ids move on; the next check's numbering must not
    count = len(ran)
    probe(subject, 1.0)
    assert len(ran) == count, "a check's memo depends on the ids earlier checks used"


# The reference's answers kept on disk between runs (judge/kept_answers.py).

def checks(tmp_path: Path) -> Checks:
    """The checks of a run whose answers are kept in tmp_path/kept."""
    return Checks(Config(), kept=tmp_path / "kept")


def test_kept_answers_are_read_by_the_next_run_and_run_nothing(tmp_path):
    first = checks(tmp_path)
    subject, _ = first.reference()
    expected = probe(subject, 1.0)
    first.close()
    assert subject.computed == 4, f"the first run computed {subject.computed} answers, expected its 4 requests"
    second = checks(tmp_path)
    kept, _ = second.reference()
    ran: list[dict] = []
    load = kept._namespace
    kept._namespace = lambda: ran.append("loaded") or load()  # the reference must not even be loaded
    again = probe(kept, 1.0)
    assert ran == [] and kept.computed == 0, "the next run ran the reference instead of reading the kept answers"
    assert torch.equal(again, expected), "the kept answer differs from the one computed"
    scaled = probe(kept, 2.0)  # a history never seen: computed (and the reference loaded) as before
    assert kept.computed and ran == ["loaded"], "a history the file does not hold was not computed"
    assert scaled.shape == expected.shape


def test_a_changed_reference_or_kit_reads_other_answers(tmp_path):
    notebook = tmp_path / "ch03_attention.ipynb"
    notebook.write_bytes(Config().reference_notebook.read_bytes())
    before = kept_answers.path_for(tmp_path, notebook)
    notebook.write_bytes(notebook.read_bytes().replace(b"torch.softmax", b"torch.softmax ", 1))
    assert kept_answers.path_for(tmp_path, notebook) != before, "an edited reference reads the old answers"
    real = kept_answers.digest(notebook)
    files = sorted(kept_answers.KIT.rglob("*.py"))
    assert len(files) > 50 and kept_answers.KIT / "judge" / "kept_answers.py" in files, "the kit's code is not digested"
    assert real == kept_answers.digest(notebook), "the digest of the same kit and reference changed"


def test_only_the_most_recently_used_answers_files_are_kept(tmp_path, monkeypatch):
    folder = tmp_path / "kept"
    reply = {"ok": True, "result": {"out": torch.ones(2)}}
    old = [folder / f"reference-{i:032x}.answers" for i in range(6)]
    monkeypatch.setattr(kept_answers, "KEEP", 100)
    for age, path in enumerate(old):  # old[0] the newest, old[5] the oldest
        kept_answers.write(path, {bytes([age]) * 32: reply}, 10)
        os.utime(path, (1e9 - age * 1000, 1e9 - age * 1000))
    other = folder / "preflight-0.passed"
    other.write_text("")
    assert kept_answers.read(old[5]), "a kept file was not read"  # used now, though written long ago
    monkeypatch.setattr(kept_answers, "KEEP", 4)
    new = folder / f"reference-{99:032x}.answers"
    kept_answers.write(new, {b"\x09" * 32: reply}, 10)
    left = set(folder.glob("*.answers"))
    assert left == {new, old[5], old[0], old[1]}, sorted(p.name for p in left)
    assert other.exists(), "a file that holds no answers was removed"
    folder.chmod(0o777)  # a folder others may write: its files are left alone
    assert kept_answers.prune(folder, 1) == [] and set(folder.glob("*.answers")) == left


def test_only_the_most_recently_used_marks_of_a_pass_are_kept(tmp_path):
    folder = tmp_path / "kept"
    folder.mkdir(mode=0o700)
    old = [folder / f"preflight-{i:032x}.passed" for i in range(kept_answers.KEEP_PASSED + 4)]
    for age, path in enumerate(old):  # old[0] the newest
        path.touch(mode=0o600)
        os.utime(path, (1e9 - age * 1000, 1e9 - age * 1000))
    answers = folder / f"reference-{0:032x}.answers"
    answers.touch(mode=0o600)
    os.utime(answers, (1, 1))
    assert kept_answers.passed(old[-1]), "a kept pass was not taken"  # taken now, though made long ago
    new = folder / f"preflight-{99:032x}.passed"
    kept_answers.remember_passed(new)
    left = set(folder.glob("*.passed"))
    assert left == {new, old[-1], *old[:kept_answers.KEEP_PASSED - 2]}, sorted(p.name for p in left)
    assert answers.exists(), "an answers file went with the marks of a pass"


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "not a file of its own", "group-writable"])
def test_a_damaged_or_shared_file_is_ignored_and_computed_again(tmp_path, damage):
    first = checks(tmp_path)
    expected = probe(first.reference()[0], 1.0)
    first.close()
    path = next((tmp_path / "kept").glob("*.answers"))
    data = path.read_bytes()
    assert kept_answers.read(path), "an intact file was not read"
    if damage == "flipped byte":  # a reply's bytes changed, its length kept
        path.write_bytes(data[:-3] + bytes([data[-3] ^ 1]) + data[-2:])
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "not a file of its own":
        path.unlink()
        path.symlink_to(tmp_path / "elsewhere.answers")
        (tmp_path / "elsewhere.answers").write_bytes(data)
    else:
        path.chmod(0o664)
    assert kept_answers.read(path) == {}, f"a file ({damage}) was read"
    second = checks(tmp_path)
    subject, _ = second.reference()
    assert torch.equal(probe(subject, 1.0), expected) and subject.computed == 4, f"({damage}) not computed again"


def test_answers_are_kept_only_where_no_student_code_can_write_them(monkeypatch):
    assert grader_files_safe("bwrap"), "bubblewrap workers see the grader's files read-only"
    assert not grader_files_safe("none"), "a student's kernel runs as the grader"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert not grader_files_safe("process"), "a fallback worker of the grader's own user could write them"
    session = pipeline.Session(Config(), pipeline.Run("none"))
    assert session.checks._kept_folder is None, "the kernel's check keeps answers"


@pytest.mark.slow
@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_sandboxed_worker_cannot_write_the_kept_answers(isolation):
    if not grader_files_safe(isolation):
        pytest.fail(f"{isolation}: answers are not kept here, so this machine does not test the guarantee")
    folder = Path.home() / ".cache" / "autograder" / f"test-{os.getpid()}"  # the default folder: where one would aim
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    kept = folder / "reference-0.answers"
    kept.write_bytes(b"kept")
    code = (f"import pathlib\nfolder = pathlib.Path({str(folder)!r})\n"
            "for name in ('reference-0.answers', 'reference-1.answers'):\n"
            "    try:\n        (folder / name).write_bytes(b'poisoned')\n"
            "    except Exception:\n        pass\n")
    try:
        worker = WorkerClient([{"origin": "cell 1", "code": code}], Limits(), isolation)
        worker.close()
        assert kept.read_bytes() == b"kept", f"{isolation}: a worker overwrote the kept answers"
        assert not (folder / "reference-1.answers").exists(), f"{isolation}: a worker wrote a file of kept answers"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
