"""Before a behaviour check: the class computes attention; a class built on another is judged alone."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from autograder.errors import StudentError
from autograder.judge.contract import unmatched_signature
from autograder.judge.expect import SAME_CODE, CheckFailure, fail
from autograder.judge.gate import expect_attention_family, spot_gate
from autograder.judge.probes import expect_causal, expect_gradients, randn

if TYPE_CHECKING:  # types only: the checks run on the judge's helpers alone
    from autograder.judge.subjects import ModuleHandle, Subject

# A small construction per attention class: (constructor arguments, input shape, causal)
ATTENTION: dict[str, tuple[tuple, tuple[int, ...], bool]] = {
    "SelfAttention_v1": ((3, 2), (6, 3), False),
    "SelfAttention_v2": ((3, 2), (6, 3), False),
    "CausalAttention": ((3, 2, 6, 0.0), (2, 6, 3), True),
    "MultiHeadAttentionWrapper": ((3, 2, 6, 0.0, 2), (2, 6, 3), True),
    "MultiHeadAttention": ((3, 4, 6, 0.0, 2), (2, 6, 3), True),
}
BUILDS_ON = {"MultiHeadAttentionWrapper": "CausalAttention"}
"""A graded class -> the graded class it constructs inside itself."""


def expect_attention(sub: Subject, name: str) -> None:
    """`name` computes attention: each output mixes several tokens, and depends on the inputs and
    on the query and key weights. Zeros, a constant, the input or the values passed through fail.

    Judged once per submission and class; every behaviour check of the class starts with it, and some (chosen
    from the secret seed) look again on a fresh module and probe (judge/gate.py, spot_gate).
    """
    verdict = sub.cached(f"attention:{name}", lambda: _attention_verdict(sub, name))
    if verdict is not None:
        kind, key, params = verdict
        raise (CheckFailure if kind == "fail" else StudentError)(key, **params)
    spot_gate(sub, name)


def _attention_verdict(sub: Subject, name: str) -> tuple[str, str, dict] | None:
    try:
        _expect_attention(sub, name)
    except CheckFailure as failure:
        return "fail", failure.key, failure.params
    except StudentError as error:
        return "student", error.key, error.params
    return None


def _expect_attention(sub: Subject, name: str) -> None:
    args, shape, _ = ATTENTION[name]
    module = build(sub, name, *args)
    names = sorted(k for k in module.params if k.split(".")[-1] != "mask")
    weights = {k: randn(*module.params[k], seed=30 + i) for i, k in enumerate(names)}
    module.load(weights, wait=False)  # sent with the forward below
    x = randn(*shape, seed=31)
    out = module(x)
    if tuple(out.shape[:-1]) != tuple(shape[:-1]):
        fail("fail.shape", where=module.label, got=tuple(out.shape), expected=(*shape[:-1], "..."),
             meaning="(..., tokens, features)")
    if bool(out.isnan().all()):
        fail("fail.nan", where=module.label)
    if SAME_CODE.agree(module(randn(*shape, seed=32)), out):
        fail("fail.attention_ignores_input", where=module.label)
    # Change the first token, then the last: some other token's output must follow (a wrong mask
    # may hide either one, but not both, from every other token).
    for position, seed in ((0, 33), (shape[-2] - 1, 34)):
        changed = x.clone()
        changed.select(-2, position).copy_(randn(*(shape[:-2] + shape[-1:]), seed=seed))
        others = torch.tensor([i for i in range(shape[-2]) if i != position])
        if not SAME_CODE.agree(module(changed).index_select(-2, others), out.index_select(-2, others)):
            break
    else:
        fail("fail.attention_no_mixing", where=module.label)
    for j, projection in enumerate(("W_query", "W_key")):
        keys = [k for k in names if projection in k.split(".")]
        if not keys:  # another layout (a fused W_qkv, say): every weight that is not the values' or out_proj's
            keys = [k for k in names if not {"W_value", "out_proj"} & set(k.split("."))]
        if not keys:
            fail("fail.param_names", where=module.label, missing=projection, extra="-")
        # every weight loaded each time (the others as before): no request to put the drawn ones back
        module.load({**weights, **{k: randn(*module.params[k], seed=40 + 10 * j + i) for i, k in enumerate(keys)}},
                    wait=False)
        if SAME_CODE.agree(module(x), out):
            fail("fail.attention_ignores_weights", where=module.label, name=projection)
    expect_attention_family(sub, name, sub.probe_seed, standing_in(sub, name))


def sound(sub: Subject, name: str) -> bool:
    """What classes built on `name` rely on holds, as far as can be told without the reference:
    a constructor matched with the stub's, attention computed, no later token seen, gradients reaching every weight;
    and its code leaves nothing running that would use the budget of the classes built on it."""
    if name in sub.left_running:
        return False

    def judge() -> bool:
        args, shape, _ = ATTENTION[name]
        try:
            if unmatched_signature(sub, name):
                return False
            expect_attention(sub, name)
            longer = args[:2] + (args[2] + 4,) + args[3:]  # fewer tokens than context_length
            module = sub.new(name, *longer)
            expect_causal(module, *shape, seed=5)
            expect_gradients(module, randn(*shape, seed=6), randn(*shape[:-1], args[1], seed=7))
        except (CheckFailure, StudentError):
            return False
        return True

    return sub.cached(f"sound:{name}", judge)


def standing_in(sub: Subject, name: str) -> tuple[str, ...]:
    """The classes `name` builds on that are wrong here, and so are replaced by the kit's stand-ins."""
    lower = BUILDS_ON.get(name)
    return (lower,) if lower is not None and not sound(sub, lower) else ()


def build(sub: Subject, name: str, *args, **kwargs) -> ModuleHandle:
    """The student's `name`, with stand-ins for the wrong classes it builds on (see standing_in); built with its
    first request (Subject.new, wait=False)."""
    return sub.new(name, *args, stand_in=standing_in(sub, name), wait=False, **kwargs)
