"""Benchmark: `autograder grade` against `nbgrader autograde` on the same generated class, and the goal's figures.

    python benchmarks/grade_vs_nbgrader.py [-n 20] [--jobs 2] [--skip-nbgrader] [--isolation both]
                                           [--marginal 10,40] [--scale 1000]

Prints, side by side from one run: wall time, seconds per submission and peak memory for each
grader and the ratio nbgrader / autograder on n notebooks (whether both agree on who gets full
marks); the marginal cost of a submission, (time for 40 - time for 10) / 30, per isolation, as a
share of the `import torch` time, and the fallback's against bubblewrap's; `autograder check`
against that floor; the in-notebook check's first call in a fresh interpreter after the student's
own `import torch`; and a profile by stage of the largest batch per isolation (from the judges'
AUTOGRADER_PROFILE lines, autograder/stopwatch.py). With --scale M, also grades M submissions.
"""
from __future__ import annotations

import argparse
import ast
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import psutil

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "solutions" / "en" / "ch03_attention.ipynb"
ASSIGNMENT = ROOT / "assignments" / "en" / "ch03_attention.ipynb"
FIXTURES = ROOT / "tests" / "files" / "submissions"
# Realistic single-class bugs: (fixture, graded name whose solution cell gets the buggy code)
BUGS = [
    ("bug_causal_no_scaling.py", "CausalAttention"), ("bug_causal_tril_mask.py", "CausalAttention"),
    ("bug_causal_mask_after_softmax.py", "CausalAttention"), ("bug_mha_no_out_proj.py", "MultiHeadAttention"),
    ("bug_mha_scale_by_d_out.py", "MultiHeadAttention"), ("bug_mha_view_no_transpose.py", "MultiHeadAttention"),
    ("bug_wrapper_cat_dim1.py", "MultiHeadAttentionWrapper"), ("bug_v1_scale_by_d_in.py", "SelfAttention_v1"),
]


def definition(source: str, name: str) -> str:
    for node in ast.parse(source).body:
        if getattr(node, "name", None) == name:
            return ast.get_source_segment(source, node)
    raise KeyError(name)


