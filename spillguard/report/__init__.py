"""Impact reports: who was exposed, to what, since when, and the GDPR notification drafts.

`build_report(scans, audits, history, baseline)` builds the model; `render(report, format)` turns it into
self-contained HTML, Markdown or JSON.
"""

from spillguard.report.counts import Count
from spillguard.report.model import Report, build_report
from spillguard.report.render import render

__all__ = ["Count", "Report", "build_report", "render"]
