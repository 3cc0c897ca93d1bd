"""3.6: exercises 3.2 and 3.3, judged by the arguments they build with (never by their classes' bugs)."""
import torch

from autograder.chapters.ch03_attention.checks.precondition import standing_in
from autograder.errors import StudentError
from autograder.judge.contract import built_arguments
from autograder.judge.expect import check, expect, expect_close, expect_shape, fail
from autograder.judge.probes import BATCH, copy_weights, is_mask, randn

WRAPPER, MHA = "MultiHeadAttentionWrapper", "MultiHeadAttention"


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
    stand_in = module.info["class"] == "StandInMHA" and built_arguments(module, cls) is not None
    return module.info["class"] == cls or stand_in


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
