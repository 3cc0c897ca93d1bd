"""What holds for a submission under each isolation, and how many judges fit in the memory available."""
from __future__ import annotations

import os

import psutil

from autograder.config import Limits
from autograder.sandbox.budget import INTERVAL, human_size
from autograder.sandbox.cgroups import available, describe

JUDGE_BYTES = int(1.25 * 2**30)
"""What one judge slot takes besides its worker: the judge (torch, the reference) and its zygote."""


def scope(limits: Limits, isolation: str) -> list[str]:
    """What holds for each submission and what for each process, under `isolation` on this machine."""
    size, held = human_size, describe()
    tree = "every process of a submission's worker together" + (" and its private /tmp and /dev/shm"
                                                                   if held or isolation == "bwrap" else "")
    memory = (f"by the kernel ({held}); the worker's tasks are counted by pids.max too" if held else
              f"by the judge's watchdog (PSS, looking every {INTERVAL * 1000:g} ms or less often where looking "
              "is costly; a fast allocation may overshoot for a while)")
    return [
        f"per submission ({tree}): memory {size(limits.memory_bytes)}, held {memory}; CPU time "
        f"{limits.cpu_seconds} s, and no more than one core for longer than {limits.call_seconds:g} s of CPU "
        f"(watchdog, counted {'by cpuacct' if 'cpuacct' in available() else 'over the tree and its reaped children'})",
        f"per process: address space {size(limits.address_bytes)} (RLIMIT_AS), CPU {limits.cpu_seconds} s "
        f"(RLIMIT_CPU), file size {size(limits.file_bytes)}; processes and threads {limits.processes} "
        f"(RLIMIT_NPROC, {_counted(isolation)})",
    ]


def _counted(isolation: str) -> str:
    if isolation == "bwrap":
        return "inside the sandbox"
    return "for the worker's own uid" if os.geteuid() == 0 else "counting all of your user's processes"


def plan_jobs(jobs: int, limits: Limits, explicit: bool, free: int | None = None) -> tuple[int, str]:
    """How many judges fit in the memory available: `jobs`, fewer, or ValueError when `explicit` asks too many."""
    free = psutil.virtual_memory().available if free is None else free
    slot = limits.memory_bytes + JUDGE_BYTES
    fit = int(free // slot)
    need = f"({human_size(limits.memory_bytes)} per submission + {human_size(JUDGE_BYTES)} per judge)"
    if fit < 1 or (explicit and jobs > fit):
        raise ValueError(f"--jobs {jobs if explicit else 1} needs {jobs if explicit else 1} x {need}, but only "
                         f"{human_size(free)} is available; " + (f"use --jobs {fit} or " if fit >= 1 else "")
                         + "a smaller --limit memory_bytes=...")
    chosen = min(jobs, fit)
    lowered = f" (lowered from {jobs})" if chosen < jobs else ""
    return chosen, f"{chosen} judge(s) at once{lowered}: {chosen} x {need} of {human_size(free)} available"
