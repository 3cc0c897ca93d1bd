"""Starting one sandboxed process: its files, environment, view of the machine, limits and user."""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

from autograder.config import ROOT, TORCH_SETTINGS, Limits
from autograder.sandbox import linux
from autograder.sandbox.inside import mounts
from autograder.sandbox.inside.limits import HOME, apply_limits
from autograder.sandbox.processes import stamp, user_tasks

PACKAGE = Path(__file__).resolve().parent.parent
INSIDE = Path(__file__).resolve().parent / "inside"
"""Exactly what is bound into the sandbox: this folder's modules, which import nothing else of the kit."""
KIT_IN_SANDBOX = "/opt/kit"


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


@cache
def python_roots() -> list[str]:
    """Folders the worker's Python needs (outermost only); the kit inside them is hidden separately."""
    roots = {sys.base_prefix, sys.prefix, sys.exec_prefix, sys.base_exec_prefix}
    for entry in sys.path:
        if entry and os.path.isdir(entry) and "site-packages" in entry:
            roots.add(entry)
    roots = {os.path.realpath(r) for r in roots}
    return sorted(r for r in roots if not any(r.startswith(o + os.sep) for o in roots))


def _inside_files() -> list[Path]:
    """The sandbox's code: every module of sandbox/inside/, run there as the package `inside`."""
    return sorted(INSIDE.glob("*.py"))


def _environment(home: str) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        **TORCH_SETTINGS,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
    }


def _hidden_paths() -> list[str]:
    """Folders no worker may see even when they lie inside a folder it needs.

    The installed package (its checks) and, in a source checkout, everything in the checkout
    (solutions, tests, history) except a virtual environment the worker's Python lives in.
    """
    paths = {str(PACKAGE)}
    if (ROOT / "pyproject.toml").exists():
        inside = [r for r in python_roots() if r.startswith(str(ROOT) + os.sep)]
        if not inside:
            paths.add(str(ROOT))
        else:
            for entry in ROOT.iterdir():
                if entry.is_dir() and not any(r == str(entry) or r.startswith(f"{entry}{os.sep}") for r in inside):
                    paths.add(str(entry))
    return sorted(paths)


