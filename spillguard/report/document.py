"""The report document: everything the HTML, Markdown and JSON outputs say, as `build_report` computed it.

Its own module so that the parts that fill it (counts, exposure, gdpr) and the one that assembles it (model) all
read one definition without importing each other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from spillguard.report.counts import CategoryRow, Count, SecretRow
from spillguard.report.exposure import ExposureWindow, TargetExposure

REPORT_VERSION = 1
# Keyed fingerprints a report shows per secret rule (the scan keeps spillguard.keys.MAX_FINGERPRINTS):
# enough to check a revocation list against, short enough to read.
FINGERPRINTS_SHOWN = 5


@dataclass(slots=True)
class Report:
    """The whole report; `to_json()` is exactly what `spillguard report --format json` prints."""

    generated_at: str
    organisation: str | None
    contact: str | None
    inputs: dict[str, Any]
    summary: dict[str, Any]
    scope: dict[str, Any]  # the stores, people and data the notification drafts are about
    categories: list[CategoryRow]
    stores: list[dict[str, Any]]
    datasets: list[dict[str, Any]]
    fields: list[dict[str, Any]]
    secrets: list[SecretRow]
    exposure: list[TargetExposure]
    consequences: list[dict[str, Any]]
    combinations: list[dict[str, Any]]
    measures: list[str]
    art33: dict[str, Any]
    art34: list[dict[str, Any]]
    notes: list[str]
    errors: list[dict[str, Any]]
    diff: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": REPORT_VERSION}
        for f in dataclasses.fields(self):
            out[f.name] = _json(getattr(self, f.name))
        return out


def _json(v: Any) -> Any:
    if isinstance(v, Count | TargetExposure | ExposureWindow):
        return v.to_json()
    if isinstance(v, CategoryRow | SecretRow):
        return {f.name: _json(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, dict):
        return {k: _json(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json(x) for x in v]
    return v
