"""What is compared: the class (a grade folder's records, or submission files), the sources named with --against,
and the boilerplate every correct solution shares (the stub, the given code, the reference's forced lines)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from autograder.assignment import Assignment
from autograder.config import Config
from autograder.i18n import t
from autograder.load.discover import discover
from autograder.load.submission import Submission, read_file
from autograder.report.class_overview import read_records
from autograder.similarity.fingerprints import every_kgram
from autograder.similarity.tokens import Definition, Unit, split

FORCED = ("__init__",)
"""Reference methods whose every line the stub dictates (layer names, order, arguments): `__init__`.
Reference functions the exercise spells out are forced too (the assignment's `fixed` parts)."""


@dataclass
class Document:
    """One file compared: a student's submission or a source named with --against."""

    name: str
    kind: str
    """"student" or "source"."""
    path: Path
    definitions: list[Definition]
    units: list[Unit]
    diagnoses: list[dict] = field(default_factory=list)
    """The record's diagnoses (graded folders only): a shared mistake is the strongest evidence."""
    record: Path | None = None
    """The record to write the instructor's lines into (graded folders only)."""


@dataclass
class Unreadable:
    """A file that could not be compared, and why (shown on the page and printed, never dropped)."""

    name: str
    path: str
    reason: str


def _document(path: Path, name: str, kind: str, skip: frozenset[str], max_bytes: int, lang: str
              ) -> Document | Unreadable:
    read = read_file(path, max_bytes)
    if read.submission is None:
        key, params = read.error or ("load.unreadable", {"error": "?"})
        return Unreadable(name, str(path), t(key, lang, **params))
    definitions, units = split(read.submission, skip)
    return Document(name, kind, path, definitions, units)


def given_names(stub: Submission, graded: tuple[str, ...]) -> frozenset[str]:
    """The stub's definitions that are not graded: the notebook's given code, never compared."""
    return frozenset(d.name for d in split(stub)[0] if d.name not in graded)


def _load(path: Path, what: str) -> Submission:
    read = read_file(path, Config().limits.source_bytes)
    if read.submission is None:
        raise FileNotFoundError(f"{path}: cannot read the {what} "
                                f"({read.error[0] if read.error else '?'}); the similarity report needs it to "
                                "leave out what every student is given")
    return read.submission


def boilerplate(k: int, config: Config, stub: Path | None = None,
                reference: Path | None = None) -> tuple[set[int], frozenset[str]]:
    """The k-grams nobody is credited with: every line of the stub (its signatures, the given code) and the
    reference's lines that the task forces. Returns them and the given code's names.

    Args:
        stub: the notebook students start from (default: the assignment's handout, English).

    Raises:
        FileNotFoundError: the stub or the reference solution cannot be read.
    """
    assignment: Assignment = config.assignment
    if stub is None and assignment.handouts is None:
        raise FileNotFoundError(f"{assignment.folder}: the assignment names no handouts folder, so the similarity "
                                "report cannot tell the given code from the students' own")
    stub_submission = _load(stub or assignment.notebook_in(assignment.handouts), "stub")
    given = given_names(stub_submission, assignment.graded)
    streams = [u.tokens for u in split(stub_submission)[1]]
    fixed = {name for name, part in assignment.parts.items() if part.fixed}
    for unit in split(_load(reference or config.reference_notebook, "reference"), given)[1]:
        method = unit.name.rpartition(".")[2]
        if method in FORCED or unit.name in fixed:
            streams.append(unit.tokens)
    return every_kgram(streams, k), given


def class_documents(paths: list[Path], skip: frozenset[str], lang: str, max_bytes: int
                    ) -> tuple[list[Document], list[Unreadable], Path | None]:
    """The class: a grade folder (its records name the submissions and hold their diagnoses) or submission files
    and folders. Returns the documents, what could not be read, and the grade folder (None for submissions).

    Raises:
        FileNotFoundError: a path does not exist.
        ValueError: nothing to compare (an empty folder, no .ipynb or .py file).
    """
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"{missing[0]}: no such file or folder")
    records = read_records(paths[0]) if len(paths) == 1 and Path(paths[0]).is_dir() else []
    docs: list[Document] = []
    unreadable: list[Unreadable] = []
    if records:
        folder = Path(paths[0])
        for name, record in records:
            path = Path(record.submission)
            if not path.is_absolute() and not path.exists() and (folder.parent / path).exists():
                path = folder.parent / path
            if not path.exists():
                unreadable.append(Unreadable(name, str(path), t("similarity.missing_file", lang, path=path)))
                continue
            found = _document(path, name, "student", skip, max_bytes, lang)
            if isinstance(found, Document):
                found.diagnoses, found.record = record.diagnoses, folder / f"{name}.json"
                docs.append(found)
            else:
                unreadable.append(found)
        return docs, unreadable, folder
    entries = discover([Path(p) for p in paths])
    if not entries:
        raise ValueError(f"{', '.join(map(str, paths))}: no submissions (.ipynb or .py files) and no records found")
    for entry in entries:
        found = _document(entry.path, entry.name, "student", skip, max_bytes, lang)
        (docs if isinstance(found, Document) else unreadable).append(found)
    return docs, unreadable, None


def source_documents(folders: list[Path], skip: frozenset[str], lang: str, max_bytes: int
                     ) -> tuple[list[Document], list[Unreadable]]:
    """The files of the folders named with --against (the book's repository, last year's class), each a document
    named `<folder>/<path inside it>`.

    Raises:
        FileNotFoundError: a folder does not exist.
        ValueError: a folder holds no .ipynb or .py file with a function or class to compare.
    """
    docs: list[Document] = []
    unreadable: list[Unreadable] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.exists():
            raise FileNotFoundError(f"--against {folder}: no such file or folder")
        found_here = 0
        for entry in discover([folder]):
            name = f"{folder.name}/{entry.path.relative_to(folder).as_posix()}" if folder.is_dir() else folder.name
            found = _document(entry.path, name, "source", skip, max_bytes, lang)
            if isinstance(found, Unreadable):
                unreadable.append(found)
            elif found.units:
                docs.append(found)
                found_here += 1
        if not found_here:
            raise ValueError(f"--against {folder}: no .ipynb or .py file with a function or class to compare")
    return docs, unreadable
