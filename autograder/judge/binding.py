"""Matching a student's constructor to the stub's, from the parameters the worker read (nothing runs here).

A parameter of the stub matches the student's parameter of the same name, else the one whose name is a known
synonym (`block_size` for `context_length`, `bias` for `qkv_bias`, ...), else the one at the same position
whose name means nothing else. When every parameter of the stub finds exactly one, and the student's other
parameters have defaults, the checks build the class with the stub's arguments mapped onto the student's
names (`Binding.arguments`), and the difference costs the class's signature check only.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

POSITIONAL = ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")
EMPTY = {"$empty": True}
"""A parameter without a default, as the worker reports it (values.plain_value)."""

SYNONYMS: dict[str, frozenset[str]] = {
    "d_in": frozenset({"din", "dimin", "indim", "inputdim", "dinput", "dmodel", "embeddim", "embdim",
                       "embeddingdim", "nembd", "inputsize", "infeatures", "inputfeatures", "ndim"}),
    "d_out": frozenset({"dout", "dimout", "outdim", "outputdim", "doutput", "outfeatures", "outputfeatures",
                        "outputsize", "outsize"}),
    "context_length": frozenset({"contextlength", "blocksize", "contextlen", "ctxlen", "ctxlength", "maxlen",
                                 "maxlength", "seqlen", "seqlength", "maxseqlen", "maxseqlength", "contextsize",
                                 "nctx", "maxcontext", "maxcontextlength", "maxtokens"}),
    "dropout": frozenset({"drop", "p", "pdrop", "dropoutrate", "droprate", "dropoutp", "dropoutprob", "dropprob",
                          "attndropout", "attnpdrop", "attndrop", "attentiondropout", "dropoutratio"}),
    "num_heads": frozenset({"numheads", "nheads", "heads", "numhead", "nhead", "headcount", "numberofheads",
                            "headsnum", "numattentionheads"}),
    "qkv_bias": frozenset({"qkvbias", "bias", "usebias", "withbias", "addbias", "kqvbias", "biasqkv",
                           "useqkvbias"}),
}
"""Stub name -> the names (lower case, without underscores) that mean it."""


def stub_names(stub: tuple[str, ...]) -> list[str]:
    """The parameters' names of a stub's signature (Assignment.stubs: `qkv_bias=False` with its default)."""
    return [p.split("=")[0] for p in stub]


def stub_defaults(stub: tuple[str, ...]) -> dict[str, Any]:
    return {p.split("=")[0]: ast.literal_eval(p.split("=", 1)[1]) for p in stub if "=" in p}


def _plain(text: str) -> str:
    return text.lower().replace("_", "")


def _meaning(student: str) -> str | None:
    """The stub parameter a student's parameter name means, if any."""
    plain = _plain(student)
    found = [s for s, words in SYNONYMS.items() if plain in words or plain == _plain(s)]
    return found[0] if len(found) == 1 else None


@dataclass(frozen=True)
class Binding:
    """How the stub's arguments reach the student's constructor, and how its parameters differ from the stub's."""

    stub: tuple[str, ...]
    """The stub's parameters (Assignment.stubs)."""
    targets: tuple[tuple[str, str, str], ...]
    """Per stub parameter, in the stub's order: (stub name, student name, student kind)."""
    renamed: tuple[tuple[str, str], ...]
    """(student name, stub name) of each parameter the student calls otherwise."""
    reordered: bool
    """Some parameter is not at the stub's position (or cannot be passed by position)."""
    keyword_only: tuple[str, ...]
    """The student's names of matched parameters that can only be passed by name."""

    def student_name(self, stub: str) -> str:
        return next(student for s, student, _ in self.targets if s == stub)

    def stub_name(self, student: str) -> str | None:
        return next((s for s, name, _ in self.targets if name == student), None)

    def arguments(self, args: tuple | list, kwargs: dict) -> tuple[list, dict]:
        """The stub's call (args, kwargs) as the student's constructor takes it.

        Every parameter of the stub is passed, the stub's defaults included (a student default may differ):
        positional-only parameters by position, the others by the student's names.
        """
        names = stub_names(self.stub)
        values = dict(stub_defaults(self.stub))
        values.update(zip(names, args))
        others = {k: v for k, v in kwargs.items() if k not in names}
        values.update({k: v for k, v in kwargs.items() if k in names})
        positional, keywords = [], {}
        for stub, student, kind in self.targets:
            if stub not in values:
                continue
            if kind == "POSITIONAL_ONLY":
                positional.append(values[stub])
            else:
                keywords[student] = values[stub]
        return [*positional, *args[len(names):]], {**keywords, **others}


