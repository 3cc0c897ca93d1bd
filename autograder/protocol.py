"""Length-prefixed messages between judge and worker; only plain data and tensors cross.

Each message is `torch.save` of a dict of str/int/float/bool/None, lists, dicts and tensors,
read back with `torch.load(weights_only=True)`, which refuses anything else (no pickle of
arbitrary objects ever reaches the judge).
"""
from __future__ import annotations

import io
import os
import select
import struct
import time

import torch

HEADER = struct.Struct("!Q")


class ProtocolError(Exception):
    """The other side sent something that is not a valid message, or sent it too late."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def encode(message: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(message, buffer)
    data = buffer.getvalue()
    return HEADER.pack(len(data)) + data


def decode(data: bytes) -> dict:
    try:
        message = torch.load(io.BytesIO(data), weights_only=True)
    except Exception as exc:  # the unpickler raises many types for hostile input
        raise ProtocolError("undecodable", str(exc)[:200]) from None
    if not isinstance(message, dict):
        raise ProtocolError("undecodable", f"expected a dict, got {type(message).__name__}")
    return message


def write_message(fd: int, message: dict) -> None:
    data = memoryview(encode(message))
    while data:
        written = os.write(fd, data)
        data = data[written:]


def read_message(fd: int, max_bytes: int, deadline: float | None = None) -> dict:
    """Read one message from `fd`; ProtocolError on timeout ("timeout"), EOF ("eof") or oversize."""
    (size,) = HEADER.unpack(_read_exact(fd, HEADER.size, deadline))
    if size > max_bytes:
        raise ProtocolError("too_large", f"{size} bytes")
    return decode(_read_exact(fd, size, deadline))


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes:
    chunks, remaining = [], size
    while remaining:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise ProtocolError("timeout")
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise ProtocolError("eof")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
