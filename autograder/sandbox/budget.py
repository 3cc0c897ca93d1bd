"""The judge's watch over one worker tree: memory and CPU summed over every process of a submission."""
from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass

import psutil

from autograder.sandbox.cgroups import Group, available
from autograder.config import Limits

INTERVAL = 0.05
"""Seconds between two looks at a worker tree."""
SCRATCH = ("tmp", "dev/shm")
"""The sandbox's private tmpfs folders (as seen from its root): what is written there is memory too."""
SHARE_OF_A_CORE = 2
"""Where one look costs more CPU than INTERVAL / 2 (PSS walks page tables, only for a tree that looks over its
budget; a walk through all of /proc), the watchdog waits twice that: at most half a core."""
CPU_GRACE = 1.0
"""Seconds of CPU the tree may use beyond cpu_seconds, so that one process meets its own RLIMIT_CPU first."""


@dataclass(frozen=True)
class Overrun:
    """Why the watchdog ended a worker tree."""

    kind: str
    """"memory", "cpu" (CPU time of the whole tree) or "cpu_share" (more than one core for too long)."""
    used: float
    """Bytes or CPU seconds."""
    processes: int
    """Processes and threads of the tree when it was ended."""


class Tree:
    """The processes of one worker, seen from the judge, read from /proc without psutil (fast enough to
    look every INTERVAL: on a small VM a walk through all of /proc takes over 10 ms).

    Under bubblewrap: every process in the sandbox but its init, the zygote (a worker's orphans
    become the zygote's children), listed from the sandbox's own /proc where the judge may look
    (a root grader). Otherwise: the worker, its descendants, and orphans that were reparented to
    the judge (a subreaper) since the worker started, from a walk through /proc.
    """

    def __init__(self, worker: int, zygote: int | None = None):
        self.worker, self.zygote = worker, zygote
        self.since = (_stat(f"/proc/{worker}") or {}).get("start", 0)
        inside = f"/proc/{zygote}/root/proc"
        self.inside = inside if zygote is not None and os.path.isdir(f"{inside}/1") else None

    def members(self) -> list[str]:
        """The /proc folders of the tree's processes (ended ones not yet reaped too)."""
        if self.inside is not None:
            try:
                return [f"{self.inside}/{p}" for p in os.listdir(self.inside) if p.isdigit() and p != "1"]
            except OSError:
                pass
        return [f"/proc/{pid}" for pid in self.pids()]

    def pids(self) -> list[int]:
        """The tree's processes by their pid here (a walk through all of /proc)."""
        children: dict[int, list[int]] = {}
        roots = [self.zygote] if self.zygote is not None else [self.worker]
        for pid in psutil.pids():
            info = _stat(f"/proc/{pid}")
            if info is None:
                continue
            children.setdefault(info["ppid"], []).append(pid)
            if self.zygote is None and info["ppid"] == os.getpid() and info["start"] >= self.since:
                roots.append(pid)  # an orphan of the worker, reparented to the judge
        found, todo = set(), list(dict.fromkeys(roots))
        while todo:
            pid = todo.pop()
            if pid not in found:
                found.add(pid)
                todo += children.get(pid, [])
        return sorted(found - {self.zygote})

    def reaper_cpu(self) -> float:
        """CPU time of ended processes the tree's reaper (the zygote, else the judge) has collected."""
        info = _stat(f"/proc/{self.zygote}" if self.zygote is not None else "/proc/self")
        return info["reaped"] if info else 0.0

    def scratch_bytes(self) -> int:
        """Bytes in the worker's private /tmp and /dev/shm; 0 when it shares ours or we cannot look in."""
        pid = self.zygote if self.zygote is not None else self.worker
        try:
            if os.stat(f"/proc/{pid}/ns/mnt").st_ino == os.stat("/proc/self/ns/mnt").st_ino:
                return 0
            used = 0
            for folder in SCRATCH:
                info = os.statvfs(f"/proc/{pid}/root/{folder}")
                used += (info.f_blocks - info.f_bfree) * info.f_frsize
            return used
        except OSError:
            return 0


