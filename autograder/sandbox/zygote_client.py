"""Pre-warmed sandboxes: torch imported once per judge slot, one forked worker per submission."""
from __future__ import annotations

import atexit
import json
import os
import select
import signal
import socket
import subprocess
import sys

from autograder.config import Limits
from autograder.sandbox.capability import fresh_uid
from autograder.sandbox.errors import WorkerGone
from autograder.sandbox.inside.limits import SETTINGS
from autograder.sandbox.launch import Spawn
from autograder.sandbox.processes import kill_group
from autograder.sandbox.tree import in_namespace

ZYGOTE_SECONDS = 10.0
"""Time a running zygote has to answer (a reset kills and waits for everything a worker left)."""


class ZygoteClient:
    """A judge slot's bubblewrap sandbox around inside/zygote.py (ZygoteServer), which forks the workers.

    Before the next worker starts, the zygote kills every other process in the sandbox and
    empties its /tmp, /dev/shm and SysV IPC, so nothing of one submission meets the next. When
    it fails to, or stops answering, the whole sandbox is killed and the next worker gets a new one.
    """

    def __init__(self, limits: Limits):
        self.limits = limits
        # Each worker gets its own CPU limit. As the PID namespace's init the zygote cannot be killed
        # or stopped by a worker (the kernel drops such signals to an init from inside).
        self.spawn = Spawn(limits, "bwrap", fresh_uid("bwrap"), cpu_limit=False, as_pid_1=True)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        settings = {k: getattr(limits, k) for k in SETTINGS}
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
        if self._init is None:
            self._init = in_namespace(self.process.pid).get(1)
        return self._init

    def fork(self) -> ForkedWorker:
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
        # the worker's streams live as long as the ForkedWorker, which closes them: no `with`
        streams = (open(requests[1], "wb", buffering=0), open(replies[0], "rb", buffering=0),  # noqa: SIM115
                   open(errors[0], "rb"))  # noqa: SIM115
        forked = ForkedWorker(self, *streams)
        if self.init:  # pids grow: the new worker's is above the last one's, unless they wrapped around
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
        kill_group(self.process, self.uid)
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

    def __init__(self, zygote: ZygoteClient, stdin, stdout, stderr):
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


_ZYGOTES: list[ZygoteClient] = []
"""This process's pre-warmed sandboxes (a judge needs one: it runs one worker at a time)."""


def zygote_for(limits: Limits) -> ZygoteClient:
    """A running zygote for workers with `limits` that has no worker now; started if there is none."""
    for zygote in list(_ZYGOTES):
        if not zygote.alive():
            zygote.stop()
        elif zygote.limits == limits and not zygote.busy:
            return zygote
    zygote = ZygoteClient(limits)
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
