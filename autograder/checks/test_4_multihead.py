"""3.6: multi-head attention, stacked (wrapper) and with weight splits; exercises 3.2 and 3.3."""
import torch

from autograder.checking import check, expect, expect_close, expect_shape, fail
from autograder.checks.contract import built_arguments, expect_named
from autograder.checks.precondition import build, standing_in
from autograder.checks.probes import (
    BATCH, SEEDS, SHAPES, copy_weights, expect_attention_dropout, expect_causal, expect_causal_gradients,
    expect_gradients, expect_mask_buffer, identity_probe, is_mask, randn, twin, weights_of,
)
from autograder.subject import StudentError

WRAPPER, MHA = "MultiHeadAttentionWrapper", "MultiHeadAttention"


def head_outputs(module, x, num_heads):
    """Each head of the student's wrapper run on its own, in eval mode."""
    return [module.child(f"heads.{i}")(x) for i in range(num_heads)]


@check(WRAPPER, points=2, structure=True)
def test_wrapper_layout(sub):
    for num_heads in (1, 3):
        module = build(sub, WRAPPER, 3, 2, 6, 0.0, num_heads)
        where = f"{WRAPPER}(3, 2, 6, 0.0, num_heads={num_heads})"
        expect(module.info["modules"].get("heads") == "ModuleList", "fail.heads_modulelist", where=where)
        for i in range(num_heads):
            for name in ("W_query", "W_key", "W_value"):
                expect(module.params.get(f"heads.{i}.{name}.weight") == [2, 3], "fail.head_params",
                       where=where, head=i)
        expect(f"heads.{num_heads}" not in module.info["modules"], "fail.head_count", where=where,
               expected=num_heads)


@check(WRAPPER, points=2)
def test_wrapper_shapes(sub):
    for b, T, d_in, d_out, context_length, num_heads in SHAPES:
        out = build(sub, WRAPPER, d_in, d_out, context_length, 0.0, num_heads)(randn(b, T, d_in, seed=T))
        expect_shape(out, (b, T, num_heads * d_out), f"{WRAPPER}({d_in}, {d_out}, {context_length}, 0.0, "
                     f"num_heads={num_heads}) on ({b}, {T}, {d_in})", "(batch, tokens, num_heads * d_out)")


@check(WRAPPER, points=3)
def test_wrapper_concatenates_heads_in_order(sub):
    for b, T, d_in, d_out, context_length, num_heads in SHAPES[:4]:
        module = build(sub, WRAPPER, d_in, d_out, context_length, 0.0, num_heads)
        x = randn(b, T, d_in, seed=T)
        expected = torch.cat(head_outputs(module, x, num_heads), dim=-1)
        expect_close(module(x), expected, f"{WRAPPER}(num_heads={num_heads})", key="fail.wrapper_concat", equal_nan=True)


@check(WRAPPER, points=1)
def test_wrapper_no_peeking(sub):
    expect_causal(build(sub, WRAPPER, 3, 2, 6, 0.0, 2), 2, 6, 3, seed=1)


@check(WRAPPER, points=2, hidden=True)
def test_wrapper_heads_are_independent(sub):
    module = build(sub, WRAPPER, 4, 3, 6, 0.0, 3)
    state = {k: randn(*module.params[k], seed=i) for i, k in enumerate(sorted(weights_of(module)))}
    module.load(state)
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


@check(WRAPPER, points=1, hidden=True, structure=True)
def test_wrapper_passes_qkv_bias(sub):
    module = build(sub, WRAPPER, 3, 2, 6, 0.0, 2, qkv_bias=True)
    expect("heads.1.W_query.bias" in module.params, "fail.wrapper_qkv_bias", where=WRAPPER)


@check(WRAPPER, points=1, hidden=True)
def test_wrapper_gradients_reach_parameters(sub):
    expect_gradients(build(sub, WRAPPER, 3, 2, 6, 0.0, 2), BATCH, randn(2, 6, 4, seed=2))


def _exercise(sub, name, cls):
    """What exercise `name` returns, and the stub-named arguments it built `cls` with (None if it did not).

    The exercises are judged by these arguments where they can be: their points never depend on
    the bugs of the classes they build (with stand-in heads where CausalAttention is wrong).
    """
    def make():
        try:
            return sub.call(name, stand_in=standing_in(sub, cls), record=(cls,))
        except StudentError:
            if cls != MHA:
                raise
            # The student's MultiHeadAttention cannot be built: the exercise builds the kit's stand-in.
            return sub.call(name, stand_in=(cls,), record=(cls,))

    module = sub.cached(name, make)
    if module is None:
        fail("fail.not_a_module", where=f"{name}()")
    return module, built_arguments(module, cls)


def _is_a(module, cls) -> bool:
    """`module` is a `cls`, or the kit's stand-in that was built in its place."""
    return module.info["class"] == cls or (module.info["class"] == "StandInMHA" and built_arguments(module, cls) is not None)


@check("exercise_3_2", points=2)
def test_exercise_3_2_output_dimension(sub):
    module, arguments = _exercise(sub, "exercise_3_2", WRAPPER)
    if arguments is None:  # built some other way: judge what it computes
        expect_shape(module(BATCH), (2, 6, 2), "exercise_3_2() on the example batch", "(batch, tokens, 2)")
        return
    d_out, heads = arguments["d_out"], arguments["num_heads"]
    width = d_out * heads if isinstance(d_out, int) and isinstance(heads, int) else None
    expect(width == 2 and arguments["d_in"] == 3, "fail.exercise_3_2_arguments", where="exercise_3_2()",
           d_in=arguments["d_in"], d_out=d_out, num_heads=heads)


