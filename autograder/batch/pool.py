"""The instructor's batch: find submissions, grade them in parallel judges, keep exactly one record each."""
from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autograder.batch.preflight import LimitsRefused, Preflight, kept_verdict, passed_before, remember_pass
from autograder.batch.siblings import Sibling
from autograder.config import Config
from autograder.i18n import t
from autograder.load.discover import Entry, discover, up_to_date
from autograder.load.submission import file_sha256
from autograder.pipeline import write
from autograder.record import SubmissionResult, checked_by
from autograder.report.records import load, save
from autograder.sandbox import linux

UNPACKED = ".unpacked"
"""The grade folder's subfolder where archives are unpacked (kept: records name the files in it)."""
JUDGE_ATTEMPTS = 2
"""A submission during which a judge process died this many times gets an error record instead."""
JUDGE = [sys.executable, "-m", "autograder.batch.judge_process"]


@dataclass
class _Judge:
    """One running judge process, and the submissions handed to it (one at a time: each when it asks)."""

    process: subprocess.Popen | Sibling
    entries: list[Entry] = field(default_factory=list)
    started: set[str] = field(default_factory=set)
    finished: set[str] = field(default_factory=set)
    current: str | None = None
    waiting: bool = False
    """It waits for the reference's verdict ("go" on its stdin) before it hands in a record (preflight.py)."""
    told_end: bool = False
    """It has been told there is nothing more to grade."""
    heard: float = field(default_factory=time.monotonic)
    """When the judge last said something; one that stays silent too long is killed."""
    pending: bytes = b""

    def say(self, line: str) -> None:
        """One line on its stdin, closed once it has nothing more to hear (a judge that has died hears nothing)."""
        try:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
            if self.told_end and not self.waiting:
                self.process.stdin.close()
        except (OSError, ValueError):
            pass


