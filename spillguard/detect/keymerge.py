"""Exact unions of keyed 64-bit hashes at any scale: sorted runs merged as a tree, spilled to disk.

A `KeyRuns` holds a set of uint64 keys as sorted, duplicate-free runs whose sizes at least halve from the
first to the last (a binary counter: a new run is merged with its neighbour while they are of similar
size), so adding n keys in runs costs O(n log n) and the driver of a scan merges partition results
pairwise as a tree. Counting, and merging a run that lives on disk, is a k-way pass over the runs a chunk
at a time, never more than `chunk` keys of each in memory.

All runs of one process share a `SpillPool`: once the runs held in memory pass its budget, the largest are
written to memory-mapped files in a private temporary folder (0700; each file is unlinked as soon as it is
mapped, so nothing is left behind even after kill -9) and read back from the page cache when merged.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

import spillguard._native as _native

DEFAULT_BUDGET = 1 << 30  # bytes of keys a process keeps in memory before spilling (--merge-memory)
TRACKED_KEYS = 1 << 16  # runs smaller than this stay in memory uncounted (partition-sized sets)
MIN_CHUNK = 1 << 12
_NATIVE_SORT_MIN = 256  # below this many keys numpy's sort is as fast


def sort_keys(a: np.ndarray) -> np.ndarray:
    """A sorted copy of an array; 64-bit integer keys (hashes, value/rule pairs) by the native sort (by bucket for
    keys spread over their range, by radix for narrow ones; native/sort.c): on hashes as fast as numpy 2.4's
    vectorised sort with AVX2, whatever numpy and processor spillguard runs with."""
    out = np.array(a, copy=True, order="C")
    if out.size >= _NATIVE_SORT_MIN and out.dtype in (np.int64, np.uint64):
        _native.sort64(out, out.dtype == np.int64)
    else:
        out.sort()
    return out


def _dedup(a: np.ndarray) -> np.ndarray:
    """A sorted array without repeats (and without 0, which means "no key")."""
    if a.size > 1:
        repeats = a[1:] == a[:-1]
        if repeats.any():  # disjoint runs (distinct people per partition) are kept without a copy
            a = a[np.concatenate(([True], ~repeats))]
    if a.size and a[0] == 0:
        a = a[1:]
    return a


def sorted_unique(keys: np.ndarray) -> np.ndarray:
    """Any uint64 keys as one run: sorted, without repeats or 0."""
    return _dedup(sort_keys(keys.astype(np.uint64, copy=False)))


def merge_two(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Union of two runs held in memory (uint64 keys, sorted, without repeats or 0), as one run, merged by the
    native core in one linear pass."""
    if not a.size:
        return np.asarray(b)
    if not b.size:
        return np.asarray(a)
    out = np.empty(a.size + b.size, np.uint64)
    n = _native.merge_unique64(np.ascontiguousarray(a, np.uint64), np.ascontiguousarray(b, np.uint64), out)
    return out if n == out.size else out[:n].copy()


def iter_union(runs: list[np.ndarray], chunk: int) -> Iterator[np.ndarray]:
    """The union of sorted runs as increasing, duplicate-free pieces, reading at most `chunk` keys of each run
    at a time. Each round takes, from every run, the keys up to the smallest last key among the runs' next
    windows: nothing at or below it is left anywhere, so pieces never overlap."""
    runs = [r for r in runs if r.size]
    pos = [0] * len(runs)
    while True:
        live = [i for i in range(len(runs)) if pos[i] < runs[i].size]
        if not live:
            return
        if len(live) == 1:
            i = live[0]
            while pos[i] < runs[i].size:
                piece = np.asarray(runs[i][pos[i] : pos[i] + chunk])
                pos[i] += piece.size
                yield piece
            return
        bound = min(runs[i][min(pos[i] + chunk, runs[i].size) - 1] for i in live)
        parts = []
        for i in live:
            window = runs[i][pos[i] : pos[i] + chunk]
            end = int(np.searchsorted(window, bound, side="right"))
            if end:
                parts.append(np.asarray(window[:end]))
                pos[i] += end
        merged = np.concatenate(parts)
        merged.sort(kind="stable")  # sorted parts: the stable sort merges runs, ~6x faster than quicksort here
        yield _dedup(merged)


def union_count(runs: list[np.ndarray], chunk: int | None = None) -> int:
    """How many distinct keys the runs hold together, in one k-way pass."""
    runs = [r for r in runs if r.size]
    if not runs:
        return 0
    if len(runs) == 1:
        return int(runs[0].size)
    if len(runs) <= _NATIVE_UNION_RUNS:
        # One k-way pass in the native core, nothing written (spilled runs are read from their mapped files).
        return _native.union_count64([np.ascontiguousarray(r, np.uint64) for r in runs])
    return sum(int(piece.size) for piece in iter_union(runs, chunk or current_pool().chunk_for(len(runs))))


_NATIVE_UNION_RUNS = 64  # the native count holds a window of each run (64 KB): fine for the few runs a set keeps


