"""What the checks drive: a submission (in its worker) or the reference (in the judge), alike."""
from __future__ import annotations

import errno
import hashlib
import itertools
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from autograder.config import Limits
from autograder.sandbox.inside.execute import execute
from autograder.sandbox.inside.handler import Handler
from autograder.sandbox.errors import WorkerGone
from autograder.sandbox.worker_client import WorkerClient


class StudentError(Exception):
    """A request failed because of the student's code; `key` names the message in the catalogue."""

    def __init__(self, key: str, **params: Any):
        super().__init__(key, params)
        self.key = key
        self.params = params


@dataclass
class Forward:
    out: torch.Tensor
    x_grad: torch.Tensor | None = None
    grads: dict[str, torch.Tensor | None] | None = None


class Module:
    """A module living in a subject, addressed by id."""

    def __init__(self, subject: Subject, id: int, info: dict, label: str):
        self.subject, self.id, self.info, self.label = subject, id, info, label
        self.built: list[dict] = []
        """For a module a graded function returned: the recorded constructions (see Subject.call)."""

    @property
    def params(self) -> dict[str, list[int]]:
        return self.info["params"]

    @property
    def buffers(self) -> dict[str, list[int]]:
        return self.info["buffers"]

    def forward(self, x: torch.Tensor, train: bool = False, seed: int = 0,
                grad_out: torch.Tensor | None = None) -> Forward:
        result = self.subject.request(
            "forward", f"{self.label}.forward", self._key("forward"), id=self.id, x=x, train=train, seed=seed,
            grad_out=grad_out,
        )
        return Forward(result["out"], result.get("x_grad"), result.get("grads"))

    def __call__(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self.forward(x, **kwargs).out

    def state(self) -> dict[str, torch.Tensor]:
        return self.subject.request("state", f"{self.label}.state_dict", self._key("state"), id=self.id)

    def load(self, state: dict[str, torch.Tensor]) -> None:
        """Copy `state` in by name (a subset of the state_dict); the names must be the chapter's."""
        unknown = set(state) - set(self.info["state_keys"])
        if unknown:
            raise StudentError("student.names_differ", where=self.label, missing=", ".join(sorted(unknown)),
                               extra=", ".join(sorted(set(self.info["state_keys"]) - set(state))) or "-")
        for name, tensor in state.items():
            shape = self.params.get(name, self.buffers.get(name))
            if shape is not None and list(tensor.shape) != shape:
                raise StudentError("student.param_shape", where=self.label, name=name,
                                   got=tuple(shape), expected=tuple(tensor.shape))
        self.subject.request("load", f"{self.label}.load_state_dict", self._key("load"), id=self.id, state=state)

    def copy_from(self, source: Module, names: list[str]) -> None:
        """Load `source`'s parameters `names` by name; both modules live in the same subject."""
        for name in names:
            if source.params[name] != self.params[name]:
                raise StudentError("student.param_shape", where=self.label, name=name,
                                   got=tuple(self.params[name]), expected=tuple(source.params[name]))
        self.subject.request("copy", f"{self.label}.load_state_dict", self._key("load"), id=self.id,
                             source=source.id, names=names)

    def child(self, path: str) -> Module:
        id = next(self.subject.ids)
        info = self.subject.request("child", f"{self.label}.{path}", self._key("child"), id=id, parent=self.id,
                                    path=path)
        return Module(self.subject, id, info, f"{self.label}.{path}")

    def _key(self, op: str) -> str:
        """What a call does, whatever the module is called here: its class's code runs either way."""
        return f"{op}:{self.info.get('class')}"


class Subject:
    """Base: turns replies into values or StudentError."""

    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.cache: dict[str, Any] = {}
        """Objects several checks share (e.g. the GPT-2-sized module); cleared when a worker restarts."""

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]

    def _send(self, message: dict, what: str, key: str) -> dict:
        raise NotImplementedError

    def request(self, op: str, what: str, key: str | None = None, **args: Any) -> Any:
        """Send one request; `what` names the call for the student, `key` what code it runs."""
        reply = self._send({"op": op, "args": args}, what, key or f"{op}:{what}")
        if reply.get("ok"):
            return reply.get("result")
        if "refused" in reply:
            refused = reply["refused"]
            raise StudentError(str(refused.get("key")), **dict(refused.get("params") or {}))
        raise self._error(reply.get("error") or {}, what)

    def _error(self, error: dict, what: str) -> StudentError:
        kind = error.get("type", "Exception")
        key = "student.not_implemented" if kind == "NotImplementedError" else "student.raised"
        return StudentError(key, where=what, type=kind, message=error.get("message", ""),
                            line=f" ({error['where']})" if error.get("where") else "")

    def names(self, names: list[str]) -> dict[str, str]:
        return self.request("names", "names", names=names)

    def new(self, name: str, *args: Any, stand_in: tuple[str, ...] = (), **kwargs: Any) -> Module:
        """Build `name`; the graded classes in `stand_in` are the kit's stand-ins meanwhile."""
        id = next(self.ids)
        extra = {"stand_in": list(stand_in)} if stand_in else {}
        info = self.request("new", name, f"new:{name}" + "+".join(("", *stand_in)), id=id, name=name,
                            args=list(args), kwargs=kwargs, **extra)
        return Module(self, id, info, name)

    def call(self, name: str, *args: Any, stand_in: tuple[str, ...] = (), record: tuple[str, ...] = ()) -> Any:
        """Call a graded function; modules in `args` are passed by reference.

        A module returned gets `built`: the constructions of the classes in `record` the call made,
        each {"class", "arguments": [[name, value], ...] or None}.
        """
        id = next(self.ids)
        wire = [{"$obj": a.id} if isinstance(a, Module) else a for a in args]
        extra = {k: list(v) for k, v in (("stand_in", stand_in), ("record", record)) if v}
        result = self.request("call", name, f"call:{name}" + "+".join(("", *stand_in)), id=id, name=name,
                              args=wire, **extra)
        if "module" in result:
            module = Module(self, id, result["module"], name + "()")
            module.built = list(result.get("built") or [])
            return module
        if "tensor" in result:
            return result["tensor"]
        return None

    def signature(self, name: str) -> list[list] | None:
        """[name, kind, default] per parameter of `name` (a class: its __init__), or None if unknown."""
        return self.request("signature", f"{name}.__init__", f"signature:{name}", name=name)["parameters"]


