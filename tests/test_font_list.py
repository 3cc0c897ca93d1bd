"""matplotlib's font list, built once outside the sandbox and kept (sandbox/font_list.py): a new sandbox takes the
kept list instead of building its own, and only a list nobody but the grader could have written."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from autograder.config import Limits
from autograder.sandbox import font_list
from autograder.sandbox.capability import isolation_for
from autograder.sandbox.worker_client import WorkerClient

MODES = [pytest.param("bwrap", marks=pytest.mark.skipif(isolation_for("auto") != "bwrap",
                                                        reason="bubblewrap cannot run here")), "process"]
MARKER = "Kept List Marker"
SEES_MARKER = f"""
import matplotlib.font_manager as fm
if not any(font.name == {MARKER!r} for font in fm.fontManager.ttflist):
    raise RuntimeError("the sandbox built a font list of its own")
"""


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("AUTOGRADER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def built(isolation: str) -> Path:
    """Build the list as a first sandbox would (in the background), wait for it, and return its file."""
    assert font_list.home_files(isolation) == {}, "a list was there before it was built"
    folder = font_list._folder()
    deadline = time.monotonic() + 60
    while not list(folder.glob("fontlist-v*.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    [path] = folder.glob("fontlist-v*.json")
    assert not list(folder.glob(".building-*")), "the build left its folder behind"
    return path


def plant_marker(path: Path) -> None:
    """A font entry no build would make, so that a sandbox that built its own list would not have it."""
    kept = json.loads(path.read_text())
    kept["ttflist"].append({**kept["ttflist"][0], "name": MARKER})
    path.write_text(json.dumps(kept))


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_a_new_sandbox_takes_the_kept_font_list(mode, cache):
    path = built(mode)
    plant_marker(path)
    assert set(font_list.home_files(mode)) == {f".cache/matplotlib/{path.name}"}
    worker = WorkerClient([{"origin": "cell 1", "code": SEES_MARKER}], Limits(cpu_seconds=61), mode)  # own zygote
    try:
        assert worker.failures == [], worker.failures
    finally:
        worker.close()


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_a_font_list_in_a_folder_others_could_write_is_not_taken(mode, cache):
    path = built(mode)
    plant_marker(path)
    os.chmod(path.parent, 0o777)  # (a file in it could be replaced by anyone)
    assert font_list.home_files(mode) == {}
    worker = WorkerClient([{"origin": "cell 1", "code": SEES_MARKER}], Limits(cpu_seconds=62), mode)
    try:
        assert [f["message"] for f in worker.failures] == ["the sandbox built a font list of its own"]
    finally:
        worker.close()


def test_nothing_is_kept_where_student_code_could_write_the_cache(cache, monkeypatch):
    assert font_list.home_files("none") == {}, "a student's kernel runs as the grader"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert font_list.home_files("process") == {}, "a fallback worker of the grader's own user could write it"
    assert not cache.exists(), "a list was built that no sandbox here may take"


def test_no_cache_no_list(monkeypatch):
    monkeypatch.setenv("AUTOGRADER_CACHE", "off")
    assert font_list.home_files("bwrap") == {}
