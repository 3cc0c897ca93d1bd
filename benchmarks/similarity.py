"""Time and peak memory of the similarity report for a class of 500, printed: `python benchmarks/similarity.py
[COUNT]`. The class is made from the tests' sources with each student's short names renamed, so about 25 students
share each source's code: many pairs are listed, which is the expensive case."""
from __future__ import annotations

import random
import re
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SOURCES = sorted((ROOT / "tests" / "files" / "similarity" / "class").glob("*.py")) + sorted(
    (ROOT / "tests" / "files" / "submissions").glob("correct_*.py"))
WORDS = ["alpha", "beta", "gamma", "delta", "omega", "scores", "weights", "ctx", "tmp", "acc", "res", "val"]


def make_class(folder: Path, count: int, rng: random.Random) -> None:
    """`count` submissions: each one of the sources with every local name of length <= 6 renamed at random, and
    one in ten a copy of another student's file (so that pairs exist to find)."""
    written: list[Path] = []
    for number in range(count):
        if written and rng.random() < 0.1:
            text = rng.choice(written).read_text()
        else:
            text = rng.choice(SOURCES).read_text()
            names = sorted(set(re.findall(r"\b([a-z_]{1,6})\s*=", text)) - {"dim", "bias", "dropout"})
            for name in names:
                text = re.sub(rf"\b{name}\b", f"{rng.choice(WORDS)}_{number}_{name}", text)
        path = folder / f"student_{number:03d}.py"
        path.write_text(text)
        written.append(path)


def main() -> None:
    from autograder.api import similarity_report

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    folder = Path(tempfile.mkdtemp(prefix="similarity-bench-"))
    try:
        (folder / "class").mkdir()
        make_class(folder / "class", count, random.Random(20))
        start, cpu = time.perf_counter(), time.process_time()
        written = similarity_report([folder / "class"], folder / "out")
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{count} submissions: {seconds:.1f} s ({cpu:.1f} s of CPU), peak memory {peak:.0f} MiB (whole "
              f"process), {len(written.comparison.pairs)} pairs listed, {written.comparison.ignored} common "
              "fingerprints ignored")
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