class LocalSubject(Subject):
    """Definitions run in this process: the reference, or the student's own kernel (self-check)."""

    def __init__(self, namespace: dict):
        super().__init__()
        self.handler = Handler(namespace)

    @classmethod
    def from_chunks(cls, chunks: list[dict], module_name: str) -> LocalSubject:
        from autograder.config import GRADED

        namespace, failures = execute(chunks, module_name)
        missing = [name for name in GRADED if name not in namespace]
        if missing:  # demo statements may fail without a kernel; the definitions may not
            raise RuntimeError(f"the reference solution does not define {missing}: {failures}")
        return cls(namespace)

    def _send(self, message: dict, what: str, key: str) -> dict:
        return self.handler.handle(_cloned(message))


MEMO_ENTRIES = 20_000
"""Replies the reference keeps (about 2 MB per 1,000): far more than all checks ask of a correct submission."""


class ReferenceSubject(LocalSubject):
    """The reference solution, each check's answers computed once per batch.

    A check asks the reference the same things for every submission, unless the student's
    answers change what it asks next. Each reply is kept under the check's history of requests
    so far (module ids numbered within the check); a history seen before is answered from the
    memo without running anything. At the first request not seen before, the check's history is
    replayed for real, then the request runs. Construction is seeded from the history, so a
    replay builds the very modules whose answers were kept.
    """

    def __init__(self, namespace: dict):
        super().__init__(namespace)
        self.memo: dict[bytes, dict] = {}
        self.begin("")

    def begin(self, check: str) -> None:
        """A check starts: its history is empty and the modules of the last one can go."""
        self.history = hashlib.sha256(check.encode()).digest()
        self.unplayed: list[dict] = []
        self.numbers: dict[int, int] = {}
        self.handler.objects.clear()

    def _send(self, message: dict, what: str, key: str) -> dict:
        from autograder.sandbox.inside.protocol import encode

        self.history = hashlib.sha256(self.history + encode(self._numbered(message))).digest()
        message = {**message, "seed": int.from_bytes(self.history[:7], "big")}
        reply = self.memo.get(self.history)
        if reply is None:
            for earlier in self.unplayed:
                self._run(earlier)
            self.unplayed = []
            if len(self.memo) >= MEMO_ENTRIES:  # submissions that make checks ask new things: start afresh
                self.memo.clear()
            reply = self.memo[self.history] = self._run(message)
        else:
            self.unplayed.append(message)
        return _cloned(reply)

    def _run(self, message: dict) -> dict:
        if message["op"] in ("new", "call"):  # the only requests that draw random numbers outside a forward
            torch.default_generator.manual_seed(message["seed"])
        return self.handler.handle(_cloned(message))

    def _numbered(self, message: dict) -> dict:
        """`message` with module ids replaced by their order of appearance in this check."""
        def number(id: Any) -> Any:
            return self.numbers.setdefault(id, len(self.numbers)) if isinstance(id, int) else id

        args = dict(message["args"])
        for field in ("id", "parent", "source"):
            if field in args:
                args[field] = number(args[field])
        if "args" in args:
            args["args"] = [{"$obj": number(a["$obj"])} if isinstance(a, dict) and "$obj" in a else a
                            for a in args["args"]]
        return {"op": message["op"], "args": args}


