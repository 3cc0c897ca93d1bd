"""3.6: multi-head attention, stacked (wrapper) and with weight splits (the exercises: test_5_exercises.py)."""
import torch

from autograder.chapters.ch03_attention.checks.precondition import build, standing_in
from autograder.errors import StudentError
from autograder.judge.binding import role_of
from autograder.judge.contract import expect_named, expect_signature
from autograder.judge.dropout import expect_attention_dropout
from autograder.judge.expect import SAME_CODE, TOLERANCE, check, expect, expect_close, expect_shape, fail
from autograder.judge.gate import scale_message
from autograder.judge.probes import (
    BATCH,
    SEEDS,
    SHAPES,
    copy_weights,
    expect_causal,
    expect_causal_gradients,
    expect_gradients,
    expect_mask_buffer,
    randn,
    twin,
    weights_of,
)

WRAPPER, MHA = "MultiHeadAttentionWrapper", "MultiHeadAttention"


def head_path(module, head):
    """Where the wrapper keeps head number `head`: its `head`-th CausalAttention submodule, whatever the wrapper calls
    it (the name `heads` is the layout check's business), else heads.<head>."""
    found = [path for path, kind in module.info["modules"].items() if kind == "CausalAttention"]
    return found[head] if head < len(found) else f"heads.{head}"


def head_param(module, head, layer, kind="weight"):
    """The shape of head `head`'s `layer` weight (or bias), its layer matched by role (W_Q for W_query): a head's
    layer names are CausalAttention's, charged to its layout check."""
    prefix = f"{head_path(module, head)}."
    found = [shape for name, shape in module.params.items() if name.startswith(prefix) and name.endswith(f".{kind}")
             and role_of(name[len(prefix):].split(".")[0]) == layer]
    return found[0] if len(found) == 1 else None


def head_outputs(module, x, num_heads):
    """Each head of the student's wrapper run on its own, in eval mode."""
    return [module.child(head_path(module, i))(x) for i in range(num_heads)]


@check(WRAPPER, points=1, structure=True)
def test_wrapper_signature(sub):
    expect_signature(sub, WRAPPER, standing_in(sub, WRAPPER))


@check(WRAPPER, points=1, structure=True)
def test_wrapper_layout(sub):
    for num_heads in (1, 3):
        module = build(sub, WRAPPER, 3, 2, 6, 0.0, num_heads)
        where = f"{WRAPPER}(3, 2, 6, 0.0, num_heads={num_heads})"
        expect(module.info["modules"].get("heads") == "ModuleList", "fail.heads_modulelist", where=where)
        for i in range(num_heads):
            for name in ("W_query", "W_key", "W_value"):
                expect(head_param(module, i, name) == [2, 3], "fail.head_params",
                       where=where, head=i)
        expect(f"heads.{num_heads}" not in module.info["modules"], "fail.head_count", where=where,
               expected=num_heads)


@check(WRAPPER, points=2)
def test_wrapper_shapes(sub):
    for b, T, d_in, d_out, context_length, num_heads in SHAPES:
        out = build(sub, WRAPPER, d_in, d_out, context_length, 0.0, num_heads)(randn(b, T, d_in, seed=T))
        expect_shape(out, (b, T, num_heads * d_out), f"{WRAPPER}({d_in}, {d_out}, {context_length}, 0.0, "
                     f"num_heads={num_heads}) on ({b}, {T}, {d_in})", "(batch, tokens, num_heads * d_out)")


@check(WRAPPER, points=2)
def test_wrapper_concatenates_heads_in_order(sub):
    for b, T, d_in, d_out, context_length, num_heads in SHAPES[:4]:
        module = build(sub, WRAPPER, d_in, d_out, context_length, 0.0, num_heads)
        x = randn(b, T, d_in, seed=T)
        expected = torch.cat(head_outputs(module, x, num_heads), dim=-1)
        expect_close(module(x), expected, f"{WRAPPER}(num_heads={num_heads})", key="fail.wrapper_concat",
                     equal_nan=True)


