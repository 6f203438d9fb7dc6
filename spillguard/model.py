"""The findings model every part of spillguard speaks: scan results, findings, matches.

A scan result serialises to the versioned JSON documented in the README (schema version 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from spillguard import categories

SCHEMA_VERSION = 1
# ScanError kinds meaning something was not scanned ("unchecked": free text not read for names and addresses)
INCOMPLETE_KINDS = ("malformed", "truncated", "error", "unchecked")

# The findings vocabulary (names only); what is known about each lives in spillguard.categories.
CATEGORIES: tuple[str, ...] = tuple(categories.CATEGORIES)

Confidence = Literal["high", "medium", "low"]
CONFIDENCE_RANK: dict[str, int] = {"low": 1, "medium": 2, "high": 3}


@dataclass(frozen=True, slots=True)
class Match:
    """One hit inside one value, as returned by `scan_value`."""

    category: str
    rule: str
    start: int
    end: int
    confidence: Confidence


@dataclass(slots=True)
class Finding:
    """A rule that fired on a field of a dataset, with exact counts over everything scanned."""

    dataset: str
    field: str
    category: str
    rule: str
    confidence: Confidence
    records_scanned: int
    records_matched: int
    values_matched: int
    subjects_matched: int | None
    samples: list[str] = field(default_factory=list)
    target: str = ""
    values_distinct: int | None = None
    subjects_approx: bool = False  # subjects_matched is a HyperLogLog estimate (scan --approx-subjects)

    def to_json(self) -> dict[str, Any]:
        # Field by field, in declaration order (what asdict gives, at a tenth of its cost: scans of
        # 20,000 small files have tens of thousands of findings).
        doc = {
            "dataset": self.dataset, "field": self.field, "category": self.category, "rule": self.rule,
            "confidence": self.confidence, "records_scanned": self.records_scanned, "records_matched": self.records_matched,
            "values_matched": self.values_matched, "subjects_matched": self.subjects_matched, "samples": list(self.samples),
            "target": self.target, "values_distinct": self.values_distinct,
        }
        if self.subjects_approx:
            doc["subjects_approx"] = True
        return doc


@dataclass(slots=True)
class ScanError:
    """Something that went wrong without stopping the scan: a malformed line, an unreadable dataset."""

    target: str
    message: str
    dataset: str | None = None
    line: int | None = None
    # "malformed": one record not scanned (with its position); "truncated": a stream was cut, records after
    # the cut unknown; "error": a dataset or partition could not be scanned; "unchecked": free-text fields whose
    # names and addresses were not looked for (the text extra is missing); "warning": nothing was lost.
    kind: str = "error"

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "message": self.message, "dataset": self.dataset, "line": self.line, "kind": self.kind}


@dataclass(slots=True)
class CategorySummary:
    subjects: int | None
    records: int
    values: int


@dataclass(slots=True)
class ScanResult:
    """What `spillguard.scan` returns; `to_json()` is exactly what `scan --format json` prints."""

    started_at: str
    finished_at: str
    targets: list[str]
    findings: list[Finding]
    records_scanned: int
    subjects_scanned: int | None
    categories: dict[str, CategorySummary]
    errors: list[ScanError]
    datasets: list[dict[str, Any]] = field(default_factory=list)
    malformed_records: int = 0
    secrets: list[dict[str, Any]] = field(default_factory=list)  # per secret rule: distinct count, fingerprints
    subjects_affected: int | None = None  # distinct people with any finding of medium confidence or more
    records_affected: int = 0
    subjects_exact: bool = True  # False when datasets identify people by different kinds of id, or estimated
    # --approx-subjects: how people were counted ({"method": "hyperloglog", "registers", "relative_error"})
    subjects_approx: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        doc = self._json()
        if self.subjects_approx is not None:
            doc["summary"]["subjects_approx"] = dict(self.subjects_approx)
        return doc

    def _json(self) -> dict[str, Any]:
        return {
            "version": SCHEMA_VERSION,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "targets": list(self.targets),
            "datasets": list(self.datasets),
            "findings": [f.to_json() for f in self.findings],
            "summary": {
                "records_scanned": self.records_scanned,
                "subjects_scanned": self.subjects_scanned,
                "subjects_affected": self.subjects_affected,
                "records_affected": self.records_affected,
                "subjects_exact": self.subjects_exact,
                "malformed_records": self.malformed_records,
                "complete": self.complete,
                "categories": {k: asdict(v) for k, v in self.categories.items()},
            },
            "secrets": list(self.secrets),
            "errors": [e.to_json() for e in self.errors],
        }

    @property
    def complete(self) -> bool:
        """True when every record of every target was scanned: no malformed record, cut stream or failed dataset."""
        return self.malformed_records == 0 and not any(e.kind in INCOMPLETE_KINDS for e in self.errors)

    def unscanned(self) -> str:
        """What was not scanned, in a few words ("" when the scan is complete)."""
        parts = []
        if self.malformed_records:
            parts.append(f"{self.malformed_records:,} malformed record{'' if self.malformed_records == 1 else 's'}")
        for kind, one, many in (("truncated", "cut stream", "cut streams"), ("error", "failed dataset", "failed datasets"),
                                ("unchecked", "free-text check skipped", "free-text checks skipped")):
            n = sum(e.kind == kind for e in self.errors)
            if n:
                parts.append(f"{n:,} {one if n == 1 else many}")
        return ", ".join(parts)
