"""Requests the judge can make of a submission's code, answered with plain data.

The same Handler serves the sandboxed worker (student code under grading), the in-notebook
self-check and the reference solution, so every check drives all three the same way.
"""
from __future__ import annotations

import inspect
import sys
import types
from contextlib import contextmanager
from typing import Any, Iterator

import torch
from torch import nn


class Refused(Exception):
    """The student's object does not have the kind the request needs (e.g. not an nn.Module)."""

    def __init__(self, key: str, **params: Any):
        super().__init__(key)
        self.key = key
        self.params = params


def execute(chunks: list[dict], module_name: str = "submission") -> tuple[dict, list[dict]]:
    """Run definition chunks one by one in a fresh module; return its namespace and the failures."""
    module = types.ModuleType(module_name)
    sys.modules[module_name] = module
    failures = []
    for chunk in chunks:
        try:
            exec(compile(chunk["code"], chunk["origin"], "exec"), module.__dict__)
        except BaseException as exc:  # noqa: BLE001 - SystemExit at import is the student's error too
            failures.append({"origin": chunk["origin"], **describe_exception(exc)})
    return module.__dict__, failures


def describe_exception(exc: BaseException) -> dict:
    try:
        message = str(exc)
    except BaseException:  # noqa: BLE001 - a hostile __str__
        message = "<unprintable>"
    tb, line = exc.__traceback__, None
    while tb is not None:  # innermost frame in the student's code
        if not tb.tb_frame.f_code.co_filename.startswith(("/", "<frozen")):
            line = f"{tb.tb_frame.f_code.co_filename}, line {tb.tb_lineno}"
        tb = tb.tb_next
    try:  # the judge names limits from it: ENOMEM, EAGAIN (processes), EFBIG, ENOSPC
        code = exc.errno if isinstance(exc, OSError) and isinstance(exc.errno, int) else None
    except BaseException:  # noqa: BLE001 - a hostile property
        code = None
    return {"type": type(exc).__name__, "message": message[:1000], "where": line, "errno": code}


def plain(tensor: Any, what: str) -> torch.Tensor:
    if not isinstance(tensor, torch.Tensor):
        raise Refused("refused.not_tensor", what=what, got=type(tensor).__name__)
    if tensor.layout != torch.strided or tensor.device.type != "cpu":
        raise Refused("refused.not_tensor", what=what, got=f"{tensor.layout} tensor on {tensor.device}")
    return tensor.detach().as_subclass(torch.Tensor).clone(memory_format=torch.contiguous_format)


