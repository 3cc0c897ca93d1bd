"""Requests the judge can make of a submission's code, answered with plain data.

The same Handler serves the sandboxed worker (student code under grading), the in-notebook
self-check and the reference solution, so every check drives all three the same way.
"""
from __future__ import annotations

import difflib
import inspect
import re
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from .execute import describe_exception
from .values import Refused, describe_module, plain, plain_value


def define_stand_ins(source: str) -> dict[str, type]:
    """The STAND_INS of an assignment's stand_ins.py, run on its own (before the student's definitions)."""
    if not source:
        return {}
    namespace: dict[str, Any] = {"__name__": "stand_ins"}
    exec(compile(source, "stand_ins.py", "exec"), namespace)
    return dict(namespace.get("STAND_INS", {}))

class Handler:
    """Answers requests against one namespace of definitions."""

    def __init__(self, namespace: dict, stand_ins: dict[str, type] | None = None):
        """`stand_ins`: graded class -> the kit's own (define_stand_ins), built in its place when asked."""
        self.namespace = namespace
        self.objects: dict[int, Any] = {}
        self.stand_ins = stand_ins or {}

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

    def op_new(self, id: int, name: str, args: list, kwargs: dict, stand_in: list | None = None) -> dict:
        """Build `name`; the classes in `stand_in` are replaced by the kit's stand-ins meanwhile."""
        with self._standing_in(stand_in or []):
            factory = self._named(name)
            try:
                built = factory(*args, **kwargs)
            except TypeError:
                typo = _constructor_typo(factory)
                if typo:  # nn.Module's own constructor got the arguments, and rejected them
                    raise Refused("refused.init_typo", name=name, found=typo) from None
                raise
            return self._store(id, built, f"{name}(...)")

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
        return {"parameters": [[p.name, p.kind.name, plain_value(p.default)] for p in parameters]}

    def op_child(self, id: int, parent: int, path: str) -> dict:
        return self._store(id, self.objects[parent].get_submodule(path), path)

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

    def op_forward(self, id: int, x: torch.Tensor, train: bool, seed: int,
                   grad_out: torch.Tensor | None = None, times: int = 1) -> dict:
        """The module's output on x; with `times`, the output of its last of that many calls in a row."""
        module = self.objects[id]
        module.train(train)
        for _ in range(max(int(times), 1)):
            module.zero_grad(set_to_none=True)
            torch.default_generator.manual_seed(seed)  # CPU only: torch.manual_seed also queues CUDA seeding
            given = x.clone().requires_grad_(grad_out is not None)
            with torch.set_grad_enabled(grad_out is not None):
                out = module(given)
        x = given
        result = {"out": plain(out, "forward")}
        if grad_out is not None:
            if out.shape != grad_out.shape or not out.requires_grad:
                result["x_grad"], result["grads"] = None, {}
                return result
            # the same gradients as out.backward(grad_out), bit for bit (d sum(out * g) / d out = 1 * g), without
            # the import of sympy (about 0.5 s) that torch makes for a backward given explicit gradients
            (out * grad_out).sum().backward()
            result["x_grad"] = None if x.grad is None else plain(x.grad, "x.grad")
            result["grads"] = {
                n: None if p.grad is None else plain(p.grad, n) for n, p in module.named_parameters()
            }
        return result

    @contextmanager
    def _standing_in(self, names: list) -> Iterator[None]:
        saved = {name: self.namespace.get(name) for name in names if name in self.stand_ins}
        self.namespace.update({name: self.stand_ins[name] for name in saved})
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
            """A stand-in for the class `cls` (named `name` in the namespace) that reports each construction."""
            def construct(*args: Any, **kwargs: Any) -> Any:
                """Note the arguments (bound to `cls`'s signature, defaults filled in), then build `cls` as asked."""
                try:
                    bound = inspect.signature(cls).bind(*args, **kwargs)
                    bound.apply_defaults()
                    arguments = [[k, plain_value(v)] for k, v in bound.arguments.items()]
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
            near = _near_miss_name(name, self.namespace)
            if near:
                raise Refused("refused.missing_near", name=name, found=near)
            raise Refused("refused.missing", name=name)
        if not callable(value):
            raise Refused("refused.not_callable", name=name, got=type(value).__name__)
        return value

    def _store(self, id: int, value: Any, what: str) -> dict:
        if not isinstance(value, nn.Module):
            raise Refused("refused.not_module", what=what, got=type(value).__name__)
        self.objects[id] = value
        return describe_module(value)


def _plain(text: str) -> str:
    return text.lower().replace("_", "")


def _near_miss_name(name: str, namespace: dict) -> str | None:
    """A class or function of the namespace whose name is a misspelling of `name` (MyLayerV1 for My_Layer_v1),
    or None."""
    defined = {_plain(k): k for k, v in namespace.items()
               if not k.startswith("_") and isinstance(v, type | types.FunctionType)}
    if _plain(name) in defined:
        return defined[_plain(name)]
    digits = re.findall(r"\d", name)  # Layer_v2 is no misspelling of Layer_v1
    found = difflib.get_close_matches(_plain(name), [k for k in defined if re.findall(r"\d", k) == digits], n=1,
                                      cutoff=0.9)
    return defined[found[0]] if found else None


def _constructor_typo(factory: Any) -> str | None:
    """The misspelt constructor a class defines instead of __init__ (__init_, _init__, __int__), or None."""
    if not isinstance(factory, type) or "__init__" in vars(factory):
        return None
    mangled = f"_{factory.__name__.lstrip('_')}__"  # Python renames __init_ to _MyClass__init_
    for attribute, value in vars(factory).items():
        name = "__" + attribute[len(mangled):] if attribute.startswith(mangled) else attribute
        similar = difflib.SequenceMatcher(None, name.strip("_"), "init").ratio() >= 0.75
        if name != "__init__" and callable(value) and similar:
            return name
    return None
