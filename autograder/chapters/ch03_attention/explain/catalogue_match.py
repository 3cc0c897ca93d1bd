"""Name mistakes by matching: the student's outcomes on a part's fixed calls against each catalogue mutant's."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from autograder.chapters.ch03_attention.explain.facts import state_for
from autograder.chapters.ch03_attention.explain.misconceptions import CATALOGUE, Misconception
from autograder.errors import StudentError
from autograder.judge.dropout import dropout_kind
from autograder.judge.expect import TOLERANCE, CheckFailure
from autograder.judge.probes import BATCH, INPUTS, identity_state, is_mask, one_hot, randn, weights_from_output
from autograder.judge.subjects import ModuleHandle, Subject


def _state(module: ModuleHandle, scale: float = 1.0, overrides: dict | None = None) -> dict[str, torch.Tensor]:
    """Deterministic weights for `module`, by parameter name, with `overrides` in place of some."""
    return {**state_for(module, scale), **{k: v for k, v in (overrides or {}).items() if k in module.params}}


def _layout(module: ModuleHandle) -> dict:
    """What the checks ask of the module's structure, in a comparable form."""
    masks = {}
    for name in sorted(set(module.params) | set(module.buffers) | {k for k in module.info["state_keys"] if is_mask(k)}):
        if is_mask(name):
            place = "parameter" if name in module.params else "buffer" if name in module.buffers else "other"
            saved = "saved" if name in module.info["state_keys"] else "unsaved"
            masks[name] = (place, saved, module.params.get(name, module.buffers.get(name)))
    return {"class": module.info["class"], "params": {k: v for k, v in module.params.items() if not is_mask(k)},
            "masks": masks, "dropout": module.info["dropout"]}


def _run(sub: Subject, name: str, args: tuple, x: torch.Tensor, scale: float = 1.0, **kwargs: Any) -> torch.Tensor:
    module = sub.new(name, *args, **kwargs)
    module.load(_state(module, scale))
    return module(x)


def _identity(sub: Subject, name: str, T: int, heads: int | None, p: float) -> tuple[ModuleHandle, torch.Tensor]:
    """Output = the attention weights, twice per head (judge.probes.identity_state), with name-keyed weights."""
    n = heads or 1
    module = sub.new(name, T, 2 * T * n, T, p, *((heads,) if heads else ()))
    named = state_for(module, 2.0)
    module.load(identity_state(sorted(module.params.items()), T, n, lambda key, _: named[key]))
    return module, one_hot(T)


def _dropout_kind(sub: Subject, name: str, heads: int | None) -> list[str]:
    """How train mode changes the attention read-out, as structural facts that do not depend on the RNG."""
    T, p = 6, 0.5
    module, x = _identity(sub, name, T, heads, p)
    return dropout_kind(module, x, lambda out: weights_from_output(out, T, heads or 1), p)


def _attention_calls(sub: Subject, name: str, heads: int | None) -> dict[str, Callable]:
    extra = (heads,) if heads else ()
    d = heads or 1
    return {
        "layout": lambda: _layout(sub.new(name, 3, 2 * d, 6, 0.1, *extra, qkv_bias=True)),
        "chapter": lambda: _run(sub, name, (3, 2 * d, 6, 0.0, *extra), randn(2, 6, 3, seed=1)),
        "short": lambda: _run(sub, name, (5, 4 * d, 8, 0.0, *extra), randn(1, 4, 5, seed=2)),
        "bias": lambda: _run(sub, name, (4, 3 * d, 6, 0.0, *extra), randn(2, 5, 4, seed=3), qkv_bias=True),
        "sharp": lambda: _run(sub, name, (8, 8, 6, 0.0, *((4,) if heads else ())), randn(2, 6, 8, seed=4), scale=4.0),
        "identity": lambda: _identity(sub, name, 6, heads, 0.0)[0](one_hot(6)),
        "dropout": lambda: _dropout_kind(sub, name, heads),
    }


def _raises(call: Callable) -> bool:
    try:
        call()
    except StudentError as error:
        return error.key == "student.raised"
    return False


def _load_call(sub: Subject, d_in: int, d_out: int) -> dict:
    v1, v2 = sub.new("SelfAttention_v1", d_in, d_out), sub.new("SelfAttention_v2", d_in, d_out)
    v1.load(_state(v1))
    v2.load(_state(v2, 2.0))
    try:
        sub.call("load_v2_weights_into_v1", v1, v2)
    except StudentError as error:  # e.g. copy_ of a (d_out, d_in) weight into (d_in, d_out)
        if error.key != "student.raised":
            raise
    after, source = v1.state(), v2.state()
    if d_in == d_out:
        return after
    expected = {n: source[f"{n}.weight"].T for n in ("W_query", "W_key", "W_value")}
    return {n: n in after and same(after[n], w) for n, w in expected.items()}


