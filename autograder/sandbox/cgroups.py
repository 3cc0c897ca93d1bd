"""A cgroup v1 group per worker tree (memory, pids, cpu, cpuacct), made below the grader's own groups.

Only used where the grader may write its own v1 hierarchies (root, rw mounts under /sys/fs/cgroup).
Each group is a child of the cgroup the grader already runs in, so whatever limits the grader is
under still hold for its workers; the group only adds the submission's own limits.
"""
from __future__ import annotations

import itertools
import os
import signal
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

    The kernel does not kill inside the group when the limit is reached (oom_kill_disable): the
    tasks wait, the judge's watchdog sees it, counts them and kills the whole tree.
    """

    def __init__(self, memory_bytes: int, tasks: int):
        name = f"autograder-{os.getpid()}-{next(_counter)}"
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
            (memory / "memory.oom_control").write_text("1")
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
        """The group reached its limit: its tasks wait for memory that will not come."""
        try:
            fields = dict(line.split() for line in (self.folders["memory"] / "memory.oom_control").read_text()
                          .splitlines())
        except (OSError, ValueError, KeyError):
            return False
        return fields.get("under_oom") == "1" or fields.get("oom_kill", "0") != "0"

    def peak_bytes(self) -> int:
        return self._number("memory", "memory.max_usage_in_bytes")

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

    def remove(self) -> None:
        """Kill what is left and remove the groups (a group with tasks cannot be removed)."""
        if "memory" in self.folders:
            self.kill()
        for folder in self.folders.values():
            for _ in range(100):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # tasks still exiting
                    time.sleep(0.01)
        self.folders = {}


def remove_stale(pid: int | None = None) -> None:
    """Remove the groups of a judge `pid` that was killed before it could, or of every judge no longer running."""
    for controller in available():
        own = _own(controller)
        for folder in own.glob(f"autograder-{pid if pid is not None else ''}*-*") if own else ():
            owner = folder.name.split("-")[1]
            if pid is None and (not owner.isdigit() or psutil.pid_exists(int(owner))):
                continue
            group = Group.__new__(Group)
            group.folders = {controller: folder}
            if controller == "memory":
                group.kill()
            group.remove()


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
