"""Time per grading stage in this process (perf_counter accumulators), written out only when asked.

Set AUTOGRADER_PROFILE to a file and each judge process (and `autograder check`) appends one JSON
line to it when it ends: {"pid": ..., "stages": {name: [seconds, count]}}. The benchmark
(benchmarks/grade_vs_nbgrader.py) sums them into its profile by stage. Unset, the cost is a
perf_counter call and a dict update per stage entered; nothing is written.

A round trip into a worker is counted under the stage it is made from ("requests: checks",
"requests: explain"), so the judge's own work in a stage is the stage less its requests; the requests it
carried (several, batched: judge/subjects.py, Subject.defer) are counted as "requests: checks (messages)".
"""
from __future__ import annotations

import atexit
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from autograder.config import environment

PROFILE = "AUTOGRADER_PROFILE"
TOTALS: dict[str, list[float]] = {}
"""Stage -> [seconds, times entered]."""
_current: list[str] = []


def add(name: str, seconds: float, count: int = 1) -> None:
    entry = TOTALS.setdefault(name, [0.0, 0])
    entry[0] += seconds
    entry[1] += count


def reset() -> None:
    """Forget what was timed (in a process forked from another, which timed it)."""
    TOTALS.clear()
    _current.clear()


def begin(name: str) -> float:
    """Enter stage `name` (for a stage that starts and ends in different calls); returns the start for end()."""
    _current.append(name)
    return time.perf_counter()


def end(name: str, start: float) -> None:
    if name in _current:
        _current.remove(name)
    add(name, time.perf_counter() - start)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the block as `name`; requests made inside it are counted as "requests: name"."""
    start = begin(name)
    try:
        yield
    finally:
        end(name, start)


@contextmanager
def request(messages: int = 1) -> Iterator[None]:
    """Time one round trip into a worker, under the stage it is made from; `messages`: the requests it carried
    (counted as "requests: STAGE (messages)", with no time of their own)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        name = f"requests: {_current[-1] if _current else 'other'}"
        add(name, time.perf_counter() - start)
        add(f"{name} (messages)", 0.0, messages)


@atexit.register
def dump() -> None:
    """Append this process's totals to the file AUTOGRADER_PROFILE names, if it names one."""
    path = environment().profile  # read at exit: a test or the benchmark may set it after the import
    if not path or not TOTALS:
        return
    line = json.dumps({"pid": os.getpid(), "stages": TOTALS}) + "\n"
    with open(path, "a", encoding="utf-8") as handle:  # one short write: lines of parallel judges stay whole
        handle.write(line)
