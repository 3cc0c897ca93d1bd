"""The worker's gradients (Handler.op_forward with grad_out) are exactly those of out.backward(grad_out), and
computing them imports nothing heavy: the zygote no longer preloads sympy for them (issue 21)."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from autograder.load.submission import load_submission
from autograder.sandbox.inside.execute import execute
from autograder.sandbox.inside.handler import Handler
from tests.conftest import ROOT, SUBMISSIONS


class Odd(nn.Module):
    """Outputs with NaN, infinities, an integer power and a float64 cast: where a rewrite of backward could differ."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 3, generator=torch.Generator().manual_seed(1)))

    def forward(self, x):
        y = (x @ self.w.T).double() ** 3
        y = torch.where(y > 2, y / 0.0, y)  # +inf where large
        return torch.where(y < -2, y * float("nan"), y)


def _reference() -> dict:
    namespace, failures = execute(load_submission(SUBMISSIONS / "correct_reference.py").chunk_dicts(), "grads_ref")
    assert not failures, failures
    return namespace


@pytest.mark.parametrize("build, shape, out_width", [
    (lambda ns: ns["MultiHeadAttention"](3, 4, 6, 0.0, 2), (2, 6, 3), 4),
    (lambda ns: ns["CausalAttention"](3, 2, 6, 0.0), (2, 5, 3), 2),
    (lambda ns: ns["SelfAttention_v1"](3, 2), (6, 3), 2),
    (lambda ns: Odd(), (5, 3), 4),
], ids=["mha", "causal", "v1", "nan_inf_float64"])
def test_the_handlers_gradients_are_backward_with_explicit_gradients_bit_for_bit(build, shape, out_width):
    namespace = _reference()
    torch.manual_seed(0)
    module = build(namespace)
    namespace["Built"] = lambda: module
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(2))
    grad_out = torch.randn(*shape[:-1], out_width, generator=torch.Generator().manual_seed(3))
    handler = Handler(namespace)
    reply = handler.handle({"op": "call", "args": {"id": 1, "name": "Built", "args": []}})
    assert reply["ok"], reply
    got = handler.handle({"op": "forward", "args": {"id": 1, "x": x, "grad_out": grad_out, "seed": 0,
                                                    "train": False}})
    assert got["ok"], got
    module.zero_grad(set_to_none=True)
    given = x.clone().requires_grad_(True)
    module(given).backward(grad_out)
    same = {"rtol": 0, "atol": 0, "equal_nan": True}  # bit for bit, NaN where NaN
    torch.testing.assert_close(got["result"]["x_grad"], given.grad, **same, msg="the input's gradient")
    for name, parameter in module.named_parameters():
        torch.testing.assert_close(got["result"]["grads"][name], parameter.grad, **same, msg=name)


def test_a_workers_gradients_import_no_sympy():
    code = ("import sys, torch\n"
            "from autograder.sandbox.inside.handler import Handler\n"
            "h = Handler({'L': lambda: torch.nn.Linear(3, 2)})\n"
            "assert h.handle({'op': 'call', 'args': {'id': 1, 'name': 'L', 'args': []}})['ok']\n"
            "r = h.handle({'op': 'forward', 'args': {'id': 1, 'x': torch.ones(4, 3), 'grad_out': torch.ones(4, 2),"
            " 'seed': 0, 'train': False}})\n"
            "assert r['ok'] and r['result']['x_grad'] is not None, r\n"
            "print('sympy' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False", "a gradient request imported sympy"
