"""Read a submission (.ipynb, marimo .py or plain .py) into the definitions the worker runs.

What is executed: from every code cell, in notebook order, the top-level imports, function and
class definitions, and assignments whose right-hand side calls nothing (constants, aliases) and
reads no value that only skipped code makes. Everything else -- prints, plots, instantiations,
training loops, `check(...)` cells -- is skipped, so demo code can neither slow grading down nor
break it. When a name is defined twice, the later definition wins, as when a notebook is run top to
bottom.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

# jsonschema (under nbformat) imports rfc3987_syntax when installed, which builds a grammar for 1-2 s at every
# start, for URI formats that notebooks never use: refuse that one import, before nbformat is first imported. Every
# module of the kit that reads notebooks imports this one first.
sys.modules.setdefault("rfc3987_syntax", None)
import nbformat  # noqa: E402

KEPT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
MAGIC = re.compile(r"^\s*[%!]")
NAME_ERROR = re.compile(r"name '(\w+)' is not defined")
CJK = re.compile(r"[\u4e00-\u9fff]")
KANA_HANGUL = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
"""Japanese kana and Korean hangul: Han characters beside these are not Traditional Chinese."""


class SubmissionError(Exception):
    """The file cannot be read as a submission; `key` names the message in the catalogue."""

    def __init__(self, key: str, **params: object):
        super().__init__(key, params)
        self.key = key
        self.params = params


@dataclass
class Chunk:
    """One top-level statement kept for execution, with where it came from."""

    origin: str
    code: str


@dataclass
class Submission:
    """A submission as data: the code the worker runs, and what was noticed while reading it."""

    path: Path
    kind: str
    chunks: list[Chunk]
    problems: list[tuple[str, dict]] = field(default_factory=list)
    """(message key, params) for cells that could not be used, e.g. syntax errors."""
    lang: str = "en"
    """Language the notebook's prose is written in: "en" or "zh_TW"."""
    skipped_names: set[str] = field(default_factory=set)
    """Names bound only by skipped (demo) statements: a kept statement that needs one cannot run."""
    kept_names: set[str] = field(default_factory=set)
    """Names bound by kept statements, so far in notebook order."""

    def chunk_dicts(self) -> list[dict]:
        """The kept statements as the worker's `load` request carries them."""
        return [{"origin": c.origin, "code": c.code} for c in self.chunks]


def file_sha256(path: Path) -> str:
    """SHA-256 of a regular file, read in pieces ("" for anything else: a FIFO would never end)."""
    digest = hashlib.sha256()
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return ""
        while piece := handle.read(1 << 20):
            digest.update(piece)
    return digest.hexdigest()


class LoadedFile(NamedTuple):
    """A file as the judge receives it: its definitions, or why it has none."""

    sha256: str
    """"" when the file could not even be hashed (a rerun then retries it)."""
    submission: Submission | None
    error: tuple[str, dict] | None
    """(message key, params) of the reason it could not be read."""


def read_file(path: Path, max_bytes: int) -> LoadedFile:
    """Hash and load `path`; every way of failing becomes a reason (one odd file must not stop a batch)."""
    sha256 = ""
    try:
        sha256 = file_sha256(path)
        return LoadedFile(sha256, load_submission(path, max_bytes), None)
    except SubmissionError as exc:
        return LoadedFile(sha256, None, (exc.key, exc.params))
    except OSError as exc:
        return LoadedFile(sha256, None, ("load.unreadable", {"error": exc.strerror or str(exc)}))
    except Exception as exc:  # noqa: BLE001 - a file no reader expected must not stop the batch
        return LoadedFile(sha256, None, ("load.unreadable", {"error": f"{type(exc).__name__}: {exc}"[:300]}))


