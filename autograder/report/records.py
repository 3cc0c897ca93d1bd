"""Records on disk: written atomically with the mode the umask gives, and read back (the model is record.py)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from autograder.record import SubmissionResult


def _umask() -> int:
    """The process's umask (reading it means setting it: set it back at once)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def write_atomic(path: Path, text: str) -> None:
    """Write `text` so that readers see the old file or the new one, never a torn one.

    The file gets the mode a plain open() would give it (0o666 less the umask): mkstemp's private 0o600 would keep
    the teaching assistants an instructor shares the folder with from reading records, pages and grades.csv.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(result: SubmissionResult, path: Path) -> None:
    write_atomic(path, json.dumps(result.to_json(), ensure_ascii=False, indent=1))


def load(path: Path) -> SubmissionResult:
    return SubmissionResult.from_json(json.loads(path.read_text(encoding="utf-8")))
