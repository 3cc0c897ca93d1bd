"""What check files use: the `check` marker, failures with catalogue messages, tensor comparison."""
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


TOLERANCE = Tolerance()
"""The one tolerance for comparing a computation with the reference's (or with itself)."""


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
