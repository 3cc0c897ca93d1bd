"""A trusted attention computation with a knob for every independent part a learner can get wrong."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from itertools import product

import torch

from autograder.chapters.ch03_attention.measure.readings import AXES, MASKS, SCALES, divisor, future

PROJECTIONS = ("W_query", "W_key", "W_value")
COMBINES = ("weights_values", "weights_t_values", "values")
"""What forward returns before merging heads: weights @ values (right), weights.T @ values, the values alone."""


@dataclass(frozen=True)
class Knobs:
    """One hypothesis about what a class computes; the defaults are the chapter's computation."""

    sources: tuple[str, str, str] = PROJECTIONS
    """The layers that make (queries, keys, values)."""
    mask: str = "causal"
    scale: str | float = "sqrt_head_dim"
    """A name from SCALES, or a fixed divisor measured on a probe."""
    scale_after: bool = False
    """The weights divided by the scale after the softmax instead of the scores before it."""
    axis: str = "keys"
    """The axis the softmax normalises."""
    combine: str = "weights_values"
    split: bool = True
    """MultiHeadAttention: heads split with view(b, T, heads, head_dim) then transpose(1, 2)."""
    one_head: bool = False
    """MultiHeadAttention: heads never split, one head of size d_out (head_dim in the scale is then d_out)."""
    merge: bool = True
    """MultiHeadAttention: the context transposed back before view(b, T, d_out)."""
    out_proj: bool = True
    """MultiHeadAttention: out_proj applied to the merged context."""

    def deviations(self) -> dict[str, object]:
        """The knobs that differ from the chapter's computation."""
        right = Knobs()
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != getattr(right, f.name)}


def alternatives(multihead: bool) -> list[tuple[str, object]]:
    """Every single deviation from the chapter's computation, as (knob, value)."""
    found: list[tuple[str, object]] = [("sources", s) for s in product(PROJECTIONS, repeat=3) if s != PROJECTIONS]
    found += [("mask", m) for m in MASKS[1:]] + [("scale", s) for s in SCALES[1:]]
    found += [("axis", a) for a in AXES[1:] if multihead or a != "heads"] + [("combine", c) for c in COMBINES[1:]]
    found += [("scale_after", True)]
    if multihead:
        found += [("split", False), ("merge", False), ("out_proj", False), ("one_head", True)]
    else:
        found = [d for d in found if d != ("scale", "sqrt_d_out")]  # the same as sqrt_head_dim with one head
    return found


DROP_PLACES = ("none", "weights", "scores", "masked_scores", "values", "context", "output")
"""Where a class in train mode may apply its dropout: nowhere, the weights (the chapter's), the scores before or
after the mask, the values before the heads are split, the context before out_proj, or the output after it."""


@dataclass(frozen=True)
class Drop:
    """A train-mode run: dropout with probability p at `place`, its mask drawn as torch draws it in a forward seeded
    with `seed` (the first random numbers the forward uses, in the order of a contiguous tensor of that shape)."""

    p: float
    seed: int
    place: str

    def apply(self, t: torch.Tensor, place: str) -> torch.Tensor:
        if place != self.place:
            return t
        generator = torch.Generator().manual_seed(self.seed)
        keep = torch.empty(t.shape, dtype=torch.float32).bernoulli_(1 - self.p, generator=generator)
        return t * keep.double() / (1 - self.p)


def attention(knobs: Knobs, weights: dict[str, torch.Tensor], x: torch.Tensor, heads: int,
              multihead: bool, drop: Drop | None = None) -> torch.Tensor:
    """What a class with these knobs returns, for weights named as in the chapter: in eval mode, or in train mode
    with dropout as `drop` says."""
    drop = drop or Drop(0.0, 0, "none")
    b, T, d_in = x.shape
    x = x.double()
    made = {n: x @ weights[f"{n}.weight"].double().T + weights.get(f"{n}.bias", torch.zeros(1)).double()
            for n in PROJECTIONS}
    queries, keys, values = (made[n] for n in knobs.sources)
    values = drop.apply(values, "values")
    d_out = queries.shape[-1]
    if knobs.one_head:
        heads = 1
    head_dim = d_out // heads

    def split(t: torch.Tensor) -> torch.Tensor:
        if knobs.split:
            return t.view(b, T, heads, head_dim).transpose(1, 2)  # (b, heads, T, head_dim)
        return t.reshape(b, heads, T, head_dim)  # view without the transpose: tokens and heads mixed

    queries, keys, values = split(queries), split(keys), split(values)
    scores = drop.apply(queries @ keys.transpose(-1, -2), "scores")  # (b, heads, T, T)
    hidden = future(knobs.mask, T)
    if knobs.mask == "zero_fill":
        scores = scores.masked_fill(hidden, 0.0)
    elif knobs.mask != "after_softmax":
        scores = scores.masked_fill(hidden, -torch.inf)
    scores = drop.apply(scores, "masked_scores")
    dim = {"keys": -1, "queries": -2, "heads": 1}[knobs.axis]
    scale = divisor(knobs.scale, head_dim, d_in, d_out, T)
    attn = torch.softmax(scores, dim=dim) / scale if knobs.scale_after else torch.softmax(scores / scale, dim=dim)
    if knobs.mask == "after_softmax":
        attn = attn.masked_fill(hidden, 0.0)
    attn = drop.apply(attn, "weights")
    if knobs.combine == "values":
        context = values
    elif knobs.combine == "weights_t_values":
        context = attn.transpose(-1, -2) @ values
    else:
        context = attn @ values  # (b, heads, T, head_dim)
    if knobs.merge:
        context = context.transpose(1, 2)  # (b, T, heads, head_dim)
    context = drop.apply(context.reshape(b, T, d_out), "context")
    if multihead and knobs.out_proj:
        bias = weights.get("out_proj.bias", torch.zeros(1)).double()
        context = context @ weights["out_proj.weight"].double().T + bias
    return drop.apply(context, "output")


def with_deviations(base: Knobs, changes: tuple[tuple[str, object], ...]) -> Knobs | None:
    """`base` with each (knob, value) applied; None when two changes set the same knob."""
    names = [c[0] for c in changes]
    if len(set(names)) != len(names):
        return None
    return replace(base, **dict(changes))


ALIASES = {
    "W_query": {"wquery", "query", "wq", "q", "queries", "qproj", "queryproj", "wqueries"},
    "W_key": {"wkey", "key", "wk", "k", "keys", "kproj", "keyproj", "wkeys"},
    "W_value": {"wvalue", "value", "wv", "v", "values", "vproj", "valueproj", "wvalues"},
    "out_proj": {"outproj", "proj", "out", "wo", "o", "outputproj", "lastlayer", "cproj", "projection", "outlayer",
                 "oproj", "output", "outputlayer", "linear", "fc"},
}
"""Names learners give the chapter's layers (lower case, without underscores or digits)."""


def layer_names(params: dict[str, list[int]]) -> dict[str, str]:
    """The chapter's layer name -> the student's, for the layers found (e.g. "W_query" -> "w_query")."""
    layers = {n.rsplit(".", 1)[0] for n in params if n.endswith(".weight") and "." in n}
    found = {}
    for chapter, aliases in ALIASES.items():
        if chapter in layers:
            found[chapter] = chapter
            continue
        near = [n for n in layers if "".join(c for c in n.lower() if c.isalpha()) in aliases]
        if len(near) == 1:
            found[chapter] = near[0]
    return found
