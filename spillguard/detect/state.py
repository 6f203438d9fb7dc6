"""Exact, mergeable counts for one dataset: what a partition produces and a checkpoint stores.

Everything here is counts and keyed hashes; masked samples and fingerprints are the only strings.
States from different partitions (workers, machines, resumed runs) merge into the same totals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spillguard.model import CATEGORIES, CONFIDENCE_RANK

_COMPACT_AT = 1 << 20
MAX_SAMPLES = 3
MAX_FINGERPRINTS = 20
CATEGORY_BIT = {c: 1 << i for i, c in enumerate(CATEGORIES)}


def _compact(chunks: list[np.ndarray]) -> list[np.ndarray]:
    if len(chunks) <= 1 and (not chunks or chunks[0].size < _COMPACT_AT):
        return chunks
    return [np.unique(np.concatenate(chunks))]


def distinct_count(chunks: list[np.ndarray]) -> int:
    if not chunks:
        return 0
    merged = np.unique(np.concatenate(chunks))
    return int(merged.size - (1 if merged.size and merged[0] == 0 else 0))


@dataclass(slots=True)
class FindingState:
    field: str
    rule: str
    category: str
    named: bool
    values_matched: int = 0
    records_matched: int = 0
    subjects: list[np.ndarray] = field(default_factory=list)
    distinct: list[np.ndarray] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)
    fingerprints: list[str] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)  # global row ids, for per-category record counts

    def add(self, values: int, rows: np.ndarray, subjects: np.ndarray | None, distinct: np.ndarray) -> None:
        self.values_matched += values
        self.records_matched += rows.size
        self.rows.append(rows)
        if sum(c.size for c in self.rows) > _COMPACT_AT:
            self.rows = _compact(self.rows)
        if subjects is not None and subjects.size:
            self.subjects.append(subjects)
            if sum(c.size for c in self.subjects) > _COMPACT_AT:
                self.subjects = _compact(self.subjects)
        if distinct.size:
            self.distinct.append(distinct)
            if sum(c.size for c in self.distinct) > _COMPACT_AT:
                self.distinct = _compact(self.distinct)

    def merge(self, other: FindingState) -> None:
        self.values_matched += other.values_matched
        self.records_matched += other.records_matched
        self.rows = _compact(self.rows + other.rows)
        self.subjects = _compact(self.subjects + other.subjects)
        self.distinct = _compact(self.distinct + other.distinct)
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
    subjects: list[np.ndarray] = field(default_factory=list)
    findings: dict[tuple[str, str], FindingState] = field(default_factory=dict)
    # For --subjects-out only: subject hash -> (subject value, contact e-mail). Personal data, in memory only.
    subject_display: dict[int, tuple[str, str | None]] = field(default_factory=dict)

    def add_subjects(self, hashes: np.ndarray) -> None:
        self.subjects.append(np.unique(hashes))
        if sum(c.size for c in self.subjects) > _COMPACT_AT:
            self.subjects = _compact(self.subjects)

    def merge(self, other: DatasetState) -> None:
        self.records += other.records
        self.malformed += other.malformed
        if self.subject_field is None:
            self.subject_field = other.subject_field
        for k, v in other.nonnull.items():
            self.nonnull[k] = self.nonnull.get(k, 0) + v
        self.subjects = _compact(self.subjects + other.subjects)
        for key, fs in other.findings.items():
            mine = self.findings.get(key)
            if mine is None:
                self.findings[key] = fs
            else:
                mine.merge(fs)
        self.subject_display.update(other.subject_display)

    def subjects_scanned(self) -> int | None:
        return distinct_count(self.subjects) if self.subject_field else None


def confidence_for(*, specific: bool, value_rule: bool, named: bool, requires_field: bool, share: float) -> str:
    """How sure a field-level classification is, from the rule's kind and the share of values matched."""
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
