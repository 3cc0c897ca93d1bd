"""The words a measurement is read in: how future positions are hidden, what the scores are divided by."""
from __future__ import annotations

import torch

MASKS = ("causal", "none", "zero_fill", "after_softmax", "diagonal0", "diagonal2", "tril", "tril1")
"""How future positions are hidden: -inf above the diagonal (right), nothing at all (e.g. the result of
masked_fill thrown away), 0 instead of -inf, zeroed after the softmax, a wrong diagonal, the lower triangle
(torch.tril instead of torch.triu, without or with diagonal=1)."""
SCALES = ("sqrt_head_dim", "none", "head_dim", "sqrt_d_in", "sqrt_d_out", "sqrt_tokens", "tokens", "multiplied")
AXES = ("keys", "queries", "heads")


def divisor(scale: str | float, head_dim: int, d_in: int, d_out: int, tokens: int) -> float:
    if not isinstance(scale, str):
        return float(scale)
    if scale.startswith("power:"):  # head_dim to a measured power
        return head_dim ** float(scale.split(":")[1])
    return {"sqrt_head_dim": head_dim ** 0.5, "none": 1.0, "head_dim": float(head_dim), "sqrt_d_in": d_in ** 0.5,
            "sqrt_d_out": d_out ** 0.5, "sqrt_tokens": tokens ** 0.5, "tokens": float(tokens),
            "multiplied": head_dim ** -0.5}[scale]


def future(mask: str, T: int) -> torch.Tensor:
    """The positions a mask hides, True where hidden."""
    ones = torch.ones(T, T)
    if mask == "diagonal0":
        return torch.triu(ones, diagonal=0).bool()
    if mask == "diagonal2":
        return torch.triu(ones, diagonal=2).bool()
    if mask == "tril":
        return torch.tril(ones).bool()
    if mask == "tril1":
        return torch.tril(ones, diagonal=1).bool()
    if mask == "none":
        return torch.zeros(T, T, dtype=torch.bool)
    return torch.triu(ones, diagonal=1).bool()
