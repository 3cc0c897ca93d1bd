"""The profile by stage (autograder/stopwatch.py) and the judge's pytest session start, measured for real."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SUBMISSIONS

pytestmark = pytest.mark.slow


def test_the_profile_counts_each_stage_and_the_requests_by_stage(tmp_path):
    """Round trips and the requests they carried are counted apart (batches carry several)."""
    profile = tmp_path / "profile.jsonl"
    env = {**os.environ, "AUTOGRADER_PROFILE": str(profile)}
    result = subprocess.run([sys.executable, "-m", "autograder", "check", str(SUBMISSIONS / "correct_reference.py")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    lines = profile.read_text().splitlines()
    assert len(lines) == 1, f"one judge, one line: {lines}"
    stages = json.loads(lines[0])["stages"]
    for name in ("pytest start and collection", "load", "sandbox start", "checks", "requests: checks"):
        assert name in stages and stages[name][0] > 0, f"{name} is missing from the profile: {sorted(stages)}"
    assert stages["load"][1] == 1 and stages["sandbox start"][1] >= 1, stages
    assert stages["requests: checks"][1] >= 50, f"the visible checks make many requests: {stages['requests: checks']}"
    assert stages["requests: checks"][0] < stages["checks"][0], "requests are part of the checks' time"
    trips, messages = stages["requests: checks"][1], stages["requests: checks (messages)"][1]
    assert trips < messages, f"no round trip carried more than one request: {trips} round trips, {messages} requests"


def test_unset_the_profile_writes_nothing(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "AUTOGRADER_PROFILE"}
    code = "from autograder import stopwatch\nwith stopwatch.stage('load'):\n    pass\nstopwatch.dump()"
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)}, check=True)
    assert list(tmp_path.iterdir()) == [], "without AUTOGRADER_PROFILE nothing may be written"


def test_the_checks_run_without_the_plugins_installed_in_the_environment():
    """pytest's plugin autoload stays off for the checks' session (it cost about 1 s a session), and on after it."""
    code = f"""
import os, runpy, sys
ns = runpy.run_path({str(SUBMISSIONS / 'correct_reference.py')!r})
from autograder.integrations.selfcheck import check_in_notebook
check_in_notebook('CausalAttention', namespace=ns)
print(sorted(m for m in sys.modules if m.startswith(('xdist', 'hypothesis', 'anyio', 'pytest_benchmark'))))
print(os.environ.get('PYTEST_DISABLE_PLUGIN_AUTOLOAD'))
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded, variable = result.stdout.strip().splitlines()[-2:]
    assert loaded == "[]", f"installed pytest plugins were loaded into the checks' session: {loaded}"
    assert variable == "None", "the student's environment was left changed"
