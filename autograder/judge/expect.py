"""What check files use: the `check` marker, failures with catalogue messages, tensor comparison and its tolerances.

Every tolerance of the kit is named here; only the attention gate's fit keeps its own parameters (judge/gate.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch


@dataclass(frozen=True)
class Tolerance:
    """When two float tensors agree: |got - expected| <= atol + rtol * |expected| everywhere (torch.allclose)."""

    atol: float = 1e-5
    rtol: float = 1e-4

    def agree(self, got: torch.Tensor, expected: torch.Tensor) -> bool:
        """Same shape, and allclose within this tolerance, NaN where the other is NaN."""
        return got.shape == expected.shape and torch.allclose(got, expected, atol=self.atol, rtol=self.rtol,
                                                              equal_nan=True)


TOLERANCE = Tolerance()
"""A computation against the reference's: the one tolerance of the checks' comparisons (`expect_close`). Its atol
also says when a sum is 1, when a weight is unchanged, and when the two copies of a train-mode read-out agree."""
SAME_CODE = Tolerance(atol=1e-6, rtol=1e-5)
"""The same code run twice on the same input (again, or in train and in eval mode) and the two copies of an eval-mode
read-out: float32's rounding only."""
RECOMPUTED = Tolerance(atol=1e-4, rtol=1e-3)
"""A student's float32 forward pass against the trusted float64 recomputation it is matched with (explain/knobs.py)."""
ZERO = 1e-6
"""A float32 value of order 1 this close to 0 is 0: a masked or dropped weight, an output a change did not reach."""
EXACT_ZERO = 1e-7
"""An equal-QKV read-out's weight below this is masked (exp(-inf) is exactly 0; no unmasked weight there is near)."""
READ = 1e-4
"""A weight read back from a probe's output (through a layer, then divided back) is right within this: a row that
sums to 1, a kept dropout weight that is its eval value / (1 - p) (relative, plus as much absolute)."""
PRINTED = 1e-4
"""The chapter prints its numbers to 4 decimals: a result agrees with them within this."""


class CheckFailure(Exception):
    """A check found the student's work wrong; `key` names the message in the catalogue."""

    def __init__(self, key: str, **params: Any):
        super().__init__(key, params)
        self.key = key
        self.params = params


def check(*names: str, points: float, hidden: bool = False, structure: bool = False) -> pytest.MarkDecorator:
    """Mark a pytest function as a graded check of `names` (the first one gets the points).

    `structure`: the check judges how the module is built (layers, buffer, divisibility), not what
    it computes. Every other check of an attention class first makes sure the class computes
    attention at all (checks/conftest.py), so work that does nothing earns structure points only.
    """
    return pytest.mark.check(names=names, points=points, hidden=hidden, structure=structure)


def fail(key: str, **params: Any) -> None:
    raise CheckFailure(key, **params)


def expect(condition: bool, key: str, **params: Any) -> None:
    if not condition:
        raise CheckFailure(key, **params)


def expect_shape(tensor: torch.Tensor, shape: tuple[int, ...], where: str, meaning: str) -> None:
    expect(tuple(tensor.shape) == tuple(shape), "fail.shape", where=where,
           got=tuple(tensor.shape), expected=tuple(shape), meaning=meaning)


def expect_close(got: torch.Tensor, expected: torch.Tensor, where: str, key: str = "fail.values",
                 atol: float = TOLERANCE.atol, rtol: float = TOLERANCE.rtol, equal_nan: bool = False,
                 **params: Any) -> None:
    """Shapes first, then values; the message reports the largest difference.

    `equal_nan` is for comparing the student's code with itself, where NaN on both sides agrees.
    """
    expect_shape(got, tuple(expected.shape), where, str(params.get("meaning", "")))
    if not torch.is_floating_point(got):
        fail("fail.dtype", where=where, got=str(got.dtype))
    got = got.to(expected.dtype)
    if not equal_nan and got.isnan().any() and not expected.isnan().any():
        fail("fail.nan", where=where)
    if not torch.allclose(got, expected, atol=atol, rtol=rtol, equal_nan=equal_nan):
        diff = (got - expected).abs().nan_to_num(float("inf")).max().item()
        fail(key, where=where, diff=f"{diff:.3g}", **params)
