"""Benchmark: how much memory the machine loses while `autograder grade` grades a fan-out, next to its budget.

    python benchmarks/fanout_memory.py [--budget 320MiB] [--children 6] [--mib 100] [--mechanism cgroup|watchdog]

Grades tests/files/fanout/zz_control.py (the reference) and a fork fan-out (CausalAttention.__init__
forks CHILDREN processes holding MIB MiB each, every one below the per-process limit) one after the
other, with one judge, sampling psutil.virtual_memory().available every 10 ms. Prints the peak the
machine lost for each (from the available memory just before), and the fan-out's excess over the
control next to the budget. Other processes on the machine move these numbers: run it twice.
Run it with PYTHONPATH pointing at another checkout to measure that code instead.
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

ROOT = Path(__file__).resolve().parent.parent
FANOUT = ROOT / "tests" / "files" / "fanout"


def fan_out_submission(folder: Path, children: int, mib: int) -> Path:
    """The fixture fanout_memory.py with `children` children of `mib` MiB each."""
    source = (FANOUT / "fanout_memory.py").read_text()
    source = source.replace("(100 << 20)", f"({mib} << 20)").replace("range(6)", f"range({children})")
    path = folder / "fanout.py"
    path.write_text(source)
    return path


def peak_loss(submission: Path, out: Path, budget: str, env: dict) -> tuple[int, float, str]:
    """(bytes the machine lost at most, seconds, the grade's summary line) for grading `submission`."""
    before = psutil.virtual_memory().available
    lowest, done = [before], threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            lowest[0] = min(lowest[0], psutil.virtual_memory().available)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "autograder", "grade", str(submission), "--out", str(out),
                             "--jobs", "1", "--force", "--limit", f"memory_bytes={budget}", "--limit",
                             "call_seconds=10"], cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    done.set()
    sampler.join()
    if result.returncode != 0:
        raise SystemExit(f"autograder grade failed:\n{result.stderr[-2000:]}")
    line = next((l for l in result.stdout.splitlines() if l.startswith(submission.name)), "?")
    return before - lowest[0], elapsed, re.sub(r"\s+", " ", line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="320MiB", help="memory_bytes of the submission (default 320MiB)")
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
        import autograder

        print(f"code: {Path(autograder.__file__).parent}; mechanism asked: {args.mechanism}; budget {args.budget}; "
              f"fan-out: {args.children} x {args.mib} MiB = {args.children * args.mib} MiB")
        lost_control, t_control, line_control = peak_loss(control, folder / "out-control", args.budget, env)
        lost_fan, t_fan, line_fan = peak_loss(fan_out, folder / "out-fanout", args.budget, env)
    mib = 2**20
    print(f"control: peak lost {lost_control / mib:7.0f} MiB  {t_control:5.1f} s  ({line_control})")
    print(f"fan-out: peak lost {lost_fan / mib:7.0f} MiB  {t_fan:5.1f} s  ({line_fan})")
    print(f"fan-out beyond the control: {(lost_fan - lost_control) / mib:7.0f} MiB; budget {args.budget}")


if __name__ == "__main__":
    main()
