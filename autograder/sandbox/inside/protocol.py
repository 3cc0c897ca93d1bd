"""Length-prefixed messages between judge and worker; only plain data and tensors cross, never pickle.

On the wire a message is HEADER (the length of the rest), then:

    HEADER (the length of the JSON part) | the JSON part | every tensor's bytes, one after another

The JSON part (UTF-8; json escapes all but ASCII) is the message, a dict, itself: dicts with str
keys, lists (a tuple arrives as a list), str, int, float (NaN and +-Infinity spelt as Python's json
module spells them), bool and None. Each tensor in it (sent detached, as a plain tensor) is replaced
by a descriptor {"$tensor": i, "dtype": "float32", "shape": [2, 3]}, numbered 0, 1, ... in the order
they appear; tensor i's bytes (C-contiguous, in this machine's byte order: both ends run here) follow
tensor i-1's. A dict key that begins with "$" is sent with one more "$" in front, so no key of the
message can pass for a descriptor (and strings are never descriptors).

`decode` trusts nothing: nothing in a message makes it run code, and anything malformed raises
ProtocolError("undecodable").
"""
from __future__ import annotations

import json
import math
import os
import select
import struct
import time
from typing import Any

import torch

HEADER = struct.Struct("!Q")

_DTYPES = {
    str(dtype).removeprefix("torch."): dtype
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.complex64, torch.complex128,
                  torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool)
}
_NAMES = {dtype: name for name, dtype in _DTYPES.items()}
_MAX_DIMS = 64  # more than any tensor here has; bounds what one descriptor can ask of torch
_MAX_DIM = 2**62  # a size torch can hold, even in an empty tensor