class Handler:
    """Answers requests against one namespace of definitions."""

    def __init__(self, namespace: dict):
        self.namespace = namespace
        self.objects: dict[int, Any] = {}

    def handle(self, request: dict) -> dict:
        method = getattr(self, "op_" + str(request.get("op")), None)
        if method is None:
            return {"ok": False, "error": {"type": "ProtocolError", "message": "unknown op", "where": None}}
        try:
            return {"ok": True, "result": method(**request.get("args", {}))}
        except Refused as exc:
            return {"ok": False, "refused": {"key": exc.key, "params": exc.params}}
        except BaseException as exc:  # noqa: BLE001 - the student's code raised (even SystemExit)
            return {"ok": False, "error": describe_exception(exc)}

    def op_names(self, names: list[str]) -> dict:
        kinds = {}
        for name in names:
            value = self.namespace.get(name)
            if value is None:
                kinds[name] = "missing"
            elif isinstance(value, type):
                kinds[name] = "class"
            elif callable(value):
                kinds[name] = "function"
            else:
                kinds[name] = "other"
        return kinds

    def op_new(self, id: int, name: str, args: list, kwargs: dict, stand_in: list | None = None) -> dict:
        """Build `name`; the classes in `stand_in` are replaced by the kit's stand-ins meanwhile."""
        with self._standing_in(stand_in or []):
            factory = self._named(name)
            return self._store(id, factory(*args, **kwargs), f"{name}(...)")

    def op_call(self, id: int, name: str, args: list, stand_in: list | None = None,
                record: list | None = None) -> dict:
        """Call `name`; `record` lists classes whose constructions are reported, with their arguments."""
        function = self._named(name)
        resolved = [self.objects[a["$obj"]] if isinstance(a, dict) and "$obj" in a else a for a in args]
        built: list[dict] = []
        with self._standing_in(stand_in or []), self._recording(record or [], built):
            value = function(*resolved)
        if isinstance(value, nn.Module):
            return {"module": self._store(id, value, name), "built": built}
        if isinstance(value, torch.Tensor):
            return {"tensor": plain(value, f"{name}(...)")}
        return {"other": type(value).__name__}

    def op_signature(self, name: str) -> dict:
        """The parameters of `name` (a class: of its __init__), as names, kinds and plain defaults."""
        try:
            parameters = inspect.signature(self._named(name)).parameters.values()
        except (TypeError, ValueError):
            return {"parameters": None}
        return {"parameters": [[p.name, p.kind.name, _plain_value(p.default)] for p in parameters]}

    def op_child(self, id: int, parent: int, path: str) -> dict:
        return self._store(id, self.objects[parent].get_submodule(path), path)

    def op_describe(self, id: int) -> dict:
        return self._describe(self.objects[id])

    def op_state(self, id: int) -> dict:
        return {k: plain(v, k) for k, v in self.objects[id].state_dict().items()}

    def op_load(self, id: int, state: dict) -> None:
        module = self.objects[id]
        with torch.no_grad():
            module.load_state_dict(state, strict=False)

    def op_copy(self, id: int, source: int, names: list[str]) -> None:
        """Load parameters `names` of module `source` into module `id`, without them leaving the process."""
        state = self.objects[source].state_dict()
        with torch.no_grad():
            self.objects[id].load_state_dict({name: state[name] for name in names}, strict=False)

    def op_forward(self, id: int, x: torch.Tensor, train: bool, seed: int, grad_out: torch.Tensor | None = None) -> dict:
        module = self.objects[id]
        module.train(train)
        module.zero_grad(set_to_none=True)
        torch.default_generator.manual_seed(seed)  # CPU only: torch.manual_seed also queues CUDA seeding
        x = x.clone().requires_grad_(grad_out is not None)
        with torch.set_grad_enabled(grad_out is not None):
            out = module(x)
        result = {"out": plain(out, "forward")}
        if grad_out is not None:
            if out.shape != grad_out.shape or not out.requires_grad:
                result["x_grad"], result["grads"] = None, {}
                return result
            out.backward(grad_out)
            result["x_grad"] = None if x.grad is None else plain(x.grad, "x.grad")
            result["grads"] = {
                n: None if p.grad is None else plain(p.grad, n) for n, p in module.named_parameters()
            }
        return result

    @contextmanager
    def _standing_in(self, names: list) -> Iterator[None]:
        saved = {name: self.namespace.get(name) for name in names if name in STAND_INS}
        self.namespace.update({name: STAND_INS[name] for name in saved})
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    self.namespace.pop(name, None)
                else:
                    self.namespace[name] = value

    @contextmanager
    def _recording(self, names: list, built: list) -> Iterator[None]:
        """While a function runs, each named class reports how it was constructed."""
        saved = {name: self.namespace.get(name) for name in names if isinstance(self.namespace.get(name), type)}

        def recorder(name: str, cls: type) -> Any:
            def construct(*args: Any, **kwargs: Any) -> Any:
                try:
                    bound = inspect.signature(cls).bind(*args, **kwargs)
                    bound.apply_defaults()
                    arguments = [[k, _plain_value(v)] for k, v in bound.arguments.items()]
                except (TypeError, ValueError):
                    arguments = None
                built.append({"class": name, "arguments": arguments})
                return cls(*args, **kwargs)
            return construct

        self.namespace.update({name: recorder(name, cls) for name, cls in saved.items()})
        try:
            yield
        finally:
            self.namespace.update(saved)

    def _named(self, name: str) -> Any:
        value = self.namespace.get(name)
        if value is None:
            raise Refused("refused.missing", name=name)
        if not callable(value):
            raise Refused("refused.not_callable", name=name, got=type(value).__name__)
        return value

    def _store(self, id: int, value: Any, what: str) -> dict:
        if not isinstance(value, nn.Module):
            raise Refused("refused.not_module", what=what, got=type(value).__name__)
        self.objects[id] = value
        return self._describe(value)

    @staticmethod
    def _describe(module: nn.Module) -> dict:
        return {
            "class": type(module).__name__,
            "params": {n: list(p.shape) for n, p in module.named_parameters()},
            "buffers": {n: list(b.shape) for n, b in module.named_buffers()},
            "state_keys": list(module.state_dict().keys()),
            "modules": {n: type(m).__name__ for n, m in module.named_modules() if n},
            "dropout": {n: float(m.p) for n, m in module.named_modules() if isinstance(m, nn.Dropout)},
        }


