"""The pre-warmed parent of a judge slot's workers: imports torch once, forks one worker per submission.

Started by the judge's ZygoteClient (sandbox/zygote_client.py) as `python -m inside.zygote SETTINGS`
(the workers' limits and the isolation); fd 0 is a SOCK_SEQPACKET socket to the judge. Requests are
JSON objects, each answered with one:

    spawn (+ 3 fds: requests, replies, stderr)  ->  {"ok": true, "pid": n}   a worker starts on those pipes
    wait {"seconds": s}                         ->  {"code": n}    its exit code (-signal), null if running
    reset                                       ->  {"ok": bool}   nothing of it is left (processes, files, IPC)

The zygote itself runs no student code and no torch operation (a fork after a multi-threaded
torch operation can deadlock the child), and it is not dumpable, so a worker of the same user can
neither trace it nor read its memory or file descriptors.

Under bubblewrap it runs inside the slot's sandbox as the PID namespace's init, so a worker can
neither kill nor stop it; orphans of a worker become its children; a reset kills every other
process of the sandbox and empties its scratch folders. In the fallback (no bubblewrap) it is a
plain process of the grader's user, root included: each spawn names the worker's user, process
limit, folder and view, and the forked child arranges its view and drops to that user exactly as
a worker started on its own does (inside/mounts.py); a reset kills the worker's session, and the
judge, which is the orphans' subreaper, clears the rest (its user's processes, or its strays).
"""
from __future__ import annotations

import ctypes
import gc
import json
import os
import re
import shutil
import signal
import socket
import sys
import time
import traceback

import torch

from . import mounts, worker
from .limits import HOME, SCRATCH, apply_limits

PR_SET_DUMPABLE = 4
IPC_RMID = 0
PRELOAD = ("numpy", "matplotlib.pyplot")
"""Imported once here, not once per worker: what the assignment's notebooks import besides torch. (A backward
given explicit gradients would import sympy, about 0.5 s; the handler's gradients never do, see op_forward.)"""


class ZygoteServer:
    """Serves the judge's requests; `limits` are those each worker sets for itself."""

    def __init__(self, control: socket.socket, limits: dict):
        self.control, self.limits = control, limits
        self.fallback = limits.get("isolation") == "process"
        self.child: int | None = None
        self.code: int | None = None

    def serve(self) -> None:
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.control, 65536, 3)
            except OSError:
                return
            if not data:  # the judge is gone
                return
            request = json.loads(data)
            op = request.get("op")
            try:
                if op == "spawn":
                    reply = self.spawn(fds, request)
                elif op == "wait":
                    reply = {"code": self.wait(float(request.get("seconds", 0)))}
                elif op == "reset":
                    left = self.reset()
                    reply = {"ok": not left, "left": left}
                else:
                    reply = {"error": f"unknown op {op!r}"}
            finally:
                for fd in fds:
                    os.close(fd)
            self.control.send(json.dumps(reply).encode())

    def spawn(self, fds: list[int], request: dict) -> dict:
        if len(fds) != 3 or self.child is not None:
            return {"error": "spawn needs three pipes and a reset zygote"}
        if not self.fallback:
            os.makedirs(HOME, exist_ok=True)
            os.chmod(HOME, 0o700)
            request = {"home": HOME}
        pid = os.fork()
        if pid == 0:
            try:
                self.control.close()
                _become_worker(*fds, self.limits, request)
            except BaseException:  # noqa: BLE001 - only the zygote's own setup can raise here
                traceback.print_exc()
                os._exit(1)
            os._exit(0)
        self.child, self.code = pid, None
        return {"ok": True, "pid": pid}

    def wait(self, seconds: float) -> int | None:
        """The child's exit code, waiting up to `seconds` for it to end."""
        deadline = time.monotonic() + seconds
        while self.child is not None and self.code is None:
            self.reap()
            if self.code is not None or time.monotonic() >= deadline:
                break
            time.sleep(0.005)
        return self.code

    def reap(self) -> None:
        """Collect every ended child of this process, keeping the worker's exit code."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if not pid:
                return
            if pid == self.child:
                self.code = os.waitstatus_to_exitcode(status)

    def reset(self) -> list[str]:
        """Kill every process but this one (the init); empty the scratch folders and IPC.

        Returns what is left (empty when all is gone).
        """
        if self.fallback:
            return self.reset_session()
        if not _own_pid_namespace():  # kill(-1) here would reach every process of the machine's
            return ["a PID namespace of the sandbox's own: this zygote is not its process 1, so nothing was killed"]
        me = os.getpid()
        for _ in range(400):
            try:
                os.kill(-1, signal.SIGKILL)  # every process this one may signal, in its PID namespace only
            except ProcessLookupError:  # there was none
                pass
            self.reap()
            # zombies too: a process that ended after the reap would still show in the next worker's /proc
            others = [pid for pid in _living(zombies=True) if pid not in (1, me)]
            if not others:
                break
            time.sleep(0.005)
        else:
            return [f"process {pid}" for pid in others]
        self.child = None
        return _wipe() + _remove_ipc()


    def reset_session(self) -> list[str]:
        """The fallback's reset: kill the worker's session (its other processes are the judge's to find)."""
        if self.child is None:
            return []
        for pid in [self.child] + [pid for pid in _living() if _session(pid) == self.child]:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + 5
        while self.code is None and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.002)
        left, self.child = ([] if self.code is not None else [f"process {self.child}"]), None
        return left


