"""Impact reports: who was exposed, to what, since when, and the GDPR notification drafts.

`build_report(scans, audits, history, baseline)` builds the model; `render(report, format)` turns it into
self-contained HTML, Markdown or JSON. The typed rows (`CategoryRow`: people per category, `SecretRow`:
secrets by rule, `TargetExposure`/`ExposureWindow`: when each store was exposed) are what other pillars read.
"""

from spillguard.report.counts import CategoryRow, Count, SecretRow
from spillguard.report.document import Report
from spillguard.report.exposure import ExposureWindow, TargetExposure
from spillguard.report.model import build_report
from spillguard.report.render import render

__all__ = [
    "CategoryRow", "Count", "ExposureWindow", "Report", "SecretRow", "TargetExposure", "build_report", "render",
]  # fmt: skip
