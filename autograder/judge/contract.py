"""What the stub promises: constructor signatures and attribute names, with messages that name the difference."""
from __future__ import annotations

import difflib

from autograder.judge.expect import fail
from autograder.judge.subjects import Module, Subject

_HEADS = ("d_in", "d_out", "context_length", "dropout", "num_heads", "qkv_bias=False")
STUBS: dict[str, tuple[str, ...]] = {
    "SelfAttention_v1": ("d_in", "d_out"),
    "SelfAttention_v2": ("d_in", "d_out", "qkv_bias=False"),
    "CausalAttention": ("d_in", "d_out", "context_length", "dropout", "qkv_bias=False"),
    "MultiHeadAttentionWrapper": _HEADS,
    "MultiHeadAttention": _HEADS,
}
"""Each graded class's __init__ parameters after self, as the stub writes them."""
POSITIONAL = ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")


def _stub_names(name: str) -> list[str]:
    return [p.split("=")[0] for p in STUBS[name]]


def signature_problem(sub: Subject, name: str) -> tuple[str, dict] | None:
    """(message key, params) if `name`'s __init__ differs from the stub's; None if it matches or is unknown.

    Extra parameters after the stub's are fine when they have defaults; `*args` accepts anything.
    """
    if name not in STUBS:
        return None
    def judge() -> tuple[str, dict] | None:
        parameters = sub.signature(name)
        if parameters is None or any(kind == "VAR_POSITIONAL" for _, kind, _ in parameters):
            return None
        positional = [(p, default) for p, kind, default in parameters if kind in POSITIONAL]
        names, stub = [p for p, _ in positional], _stub_names(name)
        extra_required = [p for p, default in positional[len(stub):] if default == {"$empty": True}]
        if names[: len(stub)] == stub and not extra_required:
            return None
        got = ", ".join(p if default == {"$empty": True} else f"{p}={default!r}" for p, default in positional)
        params = {"where": name, "got": got, "expected": ", ".join(STUBS[name])}
        missing, unknown = [p for p in stub if p not in names], [p for p in names if p not in stub]
        if not missing and not unknown and not extra_required:
            return "fail.signature_order", params
        return "fail.signature", {**params, "missing": ", ".join(missing) or "-",
                                  "extra": ", ".join(unknown) or "-"}
    return sub.cached(f"signature:{name}", judge)


def expect_signature(sub: Subject, name: str) -> None:
    """Fail with the difference from the stub: in full at the first check of `name`, briefly after."""
    problem = signature_problem(sub, name)
    if problem is None:
        return
    told = sub.cached("signatures told", set)
    if name in told:
        fail("fail.signature_again", where=name)
    told.add(name)
    fail(problem[0], **problem[1])


def _near_miss(expected: str, candidates: list[str]) -> str | None:
    """The candidate a misspelling of `expected` most likely meant (case and underscores aside)."""
    def plain(text: str) -> str:
        return text.lower().replace("_", "")
    by_plain = {plain(c): c for c in candidates}
    match = difflib.get_close_matches(plain(expected), list(by_plain), n=1, cutoff=0.7)
    return by_plain[match[0]] if match else None


def expect_named(module: Module, attribute: str, kind: str, where: str, key: str, **params) -> None:
    """`module` has a direct child `attribute` of type `kind` ("Linear", "Dropout", "Parameter", "buffer").

    Otherwise fail with `key`, unless a child of that kind under a near-miss name explains it
    (with one Dropout or one buffer, whatever its name), which is then named.
    """
    if kind == "Parameter":
        children = {n: "Parameter" for n in module.params if "." not in n}
    elif kind == "buffer":
        children = {n: "buffer" for n in module.buffers if "." not in n}
    else:
        children = {n: k for n, k in module.info["modules"].items() if "." not in n}
    if children.get(attribute) == kind:
        return
    candidates = [n for n, k in children.items() if k == kind and n != attribute]
    found = _near_miss(attribute, candidates)
    if found is None and kind in ("Dropout", "buffer") and len(candidates) == 1:
        found = candidates[0]
    if found is not None:
        if kind == "buffer":
            fail("fail.near_miss_buffer", where=where, found=found, expected=attribute)
        fail("fail.near_miss", where=where, kind=f"nn.{kind}", found=found, expected=attribute)
    fail(key, where=where, **params)


def built_arguments(module: Module, cls: str) -> dict | None:
    """The arguments a graded function passed when it built `cls`, named as in the stub.

    A student's own parameter name stands for the stub's at the same position. None if the
    function built no `cls` (or its arguments could not be bound).
    """
    for construction in module.built:
        if construction["class"] == cls and construction["arguments"] is not None:
            arguments = construction["arguments"]
            stub = _stub_names(cls)
            named = dict(arguments)
            return {s: named.get(s, arguments[i][1] if i < len(arguments) else None) for i, s in enumerate(stub)}
    return None