class WorkerSubject(Subject):
    """A submission running in its own sandboxed worker, restarted after a crash.

    A call that hung, crashed the worker or ran out of memory is not made again for the same
    submission (the same class's code would run again): later checks that need it fail at once
    with the same reason, so one infinite loop costs one timeout, not one per check.
    """

    def __init__(self, chunks: list[dict], limits: Limits, isolation: str):
        super().__init__()
        self.chunks, self.limits, self.isolation = chunks, limits, isolation
        self.worker: WorkerClient | None = None
        self.restarts = -1
        self.load_failures: list[dict] = []
        self.incidents: list[tuple[str, dict]] = []
        self.stderr = b""
        self.stderr_dropped = 0
        """Bytes of output beyond Limits.output_bytes, counted and not kept."""
        self.deadline = time.monotonic() + limits.submission_seconds
        self._broken: dict[str, tuple[str, dict]] = {}
        self._calling = ""
        self._load_error: tuple[str, dict] | None = None

    def ensure_worker(self) -> None:
        if self.worker is not None and self.worker.alive():
            return
        self._retire()
        self.cache.clear()
        if self._load_error is not None:  # loading is deterministic: it would fail again
            raise StudentError(self._load_error[0], **self._load_error[1])
        self.restarts += 1
        if self.restarts > self.limits.restarts:
            raise StudentError("student.too_many_crashes", count=self.restarts)
        try:
            self.worker = WorkerClient(self.chunks, self.limits, self.isolation)
        except WorkerGone as exc:
            self.worker = None
            key = {"timeout": "student.load_timeout", "cpu": "student.cpu_limit"}.get(exc.reason, "student.load_crashed")
            params = {"where": "loading the definitions", "seconds": self.limits.load_seconds,
                      "detail": exc.detail, "limit": self.limits.cpu_seconds}
            key, params = _tree_limit(exc, self.limits, key, params)
            self._load_error = (key, params)
            self.incidents.append(self._load_error)
            raise StudentError(key, **params) from None
        self.load_failures = self.worker.failures

    def _send(self, message: dict, what: str, key: str) -> dict:
        if key in self._broken:
            failure, params = self._broken[key]
            raise StudentError(failure, **{**params, "where": what})
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise StudentError("student.submission_timeout", seconds=self.limits.submission_seconds)
        self.ensure_worker()
        seconds = min(self.limits.call_seconds, left)
        self._calling = key
        try:
            return self.worker.request(message, seconds)
        except WorkerGone as exc:
            if exc.reason == "timeout" and seconds < self.limits.call_seconds:
                raise StudentError("student.submission_timeout", seconds=self.limits.submission_seconds) from None
            failure = {"timeout": "student.timeout", "crashed": "student.crashed",
                       "cpu": "student.cpu_limit"}.get(exc.reason, "student.protocol")
            params = {"where": what, "seconds": self.limits.call_seconds, "detail": exc.detail,
                      "limit": self.limits.cpu_seconds}
            failure, params = _tree_limit(exc, self.limits, failure, params)
            self.incidents.append((failure, params))
            self._broken[key] = (failure, params)
            raise StudentError(failure, **params) from None

    def _error(self, error: dict, what: str) -> StudentError:
        """The worker's limits show up as ordinary exceptions in the student's code; name them."""
        kind, message, code = error.get("type", ""), str(error.get("message", "")), error.get("errno")
        if kind == "MemoryError" or "can't allocate memory" in message or code == errno.ENOMEM:
            params = {"where": what, "limit": _size(self.limits.address_bytes)}
            self._broken[self._calling] = ("student.memory_limit", params)  # filling memory again is slow
            return StudentError("student.memory_limit", **params)
        if (code == errno.EAGAIN and kind == "BlockingIOError") or "can't start new thread" in message:
            return StudentError("student.process_limit", where=what, limit=self.limits.processes)
        if code == errno.EFBIG:
            return StudentError("student.file_limit", where=what, limit=_size(self.limits.file_bytes))
        if code == errno.ENOSPC:
            return StudentError("student.disk_limit", where=what, limit=_size(self.limits.disk_bytes))
        return super()._error(error, what)

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


def _size(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"


def _cloned(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {k: _cloned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cloned(v) for v in value]
    return value