def _plain_value(value: Any) -> Any:
    """A default or argument as wire data: plain scalars as they are, anything else by its type name."""
    if value is inspect.Parameter.empty:
        return {"$empty": True}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return {"$type": type(value).__name__}


PROJECTIONS = ("W_query", "W_key", "W_value")


def _projections(module: nn.Module, d_in: int, d_out: int, qkv_bias: bool) -> None:
    """The chapter's three projections, created in its order. Written unlike the reference on purpose:
    this file ships to students, and `tests/test_bundle.py` keeps reference lines out of it."""
    for name in PROJECTIONS:
        setattr(module, name, nn.Linear(d_in, d_out, bias=qkv_bias))


class StandInCausal(nn.Module):
    """Takes CausalAttention's place inside a wrapper when the student's CausalAttention is wrong,
    so that the wrapper is judged alone.

    It has the chapter's layout and is causal, mixes tokens and depends on every weight, but it is
    deliberately not attention: each token's output is a gated running mean of the values so far.
    """

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float, qkv_bias: bool = False):
        super().__init__()
        setattr(self, "d_out", d_out)
        _projections(self, d_in, d_out, qkv_bias)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid((self.W_query(x) * self.W_key(x)).sum(dim=-1, keepdim=True))  # (b, T, 1)
        running = torch.cumsum(gate * self.W_value(x), dim=1)  # (b, T, d_out)
        return running / torch.arange(1, x.shape[1] + 1, dtype=x.dtype).view(1, -1, 1)


class StandInV1(nn.Module):
    """SelfAttention_v1's weights as the chapter lays them out (exercise 3.1 judged alone)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        for name in PROJECTIONS:  # in the chapter's order, so a seed gives the chapter's weights
            setattr(self, name, nn.Parameter(torch.rand(d_in, d_out)))


class StandInV2(nn.Module):
    """SelfAttention_v2's layers as the chapter lays them out (exercise 3.1 judged alone)."""

    def __init__(self, d_in: int, d_out: int, qkv_bias: bool = False):
        super().__init__()
        _projections(self, d_in, d_out, qkv_bias)


class StandInMHA(nn.Module):
    """MultiHeadAttention's layers as the chapter lays them out, nothing computed (exercise 3.3 judged alone)."""

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int,
                 qkv_bias: bool = False):
        super().__init__()
        _projections(self, d_in, d_out, qkv_bias)
        self.out_proj = nn.Linear(in_features=d_out, out_features=d_out)


STAND_INS: dict[str, type] = {"CausalAttention": StandInCausal, "SelfAttention_v1": StandInV1,
                              "SelfAttention_v2": StandInV2, "MultiHeadAttention": StandInMHA}
"""The kit's own stand-ins for graded classes that other graded code builds on."""
