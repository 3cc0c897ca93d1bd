"""Name every mistake an attention class's measured facts show: the simplest knob settings that reproduce it."""
from __future__ import annotations

from itertools import combinations, product

import torch

from autograder.chapters.ch03_attention.explain.facts import TRAIN_P, TRAIN_SEED, Facts
from autograder.chapters.ch03_attention.explain.knobs import (
    DROP_PLACES,
    Drop,
    Knobs,
    alternatives,
    attention,
    with_deviations,
)
from autograder.judge.expect import RECOMPUTED

MAX_DEVIATIONS = 2
"""Wiring mistakes searched at once on top of what the twin probe measured (mask, axis, scale)."""

MASK_IDS = {"none": "mask_missing", "zero_fill": "mask_zero_fill", "after_softmax": "mask_after_softmax",
            "diagonal0": "mask_diagonal0", "diagonal2": "mask_diagonal2", "tril": "mask_tril",
            "tril1": "mask_tril"}
SCALE_IDS = {"none": "no_scaling", "head_dim": "scale_by_d_k", "sqrt_d_in": "scale_by_d_in",
             "sqrt_d_out": "scale_by_d_out", "sqrt_tokens": "scale_by_tokens", "tokens": "scale_by_tokens",
             "multiplied": "scale_multiplied"}
DROPOUT_IDS = {("none",): "dropout_missing", ("values",): "dropout_on_values", ("output",): "dropout_on_output",
               ("random_in_eval",): "dropout_always", ("weights_not_dropout",): "dropout_on_scores"}
STRUCTURE_IDS = {"mask_parameter", "mask_plain_attribute", "qkv_bias_ignored", "no_divisibility_check"}
ROLES = ("queries", "keys", "values")


def _matches(knobs: Knobs, facts: Facts, multihead: bool) -> bool:
    for weights, x, heads, out in facts.runs:
        try:
            expected = attention(knobs, weights, x, heads, multihead)
        except RuntimeError:  # e.g. a view that these sizes do not allow
            return False
        if not RECOMPUTED.agree(out.double(), expected):
            return False
    return True


def in_train_mode(knobs: Knobs, facts: Facts, multihead: bool, places: tuple[str, ...] = DROP_PLACES) -> bool:
    """`knobs` also reproduce the train-mode run, with dropout at one of `places` and the very mask the class drew."""
    if facts.train is None:
        return False
    weights, x, heads, out = facts.train
    for place in places:
        try:
            if RECOMPUTED.agree(out.double(), attention(knobs, weights, x, heads, multihead,
                                                      Drop(TRAIN_P, TRAIN_SEED, place))):
                return True
        except RuntimeError:
            return False
    return False


