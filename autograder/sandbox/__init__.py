"""Start and talk to a submission's worker: the only module that starts processes.

Under bubblewrap (when available) the worker gets its own user, PID, IPC, network, UTS and
mount namespaces: a read-only view of /usr and the Python installation, a minimal /etc, a small
private /tmp, and nothing of the kit's solutions or checks, other submissions, the output folder
or the grader's environment. Without bubblewrap the worker is a plain subprocess with resource
limits in a new session, a scrubbed environment and a temporary working directory.

When the grader runs as root, every worker runs under a user id of its own (root is exempt from
RLIMIT_NPROC, and a uid of its own lets the judge kill everything the worker started).
"""
from __future__ import annotations

import atexit
import ctypes
import itertools
import json
import os
import resource
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from autograder.sandbox import budget
from autograder.sandbox.cgroups import remove_stale as remove_stale_groups
from autograder.config import ROOT, Limits

PACKAGE = Path(__file__).resolve().parent.parent
INSIDE = Path(__file__).resolve().parent / "inside"
"""Exactly what is bound into the sandbox: this folder's modules, which import nothing else of the kit."""
KIT_IN_SANDBOX = "/opt/kit"
HOME_IN_SANDBOX = "/tmp/work"
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "nsswitch.conf", "passwd", "group", "localtime",
             "alternatives")
"""The only parts of /etc a worker sees: what the dynamic loader and Python need to start."""
UID_BASE = 1 << 28
"""Workers of a root grader run as UID_BASE + judge pid * 64 + n: unique among live judges."""
UIDS_PER_JUDGE = 64
KEEP_UID = -1
"""Passed as a worker's uid: it keeps the grader's."""

_LINUX = sys.platform.startswith("linux")
_LIBC = ctypes.CDLL(None, use_errno=True) if _LINUX else None
CLONE_NEWNS, CLONE_NEWNET, MS_BIND, MS_REC, MS_PRIVATE = 0x20000, 0x40000000, 0x1000, 0x4000, 0x40000
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36


class WorkerGone(Exception):
    """The worker stopped answering: `reason` is "timeout", "crashed", "cpu", "protocol", or one of the
    whole tree's limits, "memory", "cpu_tree" or "cpu_share" (with `used` and `processes`)."""

    def __init__(self, reason: str, detail: str = "", **params: object):
        super().__init__(f"{reason} {detail}".strip())
        self.reason = reason
        self.detail = detail
        self.params = params


# ---------------------------------------------------------------------------------------------
# What this machine supports
# ---------------------------------------------------------------------------------------------

def bwrap_path() -> str | None:
    return shutil.which("bwrap")


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
        found.append("no file system or network isolation: a submission can read every file the grader's user "
                     "can read (solutions, checks, other submissions) and open network connections")
        if os.geteuid() != 0:
            found.append("a submission runs as your user: it can read the environment of your processes, signal "
                         "them (the grader too), and RLIMIT_NPROC counts all of your processes")
    if os.geteuid() == 0 and (not _can_drop_root() or isolation == "bwrap" and _bwrap_as_root()):
        found.append("the worker runs as root: process limits do not apply to it, so a fork bomb is not contained"
                     + (" (unprivileged user namespaces are blocked here, e.g. by AppArmor's "
                        "kernel.apparmor_restrict_unprivileged_userns)" if isolation == "bwrap" else ""))
    return found


_PROBE_ERRORS: dict[str, str] = {}


@cache
def _bwrap_usable() -> bool:
    return _probe("bwrap", _probe_uid()) or _bwrap_as_root()


@cache
def _bwrap_as_root() -> bool:
    """bwrap works here for root only: unprivileged user namespaces are blocked (e.g. by AppArmor)."""
    uid = _probe_uid()
    return uid != KEEP_UID and not _probe("bwrap", uid) and _probe("bwrap", KEEP_UID)


def _probe_uid() -> int:
    return UID_BASE - 2 if os.geteuid() == 0 and _can_drop_root() else KEEP_UID


