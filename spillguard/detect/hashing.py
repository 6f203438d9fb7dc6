"""Vectorised keyed 64-bit hashing of Arrow string arrays.

Subjects and matched values are counted by keyed hash, never by value, so that no personal data
is kept in memory or in checkpoints. The hash is a multilinear hash with a random 64-bit key per
byte position (keyed by the scan's seed), finished with the splitmix64 mixer; it runs in numpy
with no per-value Python code. 0 is reserved for "no value".
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_TABLE_BITS = 16
_MASK = (1 << _TABLE_BITS) - 1


def unique_sorted(a: np.ndarray) -> np.ndarray:
    """np.unique by sorting: numpy 2's hash-based np.unique is ~100x slower on random 64-bit keys."""
    if a.size < 2:
        return a.copy()
    a = np.sort(a)
    return a[np.concatenate(([True], a[1:] != a[:-1]))]


def unique_inverse(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique values, index of each input in them), by sorting."""
    order = np.argsort(a, kind="stable")
    ordered = a[order]
    first = np.concatenate(([True], ordered[1:] != ordered[:-1])) if a.size else np.zeros(0, bool)
    group = np.cumsum(first) - 1
    inverse = np.empty(a.size, np.int64)
    inverse[order] = group
    return ordered[first], inverse


def unique_counts(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique values, how often each occurs), by sorting."""
    if a.size == 0:
        return a, np.zeros(0, np.int64)
    a = np.sort(a)
    starts = np.flatnonzero(np.concatenate(([True], a[1:] != a[:-1])))
    return a[starts], np.diff(np.append(starts, a.size))


def _splitmix(h: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint64(30))
        h = h * np.uint64(0xBF58476D1CE4E5B9)
        h = h ^ (h >> np.uint64(27))
        h = h * np.uint64(0x94D049BB133111EB)
        h = h ^ (h >> np.uint64(31))
    return h


def string_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, data) of a string/binary array as numpy views, offsets relative to the data start."""
    if pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type):
        off_type = np.int64
    else:
        off_type = np.int32
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=off_type)[arr.offset : arr.offset + len(arr) + 1].astype(np.int64)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    return offsets, data


def as_text(arr: pa.Array) -> pa.Array:
    """Any leaf array as a string array (numbers, booleans and times rendered as text)."""
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if pa.types.is_string(t):
        return arr
    if pa.types.is_large_string(t):  # Parquet from polars and others: narrowed, compute kernels expect 32-bit offsets
        try:
            return arr.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return arr  # over 2 GB of text in one array: the engine scans it in halves
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        # Text-like bytes (bytea, BLOB) are scanned as UTF-8; invalid sequences stay bytes.
        if pa.types.is_fixed_size_binary(t):
            arr = arr.cast(pa.binary())
        return arr.view(pa.large_string() if pa.types.is_large_binary(arr.type) else pa.string())
    if pa.types.is_null(t):
        return pa.array([None] * len(arr), pa.string())
    if pa.types.is_timestamp(t):
        # ISO form with a 'T': "1976-05-25T00:00:00" reads as a date, never as a phone number.
        return pc.strftime(arr, format="%Y-%m-%dT%H:%M:%S")
    if pa.types.is_date(t):
        return pc.strftime(arr, format="%Y-%m-%d")
    try:
        return pc.cast(arr, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([None if v is None else str(v) for v in arr.to_pylist()], pa.string())


class Hasher:
    def __init__(self, seed: int) -> None:
        rng = np.random.Generator(np.random.PCG64(seed))
        self._keys = rng.integers(1, 2**63 - 1, size=1 << _TABLE_BITS, dtype=np.int64).astype(np.uint64) | np.uint64(1)
        self._len_key = np.uint64(int(rng.integers(1, 2**63 - 1)) | 1)

    def hash_strings(self, arr: pa.Array) -> np.ndarray:
        """uint64 hash per value; 0 for nulls."""
        arr = as_text(arr)
        n = len(arr)
        if n == 0:
            return np.zeros(0, np.uint64)
        if arr.null_count:
            valid = np.asarray(arr.is_valid())
            arr = pc.fill_null(arr, "")
        else:
            valid = None
        offsets, data = string_buffers(arr)
        base = offsets[0]
        lengths = np.diff(offsets)
        chunk = data[base : offsets[-1]]
        sums = self._byte_sums(lengths, chunk) if chunk.size else np.zeros(n, np.uint64)
        if sums is None:
            chunk = chunk.astype(np.uint64)
            pos = np.arange(chunk.size, dtype=np.int64) - np.repeat(offsets[:-1] - base, lengths)
            with np.errstate(over="ignore"):
                parts = (chunk + np.uint64(1)) * self._keys[pos & _MASK]
            # Segments of the non-empty values only: an empty value's start would cut its neighbour short.
            filled = lengths > 0
            sums = np.zeros(n, np.uint64)
            sums[filled] = np.add.reduceat(parts, (offsets[:-1] - base)[filled])
        with np.errstate(over="ignore"):
            h = _splitmix(sums ^ (lengths.astype(np.uint64) * self._len_key))
        h[h == 0] = 1
        if valid is not None:
            h[~valid] = 0
        return h

    def _byte_sums(self, lengths: np.ndarray, chunk: np.ndarray) -> np.ndarray | None:
        """Sum of (byte + 1) * key[position] per value, one padded row per value (a matrix-vector product,
        wrapping mod 2**64 like the per-byte path); None when the rows would be mostly padding."""
        rows = np.flatnonzero(lengths)
        row_len = lengths[rows]
        width = int(row_len.max())
        if width > self._keys.size or rows.size * width > 2 * chunk.size:
            return None
        if rows.size * width == chunk.size:
            grid = chunk.reshape(rows.size, width).astype(np.uint64)
            grid += np.uint64(1)
        else:
            grid = np.zeros((rows.size, width), np.uint64)
            grid[np.arange(width) < row_len[:, None]] = chunk.astype(np.uint64) + np.uint64(1)
        sums = np.zeros(lengths.size, np.uint64)
        sums[rows] = grid @ self._keys[:width]
        return sums
