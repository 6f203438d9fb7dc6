"""Inline SVG charts: the HTML report must render offline, so no chart library and no fonts are fetched."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

RISK_COLOURS = {"high": "#b42318", "medium": "#c4600c", "low": "#3b6fb6", "none": "#8a8f98"}
RANGE_ALPHA = "0.35"


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    low: int  # certain part of the bar
    high: int  # upper bound; equal to low when the number is exact
    risk: str
    text: str  # the number as the tables print it


def _fmt_axis(v: float) -> str:
    if v >= 1_000_000:
        return f"{v / 1_000_000:g}M"
    if v >= 1_000:
        return f"{v / 1_000:g}k"
    return f"{v:g}"


def _nice_max(v: int) -> int:
    if v <= 0:
        return 1
    magnitude = 10 ** (len(str(v)) - 1)
    for step in (1, 2, 2.5, 5, 10):
        top = int(step * magnitude)
        if top >= v:
            return top
    return v


def _chart_open(chart_id: str, title: str, width: int, height: int) -> list[str]:
    """The opening of every chart: a scalable, titled SVG (the title is what screen readers announce)."""
    cid = escape(chart_id)
    return [
        f'<svg class="chart" id="{cid}" role="img" aria-labelledby="{cid}-t" viewBox="0 0 {width} {height}" '
        f'width="100%" preserveAspectRatio="xMinYMin meet">',
        f'<title id="{cid}-t">{escape(title)}</title>',
        f'<text x="0" y="18" class="chart-title">{escape(title)}</text>',
    ]


def bar_chart(bars: list[Bar], title: str, chart_id: str, label_width: int = 250, width: int = 760) -> str:
    """Horizontal bars; a range (lower bound .. upper bound) shows as a solid bar with a pale extension."""
    row_h, top, bottom = 26, 34, 28
    height = top + bottom + row_h * max(len(bars), 1)
    plot_w = width - label_width - 90
    vmax = _nice_max(max([b.high for b in bars] + [1]))
    parts = _chart_open(chart_id, title, width, height)
    for i in range(5):
        x = label_width + plot_w * i / 4
        parts.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - bottom}" class="grid"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{height - bottom + 16}" class="axis" text-anchor="middle">'
            f"{_fmt_axis(vmax * i / 4)}</text>"
        )
    if not bars:
        parts.append(f'<text x="{label_width}" y="{top + 16}" class="axis">Nothing found</text>')
    for i, b in enumerate(bars):
        y = top + i * row_h
        colour = RISK_COLOURS.get(b.risk, RISK_COLOURS["none"])
        w_low = plot_w * b.low / vmax
        w_high = plot_w * b.high / vmax
        parts.append(
            f'<text x="{label_width - 8}" y="{y + 16}" class="label" text-anchor="end">{escape(b.label)}</text>'
        )
        if b.high > b.low:
            parts.append(
                f'<rect x="{label_width}" y="{y + 4}" width="{w_high:.1f}" height="{row_h - 9}" fill="{colour}" '
                f'fill-opacity="{RANGE_ALPHA}" class="bar-range"><title>{escape(b.label)}: {escape(b.text)}</title></rect>'
            )
        parts.append(
            f'<rect x="{label_width}" y="{y + 4}" width="{max(w_low, 1.5):.1f}" height="{row_h - 9}" fill="{colour}" '
            f'class="bar" data-value="{b.low}"><title>{escape(b.label)}: {escape(b.text)}</title></rect>'
        )
        parts.append(
            f'<text x="{label_width + max(w_high, w_low) + 6:.1f}" y="{y + 16}" class="value">{escape(b.text)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class TimelineRow:
    label: str
    monitored: tuple[datetime, datetime] | None
    windows: list[tuple[datetime, datetime, bool, str]]  # start, end, ongoing, verdict
    scans: list[datetime]


def _ticks(start: datetime, end: datetime, n: int = 6) -> list[datetime]:
    span = end - start
    return [start + span * i / (n - 1) for i in range(n)]


def timeline_chart(rows: list[TimelineRow], title: str, chart_id: str, width: int = 760) -> str:
    """One row per store: grey = watched, red = exposed (hatched end = still exposed), dark ticks = scans."""
    label_w, row_h, top, bottom = 250, 30, 34, 44
    height = top + bottom + row_h * max(len(rows), 1)
    plot_w = width - label_w - 45  # room for the last tick label
    times = [t for r in rows for t in ([*r.monitored] if r.monitored else [])]
    times += [t for r in rows for w in r.windows for t in w[:2]] + [t for r in rows for t in r.scans]
    parts = [
        *_chart_open(chart_id, title, width, height),
        '<defs><pattern id="ongoing-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#b42318"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#fff" stroke-width="2"/></pattern></defs>',
    ]
    if not times:
        parts.append(
            f'<text x="10" y="{top + 16}" class="axis">No audit or watch history given: the exposure timeline '
            "is not available.</text></svg>"
        )
        return "".join(parts)
    t0, t1 = min(times), max(times)
    if t1 - t0 < timedelta(hours=1):
        t1 = t0 + timedelta(hours=1)
    span = (t1 - t0).total_seconds()

    def x(t: datetime) -> float:
        return label_w + plot_w * (t - t0).total_seconds() / span

    fmt = "%d %b %H:%M" if (t1 - t0) < timedelta(days=3) else "%d %b %Y"
    for t in _ticks(t0, t1):
        parts.append(
            f'<line x1="{x(t):.1f}" y1="{top - 6}" x2="{x(t):.1f}" y2="{height - bottom}" class="grid"/>'
        )
        parts.append(
            f'<text x="{x(t):.1f}" y="{height - bottom + 16}" class="axis" text-anchor="middle">'
            f"{escape(t.strftime(fmt))}</text>"
        )
    for i, r in enumerate(rows):
        y = top + i * row_h
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 18}" class="label" text-anchor="end">{escape(r.label)}</text>'
        )
        if r.monitored:
            a, b = r.monitored
            parts.append(
                f'<rect x="{x(a):.1f}" y="{y + 11}" width="{max(x(b) - x(a), 1):.1f}" height="6" '
                f'class="monitored" fill="#c9ced6"><title>watched {escape(a.isoformat())} to '
                f"{escape(b.isoformat())}</title></rect>"
            )
        for start, end, ongoing, verdict in r.windows:
            fill = "url(#ongoing-hatch)" if ongoing else RISK_COLOURS["high"]
            state = "not closed at the last check" if ongoing else "closed"
            parts.append(
                f'<rect x="{x(start):.1f}" y="{y + 5}" width="{max(x(end) - x(start), 3):.1f}" height="18" '
                f'rx="2" fill="{fill}" class="exposed"><title>{escape(verdict)} from {escape(start.isoformat())} '
                f"to {escape(end.isoformat())} ({state})</title></rect>"
            )
        for t in r.scans:
            parts.append(
                f'<path d="M{x(t):.1f},{y + 3} l5,11 l-5,11 l-5,-11 z" fill="#1d2939" class="scan">'
                f"<title>scan {escape(t.isoformat())}</title></path>"
            )
    ly = height - 14
    parts.append(
        f'<rect x="{label_w}" y="{ly - 9}" width="14" height="10" fill="{RISK_COLOURS["high"]}"/>'
        f'<text x="{label_w + 18}" y="{ly}" class="axis">exposed</text>'
        f'<rect x="{label_w + 80}" y="{ly - 9}" width="14" height="10" fill="url(#ongoing-hatch)"/>'
        f'<text x="{label_w + 98}" y="{ly}" class="axis">not closed at last check</text>'
        f'<rect x="{label_w + 270}" y="{ly - 7}" width="14" height="6" fill="#c9ced6"/>'
        f'<text x="{label_w + 288}" y="{ly}" class="axis">watched</text>'
        f'<path d="M{label_w + 356},{ly - 11} l5,7 l-5,7 l-5,-7 z" fill="#1d2939"/>'
        f'<text x="{label_w + 366}" y="{ly}" class="axis">scan</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
