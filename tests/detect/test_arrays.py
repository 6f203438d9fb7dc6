"""Array helpers of the engine (spillguard/detect/arrays.py)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from spillguard.detect.arrays import unique_sorted, whole_array


def test_whole_array_keeps_an_only_chunk_and_joins_several() -> None:
    one = pa.chunked_array([pa.array(["a@example.com", None, "b"])])
    kept = whole_array(one)
    # The only chunk itself: its data buffer is not copied (combine_chunks would copy it).
    assert kept.buffers()[2].address == one.chunk(0).buffers()[2].address
    assert kept.to_pylist() == ["a@example.com", None, "b"]
    t = pa.struct([("x", pa.int64())])
    several = pa.chunked_array([pa.array([{"x": 1}], t), pa.array([{"x": None}, None], t)])
    assert whole_array(several).to_pylist() == [{"x": 1}, {"x": None}, None]
    empty = whole_array(pa.chunked_array([], pa.large_string()))
    assert len(empty) == 0 and empty.type == pa.large_string()


def test_unique_sorted_of_ascending_and_unsorted_arrays() -> None:
    rng = np.random.default_rng(3)
    for a in (
        np.sort(rng.integers(0, 50, 1000)),  # ascending with repeats: no sort
        rng.integers(0, 50, 1000),
        rng.integers(0, 2**63, 5000, dtype=np.int64),
        rng.integers(0, 2**64 - 1, 5000, dtype=np.uint64),
        np.array([7]),
        np.array([], np.int64),
        np.array([3, 3, 3]),
        np.array([1, 2, 2, 1]),  # ascends, then not
    ):
        out = unique_sorted(a)
        assert np.array_equal(out, np.unique(a)) and out.dtype == a.dtype
        if a.size:
            assert not np.shares_memory(out, a)
