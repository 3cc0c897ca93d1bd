"""Fingerprints of token streams: hashes of every k tokens in a row, thinned by winnowing (copydetect's, the
algorithm MOSS uses) so that any shared run of k + window - 1 tokens leaves at least one shared fingerprint."""
from __future__ import annotations

import zlib
from collections.abc import Iterable

import numpy as np

MULTIPLIER = np.uint64(0x100000001B3)
"""The rolling hash's base (FNV's prime): wraps around at 2**64, which numpy does for uint64."""


def _ids(tokens: list[str], cache: dict[str, int]) -> np.ndarray:
    """Stable numbers for tokens (CRC-32, not Python's salted hash), so a report is the same at every run."""
    out = np.empty(len(tokens), dtype=np.uint64)
    for i, token in enumerate(tokens):
        value = cache.get(token)
        if value is None:
            value = cache[token] = zlib.crc32(token.encode()) | (len(token) << 32)
        out[i] = value
    return out


def kgram_hashes(tokens: list[str], k: int, cache: dict[str, int] | None = None) -> np.ndarray:
    """The hash of each run of k tokens, by position (empty when there are fewer than k tokens)."""
    count = len(tokens) - k + 1
    if count <= 0:
        return np.empty(0, dtype=np.int64)
    ids = _ids(tokens, {} if cache is None else cache)
    hashes = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(k):
            hashes = hashes * MULTIPLIER + ids[offset:offset + count]
        hashes ^= hashes >> np.uint64(31)  # spread the bits, so that winnowing's minimum is not biased
        hashes *= np.uint64(0x9E3779B97F4A7C15)
        hashes ^= hashes >> np.uint64(29)
    return hashes.view(np.int64)


def winnowed(tokens: list[str], k: int, window: int, cache: dict[str, int] | None = None) -> list[tuple[int, int]]:
    """(hash, token position) of the fingerprints winnowing keeps: the smallest hash of every `window` k-grams."""
    from copydetect.utils import winnow

    hashes = kgram_hashes(tokens, k, cache)
    if len(hashes) == 0:
        return []
    if len(hashes) < window:  # shorter than one window: its smallest hash stands for it
        position = int(np.argmin(hashes))
        return [(int(hashes[position]), position)]
    kept, positions = winnow(hashes, window, remove_duplicates=False)
    return [(int(h), int(p)) for h, p in zip(kept, positions)]


def every_kgram(streams: Iterable[list[str]], k: int) -> set[int]:
    """Every k-gram hash of the streams: the boilerplate a submission's fingerprints are cleaned of."""
    found: set[int] = set()
    cache: dict[str, int] = {}
    for tokens in streams:
        found.update(int(h) for h in kgram_hashes(tokens, k, cache))
    return found
