"""The reference's answers kept on disk between runs: a batch and `autograder check` read what an earlier run of the
same kit computed, instead of running the reference again.

One file per digest of everything that decides an answer: the kit's code (its checks, the handler that runs the
reference), the reference notebook, torch's and Python's versions. A change of any gives another file; the old
one is no longer read, and only the KEEP most recently used stay in the folder. The file holds the memo of
`judge.reference.ReferenceSubject` (history -> reply), written with the sandbox's wire format (`inside.protocol`:
plain data and tensors, never pickle) behind a SHA-256 of its bytes. A file that is truncated, altered, too
large, or not the grader's alone is ignored, and the answers are computed again.

It is used only where no student code can write it (capability.grader_files_safe): under bubblewrap and in the
fallback of a root grader. A fallback worker of the grader's own user, and the code in a student's kernel, could:
there nothing is kept.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

from autograder.sandbox.capability import grader_only

KIT = Path(__file__).resolve().parent.parent
FORMAT = 1
MAX_BYTES = 64 << 20
"""A larger file is not read (a full memo, 20,000 replies, is about 40 MB)."""
KEEP = 4
"""The answers files kept in a folder, the most recently used: each kit, reference, torch or Python change leaves
one behind (about 0.2 MB after a batch), and a machine may run two versions of the kit side by side."""
KEEP_PASSED = 16
"""The marks of the reference's passes kept in a folder (empty files, one per kit and limits and isolation)."""


def digest(reference_notebook: Path, assignment: Path | None = None) -> str:
    """What the answers depend on: the kit's code, the assignment's folder (its checks and stand-ins, when it lies
    outside the kit), the reference, torch and Python."""
    sha = hashlib.sha256(f"{FORMAT}\0{version('torch')}\0{sys.version}\0".encode())  # no import of torch
    outside = [assignment] if assignment is not None and not assignment.is_relative_to(KIT) else []
    for root in [KIT, *outside]:
        for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".toml") and p.is_file()):
            sha.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    sha.update(reference_notebook.read_bytes())
    return sha.hexdigest()[:32]


def path_for(folder: Path, reference_notebook: Path, assignment: Path | None = None) -> Path:
    return folder / f"reference-{digest(reference_notebook, assignment)}.answers"


def passed_path(folder: Path, reference_notebook: Path, assignment: Path | None, limits: dict,
                isolation: str) -> Path:
    """Where a batch keeps that the reference got full marks under `limits` and `isolation` (batch/preflight.py):
    a later batch under the same ones, with the same kit, reference, torch and Python, need not grade it again."""
    key = json.dumps([digest(reference_notebook, assignment), limits, isolation], sort_keys=True)
    return folder / f"preflight-{hashlib.sha256(key.encode()).hexdigest()[:32]}.passed"


def passed(path: Path) -> bool:
    """The reference passed before under what `path` names (and nobody but the grader could have said so)."""
    try:
        if not (grader_only(path.parent) and grader_only(path)):
            return False
        os.utime(path)  # used now (see prune)
        return True
    except OSError:
        return False


def remember_passed(path: Path) -> None:
    """Keep that the reference passed; a failure is no error (the next batch grades it again)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # mode 0600, this user's
        os.close(handle)
        os.replace(temporary, path)  # (over one that could not be trusted)
    except OSError:
        return
    prune(path.parent, KEEP_PASSED, "preflight-*.passed")


def read(path: Path) -> dict[bytes, dict]:
    """The memo kept in `path`; empty when there is none or it cannot be trusted."""
    from autograder.sandbox.inside.protocol import HEADER, ProtocolError, decode

    try:
        if not (grader_only(path.parent) and grader_only(path)) or path.stat().st_size > MAX_BYTES:
            return {}
        data = path.read_bytes()
        os.utime(path)  # used now: the answers of the kit in use are the last that prune() removes
    except OSError:
        return {}
    checksum, _, payload = data.partition(b"\n")
    if hashlib.sha256(payload).hexdigest().encode() != checksum:
        return {}
    try:
        kept = decode(payload[HEADER.size:])
    except ProtocolError:
        return {}
    entries = kept.get("entries")
    if kept.get("format") != FORMAT or not isinstance(entries, dict):
        return {}
    memo = {}
    for key, reply in entries.items():
        try:
            history = bytes.fromhex(key)
        except ValueError:
            return {}
        if len(history) != 32 or not isinstance(reply, dict):
            return {}
        memo[history] = reply
    return memo


def write(path: Path, memo: dict[bytes, dict], limit: int) -> None:
    """Keep `memo`, with what another judge kept there meanwhile, up to `limit` replies; a failure is no error."""
    from autograder.sandbox.inside.protocol import encode

    merged = {**read(path), **memo}
    entries = {key.hex(): reply for key, reply in list(merged.items())[-limit:]}
    try:
        payload = encode({"format": FORMAT, "entries": entries})
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # mode 0600
    except (OSError, TypeError, ValueError):
        return
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
        os.replace(temporary, path)
    except OSError:
        Path(temporary).unlink(missing_ok=True)
        return
    prune(path.parent, KEEP)


def prune(folder: Path, keep: int, pattern: str = "reference-*.answers") -> list[Path]:
    """Remove all but the `keep` most recently used files of `folder` that `pattern` names (by default the answers
    files); the files removed. Nothing is removed from a folder others may write (whose files, then, may not be the
    grader's to remove)."""
    try:
        if not grader_only(folder):
            return []
        found = [(path.stat().st_mtime, path) for path in folder.glob(pattern) if path.is_file()]
    except OSError:
        return []
    removed = []
    for _, path in sorted(found, reverse=True)[keep:]:
        try:
            path.unlink()
            removed.append(path)
        except OSError:
            continue
    return removed
