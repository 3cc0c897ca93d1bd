"""The judge's watch over one worker tree: memory and CPU summed over every process of a submission."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from autograder.config import Limits
from autograder.sandbox.cgroups import Group, available, kill_until_gone
from autograder.sandbox.tree import Tree, proc_stat, pss, rss, tasks

INTERVAL = 0.05
"""Seconds between two looks at a worker tree."""
SHARE_OF_A_CORE = 2
"""Where one look costs more CPU than INTERVAL / 2 (PSS walks page tables, only for a tree that looks over its
budget; a walk through all of /proc), the watchdog waits twice that: at most half a core."""
CPU_GRACE = 1.0
"""Seconds of CPU the tree may use beyond cpu_seconds, so that one process meets its own RLIMIT_CPU first."""
KEPT_MEMORY = 64 * 2**20
"""Memory a worker may gain over a graded part (the judge's modules it holds, the allocator's caches) and still
serve the next part: beyond that, or beyond an eighth of the budget, the next part gets a fresh worker."""


@dataclass(frozen=True)
class Holding:
    """What a worker tree holds at one moment (see Budget.left_behind)."""

    processes: int
    threads: int
    memory: int
    """Anonymous and shared-memory pages of its processes (RssAnon + RssShmem), bytes."""
    scratch: int
    """Bytes in its private /tmp and /dev/shm."""


@dataclass(frozen=True)
class Overrun:
    """Why the watchdog ended a worker tree."""

    kind: str
    """"memory", "cpu" (CPU time of the whole tree) or "cpu_share" (more than one core for too long)."""
    used: float
    """Bytes or CPU seconds."""
    processes: int
    """Processes and threads of the tree when it was ended."""


class Budget:
    """Ends a worker tree the moment it goes over the submission's memory or CPU, from a judge thread.

    With a cgroup (`group`) the kernel holds the memory limit and counts the CPU; the thread only
    notices. Without, it sums the tree's anonymous and shared memory, and where that is over the
    budget their PSS (pages shared with the zygote are not the submission's), plus its private tmpfs.

    CPU is counted per graded part (`new_part`): a worker serves the next part only when the last one
    left nothing behind that would use the next part's budget (`left_behind`).
    """

    def __init__(self, limits: Limits, tree: Tree, group: Group | None = None):
        self.limits, self.tree, self.group = limits, tree, group
        self.overrun: Overrun | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        """The CPU counts below change in the watch thread and, at a part's start, in the judge's."""
        self._reaped = tree.reaper_cpu()
        self._cpu = 0.0
        self._base = 0.0
        """The tree's CPU seconds when the current part started."""
        self._share = 0.0
        self._seen = 0
        """The most tasks a look has counted in the tree since the current part started."""
        self._peak = 0
        """The group's pids.peak when the current part started."""
        self._loaded: Holding | None = None
        self._thread = threading.Thread(target=self._watch, daemon=True, name="budget")
        self._thread.start()

    def _watch(self) -> None:
        last, pause = time.monotonic(), INTERVAL
        while not self._stop.wait(pause):
            now, spent = time.monotonic(), time.thread_time()
            folders = [] if self.group else self.tree.members()
            with self._lock:
                self.overrun = self.overrun or self._memory(folders) or self._cpu_over(folders, now - last)
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
            return Overrun("memory", max(self.group.peak_bytes(), budget), self._most_tasks())
        scratch = self.tree.scratch_bytes()
        if sum(map(rss, folders)) + scratch <= budget:  # RSS >= PSS: no need to look closer
            return None
        used = sum(map(pss, folders)) + scratch
        if self.tree.lender is not None:  # the zygote's pages the tree maps too are counted in its PSS
            used += pss(f"/proc/{self.tree.lender}") - rss(f"/proc/{self.tree.lender}")
        return Overrun("memory", used, tasks(folders)) if used > budget else None

    def _cpu_over(self, folders: list[str], wall: float) -> Overrun | None:
        """Over the part's CPU time, or keeping more than one core busy for more than call_seconds of CPU."""
        cpu = self._cpu_seconds(folders)
        self._share = max(0.0, self._share + cpu - self._cpu - wall)
        self._cpu = cpu
        count = len(self.group.pids(threads=True)) if self.group else tasks(folders)
        self._seen = max(self._seen, count)
        if cpu - self._base > self.limits.cpu_seconds + CPU_GRACE:
            return Overrun("cpu", cpu - self._base, count)
        if self._share > self.limits.call_seconds:
            return Overrun("cpu_share", cpu - self._base, count)
        return None

    def _most_tasks(self) -> int:
        """The most tasks the group held at once during the current part, as far as it can be known: the kernel's
        OOM killer may have ended some (the worker and its threads) before this look. Its high-water mark if that
        rose during the part, else the most counted now or by an earlier look."""
        peak = self.group.peak_tasks()
        if peak is not None and peak > self._peak:
            return peak
        return max(len(self.group.pids(threads=True)), self._seen)

    def _cpu_seconds(self, folders: list[str]) -> float:
        """The tree's CPU time since the worker started, ended processes included."""
        cpu = self.group.cpu_seconds() if self.group else None
        if cpu is None:
            cpu = sum(i["cpu"] for i in map(proc_stat, folders) if i) + self.tree.reaper_cpu() - self._reaped
        return max(cpu, self._cpu)  # a process between its own count and its reaper's

    def settle(self) -> Overrun | None:
        """Why the tree was ended, if it was; with a cgroup, its memory is looked at once more first: the
        kernel may have just ended a task for it (the worker, whose end the judge sees before the next look)."""
        with self._lock:
            if self.overrun is None and self.group is not None:
                self.overrun = self._memory([])
        return self.overrun

    def loaded(self) -> None:
        """The worker has loaded the submission's definitions: what the tree holds now is its own."""
        self._loaded = self._holding()

    def new_part(self) -> None:
        """A graded part starts in this worker: its CPU time and its share of the cores are counted afresh."""
        with self._lock:
            self._base = self._cpu = self._cpu_seconds([] if self.group else self.tree.members())
            self._share = 0.0
            self._seen = 0
            self._peak = (self.group.peak_tasks() or 0) if self.group else 0

    def left_behind(self) -> str | None:
        """What the tree holds beyond its state after loading that the next part's budget would pay for
        ("processes", "threads", "files", "memory" or "cpu": its own CPU time near RLIMIT_CPU); None if nothing.
        """
        if self._loaded is None or self.overrun is not None:
            return "unknown"
        now, loaded = self._holding(), self._loaded
        own = proc_stat(f"/proc/{self.tree.worker}") or {}
        for kind, more in (("processes", now.processes > loaded.processes), ("threads", now.threads > loaded.threads),
                           ("files", now.scratch > loaded.scratch),
                           ("memory", now.memory - loaded.memory > min(KEPT_MEMORY, self.limits.memory_bytes // 8)),
                           ("cpu", own.get("cpu", 0.0) > self.limits.cpu_seconds / 2)):
            if more:
                return kind
        return None

    def _holding(self) -> Holding:
        # the group holds every process the worker started, wherever it was reparented: no walk through all of /proc
        members = [f"/proc/{pid}" for pid in self.group.pids()] if self.group is not None else self.tree.members()
        living = [f for f in members if (proc_stat(f) or {}).get("threads")]
        return Holding(len(living), tasks(living), sum(map(rss, living)), self.tree.scratch_bytes())

    def kill(self) -> None:
        """SIGKILL every process of the tree, until none is left."""
        if self.group is not None:
            self.group.kill()
            return
        kill_until_gone(lambda: [pid for pid in self.tree.pids() if (proc_stat(f"/proc/{pid}") or {}).get("threads")])

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
    """A size as every message of the kit writes it: "3 GiB", "1.25 GiB", "320 MiB", "512 bytes" (two decimals at
    most, so a limit reads as it was set)."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{round(n / size, 2):g} {unit}"
    return f"{int(n)} bytes"


KEYS = {"memory": "student.memory_budget", "cpu_tree": "student.cpu_budget", "cpu_share": "student.cpu_share"}
"""WorkerGone reasons of the whole tree's limits -> their message keys."""


def failure(reason: str, params: dict, limits: Limits) -> tuple[str, dict] | None:
    """The message key and parameters for a worker tree ended by its budget, else None."""
    if reason not in KEYS:
        return None
    used = float(params.get("used", 0))
    shown = {"memory": (human_size(used), human_size(limits.memory_bytes)),
             "cpu_tree": (f"{used:.0f}", limits.cpu_seconds),
             "cpu_share": (f"{used:.0f}", f"{limits.call_seconds:g}")}[reason]
    return KEYS[reason], {"used": shown[0], "limit": shown[1], "processes": params.get("processes", 1)}
