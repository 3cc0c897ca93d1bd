"""Dropout on an identity probe's read-out: one classifier of what train mode did to each attention weight, used by
the dropout checks (pass or fail) and by the measured facts (which kind of dropout a class applies)."""
from __future__ import annotations

from collections.abc import Callable

import torch

from autograder.judge.expect import READ, SAME_CODE, TOLERANCE, ZERO, expect, fail
from autograder.judge.probes import identity_probe, weights_from_output
from autograder.judge.subjects import ModuleHandle, Subject

Copies = tuple[torch.Tensor, torch.Tensor]


def dropped(train: torch.Tensor) -> torch.Tensor:
    """Where a train-mode weight is 0."""
    return train.abs() < ZERO


def kept(train: torch.Tensor, eval_weights: torch.Tensor, p: float, nan_agrees: bool = False) -> torch.Tensor:
    """Where a train-mode weight is its eval-mode value scaled by 1/(1-p), as dropout keeps it.

    `nan_agrees`: a NaN weight where the scaled eval weight is NaN too counts as kept.
    """
    scaled = eval_weights / (1 - p)
    found = (train - scaled).abs() < READ * (1 + scaled.abs())
    return found | (torch.isnan(train) & torch.isnan(scaled)) if nan_agrees else found


def visible(eval_weights: torch.Tensor) -> torch.Tensor:
    """Where an eval-mode weight is not 0: only there can dropping it show."""
    return eval_weights > ZERO


def copies_agree(first: torch.Tensor, second: torch.Tensor) -> bool:
    """The read-out's two copies of the weights alike in train mode: whatever dropped, dropped the weights."""
    return bool(torch.allclose(first, second, atol=TOLERANCE.atol, equal_nan=True))


def expect_attention_dropout(sub: Subject, name: str, num_heads: int | None, p: float = 0.5) -> None:
    """In train mode, each attention weight is dropped (0) or kept and scaled by 1/(1-p).

    Only the structure of the result is judged, never which weights are dropped, so any correct
    way of drawing random numbers (nn.Dropout, F.dropout, scaled_dot_product_attention) passes.
    """
    T = 6
    module, x = identity_probe(sub, name, T, num_heads, dropout=p, seed=7)
    expect_dropout_on_weights(module, x, T, num_heads or 1, p)


def expect_dropout_on_weights(module: ModuleHandle, x: torch.Tensor, T: int, heads: int, p: float) -> None:
    """`expect_attention_dropout` on a module already set up as an identity probe (`identity_state`) for input `x`."""
    copies = 4
    where = f"{module.label} (dropout={p})"
    eval_first, eval_second = weights_from_output(module(x, train=False), T, heads)
    if not copies_agree(eval_first, eval_second):  # the probe does not show this class's weights: nothing to judge
        fail("fail.dropout_unreadable", where=where)
    if bool(eval_first.isnan().any()):
        fail("fail.dropout_nan", where=where)
    eval_a = eval_first.repeat(copies, 1, 1, 1)
    out = module(x.repeat(copies, 1, 1), train=True, seed=0)  # each copy draws its own pattern
    if out.shape != (2 * copies, T, 2 * T * heads):
        fail("fail.shape_unstable", where=where)
    first, second = weights_from_output(out, T, heads)
    if not copies_agree(first, second):
        fail("fail.dropout_after_weights", where=where)
    zero, scaled = dropped(first), kept(first, eval_a, p)
    unchanged = (first - eval_a).abs() < TOLERANCE.atol
    if bool(unchanged.all()):
        fail("fail.dropout_no_effect", where=where)
    if not bool((zero | scaled).all()):
        if bool((zero | unchanged).all()):
            fail("fail.dropout_unscaled", where=where, scale=f"{1 / (1 - p):g}")
        rows = first.sum(-1)
        rows = rows[~rows.isnan()]  # a dropped -inf score is NaN: that row shows nothing
        if rows.numel() and torch.allclose(rows, torch.ones_like(rows), atol=TOLERANCE.atol):  # renormalised
            fail("fail.dropout_before_softmax", where=where)
        fail("fail.dropout_not_on_weights", where=where)
    shown = visible(eval_a)
    expect(bool((scaled & shown).any()) and bool((zero & shown).any()), "fail.dropout_no_effect", where=where)
    # Attention-weight dropout decides each (query, key) pair on its own: somewhere the same key is kept for one
    # query and dropped for another. Judged on the keys that two queries or more can see (below the diagonal in a
    # causal class); where no key is seen twice, nothing shows either way.
    columns = [zero[..., k][shown[..., k]] for k in range(T) if int(shown[..., k].sum(-1).max()) >= 2]
    independent = not columns or any(bool(column.any()) and not bool(column.all()) for column in columns)
    expect(independent, "fail.dropout_per_key", where=where)


def dropout_kind(module: ModuleHandle, x: torch.Tensor, read: Callable[[torch.Tensor], Copies | None], p: float,
                 nan_agrees: bool = False) -> list[str]:
    """Structural facts of `module`'s dropout (built with probability `p`), found on the probe input `x`, whatever
    the RNG: "weights", "none", "values", "output", "random_in_eval", "weights_not_dropout", "other", "shape".

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
    shown = visible(eval_a)

    def dropped_or_scaled(c: torch.Tensor) -> bool:
        return bool((dropped(c) | kept(c, eval_a, p, nan_agrees)).all())

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
        if copies_agree(got[0], got[1]):
            kinds.add("weights" if elementwise else "weights_not_dropout")
        elif not elementwise:
            kinds.add("other")
        else:  # dropout on the values drops (token, feature) pairs: the same for every query
            per_key = True
            for c in got:
                zero = dropped(c) & shown
                per_key &= bool(((zero == shown) | ~zero.any(-2, keepdim=True)).all())
            kinds.add("values" if per_key else "output")
    return sorted(kinds)
