"""Unpack a .zip of submissions (an LMS's "download all submissions") safely: no path escapes, no bombs."""
from __future__ import annotations

import re
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from autograder.config import Limits

CHUNK = 1 << 16


@dataclass
class Unpacked:
    """What became of one archive: the folder its files were written to, and what was refused and why."""

    folder: Path
    refused: list[tuple[str, str, dict]] = field(default_factory=list)
    """(member name as stored, message key, parameters): members not written, one record each."""
    error: tuple[str, dict] | None = None
    """Why nothing of the archive was unpacked (not a zip, too many members, too large in total)."""


def _safe_parts(name: str) -> tuple[str, ...] | None:
    """The member's path as folder parts under the destination; None when it would land elsewhere."""
    name = name.replace("\\", "/")
    if "\0" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return None
    parts = tuple(p for p in PurePosixPath(name).parts if p not in ("", "."))
    if not parts or ".." in parts:
        return None
    return parts


def _is_link(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return stat.S_ISLNK(mode) if mode else False


def unpack(archive: Path, dest: Path, limits: Limits) -> Unpacked:
    """Write `archive`'s files under `dest` (emptied first), refusing each member that could harm the grader.

    Refused as a whole (nothing written): not a zip file, more than `limits.archive_members` entries, or a declared
    total above `limits.archive_bytes`. Refused per member (the rest is written): a path that leaves `dest`
    (absolute, `..`, a drive letter), a symbolic link, an encrypted file, a file above `limits.archive_member_bytes`
    or packed more than `limits.archive_ratio` times, a name that appears twice, data that does not match its
    declared size or checksum.
    """
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    result = Unpacked(dest)
    try:
        handle = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        result.error = ("archive.unreadable", {"error": str(exc)[:200]})
        return result
    with handle:
        members = handle.infolist()
        if len(members) > limits.archive_members:
            result.error = ("archive.too_many", {"count": len(members), "limit": limits.archive_members})
            return result
        declared = sum(m.file_size for m in members)
        if declared > limits.archive_bytes:
            result.error = ("archive.too_large", {"size": declared, "limit": limits.archive_bytes})
            return result
        written = 0
        root = dest.resolve()
        for info in members:
            if info.is_dir():
                continue
            refusal = _refusal(info, root, limits)
            target = None if refusal else root.joinpath(*_safe_parts(info.filename))
            if target is not None and target.exists():
                refusal = ("archive.duplicate", {})
            if refusal is None:
                refusal = _extract(handle, info, target, limits.archive_bytes - written)
                if refusal is None:
                    written += info.file_size
            if refusal is not None:
                result.refused.append((info.filename, refusal[0], {"member": info.filename, **refusal[1]}))
    return result


def _refusal(info: zipfile.ZipInfo, root: Path, limits: Limits) -> tuple[str, dict] | None:
    """Why this member may not be written, judged from its directory entry alone; None if it may."""
    parts = _safe_parts(info.filename)
    if parts is None or not root.joinpath(*parts).resolve().is_relative_to(root):
        return ("archive.escape", {})
    if _is_link(info):
        return ("archive.link", {})
    if info.flag_bits & 0x1:
        return ("archive.encrypted", {})
    if info.file_size > limits.archive_member_bytes:
        return ("archive.member_too_large", {"size": info.file_size, "limit": limits.archive_member_bytes})
    if info.file_size > limits.archive_ratio * max(info.compress_size, 1):
        return ("archive.ratio", {"ratio": f"{info.file_size / max(info.compress_size, 1):.0f}",
                                  "limit": f"{limits.archive_ratio:g}"})
    return None


def _extract(handle: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int) -> tuple[str, dict] | None:
    """Stream one member to `target`, never writing more than it declared (nor than `budget`)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    try:
        with handle.open(info) as source, open(target, "xb") as sink:
            while chunk := source.read(CHUNK):
                size += len(chunk)
                if size > info.file_size or size > budget:
                    raise zipfile.BadZipFile(f"more data than the {info.file_size} bytes declared")
                sink.write(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError, ValueError) as exc:
        target.unlink(missing_ok=True)
        return ("archive.bad_member", {"error": str(exc)[:200]})
    return None
