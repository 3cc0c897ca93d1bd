"""Facts measured on a student's attention class alone (no reference solution), each true of that class.

Which later tokens reach an earlier token's output, what the `mask` buffer marks, which axis of the weights sums
to 1 and what the scores are divided by (the equal-QKV probe), where dropout acts, whether out_proj acts, and why
it raised. The self-check shows them and names the mistakes they prove by themselves; the grader's diagnosis
shows them when no known mistake reproduces the outputs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from autograder.chapters.ch03_attention.measure.equal_qkv import (
    QKV_D,
    equal_qkv_probe,
    equal_qkv_weights,
    masks_shown,
    read_pattern,
)
from autograder.errors import StudentError
from autograder.i18n import t
from autograder.judge.dropout import dropout_kind
from autograder.judge.expect import READ, SAME_CODE, ZERO
from autograder.judge.probes import randn
from autograder.judge.subjects import ModuleHandle, Subject

SIZES = {"CausalAttention": (5, 6, 9, 7, 1), "MultiHeadAttention": (5, 6, 9, 7, 2)}
"""(d_in, d_out, context_length, tokens, heads): d_in != d_out != head_dim, tokens < context_length."""
CAUSE_IDS = {"cause.view_not_contiguous": "view_not_contiguous", "cause.mask_not_bool": "mask_not_bool"}
"""An exception's cause (judge/causes.py) -> the mistake it names when it stops the class."""


@dataclass
class Observed:
    """What was measured; None where it could not be."""

    raised: StudentError | None = None
    leaks: list[tuple[int, int]] = field(default_factory=list)
    """(token, later), counted from 1: the output of `token` changes when the later token `later` changes."""
    self_blind: bool = False
    reach: set[tuple[int, int]] = field(default_factory=set)
    """(token, other), counted from 1: the output of `token` changes when `other` changes."""
    """Some token's output does not change when that token itself changes."""
    mask_buffer: str | None = None
    """"triu1" (exactly the positions above the diagonal), "other:<count>:<size>", or None (no such buffer)."""
    axes: list[str] | None = None
    scale: float | None = None
    head_dim: int = 0
    dropout: list[str] = field(default_factory=list)
    out_proj_unused: bool = False

    @property
    def cause(self) -> tuple[str, dict] | None:
        """(mistake id without prefix, hint parameters) when the exception says why the class fails."""
        if self.raised is None:
            return None
        if self.raised.key == "refused.init_typo":
            return "init_typo", {"found": self.raised.params.get("found", "")}
        found = CAUSE_IDS.get(str(self.raised.params.get("because")))
        return (found, {"line": self.raised.params.get("line", "")}) if found else None


def _new(sub: Subject, part: str, d_in: int, d_out: int, context: int, p: float, heads: int) -> ModuleHandle:
    return sub.new(part, d_in, d_out, context, p, *((heads,) if part == "MultiHeadAttention" else ()))


def observe(sub: Subject, part: str) -> Observed:
    """Every fact of `part` (CausalAttention or MultiHeadAttention) that its outputs show."""
    found = Observed()
    d_in, d_out, context, tokens, heads = SIZES[part]
    try:
        module = _new(sub, part, d_in, d_out, context, 0.0, heads)
        x = randn(2, tokens, d_in, seed=7)
        base = module(x)
        for key in range(tokens):
            changed = x.clone()
            changed[:, key] = randn(2, d_in, seed=100 + key)
            moved = (module(changed) - base).abs().reshape(2, tokens, -1).amax(dim=(0, 2)) > ZERO
            found.leaks += [(query + 1, key + 1) for query in range(key) if moved[query]]
            found.self_blind |= not bool(moved[key])
            found.reach |= {(query + 1, key + 1) for query in range(tokens) if moved[query]}
        if "out_proj.weight" in module.params:
            module.load({"out_proj.weight": randn(*module.params["out_proj.weight"], seed=11)})
            found.out_proj_unused = bool(torch.allclose(module(x), base, atol=SAME_CODE.atol,
                                                             rtol=SAME_CODE.rtol))
        mask = module.state().get("mask") if "mask" in module.buffers else None
        if mask is not None and mask.dim() == 2:
            right = torch.triu(torch.ones_like(mask, dtype=torch.bool), diagonal=1)
            marked = mask.bool() if mask.dtype == torch.bool else mask != 0
            found.mask_buffer = "triu1" if bool((marked == right).all()) else \
                f"other:{int(marked.sum())}:{mask.shape[0]}"
    except StudentError as error:
        found.raised = error
        return found
    try:
        probe, one_hot = equal_qkv_probe(sub, part, heads)
        out = probe(one_hot)
        copies = equal_qkv_weights(out, heads)
        if copies is not None and torch.allclose(*copies, atol=SAME_CODE.atol, rtol=SAME_CODE.rtol,
                                                        equal_nan=True) and masks_shown(copies[0][0]):
            weights = copies[0][0]  # (heads, T, T), read out: its zeros are where some mask puts them
            sums = {"keys": weights.nansum(-1), "queries": weights.nansum(-2), "heads": weights.nansum(0)}
            found.axes = [axis for axis, total in sums.items() if (heads > 1 or axis != "heads")
                          and bool(((total - 1).abs() < READ).all())]
            pattern = read_pattern(out, heads)
            if part == "CausalAttention" and found.axes == ["keys"] and pattern.get("masks") == ["causal"]:
                found.scale, found.head_dim = pattern.get("scale_found"), 2 * QKV_D  # one head: d_out
        probe, one_hot = equal_qkv_probe(sub, part, heads, 0.5)
        if found.axes:
            found.dropout = dropout_kind(probe, one_hot, lambda out: equal_qkv_weights(out, heads), 0.5,
                                         nan_agrees=True)
    except StudentError:
        pass
    return found