Unmatched = str
"""Why a constructor cannot be matched: "missing", "ambiguous", "required" (an extra parameter without
default) or "positional_only"."""


def bind(spec: tuple[str, ...], parameters: list[list] | None) -> Binding | Unmatched | None:
    """Match the stub's parameters `spec` with the student's __init__ `parameters` ([name, kind, default] each,
    after self).

    None: the stub's own signature (or one that takes anything: `*args`, unknown), used as it is.
    A Binding: matched, but differing. A string: cannot be matched, and why.
    """
    if parameters is None or any(kind == "VAR_POSITIONAL" for _, kind, _ in parameters):
        return None
    stub = stub_names(spec)
    named = [(p, kind, default) for p, kind, default in parameters if kind != "VAR_KEYWORD"]
    positional = [p for p, kind, _ in named if kind in POSITIONAL]
    if positional[: len(stub)] == stub and all(d != EMPTY for p, _, d in named if p not in stub):
        return None
    claimed: dict[str, str] = {}
    for s in stub:
        exact = [p for p, _, _ in named if p == s]
        similar = exact or [p for p, _, _ in named if _meaning(p) == s and p not in stub]
        if len(similar) > 1:
            return "ambiguous"
        if similar:
            claimed[s] = similar[0]
    taken = set(claimed.values())
    if len(taken) < len(claimed):
        return "ambiguous"
    for i, s in enumerate(stub):  # by position: a parameter whose name means nothing else
        if s in claimed:
            continue
        if i < len(positional) and positional[i] not in taken and _meaning(positional[i]) in (None, s):
            claimed[s] = positional[i]
            taken.add(positional[i])
        else:
            return "missing"
    kinds = {p: kind for p, kind, _ in named}
    if any(default == EMPTY for p, _, default in named if p not in taken):
        return "required"
    only = [p for p, kind, _ in named if kind == "POSITIONAL_ONLY"]
    if any(i >= len(stub) or claimed[stub[i]] != p for i, p in enumerate(only)):
        return "positional_only"  # passed by position, so they must be the stub's first, in its order
    targets = tuple((s, claimed[s], kinds[claimed[s]]) for s in stub)
    renamed = tuple((claimed[s], s) for s in stub if claimed[s] != s)
    keyword_only = tuple(claimed[s] for s in stub if kinds[claimed[s]] == "KEYWORD_ONLY")
    reordered = any(i >= len(positional) or positional[i] != claimed[s] for i, s in enumerate(stub))
    return Binding(spec, targets, renamed, reordered, keyword_only)


ROLES = {"W_query": ("q", "wq", "query", "queries", "wquery", "wqueries", "qproj", "queryproj", "qlinear"),
         "W_key": ("k", "wk", "key", "keys", "wkey", "wkeys", "kproj", "keyproj", "klinear"),
         "W_value": ("v", "wv", "value", "values", "wvalue", "wvalues", "vproj", "valueproj", "vlinear"),
         "out_proj": ("o", "wo", "out", "output", "outproj", "outputproj", "proj", "lastlayer", "outlinear", "wout")}
"""The chapter's layer names -> the names (lower case, without underscores) that play the same role."""


def role_of(layer: str) -> str:
    """The chapter's name for a layer called `layer` (`W_Q` -> `W_query`), or `layer` itself."""
    plain = layer.lower().replace("_", "")
    return next((role for role, names in ROLES.items() if plain in names), layer)
