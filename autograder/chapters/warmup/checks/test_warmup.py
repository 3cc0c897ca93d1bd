"""The warm-up: a softmax along the rows, then one head of scaled dot-product attention."""
import torch

from autograder.judge.contract import expect_signature
from autograder.judge.expect import check, expect_close, expect_shape
from autograder.judge.probes import randn, twin

SIZES = [(4, 3, 2), (1, 5, 5), (6, 2, 7)]
"""(tokens, d_in, d_out)"""


@check("row_softmax", points=2)
def test_row_softmax_on_two_rows(sub):
    x = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]])
    out = sub.call("row_softmax", x)
    expect_shape(out, (2, 3), "row_softmax", "the input's shape")
    expect_close(out, torch.softmax(x, dim=-1), "row_softmax")


@check("row_softmax", points=2, hidden=True)
def test_row_softmax_matches_reference(sub, ref):
    for seed, shape in enumerate([(4, 5), (1, 7), (3, 2)]):
        x = randn(*shape, seed=seed) * 5
        expect_close(sub.call("row_softmax", x), ref.call("row_softmax", x), "row_softmax")


@check("DotProductAttention", points=1, structure=True)
def test_dot_product_signature(sub):
    expect_signature(sub, "DotProductAttention")


@check("DotProductAttention", points=2)
def test_dot_product_shapes(sub):
    for T, d_in, d_out in SIZES:
        out = sub.new("DotProductAttention", d_in, d_out, wait=False)(randn(T, d_in, seed=T))
        expect_shape(out, (T, d_out), f"DotProductAttention({d_in}, {d_out})", "(tokens, d_out)")


@check("DotProductAttention", points=3, hidden=True)
def test_dot_product_matches_reference(sub, ref):
    for T, d_in, d_out in SIZES:
        theirs, ours = twin(sub, ref, "DotProductAttention", d_in, d_out)
        x = randn(T, d_in, seed=10 + T)
        expect_close(theirs(x), ours(x), f"DotProductAttention({d_in}, {d_out})")