def search(facts: Facts, multihead: bool) -> list[Knobs]:
    """The settings with the fewest deviations that reproduce every random-weight probe (may be several)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of tiny products: threads only cost here, more so on a busy machine
    try:
        return _search(facts, multihead)
    finally:
        torch.set_num_threads(threads)


def _search(facts: Facts, multihead: bool) -> list[Knobs]:
    """Knob settings free of the equal-QKV probe's readings first (a wiring that garbles that probe misleads
    them), then seeded by them (a measured power of head_dim, three readings at once)."""
    out_proj = facts.has_out_proj or not multihead
    options = [d for d in alternatives(multihead) if not (d[0] == "out_proj" and not facts.has_out_proj)]
    found = _simplest([Knobs(out_proj=out_proj)], options, facts, multihead)
    if found:
        return found
    return _seeded(facts, multihead, out_proj)


def _seeded(facts: Facts, multihead: bool, out_proj: bool) -> list[Knobs]:
    scales = [facts.scale] if facts.scale is not None else ["sqrt_head_dim"]
    masks, axes = (facts.masks, facts.axes) if facts.readable else (["causal"], ["keys"])
    seeds = [Knobs(mask=m, axis=a, scale=s, out_proj=out_proj) for m, a, s in product(masks, axes, scales)]
    fixed = ({"mask", "axis"} if facts.readable else set()) | ({"scale"} if facts.scale is not None else set())
    options = [d for d in alternatives(multihead) if d[0] not in fixed
               and not (d[0] == "out_proj" and not facts.has_out_proj)]
    return _simplest(seeds, options, facts, multihead)


def _simplest(seeds: list[Knobs], options: list, facts: Facts, multihead: bool) -> list[Knobs]:
    """The settings with the fewest deviations, each a seed with up to MAX_DEVIATIONS options, that reproduce
    every random-weight probe."""
    found: list[Knobs] = []
    best = None
    for depth in range(MAX_DEVIATIONS + 1):
        for seed in seeds:
            for changes in combinations(options, depth):
                knobs = with_deviations(seed, changes)
                if knobs is None:
                    continue
                size = len(knobs.deviations())
                if best is not None and size > best:
                    continue
                if _matches(knobs, facts, multihead):
                    if best is None or size < best:
                        best, found = size, []
                    found.append(knobs)
        if found:
            return found
    return []


def _sources_detail(sources: tuple[str, str, str]) -> dict:
    wrong = [(role, layer) for role, layer, right in zip(ROLES, sources, Knobs().sources) if layer != right]
    return {"pairs": wrong}


def deviation_id(knob: str, value: object, multihead: bool) -> tuple[str, dict] | None:
    """The mistake id (without its part's prefix) and hint parameters that a knob set to `value` names."""
    if knob == "sources":
        return "wrong_projection", _sources_detail(value)
    if knob == "mask":
        return MASK_IDS[value], {}
    if knob == "scale":
        if isinstance(value, str) and value.startswith("power:"):
            return "scale_odd", {"power": round(float(value.split(":")[1]), 2)}
        return SCALE_IDS[value], {}
    if knob == "axis":
        if value == "heads":
            return "softmax_dim1", {}
        return ("softmax_query_dim" if multihead else "softmax_dim1"), {}
    if knob == "combine":
        return ("returns_values" if value == "values" else "weights_transposed"), {}
    if knob == "split":
        return "view_no_transpose", {}
    if knob == "merge":
        return "context_no_transpose", {}
    if knob == "out_proj":
        return "no_out_proj", {}
    if knob == "one_head":
        return "one_head", {}
    if knob == "scale_after":
        return "divide_after_softmax", {}
    return None


def name(facts: Facts | None, part: str) -> list[tuple[str, dict]]:
    """(mistake id, hint parameters) for every mistake the facts show, most basic first; [] if none is known."""
    if facts is None:
        return []
    multihead = part == "MultiHeadAttention"
    prefix = "mha" if multihead else "causal"
    named: list[tuple[str, dict]] = []
    if facts.cause is not None:  # every probe raised, and the exception says why
        return [(f"{prefix}_{facts.cause[0]}", facts.cause[1])]
    if facts.renamed:
        named.append(("renamed_layer", {"found": ", ".join(f"{theirs} ({ours})" for theirs, ours in facts.renamed)}))
    if facts.missing_global:
        named.append(("uses_global", {"name": facts.missing_global}))
    if facts.fixed_sizes:
        named.append(("fixed_sizes", {}))
    if facts.returns_nothing:
        named.append(("returns_nothing", {}))
    if facts.short_input_fails:
        named.append(("mask_not_sliced", {}))
    matches = search(facts, multihead) if facts.runs else []
    matches = [knobs for knobs in matches if in_train_mode(knobs, facts, multihead)]  # train and eval, or nothing
    if matches:
        common = set(matches[0].deviations().items())
        for knobs in matches[1:]:
            common &= set(knobs.deviations().items())
        for knob, value in sorted(common, key=lambda kv: list(Knobs.__dataclass_fields__).index(kv[0])):
            found = deviation_id(knob, value, multihead)
            if found:
                named.append(found)
    if not facts.has_out_proj and multihead and ("no_out_proj", {}) not in named:
        named.append(("no_out_proj", {}))
    kind = DROPOUT_IDS.get(tuple(facts.dropout))
    if kind and ((matches and facts.readable) or kind == "dropout_always"):  # the probe's read-out is proven
        named.append((kind, {}))
    named += [(s, {}) for s in facts.structure if s in STRUCTURE_IDS]
    seen, unique = set(), []
    for id, params in named:
        if id not in seen:
            seen.add(id)
            unique.append((f"{prefix}_{id}", params))
    return unique


def proven_right(facts: Facts | None, part: str) -> bool:
    """The chapter's computation itself, and nothing else, reproduces every probe, in train mode with dropout on the
    weights too: what `part` computes is right (its points were lost on how it is built)."""
    if facts is None or not facts.runs or facts.dropout != ["weights"] or facts.cause or facts.renamed:
        return False
    multihead = part == "MultiHeadAttention"
    return facts.has_out_proj and _matches(Knobs(), facts, multihead) and in_train_mode(Knobs(), facts, multihead,
                                                                                          ("weights",))
