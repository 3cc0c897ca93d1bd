"""Name mistakes by matching: the student's outcomes on fixed probes against each catalogue mutant's."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from autograder.judge.expect import TOLERANCE, CheckFailure
from autograder.judge.probes import BATCH, INPUTS, is_mask, randn, weights_from_output
from autograder.explain.facts import state_for
from autograder.judge.subjects import Module, StudentError, Subject


def _state(module: Module, scale: float = 1.0, overrides: dict | None = None) -> dict[str, torch.Tensor]:
    """Deterministic weights for `module`, by parameter name, with `overrides` in place of some."""
    return {**state_for(module, scale), **{k: v for k, v in (overrides or {}).items() if k in module.params}}


def _layout(module: Module) -> dict:
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


def _identity(sub: Subject, name: str, T: int, heads: int | None, p: float) -> tuple[Module, torch.Tensor]:
    """Output = the attention weights, twice per head (see probes.identity_probe), with name-keyed weights."""
    n = heads or 1
    d_out = 2 * T * n
    module = sub.new(name, T, d_out, T, p, *((heads,) if heads else ()))
    value = torch.cat([torch.eye(T), torch.eye(T)], dim=0).repeat(n, 1)
    overrides = {"W_value.weight": value, "out_proj.weight": torch.eye(d_out)}
    state = _state(module, 2.0, overrides)
    module.load({k: torch.zeros_like(v) if k.endswith("bias") else v for k, v in state.items()})
    return module, torch.eye(T).unsqueeze(0).repeat(2, 1, 1)


def _dropout_kind(sub: Subject, name: str, heads: int | None) -> list[str]:
    """How train mode changes the attention read-out, as structural facts that do not depend on the RNG."""
    T, p, n = 6, 0.5, heads or 1
    module, x = _identity(sub, name, T, heads, p)
    base = module(x, seed=0)
    if not torch.allclose(module(x, seed=1), base, equal_nan=True):
        return ["random_in_eval"]
    eval_a, _ = weights_from_output(base, T, n)
    visible = eval_a > 1e-6
    scaled = eval_a / (1 - p)
    kinds = set()
    for seed in range(4):
        out = module(x, train=True, seed=seed)
        if out.shape != base.shape:
            kinds.add("shape")
            continue
        if torch.allclose(out, base, atol=1e-6, equal_nan=True):
            kinds.add("none")
            continue
        copies = weights_from_output(out, T, n)
        elementwise = all(bool(((c.abs() < 1e-6) | ((c - scaled).abs() < 1e-4 * (1 + scaled.abs()))).all())
                          for c in copies)
        if torch.allclose(copies[0], copies[1], atol=1e-5, equal_nan=True):
            kinds.add("weights" if elementwise else "weights_not_dropout")
        elif not elementwise:
            kinds.add("other")
        else:
            # Dropout on the values drops (token, feature) pairs: the same for every query.
            per_key = True
            for c in copies:
                dropped = (c.abs() < 1e-6) & visible
                per_key &= bool(((dropped == visible) | ~dropped.any(-2, keepdim=True)).all())
            kinds.add("values" if per_key else "output")
    return sorted(kinds)


def _eval_probes(sub: Subject, name: str, heads: int | None) -> dict[str, Callable]:
    extra = (heads,) if heads else ()
    d = heads or 1
    return {
        "layout": lambda: _layout(sub.new(name, 3, 2 * d, 6, 0.1, *extra, qkv_bias=True)),
        "chapter": lambda: _run(sub, name, (3, 2 * d, 6, 0.0, *extra), randn(2, 6, 3, seed=1)),
        "short": lambda: _run(sub, name, (5, 4 * d, 8, 0.0, *extra), randn(1, 4, 5, seed=2)),
        "bias": lambda: _run(sub, name, (4, 3 * d, 6, 0.0, *extra), randn(2, 5, 4, seed=3), qkv_bias=True),
        "sharp": lambda: _run(sub, name, (8, 8, 6, 0.0, *((4,) if heads else ())), randn(2, 6, 8, seed=4), scale=4.0),
        "identity": lambda: _identity(sub, name, 6, heads, 0.0)[0](torch.eye(6).unsqueeze(0).repeat(2, 1, 1)),
        "dropout": lambda: _dropout_kind(sub, name, heads),
    }


def _raises(call: Callable) -> bool:
    try:
        call()
    except StudentError as error:
        return error.key == "student.raised"
    return False


def _load_probe(sub: Subject, d_in: int, d_out: int) -> dict:
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


def probes(sub: Subject, part: str) -> dict[str, Callable]:
    """The fixed probes of `part`: name -> a call on `sub` returning comparable data."""
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
        return {"square": lambda: _load_probe(sub, 4, 4), "chapter": lambda: _load_probe(sub, 3, 2)}
    if part == "CausalAttention":
        return _eval_probes(sub, part, None)
    if part == "MultiHeadAttention":
        found = _eval_probes(sub, part, 2)
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


def _outcome(probe: Callable) -> Any:
    try:
        return probe()
    except StudentError as error:
        return ("error", error.key, str(error.params.get("type", "")))
    except CheckFailure as error:
        return ("error", error.key)
    except Exception as error:  # noqa: BLE001 - what the probe made of odd replies, compared like any value
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
    """The diagnosis budget ran out in the middle of a part's probes."""


def run_probes(sub: Subject, part: str, deadline: float = float("inf")) -> dict[str, Any]:
    outcomes = {}
    for name, probe in probes(sub, part).items():
        if time.monotonic() > deadline:
            raise OutOfTime(part)
        outcomes[name] = _outcome(probe)
    return outcomes