@check(WRAPPER, points=1)
def test_wrapper_no_peeking(sub):
    expect_causal(build(sub, WRAPPER, 3, 2, 6, 0.0, 2), 2, 6, 3, seed=1)


@check(WRAPPER, points=1, hidden=True)
def test_wrapper_heads_are_independent(sub):
    module = build(sub, WRAPPER, 4, 3, 6, 0.0, 3)
    state = {k: randn(*module.params[k], seed=i) for i, k in enumerate(sorted(weights_of(module)))}
    module.load(state, wait=False)
    outs = head_outputs(module, randn(2, 5, 4, seed=9), 3)
    expect(not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[1], outs[2]),
           "fail.heads_shared", where=WRAPPER)


@check(WRAPPER, "CausalAttention", points=2, hidden=True)
def test_wrapper_matches_reference(sub, ref, note):
    causal_ok = not standing_in(sub, WRAPPER)  # stand-in heads: the wrapper is judged by them
    try:
        theirs, ours = twin(sub, ref, "CausalAttention", 3, 2, 6, 0.0)
        expect_close(theirs(BATCH), ours(BATCH), "CausalAttention")
    except Exception:  # noqa: BLE001 - any failure here belongs to CausalAttention's checks
        causal_ok = False
    for b, T, d_in, d_out, context_length, num_heads in SHAPES[:4]:
        theirs = build(sub, WRAPPER, d_in, d_out, context_length, 0.0, num_heads)
        x = randn(b * len(SEEDS), T, d_in, seed=T)  # several random batches in one call
        if causal_ok:
            ours = ref.new(WRAPPER, d_in, d_out, context_length, 0.0, num_heads)
            copy_weights(ours, theirs)
            expected = ours(x)
        else:
            expected = torch.cat(head_outputs(theirs, x, num_heads), dim=-1)
        expect_close(theirs(x), expected, f"{WRAPPER}(num_heads={num_heads})", equal_nan=not causal_ok)
    if not causal_ok:
        note("note.wrapper_own_heads")


@check(WRAPPER, points=2, hidden=True)
def test_wrapper_heads_drop_out_at_its_rate(sub):
    """The heads get the wrapper's dropout and qkv_bias (not the one for the other): with qkv_bias=False no head
    has a bias, each head's dropout module has the wrapper's rate, and in train mode the heads drop something.
    Where in a head dropout acts is CausalAttention's own check, not the wrapper's."""
    T, heads, p = 6, 2, 0.5
    module = build(sub, WRAPPER, 3, 2, T, p, heads)
    where = f"{WRAPPER}(3, 2, {T}, dropout={p}, num_heads={heads})"
    biased = sorted(k for k in module.params if k.startswith("heads.") and k.endswith(".bias"))
    expect(not biased, "fail.wrapper_qkv_bias_false", where=where, names=", ".join(biased))
    rates = {k: v for k, v in module.info["dropout"].items() if k.startswith("heads.")}
    expect(all(v == p for v in rates.values()), "fail.wrapper_dropout_rate", where=where, p=p,
           got=", ".join(f"{k}: p={v:g}" for k, v in sorted(rates.items())))
    if standing_in(sub, WRAPPER):  # the kit's heads keep the rate they are given, but do not drop out
        return
    x = randn(4, T, 3, seed=13)
    head = sub.new("CausalAttention", 3, 2, T, p)
    if torch.allclose(head(x, train=True, seed=0), head(x, train=False), atol=1e-6):
        return  # the student's CausalAttention drops nothing even alone: that is its check's loss, not the wrapper's
    train = module(x, train=True, seed=0)
    same = torch.allclose(train, module(x, train=False), atol=SAME_CODE.atol, rtol=SAME_CODE.rtol)
    expect(not same, "fail.wrapper_no_dropout", where=where, p=p)


