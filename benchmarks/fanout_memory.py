"""Benchmark: how much memory the machine loses while `autograder grade` grades a fan-out, next to its budget.

    python benchmarks/fanout_memory.py [--budget 320MiB] [--children 6] [--mib 100] [--mechanism cgroup|watchdog]

Grades tests/files/fanout/zz_control.py (the reference) and a fork fan-out (CausalAttention.__init__
forks CHILDREN processes holding MIB MiB each, every one below the per-process limit) one after the
other, with one judge, sampling every 20 ms the resident anonymous and shared memory of the grade's
whole process tree (judge, zygote, worker, children) and the machine's available memory. Prints
the peaks for each and the fan-out's excess over the control next to the budget. Other processes
on the machine move the machine's figure a lot: the tree's is the one to read.
Run it with PYTHONPATH pointing at another checkout to measure that code instead (the fixtures
stay this checkout's).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

import autograder  # the code measured: PYTHONPATH decides

ROOT = Path(__file__).resolve().parent.parent
CODE = Path(autograder.__file__).resolve().parent.parent
"""The checkout whose autograder is measured; `python -m autograder` runs there."""
FANOUT = ROOT / "tests" / "files" / "fanout"


def fan_out_submission(folder: Path, children: int, mib: int) -> Path:
    """The fixture fanout_memory.py with `children` children of `mib` MiB each."""
    source = (FANOUT / "fanout_memory.py").read_text()
    source = source.replace("(100 << 20)", f"({mib} << 20)").replace("range(6)", f"range({children})")
    path = folder / "fanout.py"
    path.write_text(source)
    return path


def _resident(pid: int) -> int:
    """Anonymous and shared-memory pages of `pid` (cheap counters; COW pages shared after a fork count twice)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            return sum(int(line.split()[1]) for line in handle if line.startswith((b"RssAnon:", b"RssShmem:"))) * 1024
    except (OSError, ValueError, IndexError):
        return 0


def peak_loss(submission: Path, out: Path, budget: str, env: dict) -> tuple[int, int, float, str]:
    """(the machine's peak loss of available memory, the grade's process tree's peak resident memory,
    seconds, the grade's summary line) for grading `submission`."""
    before = psutil.virtual_memory().available
    lowest, tree_peak, done = [before], [0], threading.Event()
    limit = [] if budget == "none" else ["--limit", f"memory_bytes={budget}"]
    grade = subprocess.Popen([sys.executable, "-m", "autograder", "grade", str(submission), "--out", str(out),
                              "--jobs", "1", "--force", *limit], cwd=CODE, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)

    def sample() -> None:
        pids, found_at = [grade.pid], 0.0
        while not done.wait(0.02):
            if time.monotonic() - found_at > 0.3:  # a walk through /proc is slow: not every sample
                try:
                    pids = [grade.pid] + [c.pid for c in psutil.Process(grade.pid).children(recursive=True)]
                except psutil.Error:
                    pass
                found_at = time.monotonic()
            lowest[0] = min(lowest[0], psutil.virtual_memory().available)
            tree_peak[0] = max(tree_peak[0], sum(map(_resident, pids)))

    sampler = threading.Thread(target=sample, daemon=True)
    started = time.monotonic()
    sampler.start()
    stdout, stderr = grade.communicate()
    elapsed = time.monotonic() - started
    done.set()
    sampler.join()
    if grade.returncode != 0:
        raise SystemExit(f"autograder grade failed:\n{stderr[-2000:]}")
    line = next((row for row in stdout.splitlines() if row.startswith(submission.name)), "?")
    return before - lowest[0], tree_peak[0], elapsed, re.sub(r"\s+", " ", line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="320MiB",
                        help="memory_bytes of the submission (default 320MiB); none: the code's default limits "
                             "(for code from before the budget, where memory_bytes was RLIMIT_AS)")
    parser.add_argument("--children", type=int, default=6, help="children of the fan-out (default 6)")
    parser.add_argument("--mib", type=int, default=100, help="MiB each child holds (default 100)")
    parser.add_argument("--mechanism", choices=["cgroup", "watchdog"], default="cgroup",
                        help="watchdog: AUTOGRADER_CGROUP=off, the fallback alone")
    args = parser.parse_args()
    env = {**os.environ, "AUTOGRADER_CGROUP": "off" if args.mechanism == "watchdog" else "on"}
    with tempfile.TemporaryDirectory(prefix="fanout-bench-") as work:
        folder = Path(work)
        fan_out = fan_out_submission(folder, args.children, args.mib)
        control = folder / "control.py"
        control.write_text((FANOUT / "zz_control.py").read_text())
        print(f"code: {Path(autograder.__file__).parent}; mechanism asked: {args.mechanism}; budget {args.budget}; "
              f"fan-out: {args.children} x {args.mib} MiB = {args.children * args.mib} MiB")
        lost_control, tree_control, t_control, line_control = peak_loss(control, folder / "out-control",
                                                                         args.budget, env)
        lost_fan, tree_fan, t_fan, line_fan = peak_loss(fan_out, folder / "out-fanout", args.budget, env)
    mib = 2**20
    print("                 grade's tree   machine (MemAvailable, noisy: others run too)")
    print(f"control: peak {tree_control / mib:7.0f} MiB   {lost_control / mib:7.0f} MiB   {t_control:5.1f} s  "
          f"({line_control})")
    print(f"fan-out: peak {tree_fan / mib:7.0f} MiB   {lost_fan / mib:7.0f} MiB   {t_fan:5.1f} s  ({line_fan})")
    print(f"fan-out beyond the control: {(tree_fan - tree_control) / mib:7.0f} MiB (tree), "
          f"{(lost_fan - lost_control) / mib:7.0f} MiB (machine); budget {args.budget}")

if __name__ == "__main__":
    main()
