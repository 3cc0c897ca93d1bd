"""What a batch's processes skip at start and at exit: the judges take the machine's probes from the grading
process (sandbox/capability.py), and every process of the kit exits without the interpreter's teardown (exiting.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.sandbox import capability


@pytest.fixture
def nothing_probed(monkeypatch):
    monkeypatch.setattr(capability, "_PROBED", {})

    def no_python(*args, **kwargs):
        raise AssertionError("a probe started a Python although the answer was given")

    monkeypatch.setattr(capability, "Spawn", no_python)


def test_a_judge_takes_the_probes_it_is_given(nothing_probed):
    capability.assume({"bwrap as None": False, "bwrap as 1": True, "walls": ["network"]})
    assert capability._probe("bwrap", None) is False
    assert capability._probe("bwrap", 1) is True
    assert capability.probed()["walls"] == ["network"]


def test_what_was_probed_here_is_not_overridden(nothing_probed, monkeypatch):
    capability._PROBED["bwrap as None"] = True
    capability.assume({"bwrap as None": False})
    assert capability._probe("bwrap", None) is True


def test_a_probe_not_given_is_made_and_passed_on(monkeypatch):
    monkeypatch.setattr(capability, "_PROBED", {})
    calls = []
    monkeypatch.setattr(capability, "_start_python", lambda isolation, uid: calls.append((isolation, uid)) or False)
    assert capability._probe("process", 7) is False and capability._probe("process", 7) is False
    assert calls == [("process", 7)], "a probe's answer is kept"
    assert capability.probed() == {"process as 7": False}


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_a_quick_exit_runs_the_exit_handlers_and_keeps_the_code():
    result = _run("import atexit, sys\nfrom autograder.exiting import exit_quickly\n"
                  "atexit.register(lambda: print('handler ran'))\nsys.stdout.write('unflushed ')\nexit_quickly(3)")
    assert result.returncode == 3 and result.stdout == "unflushed handler ran\n", result


def test_a_quick_exit_waits_for_a_thread_at_work():
    result = _run("import threading, time\nfrom autograder.exiting import exit_quickly\n"
                  "threading.Thread(target=lambda: (time.sleep(0.3), print('thread done'))).start()\nexit_quickly(0)")
    assert result.returncode == 0 and "thread done" in result.stdout, result


@pytest.mark.parametrize("isolation", [
    pytest.param("bwrap", marks=pytest.mark.skipif(not capability.bwrap_path(), reason="no bubblewrap")), "process"])
def test_a_probe_reads_torch_as_the_worker_would(isolation, monkeypatch):
    uid = capability._probe_uid()
    assert capability._start_python(isolation, uid), capability._PROBE_ERRORS.get(isolation)
    monkeypatch.setattr(capability, "_torch_file", lambda: "/nonexistent/torch/__init__.py")
    assert not capability._start_python(isolation, uid), "a probe passed without reading torch"
    assert "FileNotFoundError" in capability._PROBE_ERRORS[isolation]


def test_the_kits_processes_do_not_look_for_torch_device_backends(tmp_path):
    """Each `import torch` looks through every installed package's entry points for device backends and loads
    them (30 ms here); the kit's processes grade on the CPU and turn that off (config.TORCH_SETTINGS)."""
    marker = tmp_path / "backend loaded"
    (tmp_path / "fake_backend.py").write_text(f"def load():\n    open({str(marker)!r}, 'w').close()\n")
    info = tmp_path / "fake_backend-0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-backend\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text("[torch.backends]\nfake = fake_backend:load\n")
    env = {key: value for key, value in os.environ.items() if key != "TORCH_DEVICE_BACKEND_AUTOLOAD"}
    env["PYTHONPATH"] = str(tmp_path)
    subprocess.run([sys.executable, "-c", "import torch"], env=env, check=True, timeout=120)
    assert marker.exists(), "the fake backend is not found: this test proves nothing"
    marker.unlink()
    notebook = Path(__file__).resolve().parent.parent / "solutions" / "en" / "ch03_attention.ipynb"
    result = subprocess.run([sys.executable, "-m", "autograder", "check", str(notebook)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not marker.exists(), "`autograder check` looked for device backends"


def test_a_probe_that_meets_the_process_limit_tries_again(monkeypatch):
    """A probe's user is shared by every grader on the machine: a start refused for the moment (EAGAIN, the process
    limit reached by the others' probes) is tried again, not taken for a missing sandbox."""
    from autograder.sandbox import launch

    uid = capability._probe_uid()  # (its own probe is made first, unrefused)
    refusals = []
    popen = launch.Spawn.popen

    def refused_once(self, command, **streams):
        if not refusals:
            refusals.append(command)
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return popen(self, command, **streams)

    monkeypatch.setattr(launch.Spawn, "popen", refused_once)
    assert capability._start_python("process", uid), capability._PROBE_ERRORS.get("process")
    assert refusals, "the probe was not refused once"


@pytest.mark.skipif(not capability.bwrap_path(), reason="no bubblewrap")
def test_a_subreaper_keeps_no_zombie_of_a_sandbox_it_started():
    """A grader that has started a fallback worker is a subreaper. bwrap's own init in the sandbox outlived bwrap
    and was orphaned to it: a zombie of the probe's user for each probe, until its process limit refused the probes
    (as late in a CI run of this suite)."""
    result = _run(
        "import psutil\nfrom autograder.config import Limits\nfrom autograder.sandbox import capability, linux\n"
        "from autograder.sandbox.launch import Spawn\n"
        "assert linux.become_subreaper()\nuid = capability._probe_uid()\n"
        "assert all(capability._start_python('bwrap', uid) for _ in range(3)), capability._PROBE_ERRORS\n"
        "with Spawn(Limits(), 'bwrap', uid) as spawn:\n"
        "    assert spawn.popen(['/bin/sh', '-c', 'exit 3']).wait(timeout=60) == 3\n"
        "import time; time.sleep(0.3)\n"
        "print([(child.name(), child.status()) for child in psutil.Process().children()])\n")
    assert result.returncode == 0 and result.stdout == "[]\n", (result.stdout, result.stderr[-2000:])
