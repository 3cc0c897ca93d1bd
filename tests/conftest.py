"""Shared fixtures: the fixture submissions graded once per test session, for real."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FILES = ROOT / "tests" / "files"
SUBMISSIONS = FILES / "submissions"
UNCACHED = {**os.environ, "AUTOGRADER_CACHE": "off"}
"""The environment of a child that must start no process of its own but those a test counts: with a cache, a
sandbox's first start builds matplotlib's font list in a child of the grader (reaped at its next start)."""


def pytest_configure(config: pytest.Config) -> None:
    """What the kit keeps between runs (the reference's answers) is kept for this session only: a test sees what
    this code computes, not what an earlier checkout left in ~/.cache."""
    if "AUTOGRADER_CACHE" not in os.environ:
        os.environ["AUTOGRADER_CACHE"] = tempfile.mkdtemp(prefix="autograder-cache-")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-goldens", action="store_true",
                     help="rewrite tests/golden/ from today's output instead of comparing with it")


def run_cli(*args: str, cwd: Path = ROOT, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Invoke the real command line, as a user would."""
    return subprocess.run([sys.executable, "-m", "autograder", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def graded_fixtures(tmp_path_factory) -> dict[str, dict]:
    """Every fixture submission graded by `autograder grade`; record name -> record."""
    out = tmp_path_factory.mktemp("graded")
    result = run_cli("grade", str(SUBMISSIONS), "--out", str(out), "--jobs", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    return {p.name[: -len(".json")]: json.loads(p.read_text()) for p in out.glob("*.json")} | {
        "__out__": {"path": str(out), "stdout": result.stdout}
    }


@pytest.fixture(scope="session")
def manifest() -> dict[str, dict]:
    return json.loads((SUBMISSIONS / "manifest.json").read_text())
