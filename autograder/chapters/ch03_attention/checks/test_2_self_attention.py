"""3.4: self-attention with trainable weights, and exercise 3.1."""

from autograder.errors import StudentError
from autograder.judge.contract import expect_named, expect_signature
from autograder.judge.expect import check, expect, expect_close, expect_shape, fail
from autograder.judge.probes import INPUTS, SEEDS, expect_gradients, randn, twin

QKV = ("W_query", "W_key", "W_value")
# (T, d_in, d_out)
SIZES = [(6, 3, 2), (1, 4, 4), (5, 2, 7), (9, 8, 3)]


@check("SelfAttention_v1", points=1, structure=True)
def test_v1_signature(sub):
    expect_signature(sub, "SelfAttention_v1")


@check("SelfAttention_v1", points=1, structure=True)
def test_v1_parameters(sub):
    module = sub.new("SelfAttention_v1", 3, 2)
    for name in QKV:
        expect_named(module, name, "Parameter", "SelfAttention_v1(3, 2)", "fail.v1_param", name=name,
                     got=None, expected=[3, 2])
        expect(module.params.get(name) == [3, 2], "fail.v1_param", where="SelfAttention_v1(3, 2)",
               name=name, got=module.params.get(name), expected=[3, 2])


@check("SelfAttention_v1", points=2)
def test_v1_shapes(sub):
    for T, d_in, d_out in SIZES:
        out = sub.new("SelfAttention_v1", d_in, d_out, wait=False)(randn(T, d_in, seed=T))
        expect_shape(out, (T, d_out), f"SelfAttention_v1({d_in}, {d_out})", "(tokens, d_out)")


@check("SelfAttention_v1", points=3, hidden=True)
def test_v1_matches_reference(sub, ref):
    for T, d_in, d_out in SIZES:
        theirs, ours = twin(sub, ref, "SelfAttention_v1", d_in, d_out)
        for seed in SEEDS:
            x = randn(T, d_in, seed=seed)
            expect_close(theirs(x), ours(x), f"SelfAttention_v1({d_in}, {d_out})")


@check("SelfAttention_v1", points=1, hidden=True)
def test_v1_gradients(sub):
    module = sub.new("SelfAttention_v1", 3, 2)
    expect_gradients(module, INPUTS, randn(6, 2, seed=5))


@check("SelfAttention_v2", points=1, structure=True)
def test_v2_signature(sub):
    expect_signature(sub, "SelfAttention_v2")


@check("SelfAttention_v2", points=1, structure=True)
def test_v2_layers(sub):
    for bias in (False, True):
        module = sub.new("SelfAttention_v2", 3, 2, qkv_bias=bias)
        for name in QKV:
            expect_named(module, name, "Linear", "SelfAttention_v2", "fail.not_linear", name=name)
            expect(module.params.get(f"{name}.weight") == [2, 3], "fail.linear_shape",
                   where="SelfAttention_v2(3, 2)", name=name, got=module.params.get(f"{name}.weight"))
            expect((f"{name}.bias" in module.params) == bias, "fail.qkv_bias", where="SelfAttention_v2",
                   name=name, bias=bias)


@check("SelfAttention_v2", points=2)
def test_v2_shapes(sub):
    for T, d_in, d_out in SIZES:
        out = sub.new("SelfAttention_v2", d_in, d_out, wait=False)(randn(T, d_in, seed=T))
        expect_shape(out, (T, d_out), f"SelfAttention_v2({d_in}, {d_out})", "(tokens, d_out)")


@check("SelfAttention_v2", points=3, hidden=True)
def test_v2_matches_reference(sub, ref):
    for T, d_in, d_out in SIZES:
        for bias in (False, True):
            theirs, ours = twin(sub, ref, "SelfAttention_v2", d_in, d_out, qkv_bias=bias)
            for seed in SEEDS:
                x = randn(T, d_in, seed=seed)
                expect_close(theirs(x), ours(x), f"SelfAttention_v2({d_in}, {d_out}, qkv_bias={bias})")


@check("SelfAttention_v2", points=1, hidden=True)
def test_v2_gradients(sub):
    module = sub.new("SelfAttention_v2", 3, 2, qkv_bias=True)
    expect_gradients(module, INPUTS, randn(6, 2, seed=5))


def _pair(sub, d_in, d_out):
    """The student's v1 and v2, or the kit's stand-ins where the student's are built otherwise than the
    chapter's (exercise 3.1 is judged alone: its points never depend on the classes' own bugs)."""
    try:
        v1, v2 = sub.new("SelfAttention_v1", d_in, d_out), sub.new("SelfAttention_v2", d_in, d_out)
        if all(v1.params.get(n) == [d_in, d_out] and v2.params.get(f"{n}.weight") == [d_out, d_in] for n in QKV):
            return v1, v2
    except StudentError:
        pass
    return (sub.new("SelfAttention_v1", d_in, d_out, stand_in=("SelfAttention_v1",)),
            sub.new("SelfAttention_v2", d_in, d_out, stand_in=("SelfAttention_v2",)))


def _expect_loaded(sub, d_in, d_out, seed):
    v1, v2 = _pair(sub, d_in, d_out)
    v2.load({k: randn(*shape, seed=seed + i) for i, (k, shape) in enumerate(sorted(v2.params.items()))}, wait=False)
    sub.call("load_v2_weights_into_v1", v1, v2)
    after, source = v1.state(), v2.state()
    for name in QKV:
        if name not in after or f"{name}.weight" not in source:
            fail("fail.param_names", where="SelfAttention_v1", missing=name, extra="-")
        expect_close(after[name], source[f"{name}.weight"].T, f"load_v2_weights_into_v1: {name}",
                     key="fail.not_transposed", meaning="(d_in, d_out)", name=name)


@check("load_v2_weights_into_v1", "SelfAttention_v1", "SelfAttention_v2", points=2)
def test_load_weights_chapter_sizes(sub):
    _expect_loaded(sub, 3, 2, seed=0)


@check("load_v2_weights_into_v1", "SelfAttention_v1", "SelfAttention_v2", points=3, hidden=True)
def test_load_weights_other_sizes(sub):
    for seed, (d_in, d_out) in enumerate([(4, 4), (2, 5), (8, 3)]):
        _expect_loaded(sub, d_in, d_out, seed=10 * seed)
