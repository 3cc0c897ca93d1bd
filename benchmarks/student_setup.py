"""Time a student's set-up: the bundle into a fresh virtualenv (torch, then the kit) and the first checks."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(command: list[str], cwd: Path, env: dict) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, done


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--torch", default="2.13.0", help="the torch version to install (default: 2.13.0)")
    options.add_argument("--index-url", help="pip's index for torch, e.g. PyTorch's CPU index (default: pip's own)")
    args = options.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        bundle = work / "student.zip"
        subprocess.run([sys.executable, "-m", "autograder", "build", "--student", str(bundle)], cwd=ROOT, check=True,
                       capture_output=True)
        with zipfile.ZipFile(bundle) as archive:
            archive.extractall(work / "kit")
        start = time.perf_counter()
        venv.create(work / "venv", with_pip=True)
        made = time.perf_counter() - start
        python = str(work / "venv" / "bin" / "python")
        torch_cmd = [python, "-m", "pip", "install", "-q", f"torch=={args.torch}"]
        if args.index_url:
            torch_cmd += ["--index-url", args.index_url]
        steps = [("torch", torch_cmd), ("kit", [python, "-m", "pip", "install", "-q", str(work / "kit")])]
        times = {"venv": made}
        for name, command in steps:
            times[name], done = timed(command, work, env)
            if done.returncode:
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
        notebook = work / "kit" / "assignments" / "en" / "ch03_attention.ipynb"
        autograder = str(work / "venv" / "bin" / "autograder")
        times["first check"], _ = timed([autograder, "check", str(notebook)], work, env)
        times["second check"], _ = timed([autograder, "check", str(notebook)], work, env)
    print(f"fresh venv {times['venv']:.1f} s, torch {times['torch']:.1f} s, kit {times['kit']:.1f} s: "
          f"set-up {times['venv'] + times['torch'] + times['kit']:.1f} s")
    print(f"autograder check on the untouched notebook: first {times['first check']:.1f} s, "
          f"second {times['second check']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