class ProtocolError(Exception):
    """The other side sent something that is not a valid message, or sent it too late."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def encode(message: dict) -> bytes:
    """`message` as bytes on the wire, length prefix included; TypeError for what cannot be sent."""
    if not isinstance(message, dict):
        raise TypeError(f"a message is a dict, not a {type(message).__name__}")
    tensors: list[torch.Tensor] = []
    header = json.dumps(_to_json(message, tensors), separators=(",", ":")).encode("ascii")
    blobs = _blobs(tensors)
    if blobs is None:  # one copy of every tensor's bytes straight into place
        start = 2 * HEADER.size + len(header)
        buffer = bytearray(start + sum(t.numel() * t.element_size() for t in tensors))
        buffer[:start] = HEADER.pack(len(buffer) - HEADER.size) + HEADER.pack(len(header)) + header
        torch.cat([tensor.view(-1).view(torch.uint8) for tensor in tensors],
                  out=torch.frombuffer(buffer, dtype=torch.uint8)[start:])
        return bytes(buffer)
    size = HEADER.size + len(header) + sum(len(blob) for blob in blobs)
    return b"".join((HEADER.pack(size), HEADER.pack(len(header)), header, *blobs))


def _blobs(tensors: list[torch.Tensor]) -> list[bytes] | None:
    """Each tensor's bytes (contiguous plain CPU tensors, as _to_json leaves them), through numpy's view of them
    (a fraction of the cost of torch's own copy for a small tensor); None where torch has no numpy to lend."""
    try:
        return [(tensor.view(torch.int16) if tensor.dtype == torch.bfloat16 else tensor).numpy().tobytes()
                for tensor in tensors]
    except RuntimeError:  # "Numpy is not available"
        return None


_PLAIN = frozenset({type(None), bool, int, float, str})
"""The types json writes as they are (an item of a subclass goes through _to_json)."""


def _to_json(value: Any, tensors: list[torch.Tensor]) -> Any:
    """`value` with keys escaped and tensors moved to `tensors`, each replaced by its descriptor. A plain item of a
    dict or list is taken as it is, without a call (most of a message)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"dict keys must be str, not {type(key).__name__}")
            out["$" + key if key.startswith("$") else key] = item if type(item) in _PLAIN else _to_json(item, tensors)
        return out
    if isinstance(value, (list, tuple)):
        return [item if type(item) in _PLAIN else _to_json(item, tensors) for item in value]
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
        if type(tensor) is not torch.Tensor:  # a subclass's hooks must not run below (as_subclass is slow)
            tensor = tensor.as_subclass(torch.Tensor)
        if tensor.layout != torch.strided or tensor.dtype not in _NAMES or tensor.is_meta:
            raise TypeError(f"cannot send a {tensor.layout} tensor of {tensor.dtype} on {tensor.device}")
        # resolve_*: a lazily conjugated or negated view would otherwise send its unmodified bytes
        tensors.append(tensor.cpu().resolve_conj().resolve_neg().contiguous())
        return {"$tensor": len(tensors) - 1, "dtype": _NAMES[tensor.dtype], "shape": list(tensor.shape)}
    raise TypeError(f"cannot send a {type(value).__name__}")


def decode(data: bytes) -> dict:
    """The message in `data` (without the length prefix); ProtocolError("undecodable") if malformed."""
    try:
        return _Decoder(data).message()
    except ProtocolError:
        raise
    except Exception as exc:  # noqa: BLE001 - bad JSON or UTF-8, RecursionError from deep nesting, MemoryError, ...
        raise ProtocolError("undecodable", f"{type(exc).__name__}: {str(exc)[:200]}") from None


class _Decoder:
    """One message being decoded: the JSON part, and the tensor bytes the descriptors consume in order."""

    def __init__(self, data: bytes):
        view = memoryview(data)
        if len(view) < HEADER.size:
            raise ProtocolError("undecodable", "shorter than its header")
        (length,) = HEADER.unpack(view[:HEADER.size])
        if length > len(view) - HEADER.size:
            raise ProtocolError("undecodable", f"a JSON part of {length} bytes in {len(view)}")
        self.json = str(view[HEADER.size:HEADER.size + length], "utf-8")
        self.blob = view[HEADER.size + length:]
        self.buffer: bytearray | None = None  # the tensor bytes as one writable copy, made on first use
        self.used = 0
        self.count = 0

    def message(self) -> dict:
        # no '"$' anywhere: no descriptor and no escaped key, so every object would come back as it is
        message = json.loads(self.json) if '"$' not in self.json else json.loads(self.json, object_hook=self._object)
        if not isinstance(message, dict):
            raise ProtocolError("undecodable", f"expected a dict, got {type(message).__name__}")
        if self.used != len(self.blob):
            raise ProtocolError("undecodable", f"{len(self.blob) - self.used} bytes after the last tensor")
        return message

    def _object(self, obj: dict) -> Any:
        """Called by json for each object, innermost first: a descriptor becomes its tensor."""
        if "$tensor" in obj:
            return self._tensor(obj)
        for key in obj:
            if key[:1] == "$":
                break
        else:
            return obj
        if not all(key.startswith("$$") for key in obj if key.startswith("$")):
            raise ProtocolError("undecodable", "a key with a single '$' that is not a tensor descriptor")
        return {key[1:] if key.startswith("$") else key: value for key, value in obj.items()}

    def _tensor(self, descriptor: dict) -> torch.Tensor:
        index, name, shape = descriptor["$tensor"], descriptor.get("dtype"), descriptor.get("shape")
        if (len(descriptor) != 3 or type(index) is not int or index != self.count
                or not isinstance(name, str) or name not in _DTYPES
                or type(shape) is not list or len(shape) > _MAX_DIMS
                or not all(type(n) is int and 0 <= n <= _MAX_DIM for n in shape)):
            raise ProtocolError("undecodable", f"tensor descriptor number {self.count} is malformed")
        dtype = _DTYPES[name]
        size = math.prod(shape) * dtype.itemsize  # Python ints: no overflow, however large the shape
        if size > len(self.blob) - self.used:
            raise ProtocolError("undecodable", f"tensor {index} needs {size} bytes, {len(self.blob) - self.used} left")
        self.count += 1
        if size == 0:
            return torch.empty(shape, dtype=dtype)
        if self.buffer is None:
            self.buffer = bytearray(self.blob)  # frombuffer wants writable memory; each tensor is copied out
        # Copied out as bytes, into memory of its own, and only then seen as its dtype: its bytes may start at any
        # offset, and torch reads some dtypes aligned only (a complex128 one byte off crashed the process).
        raw = torch.frombuffer(self.buffer, dtype=torch.uint8, count=size, offset=self.used)
        self.used += size
        return raw.clone().view(dtype).view(tuple(shape))


def write_message(fd: int, message: dict) -> None:
    """Write one message to `fd`, however many writes the pipe needs."""
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
    """Exactly `size` bytes from `fd`, or ProtocolError ("timeout" or "eof")."""
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
