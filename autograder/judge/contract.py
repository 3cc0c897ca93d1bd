"""What the stub promises: constructor signatures and attribute names, with messages that name the difference."""
from __future__ import annotations

import difflib

from autograder.errors import StudentError
from autograder.judge.binding import EMPTY, Binding, role_of, stub_names
from autograder.judge.expect import fail
from autograder.judge.subjects import ModuleHandle, Subject


def _shown(parameters: list[list]) -> str:
    """The student's parameters as written: `a, b=1, *, c, **kwargs`."""
    shown, starred = [], False
    for name, kind, default in parameters:
        if kind == "KEYWORD_ONLY" and not starred:
            shown.append("*")
            starred = True
        prefix = {"VAR_POSITIONAL": "*", "VAR_KEYWORD": "**"}.get(kind, "")
        starred |= kind == "VAR_POSITIONAL"
        shown.append(prefix + (name if default == EMPTY or prefix else f"{name}={default!r}"))
    return ", ".join(shown)


def signature_problem(sub: Subject, name: str) -> tuple[str, dict] | None:
    """(message key, params) if `name`'s __init__ differs from the stub's; None if it matches (undefined: StudentError).

    Extra parameters after the stub's are fine when they have defaults; `*args` accepts anything. A
    constructor that matches under other names (`fail.signature_renamed`), in another order
    (`fail.signature_order`) or by keyword only (`fail.signature_keyword_only`) is graded with its own names
    (`Subject.new`); one that cannot be matched (`fail.signature`) is not.
    """
    if name not in sub.stubs:
        return None
    binding = sub.binding(name)
    if binding is None:
        return None
    params = {"where": name, "got": _shown(sub.signature(name) or []), "expected": ", ".join(sub.stubs[name])}
    if isinstance(binding, Binding):
        if binding.renamed:
            return "fail.signature_renamed", {**params, "found": ", ".join(p for p, _ in binding.renamed),
                                              "asked": ", ".join(s for _, s in binding.renamed)}
        if binding.keyword_only:
            return "fail.signature_keyword_only", {**params, "names": ", ".join(binding.keyword_only)}
        return "fail.signature_order", params
    names = [p for p, kind, _ in sub.signature(name) or [] if kind not in ("VAR_POSITIONAL", "VAR_KEYWORD")]
    stub = stub_names(sub.stubs[name])
    missing, unknown = [p for p in stub if p not in names], [p for p in names if p not in stub]
    return "fail.signature", {**params, "missing": ", ".join(missing) or "-", "extra": ", ".join(unknown) or "-"}


def unmatched_signature(sub: Subject, name: str) -> bool:
    """`name`'s constructor cannot be matched with the stub's, so the checks cannot build it as they mean to."""
    return name in sub.stubs and isinstance(sub.binding(name), str)


def expect_signature(sub: Subject, name: str, stand_in: tuple[str, ...] = ()) -> None:
    """The signature check of `name`: fail with the difference from the stub, if any; a constructor with the
    stub's signature must also run (an untouched stub raises NotImplementedError, and the signature is the kit's)."""
    problem = signature_problem(sub, name)
    if problem is not None:
        fail(problem[0], **problem[1])
    built_with = sub.assignment.built_with if sub.assignment else {}
    if name in built_with:  # the stub's own signature, given, earns nothing: the constructor must accept these
        sub.new(name, *built_with[name], stand_in=stand_in)  # with the kit's stand-ins for what it builds on


def expect_constructible(sub: Subject, name: str) -> None:
    """Before every other check of `name`: a constructor that cannot be matched with the stub's fails it."""
    if unmatched_signature(sub, name):
        fail("fail.signature_again", where=name)


def _near_miss(expected: str, candidates: list[str]) -> str | None:
    """The candidate a misspelling of `expected` most likely meant (case and underscores aside)."""
    def plain(text: str) -> str:
        return text.lower().replace("_", "")
    by_plain = {plain(c): c for c in candidates}
    match = difflib.get_close_matches(plain(expected), list(by_plain), n=1, cutoff=0.7)
    return by_plain[match[0]] if match else None


def expect_named(module: ModuleHandle, attribute: str, kind: str, where: str, key: str, **params) -> None:
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
    if found is None and any(role_of(n) == attribute for n in candidates):  # W_Q for W_query: name them all
        renamed = sorted(n for n in candidates if role_of(n) != n)
        fail("fail.layer_names", where=where, found=", ".join(renamed), expected=", ".join(map(role_of, renamed)))
    if found is not None:
        if kind == "buffer":
            fail("fail.near_miss_buffer", where=where, found=found, expected=attribute)
        fail("fail.near_miss", where=where, kind=f"nn.{kind}", found=found, expected=attribute)
    fail(key, where=where, **params)


def built_arguments(module: ModuleHandle, cls: str) -> dict | None:
    """The arguments a graded function passed when it built `cls`, named as in the stub.

    A student's own parameter name stands for the stub's it was matched with (binding.bind), else for the
    stub's at the same position. None if the function built no `cls` (or its arguments could not be bound).
    """
    try:
        binding = module.subject.binding(cls)
    except StudentError:  # `cls` itself is not defined: the kit's stand-in was built in its place
        binding = None
    for construction in module.built:
        if construction["class"] == cls and construction["arguments"] is not None:
            arguments = construction["arguments"]
            if isinstance(binding, Binding):
                arguments = [[binding.stub_name(k) or k, v] for k, v in arguments]
            stub = stub_names(module.subject.stubs[cls])
            named = dict(arguments)
            return {s: named.get(s, arguments[i][1] if i < len(arguments) else None) for i, s in enumerate(stub)}
    return None
