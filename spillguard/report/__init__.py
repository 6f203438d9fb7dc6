"""Impact reports: who was exposed, to what, since when, and the GDPR notification drafts.

`build_report(scans, audits, history, baseline)` builds the model; `render(report, format)` turns it into
self-contained HTML, Markdown or JSON. The typed rows (`CategoryRow`: people per category, `SecretRow`:
secrets by rule, `TargetExposure`/`ExposureWindow`: when each store was exposed) are what other pillars read.
The names below load on first use: every command registers `report`, which loads this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spillguard.lazy import lazy_exports

if TYPE_CHECKING:
    from spillguard.report.counts import CategoryRow, Count, SecretRow
    from spillguard.report.document import Report
    from spillguard.report.exposure import ExposureWindow, TargetExposure
    from spillguard.report.model import build_report
    from spillguard.report.rendering import render

__getattr__ = lazy_exports(__name__, {
    "CategoryRow": "counts", "Count": "counts", "SecretRow": "counts", "Report": "document",
    "ExposureWindow": "exposure", "TargetExposure": "exposure", "build_report": "model", "render": "rendering",
})  # fmt: skip

__all__ = [
    "CategoryRow", "Count", "ExposureWindow", "Report", "SecretRow", "TargetExposure", "build_report", "render",
]  # fmt: skip