@check(WRAPPER, points=1, hidden=True, structure=True)
def test_wrapper_passes_qkv_bias(sub):
    module = build(sub, WRAPPER, 3, 2, 6, 0.0, 2, qkv_bias=True)
    expect(head_param(module, 1, "W_query", "bias") is not None, "fail.wrapper_qkv_bias", where=WRAPPER)


@check(WRAPPER, points=1, hidden=True)
def test_wrapper_gradients_reach_parameters(sub):
    expect_gradients(build(sub, WRAPPER, 3, 2, 6, 0.0, 2), BATCH, randn(2, 6, 4, seed=2))


@check(MHA, points=1, structure=True)
def test_mha_signature(sub):
    expect_signature(sub, MHA)


@check(MHA, points=1, structure=True)
def test_mha_layout(sub):
    module = sub.new(MHA, 3, 4, 6, 0.1, 2)
    where = f"{MHA}(3, 4, 6, 0.1, num_heads=2)"
    for name in ("W_query", "W_key", "W_value"):
        expect_named(module, name, "Linear", where, "fail.not_linear", name=name)
    expect_named(module, "out_proj", "Linear", where, "fail.out_proj_layout")
    for name in ("W_query", "W_key", "W_value"):
        expect(module.params.get(f"{name}.weight") == [4, 3], "fail.linear_shape", where=where, name=name,
               got=module.params.get(f"{name}.weight"))
        expect(f"{name}.bias" not in module.params, "fail.qkv_bias", where=where, name=name, bias=False)
    expect(module.params.get("out_proj.weight") == [4, 4] and "out_proj.bias" in module.params,
           "fail.out_proj_layout", where=where)
    expect_named(module, "dropout", "Dropout", where, "fail.dropout_module", p=0.1)
    expect(module.info["dropout"].get("dropout") == 0.1, "fail.dropout_module", where=where, p=0.1)


@check(MHA, points=1, structure=True)
def test_mha_mask_is_buffer(sub):
    expect_mask_buffer(sub.new(MHA, 3, 4, 7, 0.0, 2), 7)


@check(MHA, points=3)
def test_mha_shapes(sub):
    for b, T, d_in, d_out, context_length, num_heads in SHAPES:
        d_out = d_out * num_heads  # divisible by construction
        out = sub.new(MHA, d_in, d_out, context_length, 0.0, num_heads, wait=False)(randn(b, T, d_in, seed=T))
        expect_shape(out, (b, T, d_out), f"{MHA}({d_in}, {d_out}, {context_length}, 0.0, num_heads={num_heads}) "
                     f"on ({b}, {T}, {d_in})", "(batch, tokens, d_out)")


@check(MHA, points=1, structure=True)
def test_mha_rejects_indivisible_d_out(sub):
    try:  # refusing is credit only from a constructor that accepts valid arguments
        sub.new(MHA, 3, 4, 6, 0.0, 2)
    except StudentError as error:
        if error.key == "student.not_implemented":
            raise  # an unfinished stub is told so, not that it refuses valid arguments
        fail("fail.valid_refused", where=f"{MHA}(3, 4, 6, 0.0, num_heads=2)", error=error.params.get("message", ""))
    for d_out, num_heads in ((5, 2), (6, 4)):
        try:
            sub.new(MHA, 3, d_out, 6, 0.0, num_heads)
        except StudentError as error:
            if error.key != "student.raised":
                raise
        else:
            fail("fail.indivisible_accepted", where=f"{MHA}(3, {d_out}, 6, 0.0, num_heads={num_heads})")


@check(MHA, points=3)
def test_mha_no_peeking(sub):
    for b, T, d_in, d_out, context_length, num_heads in SHAPES[:4]:
        module = sub.new(MHA, d_in, d_out * num_heads, context_length, 0.0, num_heads, wait=False)
        expect_causal(module, b, T, d_in, seed=T)


