"""3.3: attention without trainable weights."""
import torch

from autograder.judge.expect import PRINTED, TOLERANCE, check, expect, expect_close, expect_shape
from autograder.judge.probes import INPUTS, expect_rows_sum_to_one, randn


@check("softmax_naive", points=1)
def test_softmax_naive_on_scores(sub):
    scores = INPUTS @ INPUTS[1]
    weights = sub.call("softmax_naive", scores)
    expect_shape(weights, (6,), "softmax_naive", "one weight per token")
    expect(abs(weights.sum().item() - 1.0) < TOLERANCE.atol, "fail.not_normalised", where="softmax_naive",
           total=f"{weights.sum().item():.4f}")
    expect_close(weights, torch.exp(scores) / torch.exp(scores).sum(), "softmax_naive")


@check("softmax_naive", points=1, hidden=True)
def test_softmax_naive_matches_reference(sub, ref):
    for seed, n in [(0, 1), (1, 4), (2, 11)]:
        x = randn(n, seed=seed)
        expect_close(sub.call("softmax_naive", x), ref.call("softmax_naive", x), "softmax_naive")


@check("simple_self_attention", points=2)
def test_simple_self_attention_on_sentence(sub):
    context = sub.call("simple_self_attention", INPUTS)
    expect_shape(context, (6, 3), "simple_self_attention", "(tokens, embedding size)")
    chapter = torch.tensor([0.4419, 0.6515, 0.5683])  # the context vector of "journey"
    expect_close(context[1], chapter, "simple_self_attention", key="fail.chapter_values", atol=PRINTED)


@check("simple_self_attention", points=2, hidden=True)
def test_simple_self_attention_matches_reference(sub, ref):
    for seed, (T, d) in enumerate([(6, 3), (1, 4), (9, 5), (4, 16)]):
        x = randn(T, d, seed=seed)
        expect_close(sub.call("simple_self_attention", x), ref.call("simple_self_attention", x),
                     "simple_self_attention")


@check("simple_self_attention", points=2, hidden=True)
def test_simple_self_attention_weights_sum_to_one(sub, ref):
    # With one-hot inputs the context vectors are the attention weights themselves.
    x = torch.eye(5)
    weights = sub.call("simple_self_attention", x)
    expect_shape(weights, (5, 5), "simple_self_attention", "(tokens, embedding size)")
    expect_rows_sum_to_one(weights.reshape(1, 1, 5, 5), "simple_self_attention")
    expect_close(weights, ref.call("simple_self_attention", x), "simple_self_attention")