def facts_text(said: list[tuple[str, dict]], lang: str) -> str:
    """The facts as one sentence list in `lang`."""
    texts = [t(key, lang, **{**params, **({"axis": t(f"fact.axis.{params['axis']}", lang)} if "axis" in params
                                           else {})}) for key, params in said]
    return ("；" if lang == "zh_TW" else "; ").join(texts) + ("。" if lang == "zh_TW" else ".")


def mask_reversed(found: Observed, tokens: int) -> bool:
    """Each token's output is reached by exactly the tokens after the next one: the mask hides the past, the
    token itself and the next (torch.tril(..., diagonal=1), the catalogue's reversed mask), nothing else."""
    return found.reach == attention_reach(lambda q, k: k >= q + 2, tokens)


def attention_reach(visible, tokens: int) -> set[tuple[int, int]]:
    """Which (token, other) pairs an attention class whose query q sees the keys k with visible(q, k) shows:
    each visible key reaches q, and q itself does too (through its query) when q sees two keys or more."""
    reach = set()
    for q in range(1, tokens + 1):
        keys = {k for k in range(1, tokens + 1) if visible(q, k)}
        reach |= {(q, k) for k in keys} | ({(q, q)} if len(keys) > 1 else set())
    return reach


def mask_discarded(found: Observed) -> bool:
    """The mask buffer is right, yet later tokens reach earlier outputs: the masking never reaches the scores."""
    return found.mask_buffer == "triu1" and bool(found.leaks)


def facts(found: Observed) -> list[tuple[str, dict]]:
    """The measured facts as (message key, parameters), each true of the class measured."""
    said: list[tuple[str, dict]] = []
    if found.raised is not None:
        return [("fact.raised", {"type": found.raised.params.get("type", found.raised.key),
                                 "line": found.raised.params.get("line", "")})]
    if found.leaks:
        token, later = found.leaks[0]
        said.append(("fact.leaks", {"token": token, "later": later}))
    elif not found.self_blind:
        said.append(("fact.causal", {}))
    if found.self_blind:
        said.append(("fact.no_self", {}))
    if found.mask_buffer == "triu1":
        said.append(("fact.mask_buffer", {}))
    elif found.mask_buffer:
        _, count, size = found.mask_buffer.split(":")
        said.append(("fact.mask_buffer_other", {"count": int(count), "size": int(size),
                                                "expected": int(size) * (int(size) - 1) // 2}))
    if found.axes is not None:
        said.append(("fact.axis", {"axis": found.axes[0]}) if found.axes else ("fact.no_axis", {}))
    if found.scale is not None and found.head_dim:
        said.append(("fact.scale", {"scale": found.scale, "head_dim": found.head_dim,
                                    "right": found.head_dim ** 0.5}))
    if len(found.dropout) == 1 and found.dropout[0] in ("weights", "none", "values", "output", "random_in_eval",
                                                        "weights_not_dropout"):
        said.append((f"fact.dropout.{found.dropout[0]}", {}))
    if found.out_proj_unused:
        said.append(("fact.out_proj_unused", {}))
    return said
