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

from spillguard.detect.keymerge import KeyRuns, sorted_unique, union_count
from spillguard.detect.sketch import HllSketch
from spillguard.keys import MAX_FINGERPRINTS
from spillguard.model import CONFIDENCE_RANK

MAX_SAMPLES = 3
_MIN_PENDING = 1 << 18


class KeySet:
    """A set of uint64 keys (subject or value hashes): sorted runs merged as a tree (detect/keymerge.py),
    plus pending chunks from detection.

    Pending chunks are sorted into a run once they pass _MIN_PENDING keys; runs of similar size are merged,
    so adding n keys costs O(n log n) overall, a merge of partition results is a tree of pairwise merges,
    and runs beyond the process's memory budget are spilled to disk. 0 means "no key".
    """

    __slots__ = ("_pending", "_pending_size", "_runs")

    def __init__(self) -> None:
        self._runs = KeyRuns()
        self._pending: list[np.ndarray] = []
        self._pending_size = 0

    def add(self, keys: np.ndarray) -> None:
        if keys.size:
            self._pending.append(keys.astype(np.uint64, copy=False))
            self._pending_size += keys.size
            if self._pending_size > _MIN_PENDING:
                self._compact()

    def update(self, other: KeySet | HllSketch) -> None:
        """Add another set's keys: its sorted runs join this set's tree as they are."""
        if isinstance(other, HllSketch):
            raise TypeError("an exact key set cannot absorb a sketch")
        other._compact()
        for run in other._runs.runs:
            self._runs.push(run)

    def _compact(self) -> None:
        if self._pending:
            chunks, self._pending, self._pending_size = self._pending, [], 0
            self._runs.push(sorted_unique(np.concatenate(chunks) if len(chunks) > 1 else chunks[0]))

    def runs(self) -> list[np.ndarray]:
        self._compact()
        return list(self._runs.runs)

    def array(self) -> np.ndarray:
        """Every key, sorted, in memory (partition results, state files, --subjects-out)."""
        self._compact()
        return self._runs.materialize()

    def __len__(self) -> int:
        self._compact()
        return self._runs.count()

    def __bool__(self) -> bool:
        return self._pending_size > 0 or bool(self._runs.runs)

    @staticmethod
    def union_count(sets: Iterable[KeySet | HllSketch]) -> int:
        """Distinct keys over several sets: one k-way pass over all their runs (sketches: merged registers)."""
        sets = list(sets)
        if any(isinstance(s, HllSketch) for s in sets):
            return HllSketch.union_count(sets)
        return union_count([run for s in sets if isinstance(s, KeySet) for run in s.runs()])

    def __getstate__(self) -> dict[str, Any]:
        return {"keys": self.array()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._runs = KeyRuns()
        self._pending = []
        self._pending_size = 0
        keys = state["keys"]
        self._runs.push(keys if keys.dtype == np.uint64 else keys.astype(np.uint64))


def union_into(mine: KeySet | HllSketch, other: KeySet | HllSketch) -> KeySet | HllSketch:
    """`mine` with `other` added; exact sets meeting a sketch become a sketch (--approx-subjects)."""
    if isinstance(mine, KeySet) and isinstance(other, HllSketch):
        mine = HllSketch.of(mine)
    mine.update(other)
    return mine


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
    subjects: KeySet | HllSketch = dataclasses.field(default_factory=KeySet)
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
        self.subjects = union_into(self.subjects, other.subjects)
        self.distinct.update(other.distinct)
        # The smallest of both: the same whichever partition finishes first (on a pool or a cluster).
        if other.samples:
            self.samples = sorted(set(self.samples) | set(other.samples))[:MAX_SAMPLES]
        if other.fingerprints:
            self.fingerprints = sorted(set(self.fingerprints) | set(other.fingerprints))[:MAX_FINGERPRINTS]


@dataclass(slots=True)
class DatasetState:
    target: str
    dataset: str
    subject_field: str | None = None
    records: int = 0
    malformed: int = 0
    nonnull: dict[str, int] = field(default_factory=dict)
    subjects: KeySet | HllSketch = field(default_factory=KeySet)
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
        self.subjects = union_into(self.subjects, other.subjects)
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

    def sketch_subjects(self) -> None:
        """--approx-subjects: replace every set of subject hashes by its HyperLogLog sketch (16 KiB each)."""
        self.subjects = HllSketch.of(self.subjects)
        for fs in self.findings.values():
            fs.subjects = HllSketch.of(fs.subjects)

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
