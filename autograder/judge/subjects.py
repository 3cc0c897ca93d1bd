"""What the checks drive, alike for a submission (in its worker: worker_subject.py) and the reference."""
from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from autograder.errors import StudentError
from autograder.judge.binding import Binding, Unmatched, bind
from autograder.judge.causes import cause_of
from autograder.sandbox.inside.execute import execute
from autograder.sandbox.inside.handler import Handler, define_stand_ins

if TYPE_CHECKING:
    from autograder.assignment import Assignment


@dataclass
class Forward:
    out: torch.Tensor
    x_grad: torch.Tensor | None = None
    grads: dict[str, torch.Tensor | None] | None = None


@dataclass
class Pending:
    """One request, and its result once answered (Subject.request, Subject.defer)."""

    message: dict
    what: str
    key: str
    result: Any = None
    error: BaseException | None = None
    """Why it has no result: its own failure, or the one that stopped its round trip before it ran."""


class ModuleHandle:
    """The judge's handle on a torch module that lives in a subject (a worker, or the reference), addressed by id."""

    def __init__(self, subject: Subject, id: int, info: dict | Pending, label: str):
        """`info`: the worker's description of the module, or the deferred request that builds it (Subject.new)."""
        self.subject, self.id, self.label = subject, id, label
        if isinstance(info, Pending) and info.result is not None:  # sent at once (a subject that does not batch)
            info = info.result
        self._made = info if isinstance(info, Pending) else None
        self._info = None if isinstance(info, Pending) else info
        self.kind = label if self._made is not None else str(info.get("class"))
        """What code its requests run (their keys): its class, or, built by a deferred request, the name it was
        built by (the class is not known until the answer comes)."""
        self.built: list[dict] = []
        """For a module a graded function returned: the recorded constructions (see Subject.call)."""
        self.calls = 0

    @property
    def info(self) -> dict:
        """Its class, parameters, buffers, state keys, submodules and dropout rates (a deferred build is sent now)."""
        if self._info is None:
            self.subject.settle()
            if self._made.error is not None:  # the build failed, or never ran: what stopped it
                raise self._made.error
            self._info = self._made.result
        return self._info

    @property
    def params(self) -> dict[str, list[int]]:
        return self.info["params"]

    @property
    def buffers(self) -> dict[str, list[int]]:
        return self.info["buffers"]

    def forward(self, x: torch.Tensor, train: bool = False, seed: int = 0,
                grad_out: torch.Tensor | None = None, times: int = 1) -> Forward:
        """The module's output on x (and gradients, given grad_out); with `times`, of its last of that many calls."""
        op, what, key, args = self._forward(x, train, seed, grad_out, times)
        result = self.subject.request(op, what, key, **args)
        return Forward(result["out"], result.get("x_grad"), result.get("grads"))

    def forward_and_state(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The module's output on x in eval mode, and its state_dict after that call, in one round trip."""
        op, what, key, args = self._forward(x, False, 0, None, 1)
        forward = self.subject.defer(op, what, key, **args)
        state = self.state()
        return forward.result["out"], state

    def _forward(self, x: torch.Tensor, train: bool, seed: int, grad_out: torch.Tensor | None,
                 times: int) -> tuple[str, str, str, dict]:
        self.calls += times
        most = self.subject.most_calls
        most[self.label] = max(most.get(self.label, 0), self.calls)
        return "forward", f"{self.label}.forward", self._key("forward"), dict(
            id=self.id, x=x, train=train, seed=seed, grad_out=grad_out, **({"times": times} if times > 1 else {}))

    def __call__(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self.forward(x, **kwargs).out

    def state(self) -> dict[str, torch.Tensor]:
        return self.subject.request("state", f"{self.label}.state_dict", self._key("state"), id=self.id)

    def load(self, state: dict[str, torch.Tensor], wait: bool = True) -> None:
        """Copy `state` in by name (a subset of the state_dict); the names must be the chapter's. `wait=False`:
        the copy travels with the next request (Subject.defer), whose caller then meets its failure."""
        unknown = set(state) - set(self.info["state_keys"])
        if unknown:
            raise StudentError("student.names_differ", where=self.label, missing=", ".join(sorted(unknown)),
                               extra=", ".join(sorted(set(self.info["state_keys"]) - set(state))) or "-")
        for name, tensor in state.items():
            shape = self.params.get(name, self.buffers.get(name))
            if shape is not None and list(tensor.shape) != shape:
                raise StudentError("student.param_shape", where=self.label, name=name,
                                   got=tuple(shape), expected=tuple(tensor.shape))
        send = self.subject.request if wait else self.subject.defer
        send("load", f"{self.label}.load_state_dict", self._key("load"), id=self.id, state=state)

    def copy_from(self, source: ModuleHandle, names: list[str], wait: bool = True) -> None:
        """Load `source`'s parameters `names` by name; both modules live in the same subject. `wait`: as in load."""
        for name in names:
            if source.params[name] != self.params[name]:
                raise StudentError("student.param_shape", where=self.label, name=name,
                                   got=tuple(self.params[name]), expected=tuple(source.params[name]))
        send = self.subject.request if wait else self.subject.defer
        send("copy", f"{self.label}.load_state_dict", self._key("load"), id=self.id, source=source.id, names=names)

    def child(self, path: str) -> ModuleHandle:
        id = next(self.subject.ids)
        info = self.subject.request("child", f"{self.label}.{path}", self._key("child"), id=id, parent=self.id,
                                    path=path)
        return ModuleHandle(self.subject, id, info, f"{self.label}.{path}")

    def _key(self, op: str) -> str:
        """What a call does, whatever the module is called here: its class's code runs either way."""
        return f"{op}:{self.kind}"


class Subject:
    """Base: turns replies into values or StudentError."""

    batches = False
    """Whether deferred requests wait for the next one (a worker's round trips are what grading costs)."""

    source = "notebook"
    """What the student's definitions came from: "notebook" (.ipynb, marimo) or "file" (plain .py)."""

    def __init__(self, assignment: Assignment | None = None) -> None:
        self.assignment = assignment
        """What is graded (None: a subject that answers nothing, Unloadable)."""
        self.stubs = assignment.stubs if assignment else {}
        """Graded class -> the stub's __init__ parameters (Assignment.stubs)."""
        self.ids = itertools.count(1)
        self.cache: dict[str, Any] = {}
        """Objects several checks share (e.g. the GPT-2-sized module); cleared when a worker restarts."""
        self.charged: dict[str, tuple[str, dict]] = {}
        """Graded parts whose code went over the submission's memory or CPU budget -> (message key, params):
        every check of the part fails with it, and no more of its code runs (worker_subject.py)."""
        self.probe_seed = 0
        """The attention gate's probes are drawn from it (config.probe_seed: the course's secret and the code)."""
        self.most_calls: dict[str, int] = {}
        """Module label -> the most forward calls one module of it has had (the gate's last look makes as many)."""
        self.pending: list[Pending] = []
        """Deferred requests not sent yet (`defer`)."""
        self.left_running: dict[str, str] = {}
        """Graded parts whose checks left processes, threads or files behind in the worker -> which: the
        parts built on them use the kit's stand-ins instead (checks/precondition.py, `sound`)."""

    def begin_part(self, part: str | None) -> None:
        """The checks of graded part `part` start (None: they are over); only a sandboxed worker cares."""

    def keeps_modules(self) -> bool:
        """The modules built so far are still there (a worker begun afresh has none of them)."""
        return True

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]

    def _send(self, message: dict, what: str, key: str) -> dict:
        raise NotImplementedError

    def _send_many(self, items: list[Pending]) -> list[dict]:
        """The replies to `items`, sent in turn, up to and including the first that failed (a worker: in one
        round trip). A request that could not be answered raises its StudentError, the ones before it answered."""
        replies: list[dict] = []
        for item in items:
            replies.append(self._send(item.message, item.what, item.key))
            if not replies[-1].get("ok"):
                break
        return replies

    def request(self, op: str, what: str, key: str | None = None, **args: Any) -> Any:
        """Send one request, with the deferred ones before it; `what` names the call for the student, `key` what
        code it runs. A deferred request that failed raises its own StudentError here, and this one is not sent."""
        item = Pending({"op": op, "args": args}, what, key or f"{op}:{what}")
        self._round_trip([*self._taken(), item])
        return item.result

    def defer(self, op: str, what: str, key: str | None = None, **args: Any) -> Pending:
        """A request whose answer can wait: where the subject is a worker (`batches`), it travels with the next
        request or `settle`, in one round trip, and its failure is raised there; elsewhere it is sent at once."""
        item = Pending({"op": op, "args": args}, what, key or f"{op}:{what}")
        if self.batches:
            self.pending.append(item)
        else:
            self._round_trip([item])
        return item

    def settle(self) -> None:
        """Send what was deferred: a check ends (or a worker may change) with nothing of it left unsent."""
        if self.pending:
            self._round_trip(self._taken())

    def _taken(self) -> list[Pending]:
        items, self.pending = self.pending, []
        return items

    def _round_trip(self, items: list[Pending]) -> None:
        answered = 0
        try:
            for item, reply in zip(items, self._send_many(items)):
                answered += 1
                if reply.get("ok"):
                    item.result = reply.get("result")
                    continue
                if "refused" in reply:
                    refused = reply["refused"]
                    raise StudentError(str(refused.get("key")), **dict(refused.get("params") or {}),
                                       source=self.source)
                raise self._error(reply.get("error") or {}, item.what, item.key)
        except StudentError as error:
            for item in items[max(answered - 1, 0):]:
                if item.result is None:
                    item.error = error
            raise

    def _error(self, error: dict, what: str, key: str) -> StudentError:
        """The student's code raised `error` in the call `what` (running code `key`)."""
        kind = error.get("type", "Exception")
        failure = "student.not_implemented" if kind == "NotImplementedError" else "student.raised"
        because = cause_of(kind, str(error.get("message", "")))
        return StudentError(failure, where=what, type=kind, message=error.get("message", ""),
                            line=f" ({error['where']})" if error.get("where") else "",
                            **({"because": because} if because else {}))

    def new(self, name: str, *args: Any, stand_in: tuple[str, ...] = (), wait: bool = True,
            **kwargs: Any) -> ModuleHandle:
        """Build `name` with the stub's arguments; the graded classes in `stand_in` are the kit's stand-ins meanwhile.

        A constructor whose parameters match the stub's under other names or in another order gets the
        arguments mapped onto its own (`binding`); one that cannot be matched gets them as they are.
        `wait=False`: the build travels with the module's first request (or the first look at its `info`), which
        then meets its failure (Subject.defer): for a module used at once, never inside a `try` of its own.
        """
        binding = self.binding(name) if name not in stand_in else None
        if isinstance(binding, Binding):
            args, kwargs = binding.arguments(args, kwargs)
        id = next(self.ids)
        extra = {"stand_in": list(stand_in)} if stand_in else {}
        send = self.request if wait else self.defer
        info = send("new", name, f"new:{name}" + "+".join(("", *stand_in)), id=id, name=name, args=list(args),
                    kwargs=kwargs, **extra)
        return ModuleHandle(self, id, info, name)

    def call(self, name: str, *args: Any, stand_in: tuple[str, ...] = (), record: tuple[str, ...] = ()) -> Any:
        """Call a graded function; modules in `args` are passed by reference.

        A module returned gets `built`: the constructions of the classes in `record` the call made,
        each {"class", "arguments": [[name, value], ...] or None}.
        """
        id = next(self.ids)
        wire = [{"$obj": a.id} if isinstance(a, ModuleHandle) else a for a in args]
        extra = {k: list(v) for k, v in (("stand_in", stand_in), ("record", record)) if v}
        result = self.request("call", name, f"call:{name}" + "+".join(("", *stand_in)), id=id, name=name,
                              args=wire, **extra)
        if "module" in result:
            module = ModuleHandle(self, id, result["module"], name + "()")
            module.built = list(result.get("built") or [])
            return module
        if "tensor" in result:
            return result["tensor"]
        return None

    def signature(self, name: str) -> list[list] | None:
        """[name, kind, default] per parameter of `name` (a class: its __init__), or None if unknown."""
        return self.request("signature", f"{name}.__init__", f"signature:{name}", name=name)["parameters"]

    def binding(self, name: str) -> Binding | Unmatched | None:
        """How graded class `name`'s constructor matches the stub's (binding.bind), from the signature the worker
        read; None for the stub's own signature or a name that is not a graded class. A class that is not
        defined (or a submission that cannot be read) raises its StudentError, as building it would."""
        if name not in self.stubs:
            return None
        return self.cached(f"binding:{name}", lambda: bind(self.stubs[name], self.signature(name)))


class LocalSubject(Subject):
    """Definitions run in this process: the reference, or the student's own kernel (self-check)."""

    def __init__(self, namespace: dict, assignment: Assignment):
        super().__init__(assignment)
        self.handler = Handler(namespace, stand_ins_of(assignment))

    @classmethod
    def from_chunks(cls, chunks: list[dict], module_name: str, assignment: Assignment | None = None) -> LocalSubject:
        """Run `chunks` (a notebook's definitions) here: `assignment`'s graded names (default: the kit's default
        assignment) must all be defined."""
        from autograder.assignment import load

        assignment = assignment or load()
        namespace, failures = execute(chunks, module_name)
        missing = [name for name in assignment.graded if name not in namespace]
        if missing:  # demo statements may fail without a kernel; the definitions may not
            raise RuntimeError(f"the reference solution does not define {missing}: {failures}")
        return cls(namespace, assignment)

    def _send(self, message: dict, what: str, key: str) -> dict:
        return self.handler.handle(cloned(message))


class Unloadable(Subject):
    """Stands in for a submission that could not be read: every request fails with the reason."""

    def __init__(self, key: str, params: dict, assignment: Assignment | None = None):
        super().__init__(assignment)
        self.key, self.params = key, params

    def _send(self, message: dict, what: str, key: str) -> dict:
        raise StudentError(self.key, **self.params)


def stand_ins_of(assignment: Assignment) -> dict[str, type]:
    """The assignment's stand-ins, defined in this process (once per assignment)."""
    return _defined(assignment.stand_ins_source())


@functools.cache
def _defined(source: str) -> dict[str, type]:
    return define_stand_ins(source)


def cloned(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {k: cloned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [cloned(v) for v in value]
    return value
