"""Start and talk to a submission's worker: the only module that starts processes.

Under bubblewrap (when available) the worker gets its own user, PID, IPC, network and UTS
namespaces, a read-only view of the Python installation, and an empty /tmp; the kit's
solutions, checks, other submissions and the grader's environment are not visible. Without
bubblewrap the worker is a plain subprocess with resource limits in a new session, a scrubbed
environment and a temporary working directory.
"""
from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from autograder.config import Limits
from autograder.protocol import ProtocolError, read_message, write_message

PACKAGE = Path(__file__).resolve().parent
WORKER_FILES = ("__init__.py", "handler.py", "protocol.py", "worker.py")
KIT_IN_SANDBOX = "/opt/kit"


class WorkerGone(Exception):
    """The worker stopped answering: `reason` is "timeout", "crashed" or "protocol"."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason} {detail}".strip())
        self.reason = reason
        self.detail = detail


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def isolation_for(mode: str) -> str:
    """Resolve "auto" to the isolation this machine supports: "bwrap" or "process"."""
    if mode == "auto":
        return "bwrap" if bwrap_path() and _bwrap_works() else "process"
    if mode == "bwrap" and not bwrap_path():
        raise RuntimeError("bubblewrap (bwrap) is not installed; install the Debian package 'bubblewrap'")
    return mode


_BWRAP_OK: bool | None = None


def _bwrap_works() -> bool:
    global _BWRAP_OK
    if _BWRAP_OK is None:
        probe = subprocess.run(
            [bwrap_path(), "--unshare-all", "--ro-bind", "/", "/", "true"], capture_output=True
        )
        _BWRAP_OK = probe.returncode == 0
    return _BWRAP_OK


def _limit(limits: Limits) -> None:
    """Runs in the child between fork and exec."""
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _environment(home: str) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
    }


def _python_roots() -> list[str]:
    """Folders the worker's Python needs, excluding anything that holds the kit itself."""
    roots = {sys.base_prefix, sys.prefix}
    for entry in sys.path:
        if entry and os.path.isdir(entry) and "site-packages" in entry:
            roots.add(entry)
    kit = str(PACKAGE.parent)
    return sorted(r for r in roots if not (r == kit or r.startswith(kit + os.sep)))


def _bwrap_argv(kit_copy: str, work: str, max_bytes: int) -> list[str]:
    argv = [bwrap_path(), "--unshare-all", "--die-with-parent", "--new-session", "--clearenv"]
    for top in ("/usr", "/bin", "/lib", "/lib64", "/etc"):
        if os.path.exists(top):
            argv += ["--ro-bind", top, top]
    for root in _python_roots():
        argv += ["--ro-bind", root, root]
    installed = str(PACKAGE)
    if any(installed.startswith(r + os.sep) for r in _python_roots()):
        argv += ["--tmpfs", installed]  # a non-editable install: hide the kit's checks
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    argv += ["--ro-bind", kit_copy, KIT_IN_SANDBOX, "--bind", work, "/tmp/work", "--chdir", KIT_IN_SANDBOX]
    for key, value in _environment("/tmp/work").items():
        argv += ["--setenv", key, value]
    return argv + ["--", sys.executable, "-E", "-s", "-m", "autograder.worker", str(max_bytes), "/tmp/work"]


class Worker:
    """One running worker holding one submission's definitions."""

    def __init__(self, chunks: list[dict], limits: Limits, isolation: str):
        self.limits = limits
        self.isolation = isolation
        self.stderr = bytearray()
        self.stderr_dropped = 0
        self._tmp = tempfile.mkdtemp(prefix="autograder-")
        kit_copy, work = os.path.join(self._tmp, "kit"), os.path.join(self._tmp, "work")
        os.makedirs(os.path.join(kit_copy, "autograder"))
        os.makedirs(work)
        for name in WORKER_FILES:
            shutil.copy(PACKAGE / name, os.path.join(kit_copy, "autograder", name))
        if isolation == "bwrap":
            argv, env, cwd = _bwrap_argv(kit_copy, work, limits.message_bytes), {}, kit_copy
        else:
            argv = [sys.executable, "-E", "-s", "-m", "autograder.worker", str(limits.message_bytes), work]
            env, cwd = _environment(work), kit_copy
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, cwd=cwd, start_new_session=True, preexec_fn=lambda: _limit(limits),
        )
        self._drain = threading.Thread(target=self._keep_stderr, daemon=True)
        self._drain.start()
        self.failures = self.request({"op": "load", "chunks": chunks}, limits.load_seconds)["result"]["failures"]

    def request(self, message: dict, seconds: float) -> dict:
        if self.process.poll() is not None:
            raise WorkerGone("crashed", f"exit code {self.process.returncode}")
        try:
            write_message(self.process.stdin.fileno(), message)
            return read_message(self.process.stdout.fileno(), self.limits.message_bytes, time.monotonic() + seconds)
        except ProtocolError as exc:
            reason = "timeout" if exc.reason == "timeout" else "protocol"
            if exc.reason == "eof" or self.process.poll() is not None:
                reason = "crashed"
            self.kill()
            raise WorkerGone(reason, f"exit code {self.process.returncode}" if reason == "crashed" else str(exc)) from None
        except (BrokenPipeError, OSError):
            self.kill()
            raise WorkerGone("crashed", f"exit code {self.process.returncode}") from None

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        if self.alive():
            try:
                write_message(self.process.stdin.fileno(), {"op": "bye"})
                self.process.wait(timeout=1)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _keep_stderr(self) -> None:
        stream = self.process.stderr
        while chunk := stream.read1(65536):
            room = self.limits.output_bytes - len(self.stderr)
            self.stderr += chunk[: max(room, 0)]
            self.stderr_dropped += max(len(chunk) - max(room, 0), 0)
