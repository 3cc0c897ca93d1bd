"""The equal-QKV probe: queries, keys and values alike, so the output shows a class's mask, softmax axis, scale."""
from __future__ import annotations

import math
from typing import Any

import torch

from autograder.chapters.ch03_attention.measure.readings import MASKS, SCALES, divisor, future
from autograder.judge.expect import EXACT_ZERO, READ, SAME_CODE, ZERO
from autograder.judge.probes import identity_state, one_hot, weights_from_output
from autograder.judge.subjects import ModuleHandle, Subject

QKV_D, QKV_T, QKV_A = 7, 5, 1.2
"""One-hot tokens (d_in = 7, 5 tokens) and W_query = W_key = W_value = 1.2 * [I; I] per head."""


def equal_qkv_probe(sub: Subject, part: str, heads: int, p: float = 0.0) -> tuple[ModuleHandle, torch.Tensor]:
    """Queries, keys and values all equal, so whichever layer feeds which, the output is the weights, twice.

    Layers are found by shape, not name: (d_out, d_in) ones are the projections, (d_out, d_out) is out_proj.
    """
    d_out = 2 * QKV_D * heads
    module = sub.new(part, QKV_D, d_out, QKV_T, p, *((heads,) if part == "MultiHeadAttention" else ()))

    def by_shape(_: str, shape: list[int]) -> tuple[str, None]:
        return ("out_proj" if shape == [d_out, d_out] else "W_value" if shape == [d_out, QKV_D] else ""), None

    module.load(identity_state(module.params.items(), QKV_D, heads, role=by_shape, scale=QKV_A))
    return module, one_hot(QKV_T, QKV_D)


def equal_qkv_weights(out: torch.Tensor, heads: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Both copies of the attention weights (b, heads, T, T) in an equal-QKV probe output, or None."""
    if tuple(out.shape) != (2, QKV_T, 2 * QKV_D * heads):
        return None
    first, second = weights_from_output(out.double(), QKV_T, heads, QKV_D)
    return first / QKV_A, second / QKV_A


def _close(a: torch.Tensor, b: float | torch.Tensor, tol: float = READ) -> bool:
    return bool(torch.allclose(a, torch.as_tensor(b, dtype=a.dtype).expand_as(a), atol=tol, equal_nan=True))


def masks_shown(A: torch.Tensor) -> list[str]:
    """The masks (readings.MASKS) that hide exactly the weights of `A` (heads, T, T) read as 0 (or NaN). None fits
    where the wiring garbles this probe (heads laid out otherwise than its identity layers assume): then `A` is no
    read-out of the class's weights, and tells nothing about them."""
    zero = (A.abs() < EXACT_ZERO) | torch.isnan(A)
    masks = [m for m in MASKS if m != "zero_fill" and bool((zero == future(m, QKV_T)).all())]
    return masks + (["zero_fill"] if "none" in masks else [])  # 0 for the future is 0 like every other score here


def read_pattern(out: torch.Tensor, heads: int) -> dict[str, Any]:
    """The Facts fields (masks, axes, readable, scale, scale_found) an equal-QKV probe output shows; {} if none."""
    copies = equal_qkv_weights(out, heads)
    if copies is None or not torch.allclose(*copies, atol=SAME_CODE.atol, rtol=SAME_CODE.rtol, equal_nan=True):
        return {}
    A = copies[0][0]  # (heads, T, T)
    nan_rows = torch.isnan(A).all(-1)
    if torch.isnan(A[~nan_rows]).any() or (A[~nan_rows] < -ZERO).any():
        return {}
    masks = masks_shown(A)
    sums = {"keys": A.nansum(-1)[~nan_rows], "queries": A.nansum(-2), "heads": A.nansum(0)}
    axes = [a for a, s in sums.items() if _close(s, 1.0) and (heads > 1 or a != "heads")]
    if not axes and "causal" in masks:  # zeroed after the softmax: the rest no longer sums to 1
        axes, masks = ["keys", "queries"], ["after_softmax"]
    if not masks or not axes:
        return {}  # a pattern no mask makes: the wiring garbles this probe, so it tells nothing
    found: dict[str, Any] = {"masks": masks, "axes": axes, "readable": True}
    if "heads" in axes and len(axes) == 1:
        return found  # every head alike: the scale cannot be read
    along = A if "keys" in axes or "queries" not in axes else A.transpose(-1, -2)
    ratios = [math.log(along[h, i, i].item() / along[h, i, j].item()) for h in range(heads)
              for i in range(QKV_T) for j in range(QKV_T)
              if j != i and along[h, i, i].item() > 1e-12 and along[h, i, j].item() > 1e-12]
    ratios = [r for r in ratios if abs(r) > 1e-9]
    if not ratios:
        return found
    found["scale_found"] = measured = 2 * QKV_A ** 2 / sorted(ratios)[len(ratios) // 2]
    head_dim, d_out = 2 * QKV_D, 2 * QKV_D * heads
    for name in SCALES:
        if abs(divisor(name, head_dim, QKV_D, d_out, QKV_T) / measured - 1) < 0.01:
            found["scale"] = name
            return found
    if measured > 0:
        found["scale"] = f"power:{math.log(measured) / math.log(head_dim):.4f}"
    return found

