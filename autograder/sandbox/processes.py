"""Making sure nothing survives a worker: finding, killing and reaping what it left, with psutil."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

from autograder.sandbox import linux
from autograder.sandbox.cgroups import remove_stale as remove_stale_groups

UID_BASE = 1 << 28
"""Workers of a root grader run as UID_BASE + judge pid * 64 + n: unique among live judges."""
UIDS_PER_JUDGE = 64
ENDED = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
"""A process in these states has ended (a zombie waits for a parent that may never ask)."""


def judge_uids(pid: int) -> range:
    """The user ids the workers of judge `pid` may run under."""
    start = UID_BASE + pid * UIDS_PER_JUDGE
    return range(start, start + UIDS_PER_JUDGE)


def started(pid: int) -> float | None:
    """When `pid` started (seconds since the epoch), or None when it is gone or has ended."""
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            return None if process.status() in ENDED else process.create_time()
    except psutil.Error:
        return None


def stamp(pid: int) -> int | None:
    """`pid`'s start time in hundredths of a second, for names that must not match a later process of that number."""
    when = started(pid)
    return None if when is None else round(when * 100)


def user_tasks(uid: int) -> int:
    """Processes and threads of `uid` (what RLIMIT_NPROC counts)."""
    return sum(p.info["num_threads"] or 0 for p in psutil.process_iter(["uids", "num_threads"])
               if p.info["uids"] is not None and p.info["uids"].real == uid)


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _reap(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def kill_uids(uids: range | list[int]) -> int:
    """SIGKILL every process whose owner is in `uids` (root only); returns how many were found.

    The owner is the real uid from /proc/PID/status, which even a non-dumpable process cannot hide. Those of them
    that ended as our children (a subreaper adopts what left a worker's session) are collected: a zombie would stay
    for as long as we live, counted against its user's process limit, and the user id comes back (judge_uids).
    """
    wanted, found, me = set(uids), 0, os.getpid()
    for _ in range(50):
        victims, ours = [], []
        for process in psutil.process_iter(["uids", "status", "ppid"]):
            info = process.info
            if info["uids"] is None or info["uids"].real not in wanted:
                continue
            if info["status"] not in ENDED:
                victims.append(process.pid)
            elif info["ppid"] == me:
                ours.append(process.pid)
        _reap(ours)
        if not victims:
            break
        found += len(victims)
        _kill(victims)
        time.sleep(0.01)
    return found


def kill_group(process: subprocess.Popen, uid: int | None, bwrap: bool = False) -> None:
    """SIGKILL a process started in a session of its own, its group, and (when it has one) its uid.

    `bwrap`: `process` is bubblewrap, whose child (the sandbox's init, in a session of its own) ends with it, a
    moment after. A caller that is a subreaper (linux.become_subreaper) adopts that child: it is waited for here,
    or it would stay our zombie for as long as we live, counted against its user's process limit. (A fallback
    worker's strays are kill_strays's.)"""
    orphans = []
    if bwrap and linux.is_subreaper():
        try:
            orphans = psutil.Process(process.pid).children()
        except psutil.Error:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    if uid is not None:
        kill_uids([uid])
    psutil.wait_procs(orphans, timeout=5)


def _strays(worker: int, since: float, spare: set[int]) -> list[int]:
    """Processes left by a fallback worker: its session or group, and orphans reparented to us."""
    me, found = os.getpid(), []
    for process in psutil.process_iter(["ppid", "status", "create_time"]):
        info = process.info
        if process.pid in spare or process.pid == me or info["status"] in ENDED or info["ppid"] is None:
            continue
        try:
            group, session = os.getpgid(process.pid), os.getsid(process.pid)
        except OSError:  # gone meanwhile
            continue
        if worker in (group, session) or (info["ppid"] == me and (info["create_time"] or 0) >= since):
            found.append(process.pid)
    return found


def kill_strays(worker: int, since: float, spare: set[int], known: set[int]) -> None:
    """Kill what a fallback worker `worker` (started at `since`) left, then reap those that were reparented to us.

    `spare` are the other workers still running (their pids are not strays); `known` every worker's
    pid, running or ended (its exit status belongs to its Popen).
    """
    for _ in range(50):
        strays = _strays(worker, since, spare)
        if not strays:
            break
        _kill(strays)
        time.sleep(0.01)
    me = os.getpid()
    for process in psutil.process_iter(["ppid", "status", "create_time"]):
        info = process.info
        if (info["status"] == psutil.STATUS_ZOMBIE and info["ppid"] == me and (info["create_time"] or 0) >= since
                and process.pid not in known):
            _reap([process.pid])


def clean_up_after(pid: int) -> None:
    """Remove what the workers of a judge process `pid` that has ended may have left behind.

    A judge cleans up after each worker itself; this is for a judge that was killed. Under
    bubblewrap nothing survives the judge; without it, processes a submission daemonised may.
    """
    if os.geteuid() == 0:
        kill_uids(judge_uids(pid))
        remove_stale_groups(pid)
    for leftover in Path(tempfile.gettempdir()).glob(f"autograder-{pid}-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def clean_up_stale() -> None:
    """clean_up_after every judge whose temporary folders remain although it no longer runs.

    For a batch that was killed with its judges (nobody was left to clean up after them). The
    folders are named after their process and its start stamp, so a later process that got the
    same number is not mistaken for their owner.
    """
    if os.geteuid() == 0:
        remove_stale_groups()
    for leftover in Path(tempfile.gettempdir()).glob("autograder-*-*-*"):
        _, pid, started_at, _ = leftover.name.split("-", 3)
        if not (pid.isdigit() and started_at.isdigit()):
            continue
        now = stamp(int(pid))
        if now == int(started_at):
            continue  # its owner still runs
        if now is None:
            clean_up_after(int(pid))
        else:  # the number belongs to a later process, maybe a judge whose workers have those uids
            shutil.rmtree(leftover, ignore_errors=True)
