"""What this machine supports: which isolation a worker can get, what it leaves open, and who a worker runs as."""
from __future__ import annotations

import importlib.util
import itertools
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path

from autograder.config import Limits
from autograder.sandbox import linux
from autograder.sandbox.inside import mounts
from autograder.sandbox.inside.mounts import blockers
from autograder.sandbox.launch import Spawn, bwrap_path, python_roots
from autograder.sandbox.processes import UID_BASE, UIDS_PER_JUDGE

_PROBE_ERRORS: dict[str, str] = {}
"""Why a probe failed, by isolation: for the error and the weaknesses the grader prints."""
_PROBED: dict[str, bool | list[str]] = {}
"""What was probed here, or told by the process that started this one (assume): each probe starts a Python."""
_uid_counter = itertools.count()
_READS_TORCH = [sys.executable, "-E", "-s", "-S", "-c", "import sys; open(sys.argv[1], 'rb').close()"]
"""A probe's Python: it starts, and reads torch's first file (its argument). Without `site` (-S), which would
read every .pth file of the environment first: a probe then takes 0.02 s instead of 0.06 s."""


def isolation_for(mode: str) -> str:
    """Resolve "auto" to the isolation this machine supports: "bwrap" or "process"."""
    if mode == "auto":
        return "bwrap" if bwrap_path() and _bwrap_usable() else "process"
    if mode == "bwrap" and not bwrap_path():
        raise RuntimeError("bubblewrap (bwrap) is not installed; install the Debian package 'bubblewrap'")
    if mode == "bwrap" and not _bwrap_usable():
        raise RuntimeError(f"bubblewrap cannot start a worker here: {_PROBE_ERRORS.get('bwrap', '')}")
    return mode


def weaknesses(isolation: str) -> list[str]:
    """What a submission could still do under `isolation` on this machine (empty for full isolation)."""
    found = []
    if isolation == "process":
        if bwrap_path() and _PROBE_ERRORS.get("bwrap"):
            found.append(f"bubblewrap is installed but cannot start a worker here: {_PROBE_ERRORS['bwrap']}")
        walls = fallback_walls()
        if "files" not in walls:
            found.append("no file system isolation: a submission can read every file the grader's user can read "
                         "(solutions, checks, other submissions)")
        if "network" not in walls:
            found.append("no network isolation: a submission can open network connections")
        if os.geteuid() != 0:
            found.append("a submission runs as your user: it can read the environment of your processes, signal "
                         "them (the grader too), and RLIMIT_NPROC counts all of your processes")
    if os.geteuid() == 0 and (not can_drop_root() or isolation == "bwrap" and _bwrap_as_root()):
        found.append("the worker runs as root: process limits do not apply to it, so a fork bomb is not contained"
                     + (" (unprivileged user namespaces are blocked here, e.g. by AppArmor's "
                        "kernel.apparmor_restrict_unprivileged_userns)" if isolation == "bwrap" else ""))
    return found


def grader_files_safe(isolation: str) -> bool:
    """No student code graded under `isolation` can write the grader's files: under bubblewrap (a worker sees them
    read-only) and in the fallback of a root grader (each worker has a user id of its own and no view of the
    grader's home). A fallback worker of the grader's own user, and the code in a student's kernel ("none"), could."""
    if isolation == "bwrap":
        return True
    if isolation == "process":
        return os.geteuid() == 0 and can_drop_root()
    return False


def grader_only(path: Path) -> bool:
    """`path` is this user's, a folder or a regular file, and nobody else may write it (OSError if it is not there)."""
    info = path.lstat()
    return info.st_uid == os.geteuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and (
        stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode))


def fresh_uid(isolation: str) -> int | None:
    """A user id for the next worker when the grader is root, else None (the worker keeps ours)."""
    if os.geteuid() != 0 or not can_drop_root() or isolation == "bwrap" and _bwrap_as_root():
        return None
    return UID_BASE + os.getpid() * UIDS_PER_JUDGE + next(_uid_counter) % UIDS_PER_JUDGE


def probed() -> dict[str, bool | list[str]]:
    """What this process has probed so far, for the judges it starts to assume (as JSON)."""
    return dict(_PROBED)


def assume(found: dict[str, bool | list[str]]) -> None:
    """Take what the grading process probed (probed()) as this machine's answers: a judge it starts on the same
    machine seconds later would start the same Pythons to learn the same (0.2 s each, before its sandbox starts)."""
    _PROBED.update({key: value for key, value in found.items() if key not in _PROBED})