def grade(paths: list[Path], out: Path, config: Config, isolation: str, force: bool = False, lang: str | None = None,
          progress: Callable[[int, int, str], None] | None = None,
          notice: Callable[[str], None] | None = None,
          plan: Callable[[int, int], None] | None = None) -> list[tuple[str, SubmissionResult]]:
    """Grade every submission under `paths` into `out`; returns (name, record) for each, in order.
    `isolation`: the sandbox for the workers, as the caller resolved it (sandbox.capability.isolation_for).
    `plan` hears (to grade, reused) before the batch starts: reused records are up to date and kept.

    Every file found gets a record (load.discover): files that are not submissions, and archive members that were
    refused, get one that says why, written here without a judge, and a NOT GRADED line through `notice`.
    Judges that die (killed, out of memory, or ended by a submission) are replaced and the batch
    goes on; a submission during which judges died JUDGE_ATTEMPTS times is recorded as not graded.
    A batch that was killed resumes where it stopped when run again. The first judge grades the reference
    solution first, and nobody is graded until it has full marks (batch/preflight.py).

    Raises:
        LimitsRefused: the reference does not get full marks under `config.limits`; nothing was graded.
    """
    from autograder.sandbox.processes import clean_up_after, clean_up_stale

    clean_up_stale()
    out.mkdir(parents=True, exist_ok=True)
    for leftover in out.glob(".tmp-*"):  # from a write_atomic that was killed halfway
        leftover.unlink(missing_ok=True)
    say = notice or (lambda line: None)
    checks = config.assignment.checks
    entries = discover(paths, out / UNPACKED, config.limits, exclude=out, notice=say)
    handed: dict[str, SubmissionResult] = {}
    """The records written in this run, as the judges handed them back (the reused ones are read from `out`)."""
    for entry in (e for e in entries if e.refusal is not None):
        record = _refusal_record(entry, lang or config.lang, checks)
        say(f"NOT GRADED {entry.path}: {record.error}")
        if force or not up_to_date(entry, out / f"{entry.name}.json", checks):
            write(record, out, entry.name)
            handed[entry.name] = record
    todo = [e for e in entries if e.refusal is None and (force or not up_to_date(e, out / f"{e.name}.json", checks))]
    done = len(entries) - len(todo)
    if plan:  # reused: up to date and kept (a refusal written above is not)
        plan(len(todo), done - len(handed))
    if progress:
        progress(done, len(entries), "")
    limits = config.limits
    silence = limits.submission_seconds + limits.load_seconds + 120  # a judge alive but stuck
    slots = max(1, min(config.jobs, len(todo)))
    deaths: dict[str, int] = {}
    judges: dict[int, _Judge] = {}
    selector = selectors.DefaultSelector()
    kept = kept_verdict(config, isolation) if todo else None
    needed = todo and not passed_before(kept)  # (the reference passed under these limits before: no preflight)
    check = Preflight(limits, lang or config.lang) if needed else None  # None once the reference's verdict is in

    def start(preflight: bool = False, siblings: int = 0) -> None:
        """A judge, and the judges it forks (batch/siblings.py); each asks for its submissions one at a time."""
        wait = check is not None
        forked = [Sibling() for _ in range(siblings)]
        spec = _spec(out, config, isolation, lang, check.record if preflight and wait else None, wait)
        spec["siblings"] = [sibling.spec(_spec(out, config, isolation, lang, None, wait)) for sibling in forked]
        process = _start_judge(spec, tuple(fd for sibling in forked for fd in sibling.theirs))
        for judge in [_Judge(process, waiting=wait)] + [_Judge(sibling, waiting=wait) for sibling in forked]:
            if isinstance(judge.process, Sibling):
                judge.process.handed()
            judges[judge.process.stdout.fileno()] = judge
            selector.register(judge.process.stdout.fileno(), selectors.EVENT_READ)

    def hand(judge: _Judge) -> None:
        """The judge asks for a submission: the next one, or the word that there is none."""
        if queue:
            entry = queue.popleft()
            judge.entries.append(entry)
            judge.say("grade\t" + json.dumps({"path": str(entry.path), "name": entry.name, "outside": entry.outside}))
        else:
            judge.told_end = True
            judge.say("end")

    def judged(died: int | None = None) -> None:
        """The reference has been graded, or its judge died: the judges go on, or the batch is refused."""
        nonlocal check
        refused = check.refusal(died)
        check.close()
        if refused is None:
            remember_pass(kept)
        check = None
        for judge in judges.values():
            if judge.waiting:
                judge.waiting = False
                judge.say("go" if refused is None else "stop")
        if refused is not None:
            for fd in list(judges):
                judge = judges.pop(fd)
                selector.unregister(fd)
                judge.process.stdout.close()
                judge.process.kill()  # it has written nothing and handed in nothing (it may be grading ahead)
                judge.process.wait()
                if judge.process.pid is not None:
                    clean_up_after(judge.process.pid)
            raise LimitsRefused(refused)

    def ended(fd: int) -> None:
        nonlocal done
        judge = judges.pop(fd)
        selector.unregister(fd)
        judge.process.stdout.close()
        judge.process.wait()
        born = judge.process.pid is not None  # (a sibling whose forker died first never was: nobody is to blame)
        if born:
            clean_up_after(judge.process.pid)
            if check is not None and judge.process.pid == check.judge:  # died grading the reference
                judged(died=judge.process.returncode)
        rest = [e for e in judge.entries if e.name not in judge.finished]
        rest = [e for e in rest if not (e.name in judge.started and up_to_date(e, out / f"{e.name}.json", checks))]
        blamed = judge.current if judge.current in {e.name for e in rest} else None
        if blamed is None and born and not judge.started and (rest or queue):
            if not rest:  # died before it asked: the submission it would have graded first is blamed
                rest = [queue.popleft()]
            blamed = rest[0].name
        if blamed is not None:
            deaths[blamed] = deaths.get(blamed, 0) + 1
        for entry in [e for e in rest if deaths.get(e.name, 0) >= JUDGE_ATTEMPTS]:
            handed[entry.name] = _error_record(entry, out / f"{entry.name}.json", "grader.judge_died",
                                               lang or config.lang, count=deaths[entry.name],
                                               code=judge.process.returncode)
            rest.remove(entry)
            done += 1
            if progress:
                progress(done, len(entries), entry.name)
        queue.extendleft(reversed(rest))  # graded next, by whichever judge asks first
        if queue and len(judges) < slots:
            start()

    def listen() -> None:
        """Hear the judges until the last has ended."""
        nonlocal done
        while judges:
            for key, _ in selector.select(timeout=10):
                judge = judges[key.fd]
                data = os.read(key.fd, 65536)
                if not data:
                    ended(key.fd)
                    continue
                judge.heard = time.monotonic()
                *lines, judge.pending = (judge.pending + data).split(b"\n")
                for line in lines:
                    event, _, name = line.decode("utf-8", "replace").partition("\t")
                    if event == "preflight" and check is not None:
                        judged()
                    elif event == "ready":
                        hand(judge)
                    elif event == "forked" and isinstance(judge.process, Sibling):
                        judge.process.born(int(name))
                    elif event == "start":
                        judge.current = name
                        judge.started.add(name)
                    elif event == "done":
                        name, _, record = name.rpartition("\t")  # a record's JSON holds no tab (json escapes it)
                        handed[name] = SubmissionResult.from_json(json.loads(record))
                        judge.finished.add(name)
                        judge.current = None
                        done += 1
                        if progress:
                            progress(done, len(entries), name)
            for judge in judges.values():
                if time.monotonic() - judge.heard > silence and not judge.waiting:
                    judge.process.kill()  # its end of file follows

    queue = deque(todo)
    was_subreaper = linux.is_subreaper()  # (the caller's fallback workers may need it after the batch)
    forks = slots > 1 and linux.become_subreaper()  # the siblings' parent once their forker is gone
    adopts = forks or was_subreaper  # what outlives a judge (a forked judge, a sandbox ending with it) is ours
    before = _children() if adopts else set()  # the caller's own, which the pool never waits for
    try:
        if todo:
            start(preflight=True, siblings=slots - 1 if forks else 0)
        for _ in range(slots - 1 if todo and not forks else 0):
            start()
        if check is not None:
            check.judge = next(iter(judges.values())).process.pid
        listen()
    finally:
        if forks:
            linux.become_subreaper(was_subreaper)  # as the caller had it
        if adopts:
            _reap_orphans(before | {judge.process.pid for judge in judges.values()})

    records = []
    for entry in entries:
        path = out / f"{entry.name}.json"
        if entry.name in handed:
            records.append((entry.name, handed[entry.name]))
            continue
        try:
            record = load(path)  # reused (up to date), refused, or written by a judge that died before saying so
        except (OSError, ValueError, TypeError):  # should not happen; still exactly one record
            record = _error_record(entry, path, "grader.no_record", lang or config.lang)
        records.append((entry.name, record))
    return records


