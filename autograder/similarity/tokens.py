"""A submission's definitions as normalised token streams: the names a student chose, literals, comments,
docstrings and layout are levelled, so that renamed, re-commented or reformatted code still matches."""
from __future__ import annotations

import ast
import io
import keyword
import tokenize
from dataclasses import dataclass, field

from autograder.load.submission import Submission

SKIPPED_TOKENS = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                  tokenize.ENCODING, tokenize.ENDMARKER}
STRING_PARTS = {getattr(tokenize, name) for name in ("FSTRING_MIDDLE", "FSTRING_END") if hasattr(tokenize, name)}
"""Python 3.12 splits f-strings into parts: the start stands for the literal, the rest is skipped."""
STRING_STARTS = {tokenize.STRING} | {getattr(tokenize, "FSTRING_START", tokenize.STRING)}


@dataclass
class Definition:
    """One top-level function or class of a submission, as the student wrote it."""

    name: str
    origin: str
    """Where it is: "cell 8", "file"."""
    first: int
    """Its first line (decorators included) in its cell, counted from 1."""
    lines: list[str]


@dataclass
class Unit:
    """A stretch of code fingerprinted on its own: a function, a method, or a class's statements outside its
    methods. Fingerprints never span two units, so reordering definitions or methods changes nothing."""

    definition: int
    """Index of its Definition in the submission's list."""
    name: str
    """"MyClass.forward", "my_function", "MyClass" (the class's other statements)."""
    tokens: list[str] = field(default_factory=list)
    spans: list[tuple[int, int, int, int]] = field(default_factory=list)
    """Per token: (line, column, end line, end column), lines counted from 0 within the definition."""


def bound_names(trees: list[ast.AST]) -> set[str]:
    """Every name the student binds: variables, parameters, functions, classes, attributes set on objects.
    Imported names are not the student's choice (`torch`, `nn`, `F`) and stay as written."""
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                names.add(node.id)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                names.add(node.name)
    return names


def _headers(tree: ast.AST) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where each function's header is, from `def` to the colon: the stub dictates the graded ones' (names,
    parameters, annotations), and a helper's says little, so headers are never evidence."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            found.append(((node.lineno, node.col_offset), (first.lineno, first.col_offset)))
    return found


def _docstrings(tree: ast.AST) -> set[tuple[int, int]]:
    """Where the docstrings start: prose, translated at will, never evidence."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
                    first.value.value, str):
                found.add((first.lineno, first.col_offset))
    return found


def normalise(kind: int, text: str, bound: set[str]) -> str | None:
    """The token as fingerprinted: None for what carries no evidence (comments, line breaks, indentation)."""
    if kind in SKIPPED_TOKENS or kind in STRING_PARTS:
        return None
    if kind in STRING_STARTS:
        return "S"
    if kind == tokenize.NUMBER:
        return "N"
    if kind == tokenize.NAME and text in bound and not keyword.iskeyword(text):
        return "V"
    return text


def split(submission: Submission, skip: frozenset[str] = frozenset()) -> tuple[list[Definition], list[Unit]]:
    """The submission's top-level functions and classes (not those named in `skip`: the notebook's given code),
    and their units as normalised tokens. Imports, constants and demo code are not compared."""
    parsed = []
    for chunk in submission.chunks:
        tree = ast.parse(chunk.code)
        node = tree.body[0] if tree.body else None
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name not in skip:
            parsed.append((chunk, tree, node))
    bound = bound_names([tree for _, tree, _ in parsed])
    definitions: list[Definition] = []
    units: list[Unit] = []
    for chunk, tree, node in parsed:
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        lines = chunk.code.splitlines()[first - 1: node.end_lineno]
        definitions.append(Definition(node.name, chunk.origin, first, lines))
        index = len(definitions) - 1
        ranges = [(index, node.name, first, node.end_lineno or first)]
        if isinstance(node, ast.ClassDef):  # each method on its own; the class's other statements together
            ranges = [(index, f"{node.name}.{m.name}", min([m.lineno] + [d.lineno for d in m.decorator_list]),
                       m.end_lineno or m.lineno)
                      for m in node.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))] + ranges
        own = [Unit(index, name) for index, name, _, _ in ranges]
        units += own
        docstrings, headers = _docstrings(tree), _headers(tree)
        for token in tokenize.generate_tokens(io.StringIO(chunk.code).readline):
            if token.start in docstrings or any(start <= token.start < end for start, end in headers):
                continue
            text = normalise(token.type, token.string, bound)
            if text is None:
                continue
            row = token.start[0]
            unit = next(u for u, (_, _, start, end) in zip(own, ranges) if start <= row <= end)
            unit.tokens.append(text)
            unit.spans.append((row - first, token.start[1], token.end[0] - first, token.end[1]))
    return definitions, [u for u in units if u.tokens]
