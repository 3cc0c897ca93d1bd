"""What the checks drive: a submission (in its worker) or the reference (in the judge), alike."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch

from autograder.config import Limits
from autograder.handler import Handler, execute
from autograder.sandbox import Worker, WorkerGone


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

    @property
    def params(self) -> dict[str, list[int]]:
        return self.info["params"]

    @property
    def buffers(self) -> dict[str, list[int]]:
        return self.info["buffers"]

    def forward(self, x: torch.Tensor, train: bool = False, seed: int = 0,
                grad_out: torch.Tensor | None = None) -> Forward:
        result = self.subject.request(
            "forward", f"{self.label}.forward", id=self.id, x=x, train=train, seed=seed, grad_out=grad_out
        )
        return Forward(result["out"], result.get("x_grad"), result.get("grads"))

    def __call__(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self.forward(x, **kwargs).out

    def state(self) -> dict[str, torch.Tensor]:
        return self.subject.request("state", f"{self.label}.state_dict", id=self.id)

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
        self.subject.request("load", f"{self.label}.load_state_dict", id=self.id, state=state)

    def child(self, path: str) -> Module:
        id = next(self.subject.ids)
        info = self.subject.request("child", f"{self.label}.{path}", id=id, parent=self.id, path=path)
        return Module(self.subject, id, info, f"{self.label}.{path}")


class Subject:
    """Base: turns replies into values or StudentError."""

    def __init__(self) -> None:
        self.ids = itertools.count(1)

    def _send(self, message: dict, what: str) -> dict:
        raise NotImplementedError

    def request(self, op: str, what: str, **args: Any) -> Any:
        reply = self._send({"op": op, "args": args}, what)
        if reply.get("ok"):
            return reply.get("result")
        if "refused" in reply:
            refused = reply["refused"]
            raise StudentError(str(refused.get("key")), **dict(refused.get("params") or {}))
        error = reply.get("error") or {}
        kind = error.get("type", "Exception")
        key = "student.not_implemented" if kind == "NotImplementedError" else "student.raised"
        raise StudentError(key, where=what, type=kind, message=error.get("message", ""),
                           line=f" ({error['where']})" if error.get("where") else "")

    def names(self, names: list[str]) -> dict[str, str]:
        return self.request("names", "names", names=names)

    def new(self, name: str, *args: Any, **kwargs: Any) -> Module:
        id = next(self.ids)
        info = self.request("new", name, id=id, name=name, args=list(args), kwargs=kwargs)
        return Module(self, id, info, name)

    def call(self, name: str, *args: Any) -> Any:
        """Call a graded function; modules in `args` are passed by reference."""
        id = next(self.ids)
        wire = [{"$obj": a.id} if isinstance(a, Module) else a for a in args]
        result = self.request("call", name, id=id, name=name, args=wire)
        if "module" in result:
            return Module(self, id, result["module"], name + "()")
        if "tensor" in result:
            return result["tensor"]
        return None


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

    def _send(self, message: dict, what: str) -> dict:
        return self.handler.handle(_cloned(message))


class WorkerSubject(Subject):
    """A submission running in its own sandboxed worker, restarted after a crash."""

    def __init__(self, chunks: list[dict], limits: Limits, isolation: str):
        super().__init__()
        self.chunks, self.limits, self.isolation = chunks, limits, isolation
        self.worker: Worker | None = None
        self.restarts = -1
        self.load_failures: list[dict] = []
        self.incidents: list[tuple[str, dict]] = []
        self.stderr = b""

    def ensure_worker(self) -> None:
        if self.worker is not None and self.worker.alive():
            return
        self._retire()
        self.restarts += 1
        if self.restarts > self.limits.restarts:
            raise StudentError("student.too_many_crashes", count=self.restarts)
        try:
            self.worker = Worker(self.chunks, self.limits, self.isolation)
        except WorkerGone as exc:
            self.worker = None
            key = "student.load_timeout" if exc.reason == "timeout" else "student.load_crashed"
            raise StudentError(key, seconds=self.limits.load_seconds, detail=exc.detail) from None
        self.load_failures = self.worker.failures

    def _send(self, message: dict, what: str) -> dict:
        self.ensure_worker()
        try:
            return self.worker.request(message, self.limits.call_seconds)
        except WorkerGone as exc:
            key = {"timeout": "student.timeout", "crashed": "student.crashed"}.get(exc.reason, "student.protocol")
            params = {"where": what, "seconds": self.limits.call_seconds, "detail": exc.detail}
            self.incidents.append((key, params))
            raise StudentError(key, **params) from None

    def _retire(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.stderr += bytes(self.worker.stderr)
            self.worker = None

    def close(self) -> None:
        self._retire()


def _cloned(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {k: _cloned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cloned(v) for v in value]
    return value