def load_submission(path: Path, max_bytes: int = 8 * 2**20) -> Submission:
    """Read `path` and keep its definitions. Raises SubmissionError with a specific reason."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SubmissionError("load.unreadable", error=exc.strerror or str(exc)) from None
    if size > max_bytes:
        raise SubmissionError("load.too_large", size=size, limit=max_bytes)
    if size == 0:
        raise SubmissionError("load.empty")
    with open(path, "rb") as handle:  # never more than the cap, even if the file grew since stat
        raw = handle.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise SubmissionError("load.too_large", size=len(raw), limit=max_bytes)
    if b"\x00" in raw:
        raise SubmissionError("load.not_text")
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark (Windows editors) is not code
    except UnicodeDecodeError as exc:
        raise SubmissionError("load.not_utf8", error=str(exc)[:200]) from None
    suffix = path.suffix.lower()
    if suffix == ".ipynb":
        cells, lang = _ipynb_cells(text)
        kind = "ipynb"
    elif suffix == ".py":
        if _looks_like_marimo(text):
            cells, lang = _marimo_cells(text), _lang_of(text)
            kind = "marimo"
        else:
            cells, lang = [("file", text)], _lang_of(text)
            kind = "py"
    else:
        raise SubmissionError("load.unknown_type", suffix=suffix or "(none)")
    submission = Submission(path=path, kind=kind, chunks=[], lang=lang)
    for origin, code in cells:
        _keep_definitions(origin, code, submission)
    return submission


def _ipynb_cells(text: str) -> tuple[list[tuple[str, str]], str]:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise SubmissionError("load.bad_json", error=str(exc)[:200]) from None
    if not isinstance(data, dict) or "cells" not in data and "worksheets" not in data:
        raise SubmissionError("load.not_notebook")
    major = data.get("nbformat")
    if major != 4:
        raise SubmissionError("load.old_nbformat", version=major)
    try:
        nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
        nbformat.validate(nb)
    except Exception as exc:  # noqa: BLE001 - nbformat raises several validation error types
        raise SubmissionError("load.invalid_notebook", error=str(exc).splitlines()[0][:200]) from None
    cells, prose = [], []
    for index, cell in enumerate(nb.cells, start=1):
        if cell.cell_type == "code":
            cells.append((f"cell {index}", cell.source))
        elif cell.cell_type == "markdown":
            prose.append(cell.source)
    return cells, _lang_of("\n".join(prose))


def _looks_like_marimo(text: str) -> bool:
    return "marimo.App(" in text and "@app." in text


def _marimo_cells(text: str) -> list[tuple[str, str]]:
    from marimo._ast.parse import parse_notebook

    try:
        notebook = parse_notebook(text)
    except SyntaxError as exc:
        raise SubmissionError("load.syntax", origin="file", line=exc.lineno or 0, error=exc.msg) from None
    if notebook is None or not notebook.cells:
        raise SubmissionError("load.bad_marimo")
    return [(f"cell {i} ({c.name})", c.code) for i, c in enumerate(notebook.cells, start=1)]


def _lang_of(text: str) -> str:
    """zh_TW for prose in Chinese characters; English otherwise, also for Japanese and Korean."""
    han, other = len(CJK.findall(text)), len(KANA_HANGUL.findall(text))
    return "zh_TW" if han > 20 and other * 10 < han else "en"


def _keep_definitions(origin: str, code: str, submission: Submission) -> None:
    if code.lstrip().startswith("%%"):
        return
    lines = ["" if MAGIC.match(line) else line for line in code.splitlines()]
    source = "\n".join(lines)
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        submission.problems.append(
            ("load.syntax", {"origin": origin, "line": exc.lineno or 0, "error": exc.msg})
        )
        return
    except (RecursionError, MemoryError, ValueError):
        submission.problems.append(("load.unparsable", {"origin": origin}))
        return
    for node in tree.body:
        if not _is_kept(node) or _needs_demo_values(node, submission):
            submission.skipped_names |= _bound(node) - submission.kept_names
            continue
        submission.kept_names |= _bound(node)
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        # Blank lines in front keep the student's line numbers in tracebacks.
        code = "\n" * (first - 1) + "\n".join(lines[first - 1 : node.end_lineno])
        submission.chunks.append(Chunk(origin=origin, code=code))


def _bound(node: ast.stmt) -> set[str]:
    """The names a top-level statement binds."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _needs_demo_values(node: ast.stmt, submission: Submission) -> bool:
    """A constant or alias that reads a value only skipped (demo) code makes, such as the notebook's given
    `query_2 = inputs[1]`: it could only fail, so it is not run (its names count as skipped)."""
    if not isinstance(node, (ast.Assign, ast.AnnAssign)):
        return False
    read = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return bool(read & (submission.skipped_names - submission.kept_names))


def _is_kept(node: ast.stmt) -> bool:
    if isinstance(node, ast.ImportFrom):
        return (node.module or "").split(".")[0] != "autograder"
    if isinstance(node, ast.Import):
        return all(alias.name.split(".")[0] != "autograder" for alias in node.names)
    if isinstance(node, KEPT):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        calls = any(isinstance(n, ast.Call) for n in ast.walk(node.value))
        return not calls and all(isinstance(t, ast.Name) for t in targets)
    return False
