"""A cgroup v1 group per worker tree (memory, pids, cpu, cpuacct), made below the grader's own groups.

Only used where the grader may write its own v1 hierarchies (root, rw mounts under /sys/fs/cgroup).
Each group is a child of the cgroup the grader already runs in, so whatever limits the grader is
under still hold for its workers; the group only adds the submission's own limits.
"""
from __future__ import annotations

import itertools
import os
import signal
import sys
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path

import psutil

from autograder.config import environment

MOUNTS = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "pids", "cpu", "cpuacct")
"""memory is required; the others are used when present."""

_counter = itertools.count()


def _own(controller: str) -> Path | None:
    """The folder of the v1 cgroup this process is in for `controller`, or None (from /proc/self/cgroup: psutil
    does not read cgroups)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, names, path = line.split(":", 2)
        if controller in names.split(","):
            folder = MOUNTS / controller / path.lstrip("/")
            return folder if (folder / "cgroup.procs").exists() else None
    return None


@cache
def available() -> tuple[str, ...]:
    """The controllers a group can be made with here (empty when memory cannot be, or when config.environment()
    says AUTOGRADER_CGROUP=off); probed once."""
    if not environment().cgroups or os.geteuid() != 0:
        return ()
    found = []
    for controller in CONTROLLERS:
        own = _own(controller)
        if own is None:
            continue
        probe = own / f"autograder-probe-{os.getpid()}"
        try:
            probe.mkdir()
            if controller == "memory":
                (probe / "memory.limit_in_bytes").write_text(str(64 << 20))
            probe.rmdir()
        except OSError:
            try:
                probe.rmdir()
            except OSError:
                pass
            continue
        found.append(controller)
    return tuple(found) if "memory" in found else ()


def describe() -> str:
    """Which cgroup controllers a worker tree gets here, for the grader's notes."""
    return "cgroup v1 " + "+".join(available()) if available() else ""


