"""A/B: `autograder grade` on one generated class, run in turn by an earlier commit's code (A) and this checkout's (B).

    python benchmarks/grade_ab.py [BASE] [--pairs 5] [--sandbox bwrap|process|both] [-n 20] [--jobs 2]

BASE (default HEAD~1) is checked out into a temporary git worktree, removed afterwards. Each side runs
`python -m autograder grade` from its own checkout's root: `-m` puts the working directory first on sys.path, so
PYTHONPATH alone does not choose the code (the benchmark run from here with PYTHONPATH set to an old checkout times
this one). Before anything is timed, each side imports `autograder` the same way, and it must come from its own
checkout. One untimed run per side fills the kit's cache (the reference's answers are kept per kit version).

Prints each pair's wall time and CPU (user and system time of the grading process and of everything it waited for),
the medians, B/A, and in how many pairs B was faster. Run it on a quiet machine: the two sides alternate (A B A B),
so a drift of the machine's speed shows as disagreeing pairs rather than as a difference.
"""
from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grade_vs_nbgrader import make_class  # this folder is sys.path[0] when the script runs

ROOT = Path(__file__).resolve().parent.parent


def code_of(root: Path) -> Path:
    """Where a command started in `root` imports the kit from (`-c`, like `-m`, puts `root` first on sys.path)."""
    found = subprocess.run([sys.executable, "-c", "import autograder; print(autograder.__file__)"], cwd=root,
                           capture_output=True, text=True, check=True)
    return Path(found.stdout.strip()).resolve().parent


def require_own_code(root: Path) -> None:
    """SystemExit unless a command started in `root` runs the kit of `root`."""
    found = code_of(root)
    if found != (root / "autograder").resolve():
        raise SystemExit(f"a command started in {root} imports the kit from {found}, not from that checkout")


def describe(root: Path) -> str:
    head = subprocess.run(["git", "log", "-1", "--format=%h %s"], cwd=root, capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                           capture_output=True, text=True).stdout.strip()
    return head.strip()[:90] + (" (and uncommitted changes)" if dirty else "")


def grade(root: Path, folder: Path, out: Path, jobs: int, sandbox: str) -> tuple[float, float]:
    """Wall and CPU seconds of one `autograder grade` of `folder` by the code in `root`."""
    shutil.rmtree(out, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "autograder", "grade", str(folder), "--out", str(out),
                             "--jobs", str(jobs), "--sandbox", sandbox], cwd=root, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"autograder grade in {root} exited {result.returncode}:\n{result.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def compare(sides: dict[str, Path], folder: Path, work: Path, pairs: int, jobs: int, sandbox: str) -> None:
    for name, root in sides.items():  # untimed: the kit's cache, the page cache
        grade(root, folder, work / f"warm-{name}", jobs, sandbox)
    times: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
    for pair in range(1, pairs + 1):
        for name, root in sides.items():
            times[name].append(grade(root, folder, work / f"out-{name}", jobs, sandbox))
        (wall_a, cpu_a), (wall_b, cpu_b) = times["A"][-1], times["B"][-1]
        print(f"  pair {pair}: A {wall_a:6.2f} s (CPU {cpu_a:6.2f} s)   B {wall_b:6.2f} s (CPU {cpu_b:6.2f} s)",
              flush=True)
    wall = {name: statistics.median(w for w, _ in runs) for name, runs in times.items()}
    cpu = {name: statistics.median(c for _, c in runs) for name, runs in times.items()}
    faster = sum(b[0] < a[0] for a, b in zip(times["A"], times["B"]))
    print(f"--sandbox {sandbox}, medians of {pairs}: A {wall['A']:.2f} s, B {wall['B']:.2f} s: "
          f"B/A {wall['B'] / wall['A']:.3f} wall, {cpu['B'] / cpu['A']:.3f} CPU "
          f"(A {cpu['A']:.2f} s, B {cpu['B']:.2f} s); B faster in {faster} of {pairs} pairs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", nargs="?", default="HEAD~1", help="the commit A runs (default HEAD~1)")
    parser.add_argument("--pairs", type=int, default=5, help="A-then-B pairs timed (default 5)")
    parser.add_argument("--sandbox", choices=["bwrap", "process", "both"], default="bwrap")
    parser.add_argument("-n", type=int, default=20, help="notebooks in the class (default 20)")
    parser.add_argument("--jobs", type=int, default=2, help="autograder --jobs (default 2)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="grade-ab-"))
    base = work / "base"
    subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(base), args.base], cwd=ROOT, check=True)
    try:
        sides = {"A": base, "B": ROOT}
        for root in sides.values():
            require_own_code(root)
        folder = work / "class"
        folder.mkdir()
        make_class(args.n, folder)
        print(f"A = {describe(base)}\nB = {describe(ROOT)}\nclass: {args.n} notebooks; jobs {args.jobs}", flush=True)
        for sandbox in ("bwrap", "process") if args.sandbox == "both" else (args.sandbox,):
            compare(sides, folder, work, args.pairs, args.jobs, sandbox)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