class SpillPool:
    """The memory budget of a process's key runs and the private folder spilled runs go to."""

    def __init__(self, budget: int = DEFAULT_BUDGET, folder: str | os.PathLike[str] | None = None) -> None:
        self.budget = max(int(budget), 1 << 20)
        self.parent = folder
        self.folder: str | None = None
        self.in_memory = 0  # bytes of tracked runs held in memory
        self.spilled = 0  # bytes written to disk, all told
        self.peak = 0  # most bytes of tracked runs ever held in memory at once
        self._sets: weakref.WeakSet[KeyRuns] = weakref.WeakSet()
        self._files = 0

    def chunk_for(self, runs: int) -> int:
        """Keys read from each of `runs` runs at a time: a k-way pass costs about a quarter of the budget."""
        return max(MIN_CHUNK, self.budget // (32 * max(1, runs)))

    def charge(self, owner: KeyRuns, nbytes: int) -> None:
        self.in_memory += nbytes
        self.peak = max(self.peak, self.in_memory)
        self._sets.add(owner)
        if self.in_memory > self.budget:
            self._make_room()

    def release(self, nbytes: int) -> None:
        self.in_memory -= nbytes

    def _make_room(self) -> None:
        """Spill the largest runs in memory until half the budget is free."""
        for owner in sorted(self._sets, key=lambda s: s.tracked_bytes(), reverse=True):
            owner.spill()
            if self.in_memory <= self.budget // 2:
                return

    def new_file(self, size: int) -> np.ndarray:
        """A writable uint64 array of `size` keys backed by a file of the private folder (already unlinked)."""
        if self.folder is None or not os.path.isdir(self.folder):
            self.folder = tempfile.mkdtemp(prefix="spillguard-keys-", dir=self.parent)  # mode 0700
        self._files += 1
        path = os.path.join(self.folder, f"run-{self._files}.u64")
        mm = np.memmap(path, dtype=np.uint64, mode="w+", shape=(max(size, 1),))
        os.unlink(path)  # the mapping keeps the data; the name goes at once
        self.spilled += size * 8
        return mm

    def to_disk(self, run: np.ndarray) -> np.ndarray:
        mm = self.new_file(run.size)
        mm[: run.size] = run
        return mm[: run.size]

    def close(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


_pool = SpillPool()


def current_pool() -> SpillPool:
    return _pool


@contextlib.contextmanager
def spill_pool(budget: int | None, folder: str | os.PathLike[str] | None = None) -> Iterator[SpillPool]:
    """Use a pool with this budget for key runs made inside the block (a scan's merge)."""
    global _pool
    previous = _pool
    _pool = SpillPool(budget or DEFAULT_BUDGET, folder)
    try:
        yield _pool
    finally:
        _pool.close()
        _pool = previous


def _on_disk(run: np.ndarray) -> bool:
    return isinstance(run, np.memmap) or isinstance(run.base, np.memmap)


class KeyRuns:
    """A set of uint64 keys as a few sorted runs (see the module docstring)."""

    __slots__ = ("__weakref__", "_count", "_pool", "_tracked", "runs")

    def __init__(self) -> None:
        self.runs: list[np.ndarray] = []
        self._count: int | None = 0
        self._tracked = 0  # bytes of this set's runs charged to the pool
        self._pool = current_pool()

    def push(self, run: np.ndarray) -> None:
        """Add a run (sorted, without repeats or 0), merging runs of similar size as a tree."""
        if not run.size:
            return
        self._count = None
        self.runs.append(run)
        while len(self.runs) > 1 and self.runs[-2].size <= 2 * self.runs[-1].size:
            b = self.runs.pop()
            a = self.runs.pop()
            self.runs.append(self._merge(a, b))
        self._account()

    def _merge(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if not (_on_disk(a) or _on_disk(b)):
            return merge_two(a, b)
        # A run on disk is merged to disk, a chunk at a time.
        out = self._pool.new_file(a.size + b.size)
        n = 0
        for piece in iter_union([a, b], self._pool.chunk_for(2)):
            out[n : n + piece.size] = piece
            n += piece.size
        return out[:n]

    def tracked_bytes(self) -> int:
        return self._tracked

    def _account(self) -> None:
        held = sum(r.nbytes for r in self.runs if r.size >= TRACKED_KEYS and not _on_disk(r))
        if held != self._tracked:
            delta, self._tracked = held - self._tracked, held
            if delta > 0:
                self._pool.charge(self, delta)
            else:
                self._pool.release(-delta)

    def spill(self) -> None:
        """Move this set's large in-memory runs to disk."""
        self.runs = [self._pool.to_disk(r) if r.size >= TRACKED_KEYS and not _on_disk(r) else r for r in self.runs]
        self._account()

    def count(self) -> int:
        if self._count is None:
            self._count = union_count(self.runs, self._pool.chunk_for(len(self.runs)))
        return self._count

    def materialize(self) -> np.ndarray:
        """All keys as one sorted array in memory."""
        if not self.runs:
            return np.zeros(0, np.uint64)
        if len(self.runs) == 1 and not _on_disk(self.runs[0]):
            return self.runs[0]
        if not any(_on_disk(r) for r in self.runs):
            merged = self.runs[0]
            for r in self.runs[1:]:
                merged = merge_two(merged, r)
            self.runs = [merged]
            self._account()
            return merged
        pieces = list(iter_union(self.runs, self._pool.chunk_for(len(self.runs))))
        return np.concatenate(pieces) if pieces else np.zeros(0, np.uint64)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if self._tracked:
                self._pool.release(self._tracked)

    def __getstate__(self) -> dict[str, Any]:
        return {"keys": self.materialize()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.runs = []
        self._count = 0
        self._tracked = 0
        self._pool = current_pool()
        self.push(np.asarray(state["keys"], np.uint64))


def count_union_of(sets: Iterable[KeyRuns]) -> int:
    """Distinct keys over several sets, in one k-way pass over all their runs."""
    runs = [r for s in sets for r in s.runs]
    return union_count(runs)
