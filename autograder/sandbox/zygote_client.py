"""Pre-warmed sandboxes: torch imported once per judge slot, one forked worker per submission."""
from __future__ import annotations

import atexit
import dataclasses
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

from autograder import stopwatch
from autograder.config import Limits, environment
from autograder.sandbox import font_list, linux
from autograder.sandbox.capability import fresh_uid
from autograder.sandbox.errors import WorkerGone
from autograder.sandbox.inside.limits import SETTINGS
from autograder.sandbox.launch import Spawn
from autograder.sandbox.processes import kill_group, kill_strays, kill_uids, started
from autograder.sandbox.tree import in_namespace

ZYGOTE_SECONDS = 10.0
"""Time a running zygote has to answer (a reset kills and waits for everything a worker left)."""


def forks(isolation: str) -> bool:
    """Whether workers under `isolation` are forked by a zygote: always under bubblewrap; in the fallback on Linux
    (elsewhere each worker is an interpreter of its own)."""
    return isolation == "bwrap" or linux.LINUX and environment().fork_server


class ZygoteClient:
    """A judge slot's zygote, inside/zygote.py (ZygoteServer), which forks the workers.

    Under bubblewrap it is the slot's sandbox: before the next worker starts, the zygote kills every
    other process in the sandbox and empties its /tmp, /dev/shm and SysV IPC, so nothing of one
    submission meets the next. In the fallback it is a process of the grader's user whose forked
    workers each take a user, a folder and limits of their own, as a worker started on its own
    would; what a worker leaves is cleared by ForkedWorker.end. When the zygote fails to reset, or
    stops answering, it is killed and the next worker gets a new one.
    """

    def __init__(self, limits: Limits, isolation: str = "bwrap"):
        if isolation not in ("bwrap", "process"):  # the zygote's reset differs: never guess which one holds
            raise ValueError(f"a zygote's isolation is bwrap or process, not {isolation!r}")
        self.limits, self.isolation = limits, isolation
        # Each worker gets its own CPU limit. As the PID namespace's init the zygote cannot be killed
        # or stopped by a worker (the kernel drops such signals to an init from inside).
        fonts = font_list.home_files(isolation)  # what its import of matplotlib would otherwise build
        if isolation == "bwrap":
            self.spawn = Spawn(limits, "bwrap", fresh_uid("bwrap"), zygote=True, home_files=fonts)
        else:
            self.spawn = Spawn(limits, "process", None, zygote=True, home_files=fonts)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        settings = {**{k: getattr(limits, k) for k in SETTINGS}, "isolation": isolation}
        command = [sys.executable, "-E", "-s", "-m", "inside.zygote", json.dumps(settings)]
        self.log = os.path.join(self.spawn.tmp, "zygote.log")
        try:
            with theirs, open(self.log, "wb") as log:
                self.process = self.spawn.popen(command, stdin=theirs, stdout=subprocess.DEVNULL, stderr=log)
        except BaseException:
            ours.close()
            self.spawn.cleanup()
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
        return self.spawn.uid

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
        if self._init is None and self.isolation == "bwrap":
            self._init = in_namespace(self.process.pid).get(1)
        return self._init

    def fork(self) -> ForkedWorker:
        """A new worker on fresh pipes; the zygote must have been reset since the last one."""
        request, uid, home = {"op": "spawn"}, self.uid, None
        if self.isolation != "bwrap":  # the worker's own user, process limit, folder and view
            uid = fresh_uid("process")
            home = tempfile.mkdtemp(dir=self.spawn.tmp, suffix="-work")
            if uid is not None:
                os.chown(home, uid, uid)
            request.update(uid=uid, nproc=self.spawn.nproc(uid), home=home,
                           view=dataclasses.asdict(self.spawn.view(home)))
        requests, replies, errors = os.pipe(), os.pipe(), os.pipe()
        theirs = [requests[0], replies[1], errors[1]]
        try:
            with stopwatch.stage("sandbox: fork" if self.ready else "sandbox: first fork (waits for the zygote)"):
                reply = self.ask(request, ZYGOTE_SECONDS if self.ready else self.limits.load_seconds, theirs)
        except BaseException:
            for fd in (requests[1], replies[0], errors[0]):
                os.close(fd)
            if home is not None:
                shutil.rmtree(home, ignore_errors=True)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        self.ready = self.busy = True
        # the worker's streams live as long as the ForkedWorker, which closes them: no `with`
        streams = (open(requests[1], "wb", buffering=0), open(replies[0], "rb", buffering=0),  # noqa: SIM115
                   open(errors[0], "rb"))  # noqa: SIM115
        forked = ForkedWorker(self, *streams, uid=uid, home=home)
        if self.isolation != "bwrap":  # no PID namespace: its pid is ours
            forked.pid = forked.worker = reply.get("pid") if isinstance(reply.get("pid"), int) else -1
            forked.started = started(forked.worker) or 0.0
        elif self.init:  # pids grow: the new worker's is above the last one's, unless they wrapped around
            forked.worker = (in_namespace(self.init, self._last or self.init).get(reply.get("pid"))
                             or in_namespace(self.init).get(reply.get("pid")))
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
        kill_group(self.process, self.uid, bwrap=self.isolation == "bwrap")
        self.control.close()
        self.spawn.cleanup()
        if self in _ZYGOTES:
            _ZYGOTES.remove(self)

    def _last_words(self) -> str:
        try:
            with open(self.log, "rb") as handle:
                return handle.read()[-300:].decode("utf-8", "replace").strip() or "no message"
        except OSError:
            return "no message"