def _children() -> set[int]:
    import psutil

    return {child.pid for child in psutil.Process().children()}


def _reap_orphans(others: set[int], seconds: float = 2.0) -> None:
    """Wait for the processes this pool adopted as a subreaper, not `others` (the caller's own, and judges still
    running): a forked judge, and a judge's sandbox, which ends with its judge but a moment after it. Kept unwaited,
    it would stay a zombie for as long as the caller lives, and count against the process limit of its user id,
    which a later judge given the same pid gets again (pids wrap at 32768 on many machines)."""
    import psutil

    psutil.wait_procs([child for child in psutil.Process().children() if child.pid not in others], timeout=seconds)


def _refusal_record(entry: Entry, lang: str, checks: Path) -> SubmissionResult:
    """The record of a file that is not graded (see Entry.refusal); with sha256, so a rerun keeps it."""
    key, params = entry.refusal
    try:
        digest = file_sha256(entry.path)
    except OSError:  # a dangling link: no digest, so the next run looks again
        digest = ""
    return SubmissionResult(submission=str(entry.path), score=0.0, max_score=0.0, execution_time=0.0,
                            error=t(key, lang, **params), language=lang, sha256=digest, **checked_by(checks))


def _error_record(entry: Entry, path: Path, key: str, lang: str, **params: object) -> SubmissionResult:
    """A record for a submission that could not be graded; without sha256, so a rerun retries it."""
    record = SubmissionResult(submission=str(entry.path), score=0.0, max_score=0.0, execution_time=0.0,
                              error=t(key, lang, **params))
    save(record, path)
    return record


def _spec(out: Path, config: Config, isolation: str, lang: str | None, preflight: Path | None = None,
          wait: bool = False) -> dict:
    """What a judge is told before it asks for its first submission; `preflight`: it grades the reference first,
    into that file; `wait`: it waits for "go" on its stdin before it hands in a record."""
    from autograder.sandbox.capability import probed

    return {
        "out": str(out), "isolation": isolation, "lang": lang, "solutions": str(config.solutions),
        "assignment": str(config.assignment.folder),
        "cache": str(config.cache) if config.cache is not None else None,
        "limits": asdict(config.limits), "preflight": str(preflight) if preflight else None, "wait": wait,
        "probed": probed(),  # what this machine allows, as this process found it (sandbox/capability.py)
    }


def _start_judge(spec: dict, pass_fds: tuple[int, ...] = ()) -> subprocess.Popen:
    """A judge told `spec`; its stdin stays open, for the pool's answers to what it asks."""
    from autograder.sandbox.launch import start_judge

    return start_judge(JUDGE, json.dumps(spec), pass_fds=pass_fds)