def _bwrap_argv(limits: Limits, kit_fds: dict[str, int], command: list[str],
                home_fds: dict[str, int] | None = None) -> list[str]:
    """`command` is its PID namespace's init (--as-pid-1): no process inside can signal it unasked, and bwrap waits
    for it. Without that, bwrap's own init inside outlives bwrap by a moment: it is orphaned, and a grader that is a
    subreaper (a fallback worker's parent) would keep it as a zombie of the sandbox's user for good."""
    argv = [bwrap_path(), "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
            "--clearenv", "--cap-drop", "ALL", "--hostname", "sandbox", "--as-pid-1"]
    for top in mounts.SYSTEM:
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    for name in mounts.ETC:
        if os.path.exists(f"/etc/{name}"):
            argv += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    shm, tmp = max(limits.disk_bytes // 4, 1 << 20), max(limits.disk_bytes - limits.disk_bytes // 4, 1 << 20)
    argv += ["--size", str(tmp), "--tmpfs", "/tmp"]  # before Python's folders: a venv may live in /tmp
    roots = python_roots()
    for root in roots:
        argv += ["--ro-bind", root, root]
    visible = roots + ["/usr", "/lib", "/lib64", "/bin"]
    for hidden in _hidden_paths():
        if any(hidden == v or hidden.startswith(v + os.sep) for v in visible):
            argv += ["--tmpfs", hidden, "--remount-ro", hidden]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--size", str(shm), "--tmpfs", "/dev/shm", "--remount-ro", "/dev"]  # /dev itself: an unsized tmpfs
    argv += ["--dir", HOME]
    for relative, fd in (home_fds or {}).items():  # copies on the sandbox's /tmp, its own to change
        argv += ["--dir", os.path.dirname(f"{HOME}/{relative}"), "--file", str(fd), f"{HOME}/{relative}"]
    for name, fd in kit_fds.items():
        argv += ["--ro-bind-data", str(fd), f"{KIT_IN_SANDBOX}/inside/{name}"]
    argv += ["--remount-ro", "/", "--chdir", KIT_IN_SANDBOX]
    for key, value in _environment(HOME).items():
        argv += ["--setenv", key, value]
    return argv + ["--", *command]


class Spawn:
    """Everything needed to start one worker process, and to remove all trace of it afterwards.

    `uid` is the user the process runs as (None: the grader's own); `zygote` leaves its CPU time and
    process count unlimited (a zygote, whose workers set their own); `home_files` ({path in its home: bytes}) are
    put in its home before it starts.
    """

    def __init__(self, limits: Limits, isolation: str, uid: int | None, zygote: bool = False,
                 home_files: dict[str, bytes] | None = None):
        self.limits, self.isolation, self.uid, self.zygote = limits, isolation, uid, zygote
        self.home_files = home_files or {}
        self.tmp = tempfile.mkdtemp(prefix=f"autograder-{os.getpid()}-{_stamp_of(os.getpid())}-")
        os.chmod(self.tmp, 0o711)  # an unprivileged worker may pass through, not list
        self.fds: list[int] = []
        self.kit = os.path.join(self.tmp, "kit")
        self.work = os.path.join(self.tmp, "work")

    def __enter__(self) -> Spawn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    @property
    def home(self) -> str:
        """The worker's private writable folder, as the worker sees it."""
        return HOME if self.isolation == "bwrap" else self.work

    def popen(self, command: list[str], **streams: object) -> subprocess.Popen:
        """Start `command` (a Python of this machine) in the sandbox; `streams` are Popen's stdin/stdout/stderr."""
        argv, env, cwd = self._bwrap(command) if self.isolation == "bwrap" else self._fallback(command)
        # bwrap makes its own view; a fallback worker's is arranged when it drops root
        view = mounts.View(python_roots()) if self.isolation == "bwrap" else self.view(self.work)
        nproc = None if self.zygote else self.nproc(self.uid)
        child = functools.partial(_child, self.limits, nproc, self.uid, view, not self.zygote)
        process = subprocess.Popen(argv, env=env, cwd=cwd, start_new_session=True, pass_fds=self.fds,
                                   preexec_fn=child, **streams)
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        return process

    def _bwrap(self, command: list[str]) -> tuple[list[str], dict[str, str], str]:
        """bwrap's argv around `command`: the kit's inside/ files are passed as memfds, bound read-only in /opt/kit."""
        kit_fds = {path.name: self._data_fd(path.read_bytes()) for path in _inside_files()}
        home_fds = {relative: self._data_fd(data) for relative, data in self.home_files.items()}
        return _bwrap_argv(self.limits, kit_fds, command, home_fds), {}, "/"

    def _fallback(self, command: list[str]) -> tuple[list[str], dict[str, str], str]:
        """`command` as it is, run from a copy of inside/ in the temporary folder, with a private home next to it."""
        package = os.path.join(self.kit, "inside")
        os.makedirs(package)
        for folder in (self.kit, package):
            os.chmod(folder, 0o755)
        for path in _inside_files():
            shutil.copy(path, os.path.join(package, path.name))
            os.chmod(os.path.join(package, path.name), 0o644)
        os.mkdir(self.work, 0o700)
        for relative, data in self.home_files.items():
            path = Path(self.work, relative)
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.write_bytes(data)
        if self.uid is not None:
            for folder, folders, files in os.walk(self.work):
                for name in [folder, *(os.path.join(folder, f) for f in folders + files)]:
                    os.chown(name, self.uid, self.uid)
        return command, _environment(self.work), self.kit

    def view(self, home: str) -> mounts.View:
        """What a fallback worker whose writable folder is `home` sees once it has dropped root."""
        return mounts.View(python_roots(), _hidden_paths(), ["/tmp", "/var/tmp", "/dev/shm"],
                           self.limits.disk_bytes, [self.kit], home)

    def nproc(self, uid: int | None) -> int | None:
        """RLIMIT_NPROC for a worker running as `uid`; under bwrap the worker sets it inside its user namespace."""
        if self.isolation == "bwrap":
            return None
        if uid is not None:
            return self.limits.processes  # a uid of its own: the count is the worker's alone
        if os.geteuid() == 0 or not linux.LINUX:  # root is exempt; elsewhere we cannot count what is running
            return None
        return user_tasks(os.getuid()) + self.limits.processes

    def _data_fd(self, data: bytes) -> int:
        fd = os.memfd_create("kit", 0)  # bwrap runs on Linux only
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
        self.fds.append(fd)
        return fd

    def cleanup(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        shutil.rmtree(self.tmp, ignore_errors=True)


@cache
def _stamp_of(pid: int) -> int:
    """The start stamp of `pid` (the judge itself), in its temporary folders' names (see processes.clean_up_stale)."""
    return stamp(pid) or 0


def _child(limits: Limits, nproc: int | None, uid: int | None, view: mounts.View, cpu: bool = True) -> None:
    """Runs in the child between fork and exec, as the grader's user."""
    apply_limits(limits.cpu_seconds if cpu else None, limits.address_bytes, limits.file_bytes, nproc)
    mounts.become(view, uid)


def start_judge(argv: list[str], spec: str, pass_fds: tuple[int, ...] = ()) -> subprocess.Popen:
    """A judge process of `autograder grade`, reading `spec` (one line) on stdin and dying with its parent; the pipe
    stays open for the pool's answers (batch/pool.py); `pass_fds`: the pipes of the judges it forks
    (batch/siblings.py)."""
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, pass_fds=pass_fds,
                               env={**os.environ, "OMP_NUM_THREADS": "1", **TORCH_SETTINGS},
                               preexec_fn=linux.die_with_parent)
    process.stdin.write(spec.replace("\n", " ") + "\n")
    process.stdin.flush()
    return process
