"""Measure the independent facts of a student's attention class on probes (mask, axis, scale, dropout, wiring)."""
from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass, field

import torch

from autograder.explain.attention_model import MASKS, SCALES, divisor, future, layer_names
from autograder.judge.probes import is_mask, randn
from autograder.judge.subjects import Module, StudentError, Subject

TWIN_D, TWIN_T, TWIN_A = 7, 5, 1.2
"""The twin probe: one-hot tokens (d_in = 7, 5 tokens) and W_query = W_key = W_value = 1.2 * [I; I] per head."""
RANDOM_PROBES = {  # (d_in, d_out, context_length, tokens, heads); tokens < context_length except the last
    "CausalAttention": [(5, 3, 9, 7, 1), (4, 6, 8, 5, 1), (3, 2, 6, 6, 1)],
    "MultiHeadAttention": [(5, 6, 9, 7, 2), (7, 8, 8, 5, 4), (3, 4, 6, 6, 2)],
}
GLOBAL = re.compile(r"name '(\w+)' is not defined")


@dataclass
class Facts:
    """What was measured on one class; None where a probe could not tell."""

    readable: bool = False
    """The twin probe showed a weight pattern some mask makes (its mask, axis and scale are then known)."""
    masks: list[str] = field(default_factory=lambda: list(MASKS))
    """Masks consistent with the twin probe's zero pattern."""
    axes: list[str] = field(default_factory=lambda: ["keys", "queries", "heads"])
    scale: str | None = None
    """A name from SCALES, "power:<e>" (head_dim ** e) or None when the twin probe could not be read."""
    scale_found: float | None = None
    dropout: list[str] = field(default_factory=list)
    runs: list[tuple[dict, torch.Tensor, int, torch.Tensor]] = field(default_factory=list)
    """Random-weight probes: (weights, input, heads, the student's output)."""
    short_input_fails: bool = False
    """Raises for inputs shorter than context_length, works for full-length ones."""
    missing_global: str | None = None
    has_out_proj: bool = True
    fixed_sizes: bool = False
    """Works with the chapter's demo sizes (d_in=3, d_out=2) and fails with any other."""
    returns_nothing: bool = False
    """forward returns None (e.g. the return statement was left out)."""
    renamed: list[tuple[str, str]] = field(default_factory=list)
    """(the student's name, the chapter's) for layers found under another name."""
    structure: list[str] = field(default_factory=list)


def state_for(module: Module, scale: float = 1.0) -> dict[str, torch.Tensor]:
    """Deterministic weights by parameter name (creation order never matters)."""
    return {name: randn(*shape, seed=zlib.crc32(name.encode()) % 10_000) * (0.1 if "bias" in name else scale)
            for name, shape in sorted(module.params.items()) if not is_mask(name)}


def _new(sub: Subject, part: str, d_in: int, d_out: int, context: int, p: float, heads: int, **kw) -> Module:
    return sub.new(part, d_in, d_out, context, p, *((heads,) if part == "MultiHeadAttention" else ()), **kw)


def twin(sub: Subject, part: str, heads: int, p: float = 0.0) -> tuple[Module, torch.Tensor]:
    """Queries, keys and values all equal, so whichever layer feeds which, the output is the weights, twice."""
    d_out = 2 * TWIN_D * heads
    module = _new(sub, part, TWIN_D, d_out, TWIN_T, p, heads)
    layer = (TWIN_A * torch.cat([torch.eye(TWIN_D), torch.eye(TWIN_D)])).repeat(heads, 1)  # (d_out, d_in)
    state = {}
    for name, shape in module.params.items():
        if is_mask(name):
            continue
        if name.endswith("bias"):
            state[name] = torch.zeros(shape)
        elif list(shape) == [d_out, d_out]:  # out_proj, under whatever name
            state[name] = torch.eye(d_out)
        elif list(layer.shape) == shape:
            state[name] = layer
    module.load(state)
    return module, torch.eye(TWIN_D)[:TWIN_T].unsqueeze(0).repeat(2, 1, 1)