@check(MHA, points=1)
def test_mha_eval_is_deterministic(sub):
    module = sub.new(MHA, 3, 4, 6, 0.5, 2)
    first = module(BATCH, train=False, seed=0)
    expect_close(module(BATCH, train=False, seed=1), first, f"{MHA}(dropout=0.5) in eval mode",
                 key="fail.dropout_in_eval", equal_nan=True)


@check(MHA, points=5, hidden=True)
def test_mha_matches_reference(sub, ref):
    for num_heads in (1, 2, 4, 8):
        for b, T, d_in in ((2, 6, 3), (1, 3, 5), (3, 9, 8)):
            d_out = 2 * num_heads
            for bias in (False, True):
                theirs, ours = twin(sub, ref, MHA, d_in, d_out, 10, 0.0, num_heads, qkv_bias=bias)
                x = randn(b * len(SEEDS), T, d_in, seed=T)  # several random batches in one call
                expect_close(theirs(x), ours(x), f"{MHA}({d_in}, {d_out}, 10, 0.0, num_heads={num_heads}) "
                             f"on ({b}, {T}, {d_in})")


@check(MHA, points=2, hidden=True)
def test_mha_scales_by_head_dim(sub, ref):
    # Large query/key weights make the softmax sensitive to the scaling factor.
    theirs, ours = twin(sub, ref, MHA, 8, 8, 6, 0.0, 4)
    state = {k: v * (4.0 if "W_query" in k or "W_key" in k else 1.0) for k, v in weights_of(ours).items()}
    theirs.load(state, wait=False)
    ours.load(state)
    x = randn(2, 6, 8, seed=11)
    got, expected = theirs(x), ours(x)
    key, params = "fail.large_scores", {}
    if got.shape == expected.shape and not torch.allclose(got, expected, atol=TOLERANCE.atol, rtol=TOLERANCE.rtol):
        key, params = scale_message(sub, MHA, sub.probe_seed)  # what the message may say of the scale, measured
    expect_close(got, expected, f"{MHA}(8, 8, 6, 0.0, num_heads=4)", key=key, **params)


@check(MHA, points=2, hidden=True)
def test_mha_applies_out_proj(sub, ref):
    theirs, ours = twin(sub, ref, MHA, 3, 4, 6, 0.0, 2)
    bias = torch.tensor([0.5, -1.0, 2.0, 0.25])
    theirs.load({"out_proj.weight": torch.zeros(4, 4), "out_proj.bias": bias}, wait=False)
    expect_close(theirs(BATCH), bias.expand(2, 6, 4), f"{MHA} with out_proj set to a constant",
                 key="fail.out_proj_unused")


@check(MHA, points=2, hidden=True)
def test_mha_dropout_on_attention_weights(sub):
    expect_attention_dropout(sub, MHA, num_heads=2, p=0.5)


@check(MHA, points=1, hidden=True)
def test_mha_gradients(sub):
    d_in, d_out = 3, 4
    module = sub.new(MHA, d_in, d_out, 6, 0.0, 2, qkv_bias=True)
    # qkv_bias=True reaches the layers that project the input ((k * d_out, d_in) weights), whatever their names
    projections = [name[:-len(".weight")] for name, shape in module.params.items()
                   if name.endswith(".weight") and shape[1:] == [d_in] and shape[0] % d_out == 0]
    expect(any(f"{name}.bias" in module.params for name in projections), "fail.qkv_bias", where=MHA,
           name=projections[0] if projections else "W_query", bias=True)
    expect_gradients(module, BATCH, randn(2, 6, 4, seed=6))


@check(MHA, points=1, hidden=True)
def test_mha_gradients_respect_mask(sub):
    expect_causal_gradients(sub.new(MHA, 4, 6, 8, 0.0, 3), 2, 5, 4, 6, seed=8)