class Budget:
    """Ends a worker tree the moment it goes over the submission's memory or CPU, from a judge thread.

    With a cgroup (`group`) the kernel holds the memory limit and counts the CPU; the thread only
    notices. Without, it sums the tree's anonymous and shared memory, and where that is over the
    budget their PSS (pages shared with the zygote are not the submission's), plus its private tmpfs.
    """

    def __init__(self, limits: Limits, tree: Tree, group: Group | None = None):
        self.limits, self.tree, self.group = limits, tree, group
        self.overrun: Overrun | None = None
        self._stop = threading.Event()
        self._reaped = tree.reaper_cpu()
        self._cpu = 0.0
        self._share = 0.0
        self._thread = threading.Thread(target=self._watch, daemon=True, name="budget")
        self._thread.start()

    def _watch(self) -> None:
        last, pause = time.monotonic(), INTERVAL
        while not self._stop.wait(pause):
            now, spent = time.monotonic(), time.thread_time()
            folders = [] if self.group else self.tree.members()
            self.overrun = self._memory(folders) or self._cpu_over(folders, now - last)
            last = now
            if self.overrun is not None:
                self.kill()
                return
            pause = max(INTERVAL, SHARE_OF_A_CORE * (time.thread_time() - spent))  # a slow walk through /proc

    def _memory(self, folders: list[str]) -> Overrun | None:
        budget = self.limits.memory_bytes
        if self.group is not None:
            if not self.group.out_of_memory():
                return None
            return Overrun("memory", max(self.group.peak_bytes(), budget), len(self.group.pids(threads=True)))
        scratch = self.tree.scratch_bytes()
        if sum(map(_rss, folders)) + scratch <= budget:  # RSS >= PSS: no need to look closer
            return None
        used = sum(map(_pss, folders)) + scratch
        if self.tree.zygote is not None:  # the zygote's pages the tree maps too are counted in its PSS
            used += _pss(f"/proc/{self.tree.zygote}") - _rss(f"/proc/{self.tree.zygote}")
        return Overrun("memory", used, _tasks(folders)) if used > budget else None

    def _cpu_over(self, folders: list[str], wall: float) -> Overrun | None:
        """Over the tree's CPU time, or keeping more than one core busy for more than call_seconds of CPU."""
        cpu = self.group.cpu_seconds() if self.group else None
        if cpu is None:
            cpu = sum(i["cpu"] for i in map(_stat, folders) if i) + self.tree.reaper_cpu() - self._reaped
        cpu = max(cpu, self._cpu)  # a process between its own count and its reaper's
        self._share = max(0.0, self._share + cpu - self._cpu - wall)
        self._cpu = cpu
        count = len(self.group.pids(threads=True)) if self.group else _tasks(folders)
        if cpu > self.limits.cpu_seconds + CPU_GRACE:
            return Overrun("cpu", cpu, count)
        if self._share > self.limits.call_seconds:
            return Overrun("cpu_share", cpu, count)
        return None

    def kill(self) -> None:
        """SIGKILL every process of the tree, until none is left."""
        if self.group is not None:
            self.group.kill()
            return
        for _ in range(200):
            living = [pid for pid in self.tree.pids() if (_stat(f"/proc/{pid}") or {}).get("threads")]
            if not living:
                return
            for pid in living:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.005)

    def close(self) -> None:
        """Stop watching (the worker is being ended) and remove its cgroup."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        if self.group is not None:
            self.group.remove()


def start(limits: Limits, tree: Tree, add: int | None = None) -> Budget:
    """Watch `tree`; with cgroups available, move `add` (the worker, before it runs student code) into one."""
    group = None
    if available() and add is not None:
        try:
            group = Group(limits.memory_bytes, limits.processes)
            group.add(add)
        except OSError:  # e.g. the worker is already gone: the watchdog alone
            if group is not None:
                group.remove()
            group = None
    return Budget(limits, tree, group)


def human_size(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def in_namespace(parent: int, above: int = 0) -> dict[int, int]:
    """The children of `parent` (numbered above `above` here) by their pid in their own (innermost) PID
    namespace -> their pid here. Reading every process's status is slow on a small VM (10 ms or more)."""
    found = {}
    for pid in (p for p in psutil.pids() if p > above):
        try:
            with open(f"/proc/{pid}/status", "rb") as handle:
                fields = dict(line.split(b":", 1) for line in handle.read().splitlines() if b":" in line)
            if int(fields[b"PPid"]) == parent:
                found[int(fields[b"NSpid"].split()[-1])] = pid
        except (OSError, KeyError, ValueError, IndexError):
            continue
    return found


TICK = os.sysconf("SC_CLK_TCK")


def _stat(folder: str) -> dict | None:
    """ppid, start, cpu (its own and its reaped children's), reaped (children's only) and threads (0 when
    it has ended) of the process whose /proc folder is `folder`; None when it is gone."""
    try:
        with open(f"{folder}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        times = [int(f) for f in fields[11:15]]
        return {"ppid": int(fields[1]), "start": int(fields[19]), "cpu": sum(times) / TICK,
                "reaped": sum(times[2:]) / TICK, "threads": 0 if fields[0] in (b"Z", b"X") else int(fields[17])}
    except (OSError, IndexError, ValueError):
        return None


def _rss(folder: str) -> int:
    """Resident anonymous and shared-memory pages (file pages are the page cache's): from cheap counters."""
    return _fields(f"{folder}/status", (b"RssAnon:", b"RssShmem:"))


def _pss(folder: str) -> int:
    """The same pages, each shared one divided among the processes that map it (a walk through its page
    tables: costly); RSS where it cannot be read (never less than the truth)."""
    return _fields(f"{folder}/smaps_rollup", (b"Pss_Anon:", b"Pss_Shmem:")) or _rss(folder)


def _fields(path: str, names: tuple[bytes, ...]) -> int:
    """The sum of the fields `names` (in kB) of a /proc file, in bytes; 0 when unreadable."""
    try:
        with open(path, "rb") as handle:
            return sum(int(line.split()[1]) for line in handle if line.startswith(names)) * 1024
    except (OSError, IndexError, ValueError):
        return 0


def _tasks(folders: list[str]) -> int:
    """Threads of the tree's living processes."""
    return sum(i["threads"] for i in map(_stat, folders) if i)


KEYS = {"memory": "student.memory_budget", "cpu_tree": "student.cpu_budget", "cpu_share": "student.cpu_share"}
"""WorkerGone reasons of the whole tree's limits -> their message keys."""


def failure(reason: str, params: dict, limits: Limits) -> tuple[str, dict] | None:
    """The message key and parameters for a worker tree ended by its budget, else None."""
    if reason not in KEYS:
        return None
    used = float(params.get("used", 0))
    shown = {"memory": (human_size(used), human_size(limits.memory_bytes)), "cpu_tree": (f"{used:.0f}", limits.cpu_seconds),
             "cpu_share": (f"{used:.0f}", f"{limits.call_seconds:g}")}[reason]
    return KEYS[reason], {"used": shown[0], "limit": shown[1], "processes": params.get("processes", 1)}