@check("exercise_3_2", points=2, hidden=True)
def test_exercise_3_2_is_two_one_dimensional_heads(sub):
    module, arguments = _exercise(sub, "exercise_3_2", WRAPPER)
    expect(_is_a(module, WRAPPER), "fail.exercise_class", where="exercise_3_2()", expected=WRAPPER)
    if arguments is not None:
        expect(arguments["num_heads"] == 2 and arguments["d_out"] == 1, "fail.exercise_3_2_heads",
               where="exercise_3_2()")
        return
    for i in range(2):
        expect(module.params.get(f"heads.{i}.W_query.weight") == [1, 3], "fail.exercise_3_2_heads",
               where="exercise_3_2()")
    expect("heads.2" not in module.info["modules"], "fail.exercise_3_2_heads", where="exercise_3_2()")


@check(MHA, points=2, structure=True)
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
        out = sub.new(MHA, d_in, d_out, context_length, 0.0, num_heads)(randn(b, T, d_in, seed=T))
        expect_shape(out, (b, T, d_out), f"{MHA}({d_in}, {d_out}, {context_length}, 0.0, num_heads={num_heads}) "
                     f"on ({b}, {T}, {d_in})", "(batch, tokens, d_out)")


@check(MHA, points=1, structure=True)
def test_mha_rejects_indivisible_d_out(sub):
    try:  # refusing is credit only from a constructor that accepts valid arguments
        sub.new(MHA, 3, 4, 6, 0.0, 2)
    except StudentError as error:
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
        expect_causal(sub.new(MHA, d_in, d_out * num_heads, context_length, 0.0, num_heads), b, T, d_in, seed=T)


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
    theirs.load(state)
    ours.load(state)
    x = randn(2, 6, 8, seed=11)
    expect_close(theirs(x), ours(x), f"{MHA}(8, 8, 6, 0.0, num_heads=4)", key="fail.head_dim_scaling")


@check(MHA, points=2, hidden=True)
def test_mha_applies_out_proj(sub, ref):
    theirs, ours = twin(sub, ref, MHA, 3, 4, 6, 0.0, 2)
    bias = torch.tensor([0.5, -1.0, 2.0, 0.25])
    theirs.load({"out_proj.weight": torch.zeros(4, 4), "out_proj.bias": bias})
    expect_close(theirs(BATCH), bias.expand(2, 6, 4), f"{MHA} with out_proj set to a constant",
                 key="fail.out_proj_unused")


@check(MHA, points=2, hidden=True)
def test_mha_dropout_on_attention_weights(sub):
    expect_attention_dropout(sub, MHA, num_heads=2, p=0.5)


@check(MHA, points=1, hidden=True)
def test_mha_gradients(sub):
    module = sub.new(MHA, 3, 4, 6, 0.0, 2, qkv_bias=True)
    expect("W_query.bias" in module.params, "fail.qkv_bias", where=MHA, name="W_query", bias=True)
    expect_gradients(module, BATCH, randn(2, 6, 4, seed=6))


@check(MHA, points=1, hidden=True)
def test_mha_gradients_respect_mask(sub):
    expect_causal_gradients(sub.new(MHA, 4, 6, 8, 0.0, 3), 2, 5, 4, 6, seed=8)


def _mha_parameters(d_in: int, d_out: int, qkv_bias: bool) -> int:
    """MultiHeadAttention's parameter count in the chapter's layout."""
    return 3 * d_in * d_out + (3 * d_out if qkv_bias else 0) + d_out * d_out + d_out


@check("exercise_3_3", points=2)
def test_exercise_3_3_parameter_count(sub):
    module, arguments = _exercise(sub, "exercise_3_3", MHA)
    if arguments is not None and all(isinstance(arguments[k], int) for k in ("d_in", "d_out")):
        count = _mha_parameters(arguments["d_in"], arguments["d_out"], arguments["qkv_bias"] is True)
    else:
        count = sum(torch.Size(shape).numel() for name, shape in module.params.items() if not is_mask(name))
    expect(count == 2_360_064, "fail.exercise_3_3_count", where="exercise_3_3()", got=f"{count:,}")


@check("exercise_3_3", points=3, hidden=True)
def test_exercise_3_3_is_gpt2_sized(sub):
    module, arguments = _exercise(sub, "exercise_3_3", MHA)
    expect(_is_a(module, MHA), "fail.exercise_class", where="exercise_3_3()", expected=MHA)
    if arguments is not None:
        expect(arguments["context_length"] == 1024, "fail.exercise_3_3_context", where="exercise_3_3()")
        expect(arguments["num_heads"] == 12, "fail.exercise_3_3_heads", where="exercise_3_3()")
        return
    expect(module.buffers.get("mask") == [1024, 1024], "fail.exercise_3_3_context", where="exercise_3_3()")
    # Twelve heads: the student's own class, built with 12 heads, computes the same thing.
    twelve = sub.new(MHA, 768, 768, 1024, 0.0, 12)
    copy_weights(module, twelve)
    x = randn(1, 5, 768, seed=12)
    expect_close(module(x), twelve(x), "exercise_3_3()", key="fail.exercise_3_3_heads", equal_nan=True)
