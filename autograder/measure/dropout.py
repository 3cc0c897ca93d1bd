"""How train mode changes an identity probe's read-out: which kind of dropout a class applies, whatever the RNG."""
from __future__ import annotations

from collections.abc import Callable

import torch

from autograder.judge.expect import READ, SAME_CODE, TOLERANCE, ZERO
from autograder.judge.subjects import ModuleHandle

Copies = tuple[torch.Tensor, torch.Tensor]


def dropout_kind(module: ModuleHandle, x: torch.Tensor, read: Callable[[torch.Tensor], Copies | None], p: float,
                 nan_agrees: bool = False) -> list[str]:
    """Structural facts of `module`'s dropout (built with probability `p`), found on the probe input `x`.

    `read(output)` gives both copies of the attention weights in a probe output (None: unreadable).
    `nan_agrees`: a NaN weight where the scaled eval weight is NaN too counts as kept.
    """
    base = module(x, seed=0)
    if not torch.allclose(module(x, seed=1), base, equal_nan=True):
        return ["random_in_eval"]
    copies = read(base)
    if copies is None:
        return []
    eval_a = copies[0]
    visible, scaled = eval_a > ZERO, eval_a / (1 - p)

    def dropped_or_scaled(c: torch.Tensor) -> bool:
        fits = (c.abs() < ZERO) | ((c - scaled).abs() < READ * (1 + scaled.abs()))
        return bool((fits | (torch.isnan(c) & torch.isnan(scaled)) if nan_agrees else fits).all())

    kinds = set()
    for seed in range(4):
        out = module(x, train=True, seed=seed)
        if out.shape != base.shape:
            kinds.add("shape")
            continue
        if torch.allclose(out, base, atol=SAME_CODE.atol, rtol=SAME_CODE.rtol, equal_nan=True):
            kinds.add("none")
            continue
        got = read(out)
        elementwise = all(dropped_or_scaled(c) for c in got)
        if torch.allclose(got[0], got[1], atol=TOLERANCE.atol, equal_nan=True):
            kinds.add("weights" if elementwise else "weights_not_dropout")
        elif not elementwise:
            kinds.add("other")
        else:  # dropout on the values drops (token, feature) pairs: the same for every query
            per_key = True
            for c in got:
                dropped = (c.abs() < ZERO) & visible
                per_key &= bool(((dropped == visible) | ~dropped.any(-2, keepdim=True)).all())
            kinds.add("values" if per_key else "output")
    return sorted(kinds)