def calls(sub: Subject, part: str) -> dict[str, Callable]:
    """The fixed calls of `part`: name -> a call on `sub` returning comparable data."""
    if part == "softmax_naive":
        return {f"x{i}": (lambda x=x: sub.call(part, x)) for i, x in
                enumerate([randn(6, seed=0), randn(3, seed=1) * 3, randn(4, 3, seed=2)])}
    if part == "simple_self_attention":
        return {f"x{i}": (lambda x=x: sub.call(part, x)) for i, x in
                enumerate([INPUTS, randn(5, 4, seed=3), torch.eye(4)])}
    if part in ("SelfAttention_v1", "SelfAttention_v2"):
        found = {"layout": lambda: _layout(sub.new(part, 3, 2)),
                 "chapter": lambda: _run(sub, part, (3, 2), INPUTS),
                 "other": lambda: _run(sub, part, (5, 4), randn(7, 5, seed=5), scale=2.0)}
        if part == "SelfAttention_v2":
            found["layout_bias"] = lambda: _layout(sub.new(part, 3, 2, qkv_bias=True))
            found["bias"] = lambda: _run(sub, part, (3, 2), INPUTS, qkv_bias=True)
        return found
    if part == "load_v2_weights_into_v1":
        return {"square": lambda: _load_call(sub, 4, 4), "chapter": lambda: _load_call(sub, 3, 2)}
    if part == "CausalAttention":
        return _attention_calls(sub, part, None)
    if part == "MultiHeadAttention":
        found = _attention_calls(sub, part, 2)
        found["indivisible"] = lambda: _raises(lambda: sub.new(part, 3, 5, 6, 0.0, 2))
        return found
    if part == "MultiHeadAttentionWrapper":
        return {"layout": lambda: _layout(sub.new(part, 3, 2, 6, 0.0, 2, qkv_bias=True)),
                "chapter": lambda: _run(sub, part, (3, 2, 6, 0.0, 2), randn(2, 6, 3, seed=1)),
                "three": lambda: _run(sub, part, (4, 3, 8, 0.0, 3), randn(1, 5, 4, seed=2))}
    if part == "exercise_3_2":
        return {"layout": lambda: _layout(sub.call(part)), "out": lambda: sub.call(part)(BATCH).shape}
    if part == "exercise_3_3":
        def forward() -> torch.Tensor:
            module = sub.call(part)
            module.load(_state(module, 0.05))
            return module(randn(1, 5, 768, seed=12))
        return {"layout": lambda: _layout(sub.call(part)), "forward": forward}
    return {}


def _outcome(call: Callable) -> Any:
    try:
        return call()
    except StudentError as error:
        return ("error", error.key, str(error.params.get("type", "")))
    except CheckFailure as error:
        return ("error", error.key)
    except Exception as error:  # noqa: BLE001 - what the call made of odd replies, compared like any value
        return ("error", type(error).__name__)


def same(a: Any, b: Any) -> bool:
    """Probe outcomes agree: tensors allclose (NaN equal), containers element by element."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape:
            return False
        if not (torch.is_floating_point(a) and torch.is_floating_point(b)):
            return bool(torch.equal(a, b))
        return bool(torch.allclose(a.double(), b.double(), atol=TOLERANCE.atol, rtol=TOLERANCE.rtol,
                                   equal_nan=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


class OutOfTime(Exception):
    """The diagnosis budget ran out in the middle of a part's calls."""


def outcomes_of(sub: Subject, part: str, deadline: float = float("inf")) -> dict[str, Any]:
    """What `sub` makes of each of `part`'s fixed calls (a value, or the error it raised), until `deadline`."""
    found = {}
    for name, call in calls(sub, part).items():
        if time.monotonic() > deadline:
            raise OutOfTime(part)
        found[name] = _outcome(call)
    return found


class CatalogueMatcher:
    """Holds the mutants (trusted code, like the reference) and their outcomes, computed once."""

    def __init__(self, mutant: Callable[[Misconception], Subject]):
        self._mutant = mutant
        self._outcomes: dict[str, dict[str, Any]] = {}

    def mutant_outcomes(self, misconception: Misconception) -> dict[str, Any]:
        if misconception.id not in self._outcomes:
            self._outcomes[misconception.id] = outcomes_of(self._mutant(misconception), misconception.part)
        return self._outcomes[misconception.id]

    def match(self, sub: Subject, part: str, deadline: float) -> list[tuple[str, dict]]:
        """The mistakes of the catalogue entry whose outcomes all agree with the student's; [] if none does."""
        theirs = outcomes_of(sub, part, deadline)
        for misconception in (m for m in CATALOGUE if m.part == part):  # trusted and cached: no deadline
            ours = self.mutant_outcomes(misconception)
            if ours.keys() == theirs.keys() and all(same(theirs[k], ours[k]) for k in ours):
                return [(n, {}) for n in misconception.names]
        return []