def make_class(n: int, folder: Path) -> dict[str, bool]:
    """n notebooks: 40% solved, 40% with one realistic bug, 20% untouched. Returns name -> expect full marks."""
    solution = nbformat.read(SOLUTION, as_version=4)
    expected = {}
    for i in range(n):
        name = f"student{i:04d}"
        kind = ("solved", "buggy", "solved", "buggy", "unfinished")[i % 5]
        if kind == "unfinished":
            notebook = nbformat.read(ASSIGNMENT, as_version=4)
        else:
            notebook = nbformat.from_dict(solution)
            if kind == "buggy":
                fixture, graded = BUGS[(i // 5) % len(BUGS)]
                code = definition((FIXTURES / fixture).read_text(), graded)
                for cell in notebook.cells:
                    if cell.metadata.get("nbgrader", {}).get("grade_id") == f"solution_{graded}":
                        cell.source = code
        (folder / name).mkdir(parents=True)
        nbformat.write(notebook, folder / name / "ch03_attention.ipynb")
        expected[name] = kind == "solved"
    return expected


class PeakMemory:
    """Samples a process tree's memory: the sum of RSS (pages shared between processes, such as a
    zygote's and its workers', counted once per process) and the sum of PSS (shared pages split)."""

    def __init__(self, process: subprocess.Popen):
        self.peak = self.peak_pss = 0
        self._process, self._done = psutil.Process(process.pid), False
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        for n in itertools.count():
            if self._done:
                return
            rss = pss = 0
            with_pss = n % 10 == 0  # reading smaps costs CPU: PSS every 0.5 s, RSS every 0.05 s
            try:
                for p in [self._process, *self._process.children(recursive=True)]:
                    try:
                        info = p.memory_full_info() if with_pss else p.memory_info()
                        rss, pss = rss + info.rss, pss + getattr(info, "pss", 0)
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            self.peak = max(self.peak, rss)
            self.peak_pss = max(self.peak_pss, pss)
            time.sleep(0.05)

    def stop(self) -> tuple[int, int]:
        self._done = True
        self._thread.join()
        return self.peak, self.peak_pss


def memory(peak: tuple[int, int]) -> str:
    return f"peak {peak[0] / 2**20:5.0f} MiB (sum of RSS), {peak[1] / 2**20:5.0f} MiB (sum of PSS)"


def timed(argv: list[str], cwd: Path,
          env: dict | None = None) -> tuple[float, tuple[int, int], subprocess.CompletedProcess]:
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    memory = PeakMemory(process)
    stdout, stderr = process.communicate()
    elapsed = time.perf_counter() - start
    return elapsed, memory.stop(), subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def autograder_grade(folder: Path, out: Path, jobs: int, isolation: str = "auto",
                     profile: Path | None = None) -> tuple[float, tuple[int, int], dict[str, bool]]:
    """Grade `folder`; isolation "process-alone" is the fallback without its fork server (each worker on its own)."""
    env = {k: v for k, v in os.environ.items() if k != "AUTOGRADER_PROFILE"}
    if profile is not None:
        env["AUTOGRADER_PROFILE"] = str(profile)
    if isolation == "process-alone":
        isolation, env["AUTOGRADER_FORK_SERVER"] = "process", "off"
    elapsed, peak, result = timed([sys.executable, "-m", "autograder", "grade", str(folder), "--out", str(out),
                                   "--jobs", str(jobs), "--force", "--sandbox", isolation], ROOT, env)
    if result.returncode != 0:
        raise SystemExit(f"autograder grade failed:\n{result.stderr[-2000:]}")
    full = {}
    for record in out.glob("*.json"):
        data = json.loads(record.read_text())
        full[record.name.split("__")[0]] = data["score"] == data["max_score"]
    return elapsed, peak, full


def subset(folder: Path, k: int, into: Path) -> Path:
    """The first k students of the class, repeated when k is more than the class."""
    students = sorted(folder.iterdir())
    for i in range(k):
        shutil.copytree(students[i % len(students)], into / f"student{i:04d}")
    return into


STAGES = ["judge start (imports)", "pytest start and collection", "load", "sandbox start",
          "sandbox: first fork (waits for the zygote)", "sandbox: fork", "requests: sandbox start",
          "requests: sandbox start (messages)", "checks", "requests: checks", "requests: checks (messages)",
          "reference load", "reference answers", "reference answers: from the memo", "explain", "requests: explain",
          "requests: explain (messages)", "sandbox end", "report", "between submissions"]


def print_profile(path: Path, submissions: int) -> None:
    """The judges' stage totals summed (CPU of parallel judges adds up: the sum exceeds the wall time)."""
    totals: dict[str, list[float]] = {}
    judges = 0
    for line in path.read_text().splitlines() if path.exists() else []:
        judges += 1
        for name, (seconds, count) in json.loads(line)["stages"].items():
            entry = totals.setdefault(name, [0.0, 0])
            entry[0] += seconds
            entry[1] += count
    if not totals:
        print("  (no profile written)")
        return
    print(f"  {'stage (summed over ' + str(judges) + ' judges)':48} {'seconds':>8} {'count':>7} {'s/submission':>12}")
    for name in STAGES + sorted(set(totals) - set(STAGES)):
        if name in totals:
            seconds, count = totals[name]
            print(f"  {name:48} {seconds:8.2f} {int(count):7d} {seconds / submissions:12.4f}")
    checks = totals.get("checks", [0, 0])[0]
    own = checks - sum(totals.get(n, [0, 0])[0] for n in ("requests: checks", "sandbox start", "reference answers"))
    label = "= judge's own work in checks (less its requests, sandbox start, reference answers)"
    print(f"  {label}\n  {'':48} {own:8.2f} {'':7} {own / submissions:12.4f}")


def nbgrader_autograde(folder: Path, course: Path) -> tuple[float, tuple[int, int], dict[str, bool]]:
    from nbgrader.api import Gradebook

    (course / "source" / "ch03").mkdir(parents=True)
    shutil.copy(SOLUTION, course / "source" / "ch03" / "ch03_attention.ipynb")
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\nc.CourseDirectory.course_id = 'ch03-bench'\n"
        "c.ExecutePreprocessor.timeout = 600\nc.Execute.timeout = 600\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "AUTOGRADER_SOLUTIONS": str(ROOT / "solutions")}
    generated = subprocess.run(["nbgrader", "generate_assignment", "ch03", "--create", "--force"], cwd=course,
                               env=env, capture_output=True, text=True)
    if generated.returncode != 0:
        raise SystemExit(f"nbgrader generate_assignment failed:\n{generated.stderr[-2000:]}")
    for student in folder.iterdir():
        shutil.copytree(student, course / "submitted" / student.name / "ch03")
    elapsed, peak, result = timed(["nbgrader", "autograde", "ch03", "--create", "--force"], course, env)
    if result.returncode != 0:
        raise SystemExit(f"nbgrader autograde failed:\n{result.stderr[-2000:]}")
    full = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student in folder.iterdir():
            submission = gradebook.find_submission("ch03", student.name)
            full[student.name] = abs(submission.score - submission.max_score) < 1e-9
    return elapsed, peak, full


def self_check_latency(rounds: int) -> tuple[list[float], list[float]]:
    """`autograder check` on a solved submission and the `import torch` floor, timed in turn `rounds` times: a
    single floor moved by 0.2 s within one run, as much as the goal's margin."""
    checks, floors = [], []
    for _ in range(rounds):
        floor, _, _ = timed([sys.executable, "-c", "import torch"], ROOT)
        check, _, result = timed([sys.executable, "-m", "autograder", "check", str(FIXTURES / "correct_reference.py")],
                                 ROOT)
        if result.returncode != 0:
            raise SystemExit(f"autograder check failed:\n{result.stdout[-2000:]}")
        checks.append(check)
        floors.append(floor)
    return checks, floors


def in_notebook_check() -> tuple[float, float]:
    code = (f"import time, runpy\nns = runpy.run_path({str(FIXTURES / 'correct_reference.py')!r})\n"
            "from autograder.integrations.selfcheck import check_in_notebook\n"
            "t = time.perf_counter(); check_in_notebook('CausalAttention', namespace=ns)\n"
            "first = time.perf_counter() - t\n"
            "t = time.perf_counter(); check_in_notebook('CausalAttention', namespace=ns)\n"
            "print(first, time.perf_counter() - t)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    first, later = map(float, result.stdout.split()[-2:])
    return first, later


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=20, help="submissions in the class nbgrader grades too (default 20)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="autograder --jobs")
    parser.add_argument("--skip-nbgrader", action="store_true", help="time autograder only")
    parser.add_argument("--isolation", choices=["auto", "bwrap", "process", "both"], default="both",
                        help="the sandboxes to time (default both: bubblewrap, where it works, and the fallback)")
    parser.add_argument("--before", action="store_true",
                        help="also time the fallback without its fork server (process-alone: each worker on its own)")
    parser.add_argument("--marginal", default="10,40", metavar="A,B",
                        help="the two batch sizes whose difference gives the marginal cost (default 10,40)")
    parser.add_argument("--scale", type=int, default=0, metavar="M", help="also grade M submissions")
    parser.add_argument("--check-rounds", type=int, default=3, metavar="R",
                        help="times `autograder check` and the floor are timed in turn (default 3; the median counts)")
    args = parser.parse_args()
    small, large = map(int, args.marginal.split(","))
    modes = {"both": ["bwrap", "process"]}.get(args.isolation, [args.isolation])
    modes += ["process-alone"] if args.before else []
    if "bwrap" in modes and isolation_available("bwrap") is False:
        print("bubblewrap cannot run here: timing the fallback only")
        modes = [m for m in modes if m != "bwrap"] or ["process"]
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        folder = work / "class"
        expected = make_class(args.n, folder)
        print(f"class: {args.n} notebooks ({sum(expected.values())} solved) in {folder}; jobs {args.jobs}; "
              f"{os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d %H:%M %Z')}")
        floor, _, _ = timed([sys.executable, "-c", "import torch"], ROOT)
        print(f"floor `python -c 'import torch'`: {floor:.2f} s")
        ours: dict[str, float] = {}
        marginal: dict[str, float] = {}
        for mode in modes:
            seconds, peak, full = autograder_grade(folder, work / f"graded-{mode}", args.jobs, mode)
            ours[mode] = seconds
            print(f"autograder grade --sandbox {mode}, {args.n}: {seconds:7.1f} s  {seconds / args.n:6.3f} "
                  f"s/submission  {memory(peak)}")
            assert full == expected, f"autograder ({mode}) disagrees with the expected full marks"
            times = {}
            for k in (small, large):
                profile = work / f"profile-{mode}-{k}.jsonl"
                times[k], _, _ = autograder_grade(subset(folder, k, work / f"class-{mode}-{k}"),
                                                  work / f"graded-{mode}-{k}", args.jobs, mode, profile)
            marginal[mode] = (times[large] - times[small]) / (large - small)
            print(f"  {small} and {large} submissions: {times[small]:.1f} s and {times[large]:.1f} s; marginal "
                  f"{marginal[mode]:.3f} s/submission = {marginal[mode] / floor:.3f}x the torch floor (goal <= 0.05x)")
            print(f"  profile by stage, {large} submissions, --sandbox {mode}:")
            print_profile(work / f"profile-{mode}-{large}.jsonl", large)
        for fallback in ("process", "process-alone"):
            if "bwrap" in marginal and fallback in marginal:
                print(f"no-bubblewrap ({fallback}) marginal / bubblewrap marginal: "
                      f"{marginal[fallback] / marginal['bwrap']:.2f}x (goal <= 2x)")
        if not args.skip_nbgrader:
            theirs, their_peak, their_full = nbgrader_autograde(folder, work / "course")
            print(f"nbgrader autograde, {args.n}: {theirs:7.1f} s  {theirs / args.n:6.3f} s/submission  "
                  f"{memory(their_peak)}")
            print(f"agree on full marks: {their_full == expected}  ({sum(their_full.values())} vs "
                  f"{sum(expected.values())})")
            for mode, seconds in ours.items():
                print(f"ratio nbgrader / autograder --sandbox {mode}: {theirs / seconds:.1f}x (goal >= 30x)")
        if args.scale > args.n:
            scaled, scaled_peak, _ = autograder_grade(subset(folder, args.scale, work / "scaled"),
                                                      work / "graded-scaled", args.jobs, modes[0])
            print(f"autograder grade --sandbox {modes[0]}, {args.scale} submissions: {scaled:7.1f} s  "
                  f"{scaled / args.scale:6.3f} s/submission  {memory(scaled_peak)}")
        checks, floors = self_check_latency(args.check_rounds)
        check, floor_now = statistics.median(checks), statistics.median(floors)
        print(f"autograder check (solved), median of {len(checks)} timed in turn with the floor: {check:.2f} s = "
              f"{check / floor_now:.2f}x the median floor {floor_now:.2f} s (goal <= 1.5x; checks "
              f"{', '.join(f'{c:.2f}' for c in checks)} s; floors {', '.join(f'{f:.2f}' for f in floors)} s)")
        first, later = in_notebook_check()
        print(f"in-notebook check('CausalAttention'), fresh interpreter after the student's import torch: "
              f"first call {first:.2f} s (goal <= 0.43 s), later calls {later:.3f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def isolation_available(mode: str) -> bool:
    sys.path.insert(0, str(ROOT))
    from autograder.sandbox.capability import isolation_for

    try:
        return isolation_for(mode) == mode
    except RuntimeError:
        return False


if __name__ == "__main__":
    main()
