"""Benchmark: `autograder grade` against `nbgrader autograde` on the same generated class.

    python benchmarks/grade_vs_nbgrader.py [-n 40] [--jobs 2] [--skip-nbgrader] [--scale 1000]

Prints wall time, seconds per submission and peak memory for each grader, the ratio
nbgrader / autograder, whether both agree on who gets full marks, the self-check latency next to
the `import torch` floor, and the in-notebook check's time after its first call. With --scale M,
also grades M submissions (the class repeated) with autograder alone and prints the marginal cost
of a submission: (time for M - time for n) / (M - n).
"""
from __future__ import annotations

import argparse
import ast
import itertools
import os
import shutil
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


def autograder_grade(folder: Path, out: Path, jobs: int) -> tuple[float, tuple[int, int], dict[str, bool]]:
    import json

    elapsed, peak, result = timed([sys.executable, "-m", "autograder", "grade", str(folder), "--out", str(out),
                                   "--jobs", str(jobs), "--force"], ROOT)
    if result.returncode != 0:
        raise SystemExit(f"autograder grade failed:\n{result.stderr[-2000:]}")
    full = {}
    for record in out.glob("*.json"):
        data = json.loads(record.read_text())
        full[record.name.split("__")[0]] = data["score"] == data["max_score"]
    return elapsed, peak, full


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


def self_check_latency() -> tuple[float, float]:
    floor, _, _ = timed([sys.executable, "-c", "import torch"], ROOT)
    check, _, result = timed([sys.executable, "-m", "autograder", "check", str(FIXTURES / "correct_reference.py")],
                             ROOT)
    if result.returncode != 0:
        raise SystemExit(f"autograder check failed:\n{result.stdout[-2000:]}")
    return check, floor


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
    parser.add_argument("-n", type=int, default=40, help="submissions in the generated class (default 40)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="autograder --jobs")
    parser.add_argument("--skip-nbgrader", action="store_true", help="time autograder only")
    parser.add_argument("--scale", type=int, default=0, metavar="M",
                        help="also grade M submissions (the class repeated) and print the marginal cost")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        folder = work / "class"
        expected = make_class(args.n, folder)
        print(f"class: {args.n} notebooks ({sum(expected.values())} solved) in {folder}")
        ours, our_peak, our_full = autograder_grade(folder, work / "graded", args.jobs)
        print(f"autograder grade --jobs {args.jobs}: {ours:7.1f} s  {ours / args.n:6.3f} s/submission  "
              f"{memory(our_peak)}")
        assert our_full == expected, "autograder disagrees with the expected full marks"
        if not args.skip_nbgrader:
            theirs, their_peak, their_full = nbgrader_autograde(folder, work / "course")
            print(f"nbgrader autograde:         {theirs:7.1f} s  {theirs / args.n:6.3f} s/submission  "
                  f"{memory(their_peak)}")
            agree = their_full == our_full
            print(f"agree on full marks: {agree}  ({sum(their_full.values())} vs {sum(our_full.values())})")
            print(f"ratio nbgrader / autograder: {theirs / ours:.1f}x")
        if args.scale > args.n:
            big = work / "scaled"
            for i in range(args.scale):
                source = folder / f"student{i % args.n:04d}"
                shutil.copytree(source, big / f"student{i:04d}")
            scaled, scaled_peak, scaled_full = autograder_grade(big, work / "graded-scaled", args.jobs)
            assert all(scaled_full[f"student{i:04d}"] == expected[f"student{i % args.n:04d}"]
                       for i in range(args.scale))
            print(f"autograder grade --jobs {args.jobs}, {args.scale} submissions: {scaled:7.1f} s  "
                  f"{scaled / args.scale:6.3f} s/submission  {memory(scaled_peak)}  "
                  f"marginal {(scaled - ours) / (args.scale - args.n):.3f} s/submission")
        check, floor = self_check_latency()
        print(f"autograder check (solved): {check:.2f} s   floor `python -c 'import torch'`: {floor:.2f} s   "
              f"ratio {check / floor:.1f}x")
        first, later = in_notebook_check()
        print(f"in-notebook check('CausalAttention'): first call {first:.2f} s, later calls {later:.3f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
