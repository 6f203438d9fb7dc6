"""Exact, mergeable counts for one dataset: what a partition produces and a checkpoint stores.

Everything here is counts, keyed hashes and record bitmaps; masked samples and fingerprints are the
only strings. States from different partitions (workers, machines, resumed runs) merge into the
same totals, and memory stays bounded by the number of distinct keys, not of matches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spillguard.detect.arrays import unique_sorted
from spillguard.keys import MAX_FINGERPRINTS
from spillguard.model import CONFIDENCE_RANK

MAX_SAMPLES = 3
_MIN_PENDING = 1 << 18


class KeySet:
    """A set of uint64 keys (subject or value hashes): one sorted unique array plus pending chunks.

    Pending chunks are folded in once they outgrow the sorted part, so adding n keys costs
    O(n log n) overall and memory stays near the number of distinct keys. 0 means "no key".
    """

    __slots__ = ("_pending", "_pending_size", "_sorted")

    def __init__(self) -> None:
        self._sorted = np.zeros(0, np.uint64)
        self._pending: list[np.ndarray] = []
        self._pending_size = 0

    def add(self, keys: np.ndarray) -> None:
        if keys.size:
            self._pending.append(keys.astype(np.uint64, copy=False))
            self._pending_size += keys.size
            if self._pending_size > max(_MIN_PENDING, self._sorted.size):
                self._compact()

    def update(self, other: KeySet) -> None:
        self.add(other.array())

    def _compact(self) -> None:
        if self._pending:
            fresh = unique_sorted(np.concatenate(self._pending))
            # Two sorted runs: a stable sort merges them in linear time.
            merged = np.concatenate([self._sorted, fresh])
            merged.sort(kind="stable")
            if merged.size > 1:
                merged = merged[np.concatenate(([True], merged[1:] != merged[:-1]))]
            self._sorted = merged[merged != 0] if merged.size and merged[0] == 0 else merged
            self._pending = []
            self._pending_size = 0

    def array(self) -> np.ndarray:
        self._compact()
        return self._sorted

    def __len__(self) -> int:
        return int(self.array().size)

    def __bool__(self) -> bool:
        return self._pending_size > 0 or self._sorted.size > 0

    @staticmethod
    def union_count(sets: Iterable[KeySet]) -> int:
        arrays = [s.array() for s in sets]
        if not arrays:
            return 0
        merged = np.concatenate(arrays)
        merged.sort(kind="stable")  # sorted runs: merged, not re-sorted
        return int(np.count_nonzero(merged[1:] != merged[:-1]) + 1) if merged.size else 0

    def __getstate__(self) -> dict[str, Any]:
        return {"keys": self.array()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._sorted = state["keys"]
        self._pending = []
        self._pending_size = 0


class RowSet:
    """Which records of a dataset matched: one bitmap per partition (a bit per record position)."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: dict[str, np.ndarray] = {}

    def add(self, partition: str, positions: np.ndarray) -> None:
        if not positions.size:
            return
        need = int(positions.max()) + 1
        bits = self._parts.get(partition)
        if bits is None or bits.size < need:
            grown = np.zeros(max(need, 0 if bits is None else bits.size * 2), bool)
            if bits is not None:
                grown[: bits.size] = bits
            bits = self._parts[partition] = grown
        bits[positions] = True

    def update(self, other: RowSet) -> None:
        for partition, bits in other._parts.items():
            self.add(partition, np.flatnonzero(bits))

    def __len__(self) -> int:
        return int(sum(int(b.sum()) for b in self._parts.values()))

    @staticmethod
    def union_count(sets: Iterable[RowSet]) -> int:
        by_partition: dict[str, list[np.ndarray]] = {}
        for s in sets:
            for partition, bits in s._parts.items():
                by_partition.setdefault(partition, []).append(bits)
        total = 0
        for bitmaps in by_partition.values():
            if len(bitmaps) == 1:  # most partitions (small files) are matched by one finding only
                total += int(np.count_nonzero(bitmaps[0]))
                continue
            union = np.zeros(max(b.size for b in bitmaps), bool)
            for b in bitmaps:
                union[: b.size] |= b
            total += int(np.count_nonzero(union))
        return total

    def __getstate__(self) -> dict[str, Any]:
        return {k: (np.packbits(v), v.size) for k, v in self._parts.items()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._parts = {k: np.unpackbits(packed, count=size).astype(bool) for k, (packed, size) in state.items()}


@dataclass(slots=True)
class FindingState:
    field: str
    rule: str
    category: str
    named: bool
    values_matched: int = 0
    records_matched: int = 0
    # dataclasses.field, not field: the `field` attribute above shadows the name in this class body.
    subjects: KeySet = dataclasses.field(default_factory=KeySet)
    distinct: KeySet = dataclasses.field(default_factory=KeySet)
    rows: RowSet = dataclasses.field(default_factory=RowSet)
    samples: list[str] = dataclasses.field(default_factory=list)
    fingerprints: list[str] = dataclasses.field(default_factory=list)

    def add(self, values: int, partition: str, positions: np.ndarray, subjects: np.ndarray | None, distinct: np.ndarray) -> None:
        self.values_matched += values
        self.records_matched += positions.size
        self.rows.add(partition, positions)
        if subjects is not None:
            self.subjects.add(subjects)
        self.distinct.add(distinct)

    def merge(self, other: FindingState) -> None:
        self.values_matched += other.values_matched
        self.records_matched += other.records_matched
        self.rows.update(other.rows)
        self.subjects.update(other.subjects)
        self.distinct.update(other.distinct)
        for s in other.samples:
            if len(self.samples) < MAX_SAMPLES and s not in self.samples:
                self.samples.append(s)
        for f in other.fingerprints:
            if len(self.fingerprints) < MAX_FINGERPRINTS and f not in self.fingerprints:
                self.fingerprints.append(f)


@dataclass(slots=True)
class DatasetState:
    target: str
    dataset: str
    subject_field: str | None = None
    records: int = 0
    malformed: int = 0
    nonnull: dict[str, int] = field(default_factory=dict)
    subjects: KeySet = field(default_factory=KeySet)
    findings: dict[tuple[str, str], FindingState] = field(default_factory=dict)
    # Free-text values not read for names and addresses (the text extra missing): field path -> values.
    unchecked: dict[str, int] = field(default_factory=dict)
    # For --subjects-out only: subject hash -> (subject value, contact e-mail). Personal data, in memory only.
    subject_display: dict[int, tuple[str, str | None]] = field(default_factory=dict)
    leaked: Any = None  # respond.leaked.LeakedCollector when the scan writes --secrets-out

    def add_subjects(self, hashes: np.ndarray) -> None:
        self.subjects.add(hashes)

    def merge(self, other: DatasetState) -> None:
        self.records += other.records
        self.malformed += other.malformed
        if self.subject_field is None:
            self.subject_field = other.subject_field
        for k, v in other.nonnull.items():
            self.nonnull[k] = self.nonnull.get(k, 0) + v
        for k, v in other.unchecked.items():
            self.unchecked[k] = self.unchecked.get(k, 0) + v
        self.subjects.update(other.subjects)
        for key, fs in other.findings.items():
            mine = self.findings.get(key)
            if mine is None:
                self.findings[key] = fs
            else:
                mine.merge(fs)
        self.subject_display.update(other.subject_display)
        if other.leaked is not None:
            if self.leaked is None:
                self.leaked = other.leaked
            else:
                self.leaked.merge(other.leaked)

    def subjects_scanned(self) -> int | None:
        return len(self.subjects) if self.subject_field else None


def confidence_for(*, specific: bool, value_rule: bool, named: bool, requires_field: bool, share: float, text: bool = False) -> str:
    """How sure a field-level classification is, from the rule's kind and the share of values matched."""
    if text:  # each span read in its sentence by a model: as sure as the model, whatever the share
        return "medium"
    if value_rule and not requires_field:
        if specific or named or share >= 0.5:
            return "high"
        return "medium" if share >= 0.1 else "low"
    if value_rule:
        # Field name and value format agree: strong evidence even when only some values have this format.
        return "high" if share >= 0.1 else "medium"
    if share >= 0.8:
        return "high"
    return "medium" if share >= 0.3 else "low"


def at_least(confidence: str, threshold: str) -> bool:
    return CONFIDENCE_RANK[confidence] >= CONFIDENCE_RANK[threshold]
