"""Turning a `Report` into HTML, Markdown or JSON text. Formatting only: every number comes from the model."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from markupsafe import Markup, escape

from spillguard.errors import UserError
from spillguard.report import svg
from spillguard.report.counts import Count
from spillguard.report.document import FINGERPRINTS_SHOWN, REPORT_VERSION, Report
from spillguard.report.times import parse_time
from spillguard.verdicts import EXPOSED

if TYPE_CHECKING:
    import jinja2

FORMATS = ("html", "md", "json")
_PLACEHOLDER = re.compile(r"\[[^\]]{3,}\]")


def _num(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, Count):
        return str(v)
    if isinstance(v, float):
        return f"{v:,.1f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _signed(v: int | None) -> str:
    if v is None:
        return "—"
    return f"+{v:,}" if v > 0 else f"{v:,}"


def _human(ts: str | None) -> str:
    if not ts:
        return "—"
    return parse_time(ts).strftime("%d %b %Y %H:%M UTC")


def _day(ts: str | None) -> str:
    return parse_time(ts).strftime("%Y-%m-%d") if ts else ""


def _risk(level: str) -> str:
    return {"high": "High", "medium": "Medium", "low": "Low", "none": "None"}.get(level, level)


def _fill_html(text: str) -> Markup:
    """Highlight the [placeholders] a person has to complete before sending a draft."""
    escaped = str(escape(text))
    return Markup(_PLACEHOLDER.sub(lambda m: f'<span class="fill">{m.group(0)}</span>', escaped))


def _md(text: Any) -> str:
    # Table cells: a pipe or newline in a dataset name must not break the table.
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("`", "'")


def _env(html: bool) -> jinja2.Environment:
    import jinja2  # loaded by the first report rendered: registering `spillguard report` must not pay for it

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("spillguard.report", "templates"),
        autoescape=html,
        undefined=jinja2.StrictUndefined,
        trim_blocks=not html,
        lstrip_blocks=not html,
        keep_trailing_newline=True,
    )
    env.filters.update(num=_num, signed=_signed, human=_human, day=_day, risk=_risk, md=_md, short=_short)
    env.filters["fill"] = _fill_html if html else (lambda t: t)
    return env


def charts(report: Report) -> dict[str, str]:
    """The three inline SVG charts of the HTML report."""
    # The category chart shows the breach, like the headline numbers; the tables keep the full inventory.
    scoped = bool(report.scope.get("excluded"))
    cat_bars = [
        svg.Bar(_short(c.label), c.subjects.low or 0, c.subjects.high or c.subjects.low or 0, c.risk, str(c.subjects))
        for c in (report.scope["categories"] if scoped else report.categories)
    ]
    store_bars = [
        svg.Bar(
            _short(s["target"]),
            s["people_affected"].low or 0,
            s["people_affected"].high or s["people_affected"].low or 0,
            # A store seen protected throughout is drawn grey: its people are not part of the breach.
            "none" if s.get("exposure_status") == "not-exposed" else s["risk"],
            str(s["people_affected"])
            + (" (not exposed)" if s.get("exposure_status") == "not-exposed" else ""),
        )
        for s in report.stores
    ]
    rows = []
    scan_times = {s["key"]: [parse_time(s["scan_finished_at"])] for s in report.stores}
    for e in report.exposure:
        rows.append(
            svg.TimelineRow(
                label=_short(e.target),
                monitored=(parse_time(e.first_checked), parse_time(e.last_checked)),
                windows=[
                    (parse_time(w.start), parse_time(w.end or e.last_checked), w.ongoing, w.verdict)
                    for w in e.windows
                ],
                scans=scan_times.pop(e.key, []),
            )
        )
    for s in report.stores:  # scanned stores without any exposure data still show when they were scanned
        if report.exposure and s["key"] in scan_times:
            rows.append(svg.TimelineRow(_short(s["target"]), None, [], scan_times.pop(s["key"])))
    return {
        "categories": svg.bar_chart(
            cat_bars,
            "People affected per data category" + (" (exposed stores)" if scoped else ""),
            "chart-categories",
        ),
        "stores": svg.bar_chart(store_bars, "People affected per store", "chart-stores"),
        "timeline": svg.timeline_chart(rows, "Exposure timeline", "chart-timeline"),
    }


def _short(target: str, limit: int = 34) -> str:
    """A chart label: the store address without scheme or user name, cut from the left if long."""
    if "://" in target:
        rest = target.split("://", 1)[1]
        target = rest.rsplit("@", 1)[-1] if "@" in rest.split("/", 1)[0] else rest
    return target if len(target) <= limit else "…" + target[-(limit - 1) :]


def render(report: Report, format: str = "html") -> str:
    """Render a report as 'html' (self-contained, no network requests), 'md' or 'json'."""
    if format == "json":
        return json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n"
    if format not in FORMATS:
        raise UserError(f"unknown report format {format!r}; use one of {', '.join(FORMATS)}")
    html = format == "html"
    template = _env(html).get_template("report.html.j2" if html else "report.md.j2")
    context: dict[str, Any] = {
        "r": report,
        "version": REPORT_VERSION,
        "max_fp": FINGERPRINTS_SHOWN,
        "exposed": EXPOSED,
        "charts": charts(report) if html else {},
    }
    text = template.render(**context)
    if not html:
        text = re.sub(r"\n{3,}", "\n\n", text)  # template blocks leave blank runs Markdown does not need
    return text
