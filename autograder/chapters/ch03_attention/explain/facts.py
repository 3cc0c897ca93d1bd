"""Measure the independent facts of a student's attention class on probes (mask, axis, scale, dropout, wiring)."""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field, replace

import torch

from autograder.chapters.ch03_attention.explain.knobs import layer_names
from autograder.chapters.ch03_attention.measure.equal_qkv import equal_qkv_probe, equal_qkv_weights, read_pattern
from autograder.chapters.ch03_attention.measure.readings import MASKS
from autograder.errors import StudentError
from autograder.judge.dropout import dropout_kind
from autograder.judge.probes import is_mask, randn
from autograder.judge.subjects import ModuleHandle, Subject

RANDOM_PROBES = {  # (d_in, d_out, context_length, tokens, heads); tokens < context_length except the last
    "CausalAttention": [(5, 3, 9, 7, 1), (4, 6, 8, 5, 1), (3, 2, 6, 6, 1)],
    "MultiHeadAttention": [(5, 6, 9, 7, 2), (7, 8, 8, 5, 4), (3, 4, 6, 6, 2)],
}
CAUSE_IDS = {"cause.view_not_contiguous": "view_not_contiguous", "cause.mask_not_bool": "mask_not_bool"}
"""An exception's cause (judge/causes.py) -> the mistake it names, when it stops every probe."""
GLOBAL = re.compile(r"name '(\w+)' is not defined")
TRAIN_P, TRAIN_SEED = 0.5, 7


@dataclass
class Facts:
    """What was measured on one class; None where a probe could not tell."""

    readable: bool = False
    """The equal-QKV probe showed a weight pattern some mask makes (its mask, axis and scale are then known)."""
    masks: list[str] = field(default_factory=lambda: list(MASKS))
    """Masks consistent with the equal-QKV probe's zero pattern."""
    axes: list[str] = field(default_factory=lambda: ["keys", "queries", "heads"])
    scale: str | None = None
    """A name from SCALES, "power:<e>" (head_dim ** e) or None when the equal-QKV probe could not be read."""
    scale_found: float | None = None
    dropout: list[str] = field(default_factory=list)
    runs: list[tuple[dict, torch.Tensor, int, torch.Tensor]] = field(default_factory=list)
    """Random-weight probes: (weights, input, heads, the student's output)."""
    train: tuple[dict, torch.Tensor, int, torch.Tensor] | None = None
    """The first probe again in train mode, built with dropout TRAIN_P and run with seed TRAIN_SEED (None: it
    raised)."""
    short_input_fails: bool = False
    """Raises for inputs shorter than context_length, works for full-length ones."""
    missing_global: str | None = None
    has_out_proj: bool = True
    fixed_sizes: bool = False
    """Works with the chapter's demo sizes (d_in=3, d_out=2) and fails with any other."""
    returns_nothing: bool = False
    """forward returns None (e.g. the return statement was left out)."""
    renamed: list[tuple[str, str]] = field(default_factory=list)
    """(the student's name, the chapter's) for layers found under another name."""
    structure: list[str] = field(default_factory=list)
    cause: tuple[str, dict] | None = None
    """Why every probe raised, when the exception says it: (mistake id without prefix, hint parameters)."""


def state_for(module: ModuleHandle, scale: float = 1.0) -> dict[str, torch.Tensor]:
    """Deterministic weights by parameter name (creation order never matters)."""
    return {name: randn(*shape, seed=zlib.crc32(name.encode()) % 10_000) * (0.1 if "bias" in name else scale)
            for name, shape in sorted(module.params.items()) if not is_mask(name)}


def _new(sub: Subject, part: str, d_in: int, d_out: int, context: int, p: float, heads: int, **kw) -> ModuleHandle:
    return sub.new(part, d_in, d_out, context, p, *((heads,) if part == "MultiHeadAttention" else ()), **kw)


