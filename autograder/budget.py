"""The judge's watch over one worker tree: memory and CPU summed over every process of a submission."""
from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass

import psutil

from autograder.cgroups import Group, available, describe
from autograder.config import Limits

INTERVAL = 0.05
"""Seconds between two looks at a worker tree."""
SCRATCH = ("tmp", "dev/shm")
"""The sandbox's private tmpfs folders (as seen from its root): what is written there is memory too."""
CPU_GRACE = 1.0
"""Seconds of CPU the tree may use beyond cpu_seconds, so that one process meets its own RLIMIT_CPU first."""
JUDGE_BYTES = int(1.25 * 2**30)
"""What one judge slot takes besides its worker: the judge (torch, the reference) and its zygote."""


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
    """The processes of one worker, seen from the judge.

    Under bubblewrap: every process in the sandbox but its init, the zygote (a worker's orphans
    become the zygote's children). Otherwise: the worker, its descendants, and orphans that were
    reparented to the judge (a subreaper) since the worker started.
    """

    def __init__(self, worker: int, zygote: int | None = None):
        self.worker, self.zygote = worker, zygote
        self.since = _created(worker)

    def processes(self) -> list[psutil.Process]:
        try:
            if self.zygote is not None:
                return psutil.Process(self.zygote).children(recursive=True)
            found = [psutil.Process(self.worker)]
            found += [c for c in psutil.Process().children() if c.pid != self.worker and _created(c.pid) >= self.since]
            return found + [d for p in found for d in p.children(recursive=True)]
        except psutil.Error:
            return []

    def reaper_cpu(self) -> float:
        """CPU time of ended processes the tree's reaper (the zygote, else the judge) has collected."""
        try:
            times = psutil.Process(self.zygote if self.zygote is not None else os.getpid()).cpu_times()
        except psutil.Error:
            return 0.0
        return times.children_user + times.children_system

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
    notices. Without, it sums the tree's RSS, and where that is over the budget its PSS (pages
    shared with the zygote are not the submission's), plus its private tmpfs.
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
        last = time.monotonic()
        while not self._stop.wait(INTERVAL):
            now = time.monotonic()
            processes = [] if self.group else self.tree.processes()
            self.overrun = self._memory(processes) or self._cpu_over(processes, now - last)
            last = now
            if self.overrun is not None:
                self.kill()
                return

    def _memory(self, processes: list[psutil.Process]) -> Overrun | None:
        budget = self.limits.memory_bytes
        if self.group is not None:
            if not self.group.out_of_memory():
                return None
            return Overrun("memory", max(self.group.peak_bytes(), budget), len(self.group.pids(threads=True)))
        scratch = self.tree.scratch_bytes()
        if sum(_rss(p) for p in processes) + scratch <= budget:  # RSS >= PSS: no need to look closer
            return None
        used = sum(_pss(p) for p in processes) + scratch
        if self.tree.zygote is not None:  # the zygote's pages the tree maps too are counted in its PSS
            try:
                zygote = psutil.Process(self.tree.zygote)
                used += _pss(zygote) - _rss(zygote)
            except psutil.Error:
                pass
        return Overrun("memory", used, _tasks(processes)) if used > budget else None

    def _cpu_over(self, processes: list[psutil.Process], wall: float) -> Overrun | None:
        """Over the tree's CPU time, or keeping more than one core busy for more than call_seconds of CPU."""
        cpu = self.group.cpu_seconds() if self.group else None
        if cpu is None:
            cpu = sum(_cpu(p) for p in processes) + self.tree.reaper_cpu() - self._reaped
        cpu = max(cpu, self._cpu)  # a process between its own count and its reaper's
        self._share = max(0.0, self._share + cpu - self._cpu - wall)
        self._cpu = cpu
        count = len(self.group.pids(threads=True)) if self.group else _tasks(processes)
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
            processes = [p for p in self.tree.processes() if _living(p)]
            if not processes:
                return
            for process in processes:
                try:
                    process.send_signal(signal.SIGKILL)
                except psutil.Error:
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