class Group:
    """One worker tree's cgroups: a memory limit over every process (and its tmpfs pages), a task limit.

    When the limit is reached and nothing can be reclaimed, the kernel's OOM killer ends one task of
    the group and counts it (oom_kill); the judge's watchdog sees the count and kills the whole tree.
    The killer is left on: with it off (oom_kill_disable) only a page fault waits at the limit, while
    a charge made in a system call (a write(2) into a tmpfs) fails with ENOMEM and leaves no trace,
    so a tree could hold its whole budget in files unseen.
    """

    def __init__(self, memory_bytes: int, tasks: int):
        name = f"autograder-{os.getpid()}-{_own_start(os.getpid())}-{next(_counter)}"
        self.folders: dict[str, Path] = {}
        try:
            for controller in available():
                folder = _own(controller) / name
                folder.mkdir()
                self.folders[controller] = folder
            memory = self.folders["memory"]
            (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
            if (memory / "memory.memsw.limit_in_bytes").exists():  # swap counts too
                (memory / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
            if "pids" in self.folders:
                (self.folders["pids"] / "pids.max").write_text(str(tasks))
        except (OSError, KeyError):
            self.remove()
            raise

    def add(self, pid: int) -> None:
        """Move `pid` into every controller's group; its later children are born inside."""
        for folder in self.folders.values():
            (folder / "cgroup.procs").write_text(str(pid))

    def pids(self, threads: bool = False) -> list[int]:
        """The group's processes (or, with `threads`, every task: the threads too)."""
        try:
            return [int(p) for p in (self.folders["memory"] / ("tasks" if threads else "cgroup.procs")).read_text()
                    .split()]
        except (OSError, ValueError, KeyError):
            return []

    def out_of_memory(self) -> bool:
        """The group needed more than its limit: the kernel ended one of its tasks for memory (oom_kill,
        counted before the task is signalled), or the kernel is handling that now (under_oom, set before the count)."""
        try:
            fields = dict(line.split() for line in (self.folders["memory"] / "memory.oom_control").read_text()
                          .splitlines())
        except (OSError, ValueError, KeyError):
            return False
        return fields.get("under_oom") == "1" or fields.get("oom_kill", "0") != "0"

    def peak_bytes(self) -> int:
        return self._number("memory", "memory.max_usage_in_bytes")

    def peak_tasks(self) -> int | None:
        """The most tasks (processes and threads) the group has held at once, or None without pids.peak."""
        folder = self.folders.get("pids")
        if folder is None or not (folder / "pids.peak").exists():  # older kernels have no pids.peak
            return None
        return self._number("pids", "pids.peak")

    def cpu_seconds(self) -> float | None:
        """CPU time of every task that has been in the group, ended ones too; None without cpuacct."""
        if "cpuacct" not in self.folders:
            return None
        return self._number("cpuacct", "cpuacct.usage") / 1e9

    def _number(self, controller: str, name: str) -> int:
        try:
            return int((self.folders[controller] / name).read_text())
        except (OSError, ValueError, KeyError):
            return 0

    def kill(self) -> None:
        """SIGKILL every task in the group until none is left."""
        kill_until_gone(self.pids)

    def remove(self) -> bool:
        """Kill what is left and remove the groups (a group with tasks cannot be removed); True when none is left.

        A task that does not die at once (e.g. asleep in the kernel, where SIGKILL waits) is moved to the grader's
        own group rather than keeping its group, and so its limits and its name, alive; what still cannot be
        removed is said on stderr, with its tasks, and kept in `folders`.
        """
        if "memory" in self.folders:
            self.kill()
        left = {}
        for controller, folder in self.folders.items():
            if _rmdir(folder):
                continue
            stuck = _evict(folder)
            if controller == "memory":  # and the pages still charged to it (a tmpfs of the sandbox being freed)
                try:
                    (folder / "memory.force_empty").write_text("0")
                except OSError:
                    pass
            if not _rmdir(folder):
                left[controller] = folder
                print(f"autograder: the cgroup {folder} could not be removed; its tasks: {stuck or 'none'}",
                      file=sys.stderr)
        self.folders = left
        return not left


def _rmdir(folder: Path, seconds: float = 1.0) -> bool:
    """Remove an emptied group, waiting up to `seconds` for its tasks to finish exiting; True when it is gone."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            folder.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:  # tasks still exiting
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)


def _evict(folder: Path) -> list[str]:
    """Move the tasks still in `folder` to its parent (the grader's group); returns them with their states."""
    found = []
    try:
        pids = (folder / "cgroup.procs").read_text().split()
    except OSError:
        return found
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            state = "?"
        found.append(f"{pid} ({state})")
        try:
            (folder.parent / "cgroup.procs").write_text(pid)
        except OSError:
            pass
    return found


def remove_stale(pid: int | None = None) -> None:
    """Remove the groups of a judge `pid` that was killed before it could, or of every judge no longer running.

    A group is named after its judge's pid and start time (autograder-<pid>-<start>-<n>): pids are reused (32768 of
    them on many machines), and a later process that got the number does not keep a dead judge's groups alive.
    """
    for controller in available():
        own = _own(controller)
        for folder in own.glob(f"autograder-{pid if pid is not None else '*'}-*") if own else ():
            parts = folder.name.split("-")
            if not parts[1].isdigit():
                continue  # a probe's
            if pid is None and _running(int(parts[1]), parts[2] if len(parts) > 3 else None):
                continue
            group = Group.__new__(Group)
            group.folders = {controller: folder}
            group.remove()


def _stamp(pid: int) -> int | None:
    """processes.stamp: `pid`'s start in hundredths of a second, None once it has ended (imported here when first
    needed: processes.py imports this module)."""
    from autograder.sandbox.processes import stamp

    return stamp(pid)


@cache
def _own_start(pid: int) -> int | None:
    """This process's start (the pid is the key: a forked child asks for its own)."""
    return _stamp(pid)


def _running(pid: int, started: str | None) -> bool:
    """The judge that made a group still runs: `pid` is alive and (when the name says) started when it did."""
    if started is None:
        return psutil.pid_exists(pid)
    return str(_stamp(pid)) == started


def kill_until_gone(pids: Callable[[], list[int]]) -> None:
    """SIGKILL the processes `pids()` lists, again and again until it lists none (a fork may race one round)."""
    for _ in range(200):
        living = pids()
        if not living:
            return
        for pid in living:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.005)
