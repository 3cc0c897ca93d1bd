"""matplotlib's list of the machine's fonts, built once outside any sandbox and kept in the kit's cache.

A zygote imports matplotlib.pyplot (inside/zygote.py, PRELOAD). In a fresh sandbox matplotlib finds no cache of its
own, so it builds its font list by reading every font file of the machine: about 0.3 s of CPU in each sandbox's
start, which a batch pays once per judge and `autograder check` on its critical path. The list is built instead by
a Python of the grader's that runs nothing but matplotlib, kept in the kit's cache (one folder per matplotlib
version), and copied into each new sandbox's home, where matplotlib takes it for its own cache.

The list is used only where no student code can write the grader's files (capability.grader_files_safe), and only
if it is the grader's alone. A list that is missing is built in the background for the next sandbox; this one
builds its own, as before.
"""
from __future__ import annotations

import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from autograder.config import environment
from autograder.sandbox.capability import grader_files_safe, grader_only
from autograder.sandbox.inside.mounts import die_with_parent

IN_HOME = ".cache/matplotlib"
"""Where matplotlib looks for its cache in a sandbox: $HOME/.cache/matplotlib (no XDG_CACHE_HOME, no MPLCONFIGDIR)."""
MAX_BYTES = 4 << 20

BUILD = """\
import glob, os, shutil, sys, tempfile
folder = sys.argv[1]
os.makedirs(folder, mode=0o700, exist_ok=True)
building = tempfile.mkdtemp(dir=folder, prefix=".building-")
os.environ["MPLCONFIGDIR"] = building
import matplotlib.font_manager
for path in glob.glob(os.path.join(building, "fontlist-v*.json")):
    os.replace(path, os.path.join(folder, os.path.basename(path)))
shutil.rmtree(building)
"""
"""Run as `python -E -s -c BUILD FOLDER`: matplotlib writes its list in a folder of its own; it is moved in whole."""


def home_files(isolation: str) -> dict[str, bytes]:
    """The kept font list as a file for the sandbox's home ({path in the home: bytes}); {} when there is none to
    trust here (then one is built in the background, for the sandboxes started after it)."""
    folder = _folder()
    if folder is None or not grader_files_safe(isolation):
        return {}
    kept = _kept(folder)
    if kept is None:
        if not _being_built(folder):
            _build(folder)
        return {}
    name, data = kept
    return {f"{IN_HOME}/{name}": data}


def _folder() -> Path | None:
    cache = environment().cache
    if cache is None:
        return None
    try:
        return cache / f"matplotlib-{version('matplotlib')}"
    except PackageNotFoundError:  # no matplotlib: nothing imports it in the sandbox either
        return None


def _kept(folder: Path) -> tuple[str, bytes] | None:
    try:
        if not grader_only(folder.parent) or not grader_only(folder):
            return None
        for path in sorted(folder.glob("fontlist-v*.json")):
            if grader_only(path) and path.stat().st_size <= MAX_BYTES:
                return path.name, path.read_bytes()
    except OSError:
        pass
    return None


def _being_built(folder: Path) -> bool:
    """Another process started building the list in the last minute (two judges start at once)."""
    try:
        return any(time.time() - path.stat().st_mtime < 60 for path in folder.glob(".building-*"))
    except OSError:
        return False


def _build(folder: Path) -> subprocess.Popen | None:
    """Start building the list into `folder`; it dies with this process (a run too short to see it end builds it
    again next time)."""
    try:
        folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return subprocess.Popen([sys.executable, "-E", "-s", "-c", BUILD, str(folder)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
    except OSError:
        return None
