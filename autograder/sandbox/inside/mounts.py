"""A fallback worker's start as root: its own mount namespace (the view), its uid, and its death with its parent.

Run between fork and exec by launch.py (a worker of its own) and in the forked child of a fallback
zygote (inside/zygote.py): one copy for both, so it lives where the sandbox may import it.
"""
from __future__ import annotations

import ctypes
import os
import signal
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

LINUX = sys.platform.startswith("linux")
_LIBC = ctypes.CDLL(None, use_errno=True) if LINUX else None
"""Loaded at import: a child forked from a threaded judge must not call dlopen."""
CLONE_NEWNS, CLONE_NEWNET, MS_BIND, MS_REC, MS_PRIVATE = 0x20000, 0x40000000, 0x1000, 0x4000, 0x40000
PR_SET_PDEATHSIG = 1


def _libc(name: str, *args: object) -> None:
    if getattr(_LIBC, name)(*args) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{name}: {os.strerror(errno)}")


def die_with_parent() -> None:
    """The calling process gets SIGKILL when its parent ends (set it after a uid change, which clears it)."""
    if LINUX:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def become(view: View, uid: int | None) -> None:
    """A fallback worker's last step before its own code: its view and `uid` (when the grader is root), for good,
    and its death with its parent."""
    if uid is not None:
        arrange(view, uid)
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    die_with_parent()  # after the uid change, which clears it


def blockers(roots: list[str]) -> list[str]:
    """The outermost folders that stop an unprivileged user from reaching `roots`."""
    found = set()
    for root in roots:
        parts = Path(root).parts
        for i in range(2, len(parts) + 1):
            folder = os.path.join(*parts[:i])
            if not os.stat(folder).st_mode & stat.S_IXOTH:
                found.add(folder)
                break
    return sorted(f for f in found if not any(f.startswith(o + os.sep) for o in found))


@dataclass(frozen=True)
class View:
    """What a worker of a root grader sees, arranged in its own mount namespace before it drops root."""

    roots: list[str]
    """Python's folders: they must stay reachable, at their own paths."""
    hide: list[str] = field(default_factory=list)
    """Folders covered by an empty tmpfs: the kit, the checkout."""
    scratch: list[str] = field(default_factory=list)
    """World-writable folders replaced by a private tmpfs of scratch_bytes (fallback only)."""
    scratch_bytes: int = 0
    keep: list[str] = field(default_factory=list)
    """Folders inside covered ones that must stay (the fallback's copy of the worker's files)."""
    home: str = ""
    """The worker's writable folder, made afresh in the private tmpfs (fallback only)."""


def arrange(view: View, uid: int) -> None:
    """Runs as root in the child before it drops root; the grader's own view is not touched.

    A folder that blocks an unprivileged user from Python (e.g. /root, mode 0700) is covered by
    an empty tmpfs and Python's folders are bound back into it, through file descriptors opened
    before (so no path through the covered folders is needed). Without the right to make a
    mount namespace (e.g. in Docker) this works only when nothing blocks Python.
    """
    blocking = blockers(view.roots)
    try:  # a network namespace of its own too: no interface, so no connection anywhere
        _libc("unshare", CLONE_NEWNS | CLONE_NEWNET)
    except OSError:
        try:
            _libc("unshare", CLONE_NEWNS)
        except OSError:
            if blocking:
                raise
            return
    _libc("mount", b"none", b"/", None, MS_REC | MS_PRIVATE, None)
    covers = {p: b"mode=0755,size=1m" for p in blocking + view.hide if os.path.isdir(p)}
    covers.update({p: f"mode=1777,size={view.scratch_bytes}".encode() for p in view.scratch if os.path.isdir(p)})
    covers = {p: o for p, o in covers.items() if not any(p.startswith(c + os.sep) for c in covers)}
    kept = [(path, os.open(path, os.O_PATH)) for path in view.roots + view.keep
            if any(path.startswith(c + os.sep) for c in covers)]
    for path, options in covers.items():
        _libc("mount", b"tmpfs", path.encode(), b"tmpfs", 0, options)
    for path, fd in kept:
        os.makedirs(path, 0o755, exist_ok=True)
        _libc("mount", f"/proc/self/fd/{fd}".encode(), path.encode(), None, MS_BIND | MS_REC, None)
        os.close(fd)
    if view.home:
        os.makedirs(view.home, 0o700, exist_ok=True)
        os.chown(view.home, uid, uid)
