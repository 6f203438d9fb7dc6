"""HyperLogLog sketches for --approx-subjects: error within the stated bound, merges equal the sketch of the union."""

from __future__ import annotations

import numpy as np
import pytest

from spillguard.detect.sketch import REGISTERS, RELATIVE_ERROR, HllSketch
from spillguard.detect.state import KeySet


def _keys(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(1, np.iinfo(np.uint64).max, n, dtype=np.uint64, endpoint=True)


def test_relative_error_is_the_stated_one() -> None:
    assert REGISTERS == 1 << 14 and pytest.approx(1.04 / 128) == RELATIVE_ERROR


@pytest.mark.parametrize("n", [1, 50, 2_000, 40_000, 1_000_000])
def test_estimate_within_three_standard_errors(n: int) -> None:
    rng = np.random.default_rng(n)
    errors = []
    for _ in range(3):
        sketch = HllSketch()
        sketch.add(_keys(rng, n))
        errors.append((len(sketch) - n) / n)
    assert max(abs(e) for e in errors) <= 3 * RELATIVE_ERROR, errors
    assert abs(float(np.mean(errors))) <= 2 * RELATIVE_ERROR  # no bias


def test_merged_sketches_equal_the_sketch_of_the_union_and_ignore_repeats() -> None:
    rng = np.random.default_rng(7)
    parts = [_keys(rng, 30_000) for _ in range(5)]
    parts.append(parts[0][:10_000])  # people seen in two partitions count once
    merged = HllSketch()
    for p in parts:
        one = HllSketch()
        one.add(p)
        merged.update(one)
    whole = HllSketch()
    whole.add(np.concatenate(parts))
    assert np.array_equal(merged.registers, whole.registers)
    assert abs(len(merged) - 150_000) <= 3 * RELATIVE_ERROR * 150_000
    exact = KeySet()
    exact.add(parts[1])
    assert HllSketch.union_count([merged, exact]) == len(merged)  # parts[1] is in it already


def test_no_key_is_not_counted() -> None:
    sketch = HllSketch()
    sketch.add(np.zeros(10, np.uint64))
    assert len(sketch) == 0 and not sketch