def _probed(key: str, probe: Callable[[], bool | list[str]]) -> bool | list[str]:
    if key not in _PROBED:
        _PROBED[key] = probe()
    return _PROBED[key]


def can_drop_root() -> bool:
    """Python must be reachable for an unprivileged user, directly or through a private mount namespace."""
    if not linux.LINUX:
        return False
    if not blockers(python_roots()):
        return True
    return bool(_probed("drop_root", _python_as_another_user))


def _python_as_another_user() -> bool:
    try:
        with Spawn(Limits(), "process", uid=UID_BASE - 1) as spawn:
            return spawn.popen([*_READS_TORCH, _torch_file()]).wait(timeout=60) == 0
    except (OSError, subprocess.SubprocessError):
        return False


def fallback_walls() -> frozenset[str]:
    """What a fallback worker is walled off from here, probed: "files" when it has a root of its own (a root grader
    that may make a mount namespace, inside/mounts.arrange), so no top-level folder of the machine that it does not
    need exists for it; "network" when it has a network namespace of its own (no interface but loopback)."""
    if os.geteuid() != 0 or not can_drop_root():
        return frozenset()
    return frozenset(_probed("walls", _walls))


def _walls() -> list[str]:
    needed = (*mounts.SYSTEM, "/etc", "/dev", "/proc", "/tmp", "/var", *python_roots())
    outside = [f"/{name}" for name in os.listdir("/")
               if not any(path == f"/{name}" or path.startswith(f"/{name}/") for path in needed)]
    code = ("import os, socket, sys; files = not any(map(os.path.exists, sys.argv[1:])); "
            "network = [n for _, n in socket.if_nameindex()] == ['lo']; sys.exit(files + 2 * network)")
    try:
        with Spawn(Limits(), "process", uid=UID_BASE - 3) as spawn:
            code = spawn.popen([sys.executable, "-E", "-s", "-c", code, *outside]).wait(timeout=60)
    except (OSError, subprocess.SubprocessError):
        return []
    walls = {name for bit, name in ((1, "files"), (2, "network")) if code & bit}
    return sorted(walls if outside else walls - {"files"})


@cache
def _bwrap_usable() -> bool:
    return _probe("bwrap", _probe_uid()) or _bwrap_as_root()


@cache
def _bwrap_as_root() -> bool:
    """bwrap works here for root only: unprivileged user namespaces are blocked (e.g. by AppArmor)."""
    uid = _probe_uid()
    return uid is not None and not _probe("bwrap", uid) and _probe("bwrap", None)


@cache
def _torch_file() -> str:
    """torch's __init__.py, found without importing torch."""
    spec = importlib.util.find_spec("torch")
    return spec.origin if spec is not None and spec.origin else "torch is not installed"


def _probe_uid() -> int | None:
    """The user a probe runs as: one of its own for a root grader that can drop root, else ours (None)."""
    return UID_BASE - 2 if os.geteuid() == 0 and can_drop_root() else None


def _probe(isolation: str, uid: int | None) -> bool:
    """Can a worker's Python start under `isolation` as `uid` and read torch? (Fast: torch is not imported.)"""
    return bool(_probed(f"{isolation} as {uid}", lambda: _start_python(isolation, uid)))


def _start_python(isolation: str, uid: int | None, attempts: int = 5) -> bool:
    """`attempts`: a probe's user is shared by every grader on the machine, under the process limit: one that meets
    the others' probes at the limit (EAGAIN) tries again a little later, rather than find the sandbox missing."""
    try:
        with Spawn(Limits(), isolation, uid=uid) as spawn:
            process = spawn.popen([*_READS_TORCH, _torch_file()], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _, err = process.communicate(timeout=60)
    except BlockingIOError as exc:
        if attempts > 1:
            time.sleep(0.1)
            return _start_python(isolation, uid, attempts - 1)
        _PROBE_ERRORS[isolation] = str(exc)
        return False
    except (OSError, subprocess.SubprocessError) as exc:
        _PROBE_ERRORS[isolation] = str(exc)
        return False
    if process.returncode != 0:
        _PROBE_ERRORS[isolation] = err.decode("utf-8", "replace").strip()[-500:]
    return process.returncode == 0
