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
    """Folders covered by an empty tmpfs where they lie inside Python's folders: the installed kit, the checkout."""
    scratch: list[str] = field(default_factory=list)
    """World-writable folders replaced by a private tmpfs of scratch_bytes (fallback only)."""
    scratch_bytes: int = 0
    keep: list[str] = field(default_factory=list)
    """The fallback's copy of the worker's files, bound at their own paths."""
    home: str = ""
    """The worker's writable folder, made afresh in the private /tmp. A view with a home is a fallback worker's,
    which gets a root of its own (own_root); bubblewrap's view holds only the roots."""


SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64")
"""The system's folders a worker sees (read-only to it: it is not root), as bubblewrap binds them."""
ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "nsswitch.conf", "passwd", "group", "localtime", "alternatives")
"""The only parts of /etc a worker sees: what the dynamic loader and Python need to start."""
DEVICES = ("null", "zero", "full", "random", "urandom")
NEW_ROOT = "/tmp"
"""Where the worker's new root is built, in its own mount namespace: a folder every machine has."""


def arrange(view: View, uid: int) -> None:
    """Runs as root in the child before it drops root; the grader's own view is not touched.

    A worker under bubblewrap (whose view holds only Python's folders) needs only to reach Python:
    a folder that blocks an unprivileged user from it (e.g. /root, mode 0700) is covered by an empty
    tmpfs and Python's folders are bound back into it; bubblewrap then builds its own root (it could
    not from inside a changed root: the kernel refuses a user namespace there). A fallback worker
    gets a root of its own (own_root). Without the right to make a mount namespace (e.g. in Docker)
    this works only when nothing blocks Python, and the worker sees what its user may read.
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
    umask = os.umask(0o022)  # the folders made here must be reachable for the worker's user
    try:
        if view.home:
            own_root(view, uid)
        else:
            uncover(blocking, view.roots)
    finally:
        os.umask(umask)


def uncover(blocking: list[str], roots: list[str]) -> None:
    """Cover each of `blocking` with an empty tmpfs and bind the `roots` inside them back, at their own paths."""
    kept = [(path, os.open(path, os.O_PATH)) for path in roots if any(path.startswith(b + os.sep) for b in blocking)]
    for path in blocking:
        _libc("mount", b"tmpfs", path.encode(), b"tmpfs", 0, b"mode=0755,size=1m")
    _bind(kept, "")


def own_root(view: View, uid: int) -> None:
    """Change root into a tmpfs that holds, as bubblewrap's root does, only the system's folders, the few files of
    /etc Python needs, a few devices, /proc, Python's folders (the kit's folders inside them covered), the
    worker's own files and private scratch folders. Nothing else on the disk (the solutions, another checkout,
    other submissions) exists for the worker. Everything bound is opened before anything is covered."""
    sources = [top for top in SYSTEM if os.path.isdir(top) and not os.path.islink(top)]
    sources += [f"/etc/{name}" for name in ETC] + [f"/dev/{name}" for name in DEVICES] + ["/proc"]
    sources += [path for path in view.roots + view.keep if not any(path.startswith(t + os.sep) for t in SYSTEM)]
    binds = [(path, os.open(path, os.O_PATH)) for path in sources if os.path.exists(path)]
    new = NEW_ROOT
    _libc("mount", b"tmpfs", new.encode(), b"tmpfs", 0, b"mode=0755,size=1m")
    for top in SYSTEM:
        if os.path.islink(top):
            os.symlink(os.readlink(top), new + top)
    for path in view.scratch:
        os.makedirs(new + path, 0o755, exist_ok=True)
        options = f"mode=1777,size={max(view.scratch_bytes, 1 << 20)}".encode()
        _libc("mount", b"tmpfs", (new + path).encode(), b"tmpfs", 0, options)
    _bind(binds, new)  # after the scratch folders: a virtual environment may live in /tmp
    for path in view.hide:
        if os.path.isdir(new + path) and any(path == r or path.startswith(r + os.sep) for r in view.roots):
            _libc("mount", b"tmpfs", (new + path).encode(), b"tmpfs", 0, b"mode=0755,size=1m")
    os.makedirs(new + view.home, 0o700, exist_ok=True)
    os.chown(new + view.home, uid, uid)
    cwd = os.getcwd()
    os.chroot(new)
    os.chdir(cwd if os.path.isdir(cwd) else "/")


def _bind(opened: list[tuple[str, int]], under: str) -> None:
    """Bind each opened (path, O_PATH fd) at `under` + path, making the folder or empty file it needs."""
    for path, fd in opened:
        target = under + path
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(target, 0o755, exist_ok=True)
        elif not os.path.exists(target):
            os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
            open(target, "a").close()
        _libc("mount", f"/proc/self/fd/{fd}".encode(), target.encode(), None, MS_BIND | MS_REC, None)
        os.close(fd)
