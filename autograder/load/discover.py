"""Find the submissions under the paths given, name their records, and tell which records are current."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from autograder.load.submission import file_sha256
from autograder.report.records import checks_digest

SUFFIXES = {".ipynb", ".py"}


@dataclass(frozen=True)
class Entry:
    """A submission file and the name its record is written under."""

    path: Path
    name: str
    outside: bool = False
    """A symlink that points outside the folder it was found in."""


def discover(paths: list[Path]) -> list[Entry]:
    """Submissions under `paths`: files as given; in folders, every .ipynb and .py file."""
    found: list[tuple[Path, str, bool]] = []
    for root in paths:
        root = Path(root)
        if root.is_dir():
            base = root.resolve()
            for path in sorted(root.rglob("*")):
                relative = path.relative_to(root)
                if any(p.startswith(".") for p in relative.parts) or path.suffix.lower() not in SUFFIXES:
                    continue
                if path.is_symlink() or path.is_file():
                    try:
                        outside = not path.resolve().is_relative_to(base)
                    except (OSError, RuntimeError):  # a symlink loop: reading it fails with a clear reason
                        outside = False
                    found.append((path, "__".join(relative.parts), outside))
        else:
            found.append((root, root.name, False))
    entries, seen = [], set()
    for path, name, outside in found:
        name = re.sub(r"[^\w.\-]+", "_", name)
        unique, n = name, 1
        while unique in seen:
            n += 1
            unique = f"{name}~{n}"
        seen.add(unique)
        entries.append(Entry(path, unique, outside))
    return entries


def up_to_date(entry: Entry, record_path: Path) -> bool:
    """Does `record_path` hold the record of this very file, graded by these very checks?"""
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        digest = file_sha256(entry.path)
    except (OSError, ValueError):
        return False
    return (bool(digest) and record.get("submission") == str(entry.path) and record.get("sha256") == digest
            and record.get("checks_digest") == checks_digest())  # changed checks: a regrade, not a resume
