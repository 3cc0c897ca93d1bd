"""3.5: causal attention with a mask and dropout."""
import torch

from autograder.judge.contract import expect_named, expect_signature
from autograder.judge.dropout import expect_attention_dropout
from autograder.judge.expect import ZERO, check, expect, expect_close, expect_shape, fail
from autograder.judge.probes import (
    BATCH,
    SEEDS,
    SHAPES,
    expect_causal,
    expect_causal_gradients,
    expect_gradients,
    expect_mask_buffer,
    expect_rows_sum_to_one,
    identity_probe,
    mask_buffer,
    randn,
    twin,
    weights_from_output,
)

NAME = "CausalAttention"


@check(NAME, points=1, structure=True)
def test_causal_signature(sub):
    expect_signature(sub, NAME)


@check(NAME, points=1, structure=True)
def test_causal_layout(sub):
    for bias in (False, True):
        module = sub.new(NAME, 3, 2, 6, 0.1, qkv_bias=bias)
        for name in ("W_query", "W_key", "W_value"):
            expect_named(module, name, "Linear", NAME, "fail.not_linear", name=name)
            expect(module.params.get(f"{name}.weight") == [2, 3], "fail.linear_shape",
                   where=f"{NAME}(3, 2, ...)", name=name, got=module.params.get(f"{name}.weight"))
            expect((f"{name}.bias" in module.params) == bias, "fail.qkv_bias", where=NAME, name=name, bias=bias)
        expect_named(module, "dropout", "Dropout", NAME, "fail.dropout_module", p=0.1)
        expect(module.info["dropout"].get("dropout") == 0.1, "fail.dropout_module", where=NAME, p=0.1)


@check(NAME, points=2, structure=True)
def test_causal_mask_is_buffer(sub):
    for context_length in (6, 11):
        expect_mask_buffer(sub.new(NAME, 3, 2, context_length, 0.0), context_length)


@check(NAME, points=3)
def test_causal_shapes(sub):
    for b, T, d_in, d_out, context_length, _ in SHAPES:
        out = sub.new(NAME, d_in, d_out, context_length, 0.0, wait=False)(randn(b, T, d_in, seed=T))
        expect_shape(out, (b, T, d_out), f"{NAME}({d_in}, {d_out}, {context_length}, 0.0) on ({b}, {T}, {d_in})",
                     "(batch, tokens, d_out)")


@check(NAME, points=3)
def test_causal_no_peeking(sub):
    for b, T, d_in, d_out, context_length, _ in SHAPES[:4]:
        expect_causal(sub.new(NAME, d_in, d_out, context_length, 0.0, wait=False), b, T, d_in, seed=T)


@check(NAME, points=1)
def test_causal_first_token_attends_to_itself(sub):
    module, x = identity_probe(sub, NAME, T=6)
    weights, _ = weights_from_output(module(x), 6, 1)
    first = weights[:, 0, 0]  # (b, T): what the first token gives each key
    if bool(first.isnan().any()):
        fail("fail.weights_nan_diagonal" if mask_buffer(module) == "diagonal" else "fail.weights_nan", where=NAME)
    if bool((first[:, 1:].abs() > ZERO).any()):  # it sees later tokens: what the mask buffer is, is measured
        fail("fail.first_token_mask_right" if mask_buffer(module) == "right" else "fail.first_token_sees_later",
             where=NAME)
    expect_close(first, torch.eye(6)[0].expand(2, 6), NAME, key="fail.first_token_weight",
                 weight=f"{float(first[0, 0]):.3g}")


@check(NAME, points=2)
def test_causal_weights_are_masked_distributions(sub):
    for T in (6, 4):
        module, x = identity_probe(sub, NAME, T=T, seed=T)
        weights, _ = weights_from_output(module(x), T, 1)
        if bool(weights.isnan().any()):
            fail("fail.weights_nan_diagonal" if mask_buffer(module) == "diagonal" else "fail.weights_nan",
                 where=NAME)
        above = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        expect(bool((weights[..., above].abs() < ZERO).all()),
               "fail.weights_above_diagonal_mask_right" if mask_buffer(module) == "right"
               else "fail.weights_above_diagonal", where=NAME)
        expect_rows_sum_to_one(weights, NAME, masked=True)


@check(NAME, points=2)
def test_causal_eval_is_deterministic(sub):
    module = sub.new(NAME, 3, 2, 6, 0.5)
    first = module(BATCH, train=False, seed=0)
    for seed in (1, 2):
        expect_close(module(BATCH, train=False, seed=seed), first, f"{NAME}(dropout=0.5) in eval mode",
                     key="fail.dropout_in_eval", equal_nan=True)


@check(NAME, points=3, hidden=True)
def test_causal_dropout_on_attention_weights(sub):
    expect_attention_dropout(sub, NAME, num_heads=None, p=0.5)


@check(NAME, points=4, hidden=True)
def test_causal_matches_reference(sub, ref):
    for b, T, d_in, d_out, context_length, _ in SHAPES:
        for bias in (False, True):
            theirs, ours = twin(sub, ref, NAME, d_in, d_out, context_length, 0.0, qkv_bias=bias)
            x = randn(b * len(SEEDS), T, d_in, seed=T)  # several random batches in one call
            expect_close(theirs(x), ours(x), f"{NAME}({d_in}, {d_out}, {context_length}) on ({b}, {T}, {d_in})")


@check(NAME, points=1, hidden=True)
def test_causal_gradients_respect_mask(sub):
    expect_causal_gradients(sub.new(NAME, 4, 3, 8, 0.0), 2, 5, 4, 3, seed=3)


@check(NAME, points=1, hidden=True)
def test_causal_gradients_reach_parameters(sub):
    module = sub.new(NAME, 3, 2, 6, 0.0, qkv_bias=True)
    expect_gradients(module, BATCH, randn(2, 6, 2, seed=4))