def _become_worker(requests: int, replies: int, errors: int, limits: dict, spawn: dict) -> None:
    """In the forked child: set its limits, view, user and streams, then serve the judge as a worker does.

    `spawn` is the request: under bubblewrap only its folder; in the fallback also its user, process
    limit and view, which it takes as launch.py's _child makes a worker of its own take them.
    """
    os.setsid()
    worker.redirect_prints(errors)
    fallback = "uid" in spawn
    # under bubblewrap only the sandbox's processes count (its user namespace's): the zygote and this one
    nproc = spawn["nproc"] if fallback else limits["processes"] + _tasks() - 1
    apply_limits(limits["cpu_seconds"], limits["address_bytes"], limits["file_bytes"], nproc)
    if fallback:
        mounts.become(mounts.View(**spawn["view"]), spawn["uid"])
    os.chdir(spawn["home"])
    os.environ.update(HOME=spawn["home"], TMPDIR=spawn["home"])
    worker.serve(requests, replies, limits["message_bytes"])


def _own_pid_namespace() -> bool:
    """This process is the init of a PID namespace of its own (bubblewrap's --as-pid-1): kill(-1) reaches only the
    sandbox. Anywhere else process 1 is the machine's (or a container's) init, never a zygote."""
    return os.getpid() == 1


def _living(zombies: bool = False) -> list[int]:
    """The processes this one sees (ended ones not yet reaped only with `zombies`)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as handle:
                    state = handle.read().rsplit(b")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if zombies or state not in (b"Z", b"X"):
                found.append(int(name))
    return found


def _session(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return int(handle.read().rsplit(b")", 1)[1].split()[3])
    except (OSError, IndexError, ValueError):
        return None


def _tasks() -> int:
    return sum(len(os.listdir(f"/proc/{pid}/task")) for pid in _living() if os.path.isdir(f"/proc/{pid}/task"))


def _wipe() -> list[str]:
    """Empty /tmp and /dev/shm, even what a worker made unreadable; returns what stays.

    Mount points inside them stay, with the folders leading to them: e.g. a virtual environment
    under /tmp that the sandbox binds read-only, so Python keeps working.
    """
    mounts = _mounts()
    keep = set(mounts)
    for m in mounts:
        while (m := os.path.dirname(m)) not in SCRATCH:
            keep.add(m)
    left = []
    for folder in SCRATCH:
        if os.path.isdir(folder):
            _unlock(folder, mounts)
            left += _empty(folder, mounts, keep)
    return left


def _empty(folder: str, mounts: set[str], keep: set[str]) -> list[str]:
    """Remove everything in `folder` but `mounts` and the folders in `keep` (emptied in turn); returns what stays."""
    left = []
    for entry in os.scandir(folder):
        if entry.path in mounts:
            continue
        if entry.path in keep and entry.is_dir(follow_symlinks=False):
            left += _empty(entry.path, mounts, keep)
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        except OSError:
            pass
        if os.path.lexists(entry.path):
            left.append(entry.path)
    return left


def _mounts() -> set[str]:
    """Mount points strictly inside the scratch folders, from /proc/self/mountinfo."""
    found = set()
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if any(point.startswith(folder + "/") for folder in SCRATCH):
                found.add(point)
    return found


def _unlock(folder: str, mounts: set[str]) -> None:
    """Give the owner back every right on every folder below `folder` (a worker may have taken them)."""
    stack = [folder]
    while stack:
        path = stack.pop()
        try:
            os.chmod(path, 0o1777 if path == folder else 0o700)
            stack += [entry.path for entry in os.scandir(path)
                      if entry.is_dir(follow_symlinks=False) and entry.path not in mounts]
        except OSError:
            pass


def _remove_ipc() -> list[str]:
    """SysV shared memory, semaphores and queues outlive their processes; remove those of this sandbox."""
    libc = ctypes.CDLL(None, use_errno=True)
    removers = {"shm": lambda i: libc.shmctl(i, IPC_RMID, None), "sem": lambda i: libc.semctl(i, 0, IPC_RMID),
                "msg": lambda i: libc.msgctl(i, IPC_RMID, None)}
    left = []
    for kind, remove in removers.items():
        try:
            with open(f"/proc/sysvipc/{kind}") as handle:
                ids = [int(line.split()[1]) for line in handle.readlines()[1:] if line.strip()]
        except (OSError, ValueError, IndexError):
            continue
        left += [f"SysV {kind} {ipc_id}" for ipc_id in ids if remove(ipc_id) != 0]
    return left


def main() -> None:
    torch.set_num_threads(1)
    os.environ["MPLBACKEND"] = "Agg"
    for name in PRELOAD:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - a worker that needs it will say why
            pass
    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    gc.freeze()  # a worker's collections then skip (and never copy) the pages of what is imported here
    control = socket.socket(fileno=os.dup(0))
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    ZygoteServer(control, json.loads(sys.argv[1])).serve()


if __name__ == "__main__":
    main()