def scope(limits: Limits, isolation: str) -> list[str]:
    """What holds for each submission and what for each process, under `isolation` on this machine."""
    size, held = _size, describe()
    tree = "every process of a submission's worker together" + (" and its private /tmp and /dev/shm"
                                                                   if held or isolation == "bwrap" else "")
    memory = (f"by the kernel ({held}); the worker's tasks are counted by pids.max too" if held else
              f"by the judge's watchdog (PSS every {INTERVAL * 1000:g} ms; a fast allocation may overshoot "
              "for one interval)")
    return [
        f"per submission ({tree}): memory {size(limits.memory_bytes)}, held {memory}; CPU time "
        f"{limits.cpu_seconds} s, and no more than one core for longer than {limits.call_seconds:g} s of CPU "
        f"(watchdog, counted {'by cpuacct' if 'cpuacct' in available() else 'over the tree and its reaped children'})",
        f"per process: address space {size(limits.address_bytes)} (RLIMIT_AS), CPU {limits.cpu_seconds} s "
        f"(RLIMIT_CPU), file size {size(limits.file_bytes)}; processes and threads {limits.processes} "
        f"(RLIMIT_NPROC, {'inside the sandbox' if isolation == 'bwrap' else 'for the worker uid'})",
    ]


def plan_jobs(jobs: int, limits: Limits, explicit: bool, free: int | None = None) -> tuple[int, str]:
    """How many judges fit in the memory available: `jobs`, fewer, or ValueError when `explicit` asks too many."""
    free = psutil.virtual_memory().available if free is None else free
    slot = limits.memory_bytes + JUDGE_BYTES
    fit = int(free // slot)
    need = f"({_size(limits.memory_bytes)} per submission + {_size(JUDGE_BYTES)} per judge)"
    if fit < 1 or (explicit and jobs > fit):
        raise ValueError(f"--jobs {jobs if explicit else 1} needs {jobs if explicit else 1} x {need}, but only "
                         f"{_size(free)} is available; " + (f"use --jobs {fit} or " if fit >= 1 else "")
                         + "a smaller --limit memory_bytes=...")
    chosen = min(jobs, fit)
    lowered = f" (lowered from {jobs})" if chosen < jobs else ""
    return chosen, f"{chosen} judge(s) at once{lowered}: {chosen} x {need} of {_size(free)} available"


def _size(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def _created(pid: int) -> float:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return 0.0


def _rss(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.Error:
        return 0


def _pss(process: psutil.Process) -> int:
    """PSS where it is readable, else RSS (counting shared pages in full: never less than the truth)."""
    try:
        return process.memory_full_info().pss
    except (psutil.Error, AttributeError):
        return _rss(process)


def _cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system + times.children_user + times.children_system


def _tasks(processes: list[psutil.Process]) -> int:
    """Threads of the living `processes` (a process has at least one)."""
    count = 0
    for process in processes:
        try:
            count += process.num_threads() if _living(process) else 0
        except psutil.Error:
            pass
    return count


def _living(process: psutil.Process) -> bool:
    try:
        return process.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.Error:
        return False


KEYS = {"memory": "student.memory_budget", "cpu_tree": "student.cpu_budget", "cpu_share": "student.cpu_share"}
"""WorkerGone reasons of the whole tree's limits -> their message keys."""


def failure(reason: str, params: dict, limits: Limits) -> tuple[str, dict] | None:
    """The message key and parameters for a worker tree ended by its budget, else None."""
    if reason not in KEYS:
        return None
    used = float(params.get("used", 0))
    shown = {"memory": (_size(used), _size(limits.memory_bytes)), "cpu_tree": (f"{used:.0f}", limits.cpu_seconds),
             "cpu_share": (f"{used:.0f}", f"{limits.call_seconds:g}")}[reason]
    return KEYS[reason], {"used": shown[0], "limit": shown[1], "processes": params.get("processes", 1)}