@cache
def _probe(isolation: str, uid: int) -> bool:
    """Can a worker's Python start under `isolation` as `uid` and read torch? (Fast: torch is not imported.)"""
    code = "import importlib.util as u; open(u.find_spec('torch').origin, 'rb').close()"
    try:
        with _Spawn(Limits(), isolation, uid=uid) as spawn:
            process = spawn.popen([sys.executable, "-E", "-s", "-c", code], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
            _, err = process.communicate(timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        _PROBE_ERRORS[isolation] = str(exc)
        return False
    if process.returncode != 0:
        _PROBE_ERRORS[isolation] = err.decode("utf-8", "replace").strip()[-500:]
    return process.returncode == 0


# ---------------------------------------------------------------------------------------------
# Dropping root
# ---------------------------------------------------------------------------------------------

_uid_counter = itertools.count()


def _fresh_uid(isolation: str) -> int | None:
    """A user id for the next worker when the grader is root, else None (the worker keeps ours)."""
    if os.geteuid() != 0 or not _can_drop_root() or isolation == "bwrap" and _bwrap_as_root():
        return None
    return UID_BASE + os.getpid() * UIDS_PER_JUDGE + next(_uid_counter) % UIDS_PER_JUDGE


def clean_up_after(pid: int) -> None:
    """Remove what the workers of a judge process `pid` that has ended may have left behind.

    A judge cleans up after each worker itself; this is for a judge that was killed. Under
    bubblewrap nothing survives the judge; without it, processes a submission daemonised may.
    """
    if os.geteuid() == 0:
        start = UID_BASE + pid * UIDS_PER_JUDGE
        kill_uids(range(start, start + UIDS_PER_JUDGE))
        remove_stale_groups(pid)
    for leftover in Path(tempfile.gettempdir()).glob(f"autograder-{pid}-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def clean_up_stale() -> None:
    """clean_up_after every judge whose temporary folders remain although it no longer runs.

    For a batch that was killed with its judges (nobody was left to clean up after them). The
    folders are named after their process and its start time, so a later process that got the
    same number is not mistaken for their owner.
    """
    if not _LINUX:
        return
    if os.geteuid() == 0:
        remove_stale_groups()
    for leftover in Path(tempfile.gettempdir()).glob("autograder-*-*-*"):
        _, pid, started, _ = leftover.name.split("-", 3)
        if not (pid.isdigit() and started.isdigit()):
            continue
        now = _stat(int(pid))
        if now is not None and now[3] == int(started):
            continue  # its owner still runs
        if now is None:
            clean_up_after(int(pid))
        else:  # the number belongs to a later process, maybe a judge whose workers have those uids
            shutil.rmtree(leftover, ignore_errors=True)


@cache
def _start_of(pid: int) -> int:
    info = _stat(pid) if _LINUX else None
    return info[3] if info else 0


@cache
def _can_drop_root() -> bool:
    """Python must be reachable for an unprivileged user, directly or through a private mount namespace."""
    if not _LINUX:
        return False
    if not _blockers(_python_roots()):
        return True
    try:
        with _Spawn(Limits(), "process", uid=UID_BASE - 1) as spawn:
            return spawn.popen([sys.executable, "-E", "-s", "-c", "pass"]).wait(timeout=60) == 0
    except (OSError, subprocess.SubprocessError):
        return False


@cache
def _python_roots() -> list[str]:
    """Folders the worker's Python needs (outermost only); the kit inside them is hidden separately."""
    roots = {sys.base_prefix, sys.prefix, sys.exec_prefix, sys.base_exec_prefix}
    for entry in sys.path:
        if entry and os.path.isdir(entry) and "site-packages" in entry:
            roots.add(entry)
    roots = {os.path.realpath(r) for r in roots}
    return sorted(r for r in roots if not any(r.startswith(o + os.sep) for o in roots))


def _blockers(roots: list[str]) -> list[str]:
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


def _libc(name: str, *args) -> None:
    if getattr(_LIBC, name)(*args) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{name}: {os.strerror(errno)}")


@dataclass(frozen=True)
class _View:
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


def _arrange(view: _View, uid: int) -> None:
    """Runs as root in the child before it drops root; the grader's own view is not touched.

    A folder that blocks an unprivileged user from Python (e.g. /root, mode 0700) is covered by
    an empty tmpfs and Python's folders are bound back into it, through file descriptors opened
    before (so no path through the covered folders is needed). Without the right to make a
    mount namespace (e.g. in Docker) this works only when nothing blocks Python.
    """
    blockers = _blockers(view.roots)
    try:  # a network namespace of its own too: no interface, so no connection anywhere
        _libc("unshare", CLONE_NEWNS | CLONE_NEWNET)
    except OSError:
        try:
            _libc("unshare", CLONE_NEWNS)
        except OSError:
            if blockers:
                raise
            return
    _libc("mount", b"none", b"/", None, MS_REC | MS_PRIVATE, None)
    covers = {p: b"mode=0755,size=1m" for p in blockers + view.hide if os.path.isdir(p)}
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


# ---------------------------------------------------------------------------------------------
# Starting a worker
# ---------------------------------------------------------------------------------------------

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
        roots = _python_roots()
        inside = [r for r in roots if r.startswith(str(ROOT) + os.sep)]
        if not inside:
            paths.add(str(ROOT))
        else:
            for entry in ROOT.iterdir():
                if entry.is_dir() and not any(r == str(entry) or r.startswith(f"{entry}{os.sep}") for r in inside):
                    paths.add(str(entry))
    return sorted(paths)


def _bwrap_argv(limits: Limits, kit_fds: dict[str, int], command: list[str], as_pid_1: bool = False) -> list[str]:
    argv = [bwrap_path(), "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
            "--clearenv", "--cap-drop", "ALL", "--hostname", "sandbox"]
    if as_pid_1:  # the command is the namespace's init: no process inside can signal it unasked
        argv.append("--as-pid-1")
    for top in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    for name in ETC_FILES:
        if os.path.exists(f"/etc/{name}"):
            argv += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    shm, tmp = max(limits.disk_bytes // 4, 1 << 20), max(limits.disk_bytes - limits.disk_bytes // 4, 1 << 20)
    argv += ["--size", str(tmp), "--tmpfs", "/tmp"]  # before Python's folders: a venv may live in /tmp
    roots = _python_roots()
    for root in roots:
        argv += ["--ro-bind", root, root]
    visible = roots + ["/usr", "/lib", "/lib64", "/bin"]
    for hidden in _hidden_paths():
        if any(hidden == v or hidden.startswith(v + os.sep) for v in visible):
            argv += ["--tmpfs", hidden, "--remount-ro", hidden]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--size", str(shm), "--tmpfs", "/dev/shm", "--remount-ro", "/dev"]  # /dev itself: an unsized tmpfs
    argv += ["--dir", HOME_IN_SANDBOX]
    for name, fd in kit_fds.items():
        argv += ["--ro-bind-data", str(fd), f"{KIT_IN_SANDBOX}/inside/{name}"]
    argv += ["--remount-ro", "/", "--chdir", KIT_IN_SANDBOX]
    for key, value in _environment(HOME_IN_SANDBOX).items():
        argv += ["--setenv", key, value]
    return argv + ["--", *command]


def _user_tasks(uid: int) -> int:
    """Processes and threads of `uid` (what RLIMIT_NPROC counts), 0 where /proc is missing."""
    return sum(threads for owner, threads in map(_owner, _pids()) if owner == uid)


def _owner(pid: int, living: bool = False) -> tuple[int | None, int]:
    """(real uid, threads) of `pid`; from status, which even a non-dumpable process cannot hide.

    With `living`, a zombie (dead, waiting for a parent that may never ask) has no owner.
    """
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            fields = dict(line.split(b":", 1) for line in handle.read().splitlines() if b":" in line)
        if living and fields[b"State"].split()[0] in (b"Z", b"X"):
            return None, 0
        return int(fields[b"Uid"].split()[0]), int(fields[b"Threads"])
    except (OSError, KeyError, ValueError, IndexError):
        return None, 0


def _pids() -> list[int]:
    try:
        return [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []


class _Spawn:
    """Everything needed to start one worker process, and to remove all trace of it afterwards."""

    def __init__(self, limits: Limits, isolation: str, uid: int | None = None, cpu_limit: bool = True,
                 as_pid_1: bool = False):
        self.limits, self.isolation, self.cpu_limit, self.as_pid_1 = limits, isolation, cpu_limit, as_pid_1
        self.uid = _fresh_uid(isolation) if uid is None else (None if uid == KEEP_UID else uid)
        self.tmp = tempfile.mkdtemp(prefix=f"autograder-{os.getpid()}-{_start_of(os.getpid())}-")
        os.chmod(self.tmp, 0o711)  # an unprivileged worker may pass through, not list
        self.fds: list[int] = []
        self.kit = os.path.join(self.tmp, "kit")
        self.work = os.path.join(self.tmp, "work")

    def __enter__(self) -> _Spawn:
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()

    @property
    def home(self) -> str:
        """The worker's private writable folder, as the worker sees it."""
        return HOME_IN_SANDBOX if self.isolation == "bwrap" else self.work

    def popen(self, command: list[str], **streams) -> subprocess.Popen:
        if self.isolation == "bwrap":
            kit_fds = {path.name: self._data_fd(path.read_bytes()) for path in _inside_files()}
            argv, env, cwd = _bwrap_argv(self.limits, kit_fds, command, self.as_pid_1), {}, "/"
        else:
            package = os.path.join(self.kit, "inside")
            os.makedirs(package)
            for folder in (self.kit, package):
                os.chmod(folder, 0o755)
            for path in _inside_files():
                shutil.copy(path, os.path.join(package, path.name))
                os.chmod(os.path.join(package, path.name), 0o644)
            os.mkdir(self.work, 0o700)
            if self.uid is not None:
                os.chown(self.work, self.uid, self.uid)
            argv, env, cwd = command, _environment(self.work), self.kit
        nproc = self._nproc()
        uid, limits, view, cpu = self.uid, self.limits, _View(_python_roots()), self.cpu_limit
        if self.isolation != "bwrap":  # bwrap makes its own view; this is the fallback's
            view = _View(_python_roots(), _hidden_paths(), ["/tmp", "/var/tmp", "/dev/shm"], self.limits.disk_bytes,
                         [self.kit], self.work)
        process = subprocess.Popen(
            argv, env=env, cwd=cwd, start_new_session=True, pass_fds=self.fds,
            preexec_fn=lambda: _child(limits, nproc, uid, view, cpu), **streams,
        )
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        return process

    def _nproc(self) -> int | None:
        """RLIMIT_NPROC for the child; under bwrap the worker sets it inside its user namespace."""
        if self.isolation == "bwrap":
            return None
        if self.uid is not None:
            return self.limits.processes  # a uid of its own: the count is the worker's alone
        if os.geteuid() == 0 or not _LINUX:  # root is exempt; elsewhere we cannot count what is running
            return None
        return _user_tasks(os.getuid()) + self.limits.processes

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


def _child(limits: Limits, nproc: int | None, uid: int | None, view: _View, cpu: bool = True) -> None:
    """Runs in the child between fork and exec, as the grader's user."""
    if cpu:
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
    resource.setrlimit(resource.RLIMIT_AS, (limits.address_bytes, limits.address_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if uid is not None:
        _arrange(view, uid)
    if nproc is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    if _LINUX:  # after the uid change, which clears it
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def start_judge(argv: list[str], spec: str) -> subprocess.Popen:
    """A judge process of `autograder grade`, reading `spec` on stdin and dying with its parent."""
    def die_with_parent() -> None:
        if _LINUX:
            _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"}, preexec_fn=die_with_parent)
    process.stdin.write(spec)
    process.stdin.close()
    return process


# ---------------------------------------------------------------------------------------------
# Making sure nothing survives a worker
# ---------------------------------------------------------------------------------------------

_LIVE: weakref.WeakSet[Worker] = weakref.WeakSet()
_SUBREAPER = False


def _become_subreaper() -> None:
    """Orphans of a fallback worker (double-forked daemons) become our children, so we can find them."""
    global _SUBREAPER
    if _LINUX and not _SUBREAPER:
        _SUBREAPER = _LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def _stat(pid: int) -> tuple[int, int, int, int] | None:
    """(ppid, pgid, sid, start time) of `pid`, or None when it is gone (or dead, a zombie nobody reaps)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        if fields[0] in (b"Z", b"X"):
            return None
        return int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def kill_uids(uids: range | list[int]) -> int:
    """SIGKILL every process whose owner is in `uids` (root only); returns how many were found."""
    wanted, found = set(uids), 0
    for _ in range(50):
        victims = [pid for pid in _pids() if _owner(pid, living=True)[0] in wanted]
        if not victims:
            break
        found += len(victims)
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        _reap(victims)
        time.sleep(0.01)
    return found


def _reap(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def _strays(worker_pid: int, since: int) -> list[int]:
    """Processes left by a fallback worker: its session or group, and orphans reparented to us."""
    me, known = os.getpid(), {w.process.pid for w in _LIVE if w.alive()}
    found = []
    for pid in _pids():
        info = _stat(pid)
        if info is None or pid == me or pid in known:
            continue
        ppid, pgid, sid, start = info
        if worker_pid in (pgid, sid) or (ppid == me and start >= since):
            found.append(pid)
    return found


def _reap_orphans(since: int) -> None:
    """Collect the exit status of orphans that were reparented to us and died since `since`."""
    me, known = os.getpid(), {w.process.pid for w in _LIVE}
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            if fields[0] == b"Z" and int(fields[1]) == me and int(fields[19]) >= since and pid not in known:
                os.waitpid(pid, os.WNOHANG)
        except (OSError, IndexError, ValueError):
            pass


def _kill_group(process: subprocess.Popen, uid: int | None) -> None:
    """SIGKILL a process started in a session of its own, its group, and (when it has one) its uid."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    if uid is not None:
        kill_uids([uid])


def _proc_start(pid: int) -> int:
    info = _stat(pid)
    return info[3] if info else 0


def _failure(failure: dict) -> dict:
    """A statement that failed while loading, as plain strings."""
    return {key: str(failure.get(key) or "")[:1000] for key in ("origin", "type", "message", "where")}


# ---------------------------------------------------------------------------------------------
# Pre-warmed sandboxes: torch imported once per judge slot, one forked worker per submission
# ---------------------------------------------------------------------------------------------

ZYGOTE_SECONDS = 10.0
"""Time a running zygote has to answer (a reset kills and waits for everything a worker left)."""


class Zygote:
    """A judge slot's bubblewrap sandbox around autograder/zygote.py, which forks the workers.

    Before the next worker starts, the zygote kills every other process in the sandbox and
    empties its /tmp, /dev/shm and SysV IPC, so nothing of one submission meets the next. When
    it fails to, or stops answering, the whole sandbox is killed and the next worker gets a new one.
    """

    def __init__(self, limits: Limits):
        self.limits = limits
        # Each worker gets its own CPU limit. As the PID namespace's init the zygote cannot be killed
        # or stopped by a worker (the kernel drops such signals to an init from inside).
        self._spawn = _Spawn(limits, "bwrap", cpu_limit=False, as_pid_1=True)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        settings = {k: getattr(limits, k) for k in ("cpu_seconds", "address_bytes", "file_bytes", "processes",
                                                    "message_bytes")}
        command = [sys.executable, "-E", "-s", "-m", "inside.zygote", json.dumps(settings)]
        self.log = os.path.join(self._spawn.tmp, "zygote.log")
        try:
            with theirs, open(self.log, "wb") as log:
                self.process = self._spawn.popen(command, stdin=theirs, stdout=subprocess.DEVNULL, stderr=log)
        except BaseException:
            ours.close()
            self._spawn.cleanup()
            raise
        self.control = ours
        self.ready = False
        self.busy = False
        """A worker of it has run since its last reset."""
        self._init: int | None = None
        self._last = 0
        """Our pid of the last worker forked."""

    @property
    def uid(self) -> int | None:
        return self._spawn.uid

    def ask(self, message: dict, seconds: float, fds: list[int] | None = None) -> dict:
        """One request to the zygote; WorkerGone (and the sandbox stopped) when it fails to answer."""
        try:
            socket.send_fds(self.control, [json.dumps(message).encode()], fds or [])
            if not select.select([self.control], [], [], seconds)[0]:
                self.stop()
                raise WorkerGone("timeout", f"the sandbox did not answer {message['op']} in {seconds:g} s")
            data = self.control.recv(65536)
            reply = json.loads(data) if data else None
        except (OSError, ValueError):
            reply = None
        if not isinstance(reply, dict) or "error" in reply:
            detail = self._last_words() if reply is None else str(reply.get("error"))[:300]
            self.stop()
            raise WorkerGone("crashed", f"the sandbox ended: {detail}")
        return reply

    @property
    def init(self) -> int | None:
        """The zygote's pid on our side of the sandbox's PID namespace (bwrap's child there is its init)."""
        if self._init is None:
            self._init = budget.in_namespace(self.process.pid).get(1)
        return self._init

    def fork(self) -> _Forked:
        """A new worker on fresh pipes; the zygote must have been reset since the last one."""
        requests, replies, errors = os.pipe(), os.pipe(), os.pipe()
        theirs = [requests[0], replies[1], errors[1]]
        try:
            reply = self.ask({"op": "spawn"}, ZYGOTE_SECONDS if self.ready else self.limits.load_seconds, theirs)
        except BaseException:
            for fd in (requests[1], replies[0], errors[0]):
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        self.ready = self.busy = True
        forked = _Forked(self, open(requests[1], "wb", buffering=0), open(replies[0], "rb", buffering=0),
                         open(errors[0], "rb"))
        if self.init:  # pids grow: the new worker's is above the last one's, unless they wrapped around
            forked.worker = (budget.in_namespace(self.init, self._last or self.init).get(reply.get("pid"))
                             or budget.in_namespace(self.init).get(reply.get("pid")))
            self._last = forked.worker or 0
        return forked

    def reset(self) -> None:
        """Kill what the last worker left; stop the whole sandbox if that fails."""
        if self.alive() and not self.ask({"op": "reset"}, ZYGOTE_SECONDS).get("ok"):
            self.stop()  # something of the last worker stays: the next one gets a new sandbox
        self.busy = False

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Kill the sandbox and everything in it (its PID namespace ends with bwrap)."""
        _kill_group(self.process, self.uid)
        self.control.close()
        self._spawn.cleanup()
        if self in _ZYGOTES:
            _ZYGOTES.remove(self)

    def _last_words(self) -> str:
        try:
            with open(self.log, "rb") as handle:
                return handle.read()[-300:].decode("utf-8", "replace").strip() or "no message"
        except OSError:
            return "no message"


class _Forked:
    """A worker forked by a zygote, with the parts of subprocess.Popen that Worker uses."""

    def __init__(self, zygote: Zygote, stdin, stdout, stderr):
        self.zygote, self.stdin, self.stdout, self.stderr = zygote, stdin, stdout, stderr
        self.pid = zygote.process.pid  # the sandbox's, on our side of its PID namespace
        self.returncode: int | None = None
        self.worker: int | None = None
        """The worker's own pid on our side, before it has run any student code."""

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            try:
                code = self.zygote.ask({"op": "wait", "seconds": timeout or 0}, (timeout or 0) + ZYGOTE_SECONDS)
                self.returncode = code.get("code") if isinstance(code.get("code"), int) else None
            except WorkerGone:
                self.returncode = -signal.SIGKILL
            if self.returncode is None:
                raise subprocess.TimeoutExpired("worker", timeout)
        return self.returncode

    def end(self) -> None:
        """Kill the worker and all it started (the zygote's reset)."""
        try:
            self.zygote.reset()
        except WorkerGone:
            pass
        if self.returncode is None:
            try:
                self.wait(0)
            except subprocess.TimeoutExpired:
                self.returncode = -signal.SIGKILL


_ZYGOTES: list[Zygote] = []
"""This process's pre-warmed sandboxes (a judge needs one: it runs one worker at a time)."""


def zygote_for(limits: Limits) -> Zygote:
    """A running zygote for workers with `limits` that has no worker now; started if there is none."""
    for zygote in list(_ZYGOTES):
        if not zygote.alive():
            zygote.stop()
        elif zygote.limits == limits and not zygote.busy:
            return zygote
    zygote = Zygote(limits)
    _ZYGOTES.append(zygote)
    return zygote


def prestart(limits: Limits, isolation: str) -> None:
    """Start the slot's sandbox now, so torch is imported there while the judge prepares."""
    if isolation == "bwrap":
        zygote_for(limits)


@atexit.register
def _stop_zygotes() -> None:
    for zygote in list(_ZYGOTES):
        zygote.stop()


class Worker:
    """One running worker holding one submission's definitions.

    Under bubblewrap it is forked by the judge slot's zygote (torch already imported); otherwise
    it is a fresh interpreter of its own.
    """

    def __init__(self, chunks: list[dict], limits: Limits, isolation: str):
        self.limits = limits
        self.isolation = isolation
        self.stderr = bytearray()
        self.stderr_dropped = 0
        if isolation == "bwrap":
            zygote = zygote_for(limits)
            self._spawn = zygote._spawn
            self.process: subprocess.Popen | _Forked = zygote.fork()
        else:
            _become_subreaper()
            self._spawn = _Spawn(limits, isolation)
            command = [sys.executable, "-E", "-s", "-m", "inside.worker", str(limits.message_bytes),
                       self._spawn.home]
            try:
                self.process = self._spawn.popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                 stderr=subprocess.PIPE)
            except BaseException:
                self._spawn.cleanup()
                raise
        self._started = _proc_start(self.process.pid)
        if isinstance(self.process, _Forked):  # the zygote is not the submission's: only what it forked
            tree, first = budget.Tree(self.process.worker or -1, self.process.zygote.init), self.process.worker
        else:
            tree, first = budget.Tree(self.process.pid), self.process.pid
        self.budget = budget.start(limits, tree, add=first)  # before the load request: no student code ran yet
        _LIVE.add(self)
        self._drain = threading.Thread(target=self._keep_stderr, daemon=True)
        self._drain.start()
        reply = self.request({"op": "load", "chunks": chunks}, limits.load_seconds)
        try:  # the student's code ran before this reply was written: trust nothing in it
            self.failures = [_failure(f) for f in reply["result"]["failures"][:100]]
        except (KeyError, TypeError, AttributeError):
            self.kill()
            raise WorkerGone("protocol", "the reply to loading the definitions is not what the worker sends") from None

    @property
    def uid(self) -> int | None:
        return self._spawn.uid

    def request(self, message: dict, seconds: float) -> dict:
        from autograder.sandbox.inside.protocol import ProtocolError, read_message, write_message  # torch: not before needed

        if self.process.poll() is not None:
            raise self._gone("crashed")
        try:
            write_message(self.process.stdin.fileno(), message)
            return read_message(self.process.stdout.fileno(), self.limits.message_bytes, time.monotonic() + seconds)
        except ProtocolError as exc:
            if exc.reason == "timeout" and self.process.poll() is None:
                self.kill()
                raise WorkerGone("timeout", f"{seconds:g} s") from None
            if exc.reason == "eof" or self._exited():
                raise self._gone("crashed") from None
            self.kill()
            raise WorkerGone("protocol", str(exc)) from None
        except OSError:
            raise self._gone("crashed") from None

    def _exited(self) -> bool:
        try:
            self.process.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            return False
        return True

    def _gone(self, reason: str) -> WorkerGone:
        """The worker has ended (or is ending): kill what is left and say why it ended."""
        self._exited()
        self.kill()
        code = self.process.returncode
        overrun = self.budget.overrun
        if overrun is not None:
            return WorkerGone({"cpu": "cpu_tree"}.get(overrun.kind, overrun.kind), f"{overrun.used:g}",
                              used=overrun.used, processes=overrun.processes)
        # bwrap reports a worker killed by signal N as exit status 128 + N.
        signum = -code if code is not None and code < 0 else (code - 128 if code and code > 128 else 0)
        if signum == signal.SIGXCPU:
            return WorkerGone("cpu", f"{self.limits.cpu_seconds} s")
        return WorkerGone(reason, f"exit code {code}")

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        """End the worker: it keeps nothing worth a clean exit (its prints are not buffered)."""
        self.kill()

    def kill(self) -> None:
        """SIGKILL the worker and everything it started; remove its temporary files."""
        if isinstance(self.process, _Forked):
            self.process.end()
            self.budget.close()
            self._close_streams()
            return
        _kill_group(self.process, self.uid)
        if self.uid is None and self.isolation != "bwrap" and _LINUX:  # bwrap: the PID namespace dies with its init
            for _ in range(50):
                strays = _strays(self.process.pid, self._started)
                if not strays:
                    break
                for pid in strays:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                time.sleep(0.01)
            _reap_orphans(self._started)
        self.budget.close()
        self._spawn.cleanup()
        self._close_streams()

    def _close_streams(self) -> None:
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        _LIVE.discard(self)
        self._drain.join(timeout=2)  # the last lines it printed belong in its record

    def _keep_stderr(self) -> None:
        stream = self.process.stderr
        try:
            while chunk := stream.read1(65536):
                room = max(self.limits.output_bytes - len(self.stderr), 0)
                self.stderr += chunk[:room]
                self.stderr_dropped += len(chunk) - len(chunk[:room])
        except (OSError, ValueError):
            pass
