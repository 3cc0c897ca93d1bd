"""The judge's handle on one running worker: starting it, its requests, its stderr, and its end."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator

from autograder import stopwatch
from autograder.config import Limits
from autograder.sandbox import budget, linux
from autograder.sandbox.capability import fresh_uid
from autograder.sandbox.errors import WorkerGone
from autograder.sandbox.launch import Spawn
from autograder.sandbox.processes import kill_group, kill_strays, started
from autograder.sandbox.tree import Tree
from autograder.sandbox.zygote_client import ForkedWorker, forks, zygote_for

_LIVE: weakref.WeakSet[WorkerClient] = weakref.WeakSet()
"""This process's workers whose streams are open: their processes are not another worker's strays."""


class WorkerClient:
    """One running worker holding one submission's definitions.

    It is forked by the judge slot's zygote (torch already imported), under bubblewrap and in the
    fallback on Linux; elsewhere it is a fresh interpreter of its own.
    """

    def __init__(self, chunks: list[dict], limits: Limits, isolation: str, stand_ins: str = ""):
        """`stand_ins`: the assignment's stand_ins.py, run in the worker before the definitions."""
        self.stand_ins = stand_ins
        with stopwatch.stage("sandbox start"):
            self._start(chunks, limits, isolation)

    def _start(self, chunks: list[dict], limits: Limits, isolation: str) -> None:
        """Fork (or start) the worker, watch its budget, and have it run the submission's definitions."""
        self.limits = limits
        self.isolation = isolation
        self.stderr = bytearray()
        self.stderr_dropped = 0
        if isolation != "bwrap":
            linux.become_subreaper()
        if forks(isolation):
            zygote = zygote_for(limits, isolation)
            self._spawn = zygote.spawn
            self.process: subprocess.Popen | ForkedWorker = zygote.fork()
        else:
            self._spawn = Spawn(limits, isolation, fresh_uid(isolation))
            command = [sys.executable, "-E", "-s", "-m", "inside.worker", str(limits.message_bytes),
                       self._spawn.home]
            try:
                self.process = self._spawn.popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                 stderr=subprocess.PIPE)
            except BaseException:
                self._spawn.cleanup()
                raise
        self._started = started(self.process.pid) or 0.0
        if isinstance(self.process, ForkedWorker) and isolation == "bwrap":  # only what the zygote forked
            tree, first = Tree(self.process.worker or -1, self.process.zygote.init), self.process.worker
        elif isinstance(self.process, ForkedWorker):
            tree, first = Tree(self.process.pid, lender=self.process.zygote.process.pid), self.process.pid
        else:
            tree, first = Tree(self.process.pid), self.process.pid
        self.budget = budget.start(limits, tree, add=first)  # before the load request: no student code ran yet
        _LIVE.add(self)
        self._drain = threading.Thread(target=self._keep_stderr, daemon=True)
        self._drain.start()
        reply = self.request({"op": "load", "chunks": chunks, "stand_ins": self.stand_ins}, limits.load_seconds)
        try:  # the student's code ran before this reply was written: trust nothing in it
            self.failures = [_failure(f) for f in reply["result"]["failures"][:100]]
        except (KeyError, TypeError, AttributeError):
            self.kill()
            raise WorkerGone("protocol", "the reply to loading the definitions is not what the worker sends") from None
        self.budget.loaded()

    @property
    def uid(self) -> int | None:
        return self.process.uid if isinstance(self.process, ForkedWorker) else self._spawn.uid

    @property
    def folder(self) -> str | None:
        """The worker's writable folder on the grader's disk (None under bubblewrap: it is in the sandbox)."""
        if isinstance(self.process, ForkedWorker):
            return self.process.home
        return None if self.isolation == "bwrap" else self._spawn.tmp

    def request(self, message: dict, seconds: float) -> dict:
        """The worker's reply to `message`, within `seconds`; WorkerGone if the worker ends, hangs or garbles it."""
        return list(self.replies([message], lambda: seconds))[0]

    def replies(self, messages: list[dict], seconds: Callable[[], float]) -> Iterator[dict]:
        """Send `messages` in one round trip (a batch, if more than one) and yield their replies in order, each
        within `seconds()` (asked as its turn comes) of the last, up to and including the first that failed.
        A reply that cannot be read (WorkerGone) ends the worker: nothing of it is read afterwards."""
        from autograder.sandbox.inside.protocol import (  # torch: not before needed
            ProtocolError,
            read_message,
            write_message,
        )

        if self.process.poll() is not None or self.budget.overrun is not None:  # (over: being ended, answers nothing)
            raise self._gone("crashed")
        with stopwatch.request(len(messages)):
            try:
                write_message(self.process.stdin.fileno(),
                              messages[0] if len(messages) == 1 else {"op": "batch", "requests": messages})
            except OSError:
                raise self._gone("crashed") from None
            for _ in messages:
                limit = seconds()
                try:
                    reply = read_message(self.process.stdout.fileno(), self.limits.message_bytes,
                                         time.monotonic() + limit)
                except ProtocolError as exc:
                    if exc.reason == "timeout" and self.process.poll() is None:
                        self.kill()
                        raise WorkerGone("timeout", f"{limit:g} s") from None
                    if exc.reason == "eof" or self._exited():
                        raise self._gone("crashed") from None
                    self.kill()
                    raise WorkerGone("protocol", str(exc)) from None
                except OSError:
                    raise self._gone("crashed") from None
                yield reply
                if not reply.get("ok"):
                    return

    def _exited(self) -> bool:
        try:
            self.process.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            return False
        return True

    def _gone(self, reason: str) -> WorkerGone:
        """The worker has ended (or is ending): kill what is left and say why it ended."""
        self._exited()
        over = self.over_budget()  # before the kill, which removes the cgroup that may say why
        self.kill()
        code = self.process.returncode
        if over is not None:
            return over
        # bwrap reports a worker killed by signal N as exit status 128 + N.
        signum = -code if code is not None and code < 0 else (code - 128 if code and code > 128 else 0)
        if signum == signal.SIGXCPU:
            return WorkerGone("cpu", f"{self.limits.cpu_seconds} s")
        return WorkerGone(reason, f"exit code {code}")

    def over_budget(self) -> WorkerGone | None:
        """Why the budget watchdog ended (or is ending) the worker, if it did: the tree went over a limit."""
        overrun = self.budget.settle()
        if overrun is None:
            return None
        return WorkerGone({"cpu": "cpu_tree"}.get(overrun.kind, overrun.kind), f"{overrun.used:g}",
                          used=overrun.used, processes=overrun.processes)

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        """End the worker: it keeps nothing worth a clean exit (its prints are not buffered)."""
        self.kill()

    def kill(self) -> None:
        """SIGKILL the worker and everything it started; remove its temporary files."""
        if isinstance(self.process, ForkedWorker):
            self.process.end(spare={w.process.pid for w in _LIVE if w.alive() and w is not self},
                             known={w.process.pid for w in _LIVE})
            self.budget.close()
            self._close_streams()
            return
        kill_group(self.process, self.uid, bwrap=self.isolation == "bwrap")
        # bwrap: the PID namespace dies with its init; a uid of its own: kill_group killed all of it
        if self.uid is None and self.isolation != "bwrap" and linux.LINUX:
            kill_strays(self.process.pid, self._started, spare={w.process.pid for w in _LIVE if w.alive()},
                        known={w.process.pid for w in _LIVE})
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
        """The drain thread: keep the first output_bytes of the worker's stderr, count the rest."""
        stream = self.process.stderr
        try:
            while chunk := stream.read1(65536):
                room = max(self.limits.output_bytes - len(self.stderr), 0)
                self.stderr += chunk[:room]
                self.stderr_dropped += len(chunk) - len(chunk[:room])
        except (OSError, ValueError):
            pass


def _failure(failure: dict) -> dict:
    """A statement that failed while loading, as plain strings."""
    return {key: str(failure.get(key) or "")[:1000] for key in ("origin", "type", "message", "where")}
