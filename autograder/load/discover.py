"""Find the submissions under the paths given, name their records, and tell which records are current.

Every file found ends as an Entry, so as one record: a notebook or .py file is graded; a .zip is unpacked and
its files are entries in turn (named as if the zip were a folder named after it); any other file, and every
member an archive refused, is an entry with a `refusal`, whose record says why it was not graded. Hidden files
(and macOS's __MACOSX folders) are left out with a line through `notice`.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from autograder.config import Limits
from autograder.load.archive import unpack
from autograder.load.submission import file_sha256
from autograder.record import checks_digest

SUFFIXES = {".ipynb", ".py"}
ARCHIVES = {".zip"}
METADATA = {"submission_metadata.yml": "Gradescope's submission metadata (whose each submission_<id> folder is, "
                                      "read by autograder export canvas|moodle)",
            "timestamp.txt": "nbgrader's submission times (submitted/<student>/<assignment>/timestamp.txt)"}
"""Files a platform's export adds beside the submissions, by name: left out with a line, never a record."""


@dataclass(frozen=True)
class Entry:
    """A submission file and the name its record is written under."""

    path: Path
    name: str
    outside: bool = False
    """A symlink that points outside the folder it was found in."""
    refusal: tuple[str, dict] | None = None
    """(message key, parameters) when the file is not graded: not a submission, or refused from an archive."""


def _hidden(part: str) -> bool:
    return part.startswith(".") or part == "__MACOSX"


def discover(paths: list[Path], unpack_to: Path | None = None, limits: Limits | None = None,
             exclude: Path | None = None, notice: Callable[[str], None] | None = None) -> list[Entry]:
    """Every file under `paths`, as entries in order: files as given, folders walked, archives unpacked.

    Args:
        unpack_to: where archives are unpacked (`autograder grade` uses OUT/.unpacked); required if there are any.
        limits: the archive limits (Limits.archive_*).
        exclude: a folder left out (the grade folder, when it lies inside a graded folder).
        notice: receives a line for each file left out (hidden files, macOS metadata, Gradescope's metadata).
    """
    limits = limits or Limits()
    say = notice or (lambda line: None)
    skip = Path(os.path.abspath(exclude)) if exclude is not None else None
    found: list[tuple[Path, list[str], bool, tuple[str, dict] | None]] = []
    folders: set[str] = set()
    metadata: dict[str, list[Path]] = {}

    def walk(folder: Path, prefix: list[str], depth: int) -> None:
        base = folder.resolve()
        hidden: dict[Path, int] = {}
        for path in sorted(folder.rglob("*")):
            if skip is not None and depth == 0 and Path(os.path.abspath(path)).is_relative_to(skip):
                continue
            relative = path.relative_to(folder)
            first = next((i for i, p in enumerate(relative.parts) if _hidden(p)), None)
            if first is not None:
                top = folder.joinpath(*relative.parts[: first + 1])
                hidden[top] = hidden.get(top, 0) + (0 if path.is_dir() and not path.is_symlink() else 1)
                continue
            if path.is_dir() and not path.is_symlink():
                continue
            if not (path.is_symlink() or path.is_file()):
                say(f"SKIPPED {path}: not a regular file (a pipe, socket or device)")
                continue
            try:
                outside = path.is_symlink() and not path.resolve().is_relative_to(base)
            except (OSError, RuntimeError):  # a symlink loop: reading it fails with a clear reason
                outside = False
            add(path, prefix + list(relative.parts), outside, depth)
        for top, count in hidden.items():
            say(f"SKIPPED {top} ({count} file(s)): hidden (a name starting with '.') or macOS metadata (__MACOSX)")

    def add(path: Path, parts: list[str], outside: bool, depth: int) -> None:
        suffix = path.suffix.lower()
        if suffix in SUFFIXES or outside:
            found.append((path, parts, outside, None))
        elif suffix in ARCHIVES:
            archive(path, parts, depth)
        elif path.name in METADATA:
            metadata.setdefault(path.name, []).append(path)
        else:
            found.append((path, parts, False, ("load.unknown_type", {"suffix": suffix or "(none)"})))

    def archive(path: Path, parts: list[str], depth: int) -> None:
        if depth >= limits.archive_depth:
            found.append((path, parts, False, ("archive.nested", {"depth": limits.archive_depth})))
            return
        if unpack_to is None:
            raise ValueError(f"{path}: an archive, and no folder to unpack it to (unpack_to)")
        inside = parts[:-1] + [Path(parts[-1]).stem]  # the archive reads as a folder named after it
        folder = _clean("__".join(parts))
        while folder in folders:
            folder += "~"
        folders.add(folder)
        unpacked = unpack(path, unpack_to / folder, limits)
        if unpacked.error is not None:
            found.append((path, parts, False, unpacked.error))
            return
        for member, key, params in unpacked.refused:
            found.append((path, inside + [p for p in re.split(r"[/\\]+", member) if p], False, (key, params)))
        walk(unpacked.folder, inside, depth + 1)

    for root in paths:
        root = Path(root)
        if root.is_dir():
            walk(root, [], 0)
        else:
            add(root, [root.name], False, 0)
    for name, where in metadata.items():
        say(f"SKIPPED {where[0]}" + (f" and {len(where) - 1} more {name}" if len(where) > 1 else "")
            + f": {METADATA[name]}, not a submission")
    entries, seen = [], set()
    for path, parts, outside, refusal in found:
        name = _clean("__".join(parts))
        unique, n = name, 1
        while unique in seen:
            n += 1
            unique = f"{name}~{n}"
        seen.add(unique)
        entries.append(Entry(path, unique, outside, refusal))
    return entries


def _clean(name: str) -> str:
    """A record's file name: letters, digits, `.`, `-` and `_` only, never hidden."""
    return re.sub(r"^\.", "_", re.sub(r"[^\w.\-]+", "_", name))


def up_to_date(entry: Entry, record_path: Path, checks: Path) -> bool:
    """Does `record_path` hold the record of this very file, graded by the checks in `checks`?"""
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        digest = file_sha256(entry.path)
    except (OSError, ValueError):
        return False
    return (bool(digest) and record.get("submission") == str(entry.path) and record.get("sha256") == digest
            and record.get("checks_digest") == checks_digest(checks))  # changed checks: a regrade, not a resume
