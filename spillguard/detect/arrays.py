"""Array helpers of the detection engine: Arrow leaves as text, their raw buffers, sort-based uniques."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spillguard.detect.keymerge import sort_keys


def indices(idx: Any) -> pa.Array:
    """Positions (a numpy array or a list of ints) as an Arrow int64 array, wrapping int64 ones without a copy.
    (pa.array of a numpy array imports numpy's masked arrays on its first call: 13 ms of every scan's start-up.)"""
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(idx), [None, pa.py_buffer(idx)])


def take(values: pa.Array, idx: Any) -> pa.Array:
    """values[idx] for numpy positions."""
    return values.take(indices(idx))


def whole_array(col: pa.ChunkedArray) -> pa.Array:
    """A chunked column as one array: its only chunk as it is (combine_chunks copies even one chunk)."""
    if col.num_chunks == 1:
        return col.chunk(0)
    return pa.concat_arrays(col.chunks) if col.num_chunks else pa.array([], col.type)


def unique_sorted(a: np.ndarray) -> np.ndarray:
    """np.unique by sorting: numpy 2's hash-based np.unique is ~100x slower on random 64-bit keys. An array that
    already ascends (row indices of array elements, which follow their records) is not sorted: one pass finds it."""
    if a.size < 2:
        return a.copy()
    if not bool((a[1:] >= a[:-1]).all()):
        a = sort_keys(a)
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
    a = sort_keys(a)
    starts = np.flatnonzero(np.concatenate(([True], a[1:] != a[:-1])))
    return a[starts], np.diff(np.append(starts, a.size))


def string_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, data) of a string/binary array as numpy views, offsets relative to the data start."""
    large = pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type)
    off_type: type[np.signedinteger[Any]] = np.int64 if large else np.int32
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


def native_column(arr: pa.Array) -> tuple[tuple[object, object, int, int, bool], np.ndarray | None]:
    """A leaf as the native core's column arguments (offsets, data, start, n, wide), nulls as the empty value,
    and the validity mask when there is a null."""
    arr = as_text(arr)
    valid = np.asarray(arr.is_valid()) if arr.null_count else None
    if valid is not None:
        arr = pc.fill_null(arr, "")
    bufs = arr.buffers()
    wide = pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type)
    return (bufs[1], bufs[2], arr.offset, len(arr), wide), valid