class ForkedWorker:
    """A worker forked by a zygote, with the parts of subprocess.Popen that WorkerClient uses."""

    def __init__(self, zygote: ZygoteClient, stdin, stdout, stderr, uid: int | None = None, home: str | None = None):
        self.zygote, self.stdin, self.stdout, self.stderr = zygote, stdin, stdout, stderr
        self.pid = zygote.process.pid
        """Under bubblewrap the sandbox's, on our side of its PID namespace; in the fallback the worker's."""
        self.returncode: int | None = None
        self.worker: int | None = None
        """The worker's own pid on our side, before it has run any student code."""
        self.uid, self.home = uid, home
        """The fallback worker's user (None: the grader's) and its folder on our disk; bwrap: the sandbox's, None."""
        self.started = 0.0
        """When the fallback worker started (seconds since the epoch)."""

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

    def end(self, spare: set[int] = frozenset(), known: set[int] = frozenset()) -> None:
        """Kill the worker and all it started: the zygote's reset, then in the fallback what left its session.

        `spare` and `known`: the pids of the judge's other workers, running and all (see kill_strays).
        """
        try:
            self.zygote.reset()
        except WorkerGone:
            pass
        if self.returncode is None:
            try:
                self.wait(0)
            except subprocess.TimeoutExpired:
                self.returncode = -signal.SIGKILL
        if self.zygote.isolation == "bwrap":
            return
        if self.uid is not None:  # everything of its own user: daemons that left its session too
            kill_uids([self.uid])
        elif linux.LINUX and self.worker and self.worker > 0:  # what left its session was reparented to us
            kill_strays(self.worker, self.started, spare | zygote_pids(), known)
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)


_ZYGOTES: list[ZygoteClient] = []
"""This process's pre-warmed sandboxes (a judge needs one: it runs one worker at a time)."""


def zygote_for(limits: Limits, isolation: str = "bwrap") -> ZygoteClient:
    """A running zygote for workers with `limits` under `isolation` that has no worker now; started if there is
    none."""
    for zygote in list(_ZYGOTES):
        if not zygote.alive():
            zygote.stop()
        elif zygote.limits == limits and zygote.isolation == isolation and not zygote.busy:
            return zygote
    zygote = ZygoteClient(limits, isolation)
    _ZYGOTES.append(zygote)
    return zygote


def zygote_pids() -> set[int]:
    """This process's zygotes: children of ours, but no worker's strays."""
    return {zygote.process.pid for zygote in _ZYGOTES}


def forget_all() -> None:
    """In a process forked from a judge: the judge's sandboxes are the judge's to use and stop, not this one's."""
    for zygote in _ZYGOTES:
        zygote.control.close()
    _ZYGOTES.clear()


def prestart(limits: Limits, isolation: str) -> None:
    """Start the slot's zygote now, so torch is imported there while the judge prepares."""
    if forks(isolation):
        zygote_for(limits, isolation)


@atexit.register
def _stop_zygotes() -> None:
    for zygote in list(_ZYGOTES):
        zygote.stop()
