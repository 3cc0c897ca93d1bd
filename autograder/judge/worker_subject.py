"""A submission's subject: its definitions in a sandboxed worker, restarted after a crash, its limits named."""
from __future__ import annotations

import errno
import time

from autograder.assignment import Assignment
from autograder.config import Limits
from autograder.errors import StudentError
from autograder.judge.subjects import Pending, Subject
from autograder.sandbox.budget import KEYS as TREE_LIMITS
from autograder.sandbox.budget import human_size
from autograder.sandbox.errors import WorkerGone
from autograder.sandbox.worker_client import WorkerClient


class WorkerSubject(Subject):
    """A submission running in its own sandboxed worker, restarted after a crash.

    A call that hung, crashed the worker or ran out of memory is not made again for the same
    submission (the same class's code would run again): later checks that need it fail at once
    with the same reason, so one infinite loop costs one timeout, not one per check.

    Each graded part has a budget of its own (the submission's memory and CPU, see sandbox/budget.py):
    a part starts in a fresh worker unless the last part left nothing behind (a part that left processes,
    threads or files is noted in `left_running`, and classes built on it get stand-ins), and a part whose
    code goes over the budget is charged for it as a whole (`charged`); its code is not run again.
    """

    batches = True

    def __init__(self, chunks: list[dict], limits: Limits, isolation: str, assignment: Assignment):
        super().__init__(assignment)
        self.chunks, self.limits, self.isolation = chunks, limits, isolation
        self.worker: WorkerClient | None = None
        self.restarts = -1
        self.load_failures: list[dict] = []
        self.stderr = b""
        self.stderr_dropped = 0
        """Bytes of output beyond Limits.output_bytes, counted and not kept."""
        self.deadline = time.monotonic() + limits.submission_seconds
        self._broken: dict[str, tuple[str, dict]] = {}
        self._load_error: tuple[str, dict] | None = None
        self.part: str | None = None
        """The graded part whose checks are running; None before the first and after the last (the diagnosis)."""
        self._crashed = False
        """The worker ended on its own (or was ended by a limit): a new one counts as a restart."""

    def begin_part(self, part: str | None) -> None:
        """The checks of `part` start (None: the checks are over). Its budget is its own: the worker goes
        on only if the last part left nothing running or held in it, else the part gets a fresh one."""
        if part == self.part:
            return
        last, self.part = self.part, part
        alive = self.worker is not None and self.worker.alive()
        left = self.worker.budget.left_behind() if alive else None  # "unknown" once the watchdog noted an overrun
        over = self.worker.over_budget() if self.worker is not None else None  # (read after: it may note one meanwhile)
        if over is not None and last is not None and last not in self.charged:
            # the limit met the last part's code after its last request (what it started ran on): charge it, not
            # the part that would meet the limit next
            self.charged[last] = _tree_limit(over, self.limits, "student.crashed",
                                             {"where": last, "detail": over.detail})
        if not alive:
            return
        if left is None:
            self.worker.budget.new_part()
            return
        if last is not None and left in ("processes", "threads", "files"):  # that part's doing: it ran since
            self.left_running[last] = left
        self._retire()

    def keeps_modules(self) -> bool:
        return self.worker is not None and self.worker.alive()

    def ensure_worker(self) -> None:
        if self.worker is not None and self.worker.alive():
            return
        self._crashed |= self.worker is not None
        self._retire()
        self.cache.clear()
        if self._load_error is not None:  # loading is deterministic: it would fail again
            raise StudentError(self._load_error[0], **self._load_error[1])
        if self._crashed or self.restarts < 0:  # not a fresh worker for a new part
            self.restarts += 1
        self._crashed = False
        if self.restarts > self.limits.restarts:
            raise StudentError("student.too_many_crashes", count=self.restarts)
        try:
            self.worker = WorkerClient(self.chunks, self.limits, self.isolation, self.assignment.stand_ins_source())
        except WorkerGone as exc:
            self.worker = None
            keys = {"timeout": "student.load_timeout", "cpu": "student.cpu_limit"}
            key = keys.get(exc.reason, "student.load_crashed")
            params = {"where": "loading the definitions", "seconds": self.limits.load_seconds,
                      "detail": exc.detail, "limit": self.limits.cpu_seconds}
            key, params = _tree_limit(exc, self.limits, key, params)
            self._load_error = (key, params)
            raise StudentError(key, **params) from None
        self.load_failures = self.worker.failures

    def _send_many(self, items: list[Pending]) -> list[dict]:
        """One round trip for `items`; the first that is not to be made again (it hung, crashed, or its part is
        charged) is not sent: the ones before it are, and then it raises, as if each had been sent on its own."""
        sendable = []
        for item in items:
            broken = self._broken.get(item.key) or self.charged.get(item.key.split(":", 1)[-1].split("+")[0])
            if broken is not None:
                break
            sendable.append(item)
        replies = self._exchange(sendable) if sendable else []
        if len(sendable) < len(items) and len(replies) == len(sendable) and all(r.get("ok") for r in replies):
            failure, params = broken
            raise StudentError(failure, **{**params, "where": items[len(sendable)].what})
        return replies

    def _exchange(self, items: list[Pending]) -> list[dict]:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise StudentError("student.submission_timeout", seconds=self.limits.submission_seconds)
        self.ensure_worker()
        given: list[float] = []

        def seconds() -> float:  # each request's own time, within what is left of the submission's
            given.append(max(min(self.limits.call_seconds, self.deadline - time.monotonic()), 0.001))
            return given[-1]

        replies: list[dict] = []
        try:
            for reply in self.worker.replies([item.message for item in items], seconds):
                replies.append(reply)
        except WorkerGone as exc:
            for answered, reply in zip(items, replies):  # the ones before it were answered
                answered.result = reply.get("result")
            item, limit = items[len(replies)], given[-1] if given else self.limits.call_seconds
            if exc.reason == "timeout" and limit < self.limits.call_seconds:
                raise StudentError("student.submission_timeout", seconds=self.limits.submission_seconds) from None
            failure = {"timeout": "student.timeout", "crashed": "student.crashed",
                       "cpu": "student.cpu_limit"}.get(exc.reason, "student.protocol")
            params = {"where": item.what, "seconds": self.limits.call_seconds, "detail": exc.detail,
                      "limit": self.limits.cpu_seconds}
            failure, params = _tree_limit(exc, self.limits, failure, params)
            if exc.reason in TREE_LIMITS and self.part is not None:
                self.charged[self.part] = (failure, params)  # whichever of its checks the limit met
            else:
                self._broken[item.key] = (failure, params)
            raise StudentError(failure, **params) from None
        return replies

    def _error(self, error: dict, what: str, key: str) -> StudentError:
        """The worker's limits show up as ordinary exceptions in the student's code; name them."""
        kind, message, code = error.get("type", ""), str(error.get("message", "")), error.get("errno")
        if kind == "MemoryError" or "can't allocate memory" in message or code == errno.ENOMEM:
            params = {"where": what, "limit": human_size(self.limits.address_bytes)}
            self._broken[key] = ("student.memory_limit", params)  # filling memory again is slow
            return StudentError("student.memory_limit", **params)
        if (code == errno.EAGAIN and kind == "BlockingIOError") or "can't start new thread" in message:
            return StudentError("student.process_limit", where=what, limit=self.limits.processes)
        if code == errno.EFBIG:
            return StudentError("student.file_limit", where=what, limit=human_size(self.limits.file_bytes))
        if code == errno.ENOSPC:
            return StudentError("student.disk_limit", where=what, limit=human_size(self.limits.disk_bytes))
        return super()._error(error, what, key)

    def _retire(self) -> None:
        if self.worker is not None:
            self.worker.close()
            kept = bytes(self.worker.stderr)
            room = max(self.limits.output_bytes - len(self.stderr), 0)
            self.stderr += kept[:room]
            self.stderr_dropped += self.worker.stderr_dropped + len(kept) - len(kept[:room])
            self.worker = None

    def close(self) -> None:
        self._retire()


def _tree_limit(exc: WorkerGone, limits: Limits, key: str, params: dict) -> tuple[str, dict]:
    """A limit of all the submission's processes together (see budget.py) ended the worker: say which."""
    from autograder.sandbox.budget import failure

    found = failure(exc.reason, exc.params, limits)
    return (found[0], {**params, **found[1]}) if found else (key, params)