def measure(sub: Subject, part: str) -> Facts | None:
    """Every fact of `part` (CausalAttention or MultiHeadAttention); None when its weights cannot be loaded."""
    heads = 2 if part == "MultiHeadAttention" else 1
    facts = Facts()
    errors: list[StudentError] = []
    failed = []
    for d_in, d_out, context, tokens, n in RANDOM_PROBES[part]:
        try:
            module = _new(sub, part, d_in, d_out, context, 0.0, n)
            names = layer_names(module.params)
            if not {"W_query", "W_key", "W_value"} <= set(names):
                return None
            facts.renamed = sorted((theirs, ours) for ours, theirs in names.items() if theirs != ours)
            weights = state_for(module, 1.5)
            module.load(weights)
            x = randn(2, tokens, d_in, seed=d_in * 10 + tokens)
            chapter = {f"{ours}.{kind}": weights[f"{theirs}.{kind}"] for ours, theirs in names.items()
                       for kind in ("weight", "bias") if f"{theirs}.{kind}" in weights}
            facts.runs.append((chapter, x, n, module(x)))
        except StudentError as error:
            if error.key in ("student.names_differ", "student.param_shape"):
                return None
            if error.key == "refused.init_typo":
                facts.cause = ("init_typo", {"found": error.params.get("found", "")})
                return facts
            errors.append(error)
            failed.append(tokens < context)
    causes = {CAUSE_IDS.get(str(e.params.get("because"))) for e in errors}
    if errors and not facts.runs and len(causes) == 1 and None not in causes:
        facts.cause = (causes.pop(), {"line": errors[0].params.get("line", "")})
        return facts
    for error in errors:
        missing = GLOBAL.search(str(error.params.get("message", "")))
        if missing:
            facts.missing_global = missing.group(1)
        facts.returns_nothing |= error.key == "refused.not_tensor" and error.params.get("got") == "NoneType"
    facts.short_input_fails = bool(failed) and all(failed) and len(facts.runs) == 1
    if not facts.runs:
        try:  # the sizes of the chapter's demo cells: a class that only works there reads the notebook's variables
            _new(sub, part, 3, 2, 6, 0.0, 2)(randn(2, 6, 3, seed=1))
            facts.fixed_sizes = not facts.missing_global
        except StudentError:
            pass
        return facts
    facts.has_out_proj = "out_proj.weight" in facts.runs[0][0]
    facts.train = _train_run(sub, part, facts.runs[0])
    try:
        module, x = equal_qkv_probe(sub, part, heads)
        facts = replace(facts, **read_pattern(module(x), heads))
        module, x = equal_qkv_probe(sub, part, heads, 0.5)
        facts.dropout = dropout_kind(module, x, lambda out: equal_qkv_weights(out, heads), 0.5, nan_agrees=True)
    except StudentError:
        pass
    facts.structure = structure(sub, part)
    return facts


def _train_run(sub: Subject, part: str, run: tuple) -> tuple | None:
    """The first probe in train mode, with the same weights (under the class's own names) and input."""
    weights, x, n, _ = run
    d_in, d_out, context = x.shape[-1], weights["W_query.weight"].shape[0], RANDOM_PROBES[part][0][2]
    try:
        module = _new(sub, part, d_in, d_out, context, TRAIN_P, n)
        names = layer_names(module.params)
        module.load({f"{names[ours]}.{kind}": w for key, w in weights.items()
                     for ours, kind in [key.rsplit(".", 1)] if ours in names})
        return weights, x, n, module(x, train=True, seed=TRAIN_SEED)
    except (StudentError, KeyError):
        return None


def structure(sub: Subject, part: str) -> list[str]:
    """Facts about where the mask lives and which layers exist (what the layout checks ask)."""
    found = []
    try:
        module = _new(sub, part, 3, 4, 6, 0.1, 2, qkv_bias=True)
    except StudentError:
        return found
    if "mask" in module.params:
        found.append("mask_parameter")
    elif "mask" not in module.buffers:  # persistent=False is fine: still a buffer that moves with .to()
        found.append("mask_plain_attribute")
    if "W_query.weight" in module.params and "W_query.bias" not in module.params:
        found.append("qkv_bias_ignored")
    if part == "MultiHeadAttention":
        try:
            _new(sub, part, 3, 5, 6, 0.0, 2)
            found.append("no_divisibility_check")
        except StudentError as error:
            if error.key != "student.raised":
                raise
    return found


def wrapper_facts(sub: Subject) -> list[tuple[str, dict]]:
    """Structural mistakes of MultiHeadAttentionWrapper: layers beside the heads, heads nobody registered."""
    try:
        module = sub.new("MultiHeadAttentionWrapper", 3, 2, 6, 0.0, 2)
    except StudentError as error:
        missing = GLOBAL.search(str(error.params.get("message", "")))
        return [("wrapper_uses_global", {"name": missing.group(1)})] if missing else []
    params = [n for n in module.params if n.split(".")[-1] != "mask"]
    heads = [path for path, kind in module.info["modules"].items() if kind == "CausalAttention"] or ["heads"]
    found = []
    if any(not any(n.startswith(head + ".") for head in heads) for n in params):  # a layer beside every head
        found.append(("wrapper_extra_projection", {}))
    if not params and not any(n.startswith("heads") for n in module.info["modules"]):
        found.append(("wrapper_heads_not_registered", {}))
    return found
