"""Array helpers of the engine (spillguard/detect/arrays.py)."""

from __future__ import annotations

import pyarrow as pa

from spillguard.detect.arrays import whole_array


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