def read_weights(out: torch.Tensor, heads: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Both copies of the attention weights (b, heads, T, T) in a twin-probe output, or None."""
    if tuple(out.shape) != (2, TWIN_T, 2 * TWIN_D * heads):
        return None
    per_head = out.double().view(2, TWIN_T, heads, 2, TWIN_D)[..., :TWIN_T] / TWIN_A
    per_head = per_head.permute(0, 2, 3, 1, 4)  # (b, heads, copy, T, T)
    return per_head[:, :, 0], per_head[:, :, 1]


def _close(a: torch.Tensor, b: float | torch.Tensor, tol: float = 1e-4) -> bool:
    return bool(torch.allclose(a, torch.as_tensor(b, dtype=a.dtype).expand_as(a), atol=tol, equal_nan=True))


def read_twin(facts: Facts, out: torch.Tensor, heads: int) -> None:
    """Masks, softmax axis and scale from the twin probe's weights."""
    copies = read_weights(out, heads)
    if copies is None or not torch.allclose(*copies, atol=1e-6, equal_nan=True):
        return
    A = copies[0][0]  # (heads, T, T)
    nan_rows = torch.isnan(A).all(-1)
    if torch.isnan(A[~nan_rows]).any() or (A[~nan_rows] < -1e-6).any():
        return
    zero = (A.abs() < 1e-7) | torch.isnan(A)
    masks = [m for m in MASKS if m != "zero_fill" and bool((zero == future(m, TWIN_T)).all())]
    masks += ["zero_fill"] if "none" in masks else []  # 0 for the future is 0 like every other score here
    sums = {"keys": A.nansum(-1)[~nan_rows], "queries": A.nansum(-2), "heads": A.nansum(0)}
    axes = [a for a, s in sums.items() if _close(s, 1.0) and (heads > 1 or a != "heads")]
    if not axes and "causal" in masks:  # zeroed after the softmax: the rest no longer sums to 1
        axes, masks = ["keys", "queries"], ["after_softmax"]
    if not masks or not axes:
        return  # a pattern no mask makes: the wiring garbles this probe, so it tells nothing
    facts.masks, facts.axes, facts.readable = masks, axes, True
    if "heads" in facts.axes and len(facts.axes) == 1:
        return  # every head alike: the scale cannot be read
    along = A if "keys" in facts.axes or "queries" not in facts.axes else A.transpose(-1, -2)
    ratios = [math.log(along[h, i, i].item() / along[h, i, j].item()) for h in range(heads)
              for i in range(TWIN_T) for j in range(TWIN_T)
              if j != i and along[h, i, i].item() > 1e-12 and along[h, i, j].item() > 1e-12]
    ratios = [r for r in ratios if abs(r) > 1e-9]
    if not ratios:
        return
    found = 2 * TWIN_A ** 2 / sorted(ratios)[len(ratios) // 2]
    facts.scale_found = found
    head_dim, d_out = 2 * TWIN_D, 2 * TWIN_D * heads
    for name in SCALES:
        if abs(divisor(name, head_dim, TWIN_D, d_out, TWIN_T) / found - 1) < 0.01:
            facts.scale = name
            return
    if found > 0:
        facts.scale = f"power:{math.log(found) / math.log(head_dim):.4f}"


def dropout_kind(sub: Subject, part: str, heads: int) -> list[str]:
    """How train mode changes the twin probe's weights, as structural facts that do not depend on the RNG."""
    p = 0.5
    module, x = twin(sub, part, heads, p)
    base = module(x, seed=0)
    if not torch.allclose(module(x, seed=1), base, equal_nan=True):
        return ["random_in_eval"]
    copies = read_weights(base, heads)
    if copies is None:
        return []
    eval_a = copies[0]
    visible, scaled = eval_a > 1e-6, eval_a / (1 - p)
    kinds = set()
    for seed in range(4):
        out = module(x, train=True, seed=seed)
        if out.shape != base.shape:
            kinds.add("shape")
            continue
        if torch.allclose(out, base, atol=1e-6, equal_nan=True):
            kinds.add("none")
            continue
        got = read_weights(out, heads)
        elementwise = all(bool(((c.abs() < 1e-6) | ((c - scaled).abs() < 1e-4 * (1 + scaled.abs()))
                                | (torch.isnan(c) & torch.isnan(scaled))).all()) for c in got)
        if torch.allclose(got[0], got[1], atol=1e-5, equal_nan=True):
            kinds.add("weights" if elementwise else "weights_not_dropout")
        elif not elementwise:
            kinds.add("other")
        else:  # dropout on the values drops (token, feature) pairs: the same for every query
            per_key = True
            for c in got:
                dropped = (c.abs() < 1e-6) & visible
                per_key &= bool(((dropped == visible) | ~dropped.any(-2, keepdim=True)).all())
            kinds.add("values" if per_key else "output")
    return sorted(kinds)


def measure(sub: Subject, part: str) -> Facts | None:
    """Every fact of `part` (CausalAttention or MultiHeadAttention); None when its weights cannot be loaded."""
    heads = 2 if part == "MultiHeadAttention" else 1
    facts = Facts()
    errors: list[StudentError] = []
    failed = []
    for d_in, d_out, context, tokens, n in RANDOM_PROBES[part]:
        try:
            module = _new(sub, part, d_in, d_out, context, 0.0, n)
            names = layer_names(module.params)
            if not {"W_query", "W_key", "W_value"} <= set(names):
                return None
            facts.renamed = sorted((theirs, ours) for ours, theirs in names.items() if theirs != ours)
            weights = state_for(module, 1.5)
            module.load(weights)
            x = randn(2, tokens, d_in, seed=d_in * 10 + tokens)
            chapter = {f"{ours}.{kind}": weights[f"{theirs}.{kind}"] for ours, theirs in names.items()
                       for kind in ("weight", "bias") if f"{theirs}.{kind}" in weights}
            facts.runs.append((chapter, x, n, module(x)))
        except StudentError as error:
            if error.key in ("student.names_differ", "student.param_shape"):
                return None
            errors.append(error)
            failed.append(tokens < context)
    for error in errors:
        missing = GLOBAL.search(str(error.params.get("message", "")))
        if missing:
            facts.missing_global = missing.group(1)
        facts.returns_nothing |= error.key == "refused.not_tensor" and error.params.get("got") == "NoneType"
    facts.short_input_fails = bool(failed) and all(failed) and len(facts.runs) == 1
    if not facts.runs:
        try:  # the sizes of the chapter's demo cells: a class that only works there reads the notebook's variables
            _new(sub, part, 3, 2, 6, 0.0, 2)(randn(2, 6, 3, seed=1))
            facts.fixed_sizes = not facts.missing_global
        except StudentError:
            pass
        return facts
    facts.has_out_proj = "out_proj.weight" in facts.runs[0][0]
    try:
        module, x = twin(sub, part, heads)
        read_twin(facts, module(x), heads)
        facts.dropout = dropout_kind(sub, part, heads)
    except StudentError:
        pass
    facts.structure = structure(sub, part)
    return facts


def structure(sub: Subject, part: str) -> list[str]:
    """Facts about where the mask lives and which layers exist (what the layout checks ask)."""
    found = []
    try:
        module = _new(sub, part, 3, 4, 6, 0.1, 2, qkv_bias=True)
    except StudentError:
        return found
    if "mask" in module.params:
        found.append("mask_parameter")
    elif "mask" not in module.buffers:  # persistent=False is fine: still a buffer that moves with .to()
        found.append("mask_plain_attribute")
    if "W_query.weight" in module.params and "W_query.bias" not in module.params:
        found.append("qkv_bias_ignored")
    if part == "MultiHeadAttention":
        try:
            _new(sub, part, 3, 5, 6, 0.0, 2)
            found.append("no_divisibility_check")
        except StudentError as error:
            if error.key != "student.raised":
                raise
    return found
