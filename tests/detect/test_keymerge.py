"""Exact unions of subject hashes: sorted runs merged as a tree, spilled to disk past the budget (detect/keymerge.py),
checked against numpy.unique; and the KeySet built on them."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from spillguard.detect.keymerge import KeyRuns, iter_union, sort_keys, sorted_unique, spill_pool, union_count
from spillguard.detect.state import DatasetState, KeySet


def _partitions(seed: int, n: int, size: int, universe: int) -> list[np.ndarray]:
    """Keys of n partitions, overlapping (drawn from one universe), with repeats and the "no key" 0 inside."""
    rng = np.random.default_rng(seed)
    parts = [rng.integers(0, universe, rng.integers(size // 2, size * 2), dtype=np.uint64) for _ in range(n)]
    parts[0][:5] = 0
    return parts


def _truth(parts: list[np.ndarray]) -> np.ndarray:
    u = np.unique(np.concatenate(parts))
    return u[u != 0]


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_k_way_union_equals_numpy_unique(chunk: int) -> None:
    parts = [sorted_unique(p) for p in _partitions(1, 12, 3000, 20_000)]
    parts.append(np.zeros(0, np.uint64))
    pieces = list(iter_union(parts, chunk))
    merged = np.concatenate(pieces)
    assert np.array_equal(merged, _truth(parts))
    assert all(p.size <= chunk * len(parts) for p in pieces)  # never more than a chunk of each run at once
    assert union_count(parts, chunk) == _truth(parts).size


def test_tree_merge_keeps_few_runs_and_the_exact_union() -> None:
    parts = _partitions(2, 100, 2000, 1 << 40)
    runs = KeyRuns()
    for p in parts:
        runs.push(sorted_unique(p))
    # sizes at least halve from run to run: a binary counter, log2(total) runs at most
    assert len(runs.runs) <= int(np.log2(sum(p.size for p in parts))) + 1
    assert all(a.size > 2 * b.size for a, b in zip(runs.runs, runs.runs[1:], strict=False))
    assert runs.count() == _truth(parts).size
    assert np.array_equal(runs.materialize(), _truth(parts))


def test_spill_beyond_the_budget_gives_the_same_keys(tmp_path) -> None:
    parts = _partitions(3, 40, 100_000, 1 << 62)
    truth = _truth(parts)
    with spill_pool(1 << 20, folder=tmp_path) as pool:  # 1 MiB: a tenth of the keys
        total = KeySet()
        for p in parts:
            one = KeySet()
            one.add(p)
            total.update(one)
        assert pool.spilled > 0 and pool.in_memory <= pool.budget
        assert any(isinstance(r, np.memmap) for r in total.runs())
        assert len(total) == truth.size
        assert KeySet.union_count([total, one]) == truth.size
        assert np.array_equal(total.array(), truth)
        # the folder is private and the spilled files are unlinked as soon as they are mapped
        assert oct(os.stat(pool.folder).st_mode & 0o777) == "0o700"
        assert os.listdir(pool.folder) == []
        folder = pool.folder
    assert not os.path.exists(folder)


def test_dataset_states_merge_exactly_in_any_order() -> None:
    parts = _partitions(4, 9, 5000, 30_000)
    states = []
    for p in parts:
        st = DatasetState("t", "d", "user_id")
        st.add_subjects(p)
        states.append(pickle.loads(pickle.dumps(st)))  # as a partition result travels from a worker
    forward, backward = DatasetState("t", "d", "user_id"), DatasetState("t", "d", "user_id")
    for st in states:
        forward.merge(st)
    for st in reversed(states):
        backward.merge(st)
    assert len(forward.subjects) == len(backward.subjects) == _truth(parts).size


def test_many_small_adds_between_counts() -> None:
    ks = KeySet()
    rng = np.random.default_rng(5)
    seen = []
    for _ in range(300):
        chunk = rng.integers(1, 50_000, 1000, dtype=np.uint64)
        seen.append(chunk)
        ks.add(chunk)
    assert len(ks) == _truth(seen).size
    ks.add(np.array([0, 0], np.uint64))
    assert len(ks) == _truth(seen).size


@pytest.mark.parametrize("dtype", [np.uint64, np.int64])
@pytest.mark.parametrize("size", [0, 1, 2, 255, 256, 257, 4_099, 100_000, 300_000])
def test_native_key_sort_equals_numpy(dtype: type, size: int) -> None:
    """The native sort gives numpy's order: signed keys of both signs, repeats, keys that share bytes (the radix
    path, skipped passes), wide keys bunched together (crowded buckets), and a strided view (copied before
    sorting, never sorted in place)."""
    rng = np.random.default_rng(size)
    lo = -(2**63) if dtype is np.int64 else 0
    random_keys = rng.integers(lo, 2**63 - 1, size, dtype=np.int64, endpoint=True).astype(dtype)
    narrow = rng.integers(0, 1000, size).astype(dtype)  # only the two low bytes differ
    one_high_byte = (np.full(size, 0x7F00000000000000, np.int64) + rng.integers(0, 1 << 20, size)).astype(dtype)
    repeats = rng.choice(random_keys[: max(1, size // 10)], size) if size else random_keys
    # Wide keys bunched in a few narrow places: most fall into a few crowded buckets (their radix fallback).
    # Around 0 both signs share a bucket of the signed order.
    centres = np.array([-(1 << 61), 0, 1 << 40], np.int64)
    bunched = (rng.choice(centres, size) + rng.integers(-(1 << 11), 1 << 11, size)).astype(dtype)
    cases = (random_keys, narrow, one_high_byte, repeats, bunched, random_keys[::-1], np.sort(random_keys))
    for keys in cases:
        before = keys.copy()
        out = sort_keys(keys)
        assert out.dtype == keys.dtype
        assert np.array_equal(out, np.sort(keys))
        assert np.array_equal(keys, before)  # the input is left as it was
    if size > 1:
        strided = random_keys[::2]
        assert np.array_equal(sort_keys(strided), np.sort(strided))


def test_native_merge_of_two_runs_equals_sort_and_dedup() -> None:
    """merge_two (native linear merge) against concatenate + sort + drop repeats, on runs (sorted, without repeats
    or 0) that overlap, are disjoint, interleave, repeat each other or hold the largest key."""
    import random

    import numpy as np

    from spillguard.detect.keymerge import merge_two

    rng = random.Random(12)
    for _ in range(400):
        pool = [rng.getrandbits(64) or 1 for _ in range(rng.choice([1, 5, 50, 3000]))] + [1, 2**64 - 1]
        a = np.unique(np.array(rng.sample(pool, rng.randrange(1, len(pool) + 1)), np.uint64))
        b = np.unique(np.array(rng.sample(pool, rng.randrange(1, len(pool) + 1)), np.uint64))
        want = np.union1d(a, b)
        got = merge_two(a, b)
        assert got.dtype == np.uint64 and np.array_equal(got, want)
        assert got.flags.writeable


def test_native_union_count_equals_the_chunked_union() -> None:
    """union_count's native count (heads compared in turn up to 4 runs, sorted windows beyond) against the chunked
    k-way union it replaced for up to 64 runs."""
    import random

    import numpy as np

    from spillguard.detect.keymerge import iter_union, union_count

    rng = random.Random(14)
    for _ in range(200):
        pool = [rng.getrandbits(64) or 1 for _ in range(rng.choice([3, 40, 2000]))] + [2**64 - 1]
        runs = [np.unique(np.array(rng.sample(pool, rng.randrange(0, len(pool) + 1)), np.uint64)) for _ in range(rng.choice([2, 3, 4, 5, 9, 27, 64]))]
        want = sum(piece.size for piece in iter_union(runs, 7))
        assert union_count(runs) == want == np.unique(np.concatenate(runs)).size


@pytest.mark.parametrize("k", [5, 9, 27, 64])
def test_native_windowed_union_count_over_runs_longer_than_a_window(k: int, tmp_path) -> None:
    """Beyond 4 runs the native count takes a window of 4,096 keys of each run per round, up to the smallest last key
    of those windows: runs far longer and far shorter than a window, runs that end early or start late in the key
    space, shared keys, the largest key, empty runs, and a run read from a memory-mapped file."""
    rng = np.random.default_rng(k)
    pool = np.unique(rng.integers(1, 2**64 - 1, 60_000, dtype=np.uint64, endpoint=True))
    runs = [np.unique(rng.choice(pool, rng.integers(0, 30_000))) for _ in range(k - 3)]
    runs.append(pool[:5_000])  # only small keys: done after the first rounds
    runs.append(np.append(pool[-9_000:], np.uint64(2**64 - 1)))  # only large keys, the largest of all
    mapped = np.lib.format.open_memmap(tmp_path / "run.npy", mode="w+", dtype=np.uint64, shape=(20_000,))
    mapped[:] = np.unique(rng.choice(pool, 25_000))[:20_000]
    runs.append(mapped)
    runs[0] = np.zeros(0, np.uint64)
    from spillguard import _native

    assert _native.union_count64(runs) == np.unique(np.concatenate(runs)).size
