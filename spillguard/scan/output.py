"""Output formats for scan results: a human table, JSON, NDJSON, and the affected-people file."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from spillguard.model import ScanResult

if TYPE_CHECKING:
    from rich.console import Console


def to_json(result: ScanResult) -> str:
    return orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n"


def to_ndjson(result: ScanResult) -> str:
    """One object per line: findings, then errors, then one summary line (type tells which)."""
    doc = result.to_json()
    lines = [orjson.dumps({"type": "finding", "version": doc["version"], **f}) for f in doc["findings"]]
    lines += [orjson.dumps({"type": "error", **e}) for e in doc["errors"]]
    summary = {"type": "summary", "version": doc["version"], "started_at": doc["started_at"], "finished_at": doc["finished_at"],
               "targets": doc["targets"], **doc["summary"], "secrets": doc["secrets"]}
    lines.append(orjson.dumps(summary))
    return b"\n".join(lines).decode() + "\n"


def _fmt(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"


def render_table(result: ScanResult, console: Console, show_samples: bool = False) -> None:
    from rich.table import Table  # rich only for tables: JSON output does not load it
    if not result.findings:
        console.print(f"No personal data or secrets found in {_fmt(result.records_scanned)} records.")
    else:
        table = Table(title="Findings", show_lines=False, header_style="bold")
        for col in ("dataset", "field", "category", "rule", "confidence"):
            table.add_column(col)
        for col in ("records", "subjects"):
            table.add_column(col, justify="right")
        if show_samples:
            table.add_column("samples")
        style = {"high": "bold red", "medium": "yellow", "low": "dim"}
        for f in result.findings:
            row = [f.dataset, f.field, f.category, f.rule, f"[{style[f.confidence]}]{f.confidence}[/]",
                   _fmt(f.records_matched), _fmt(f.subjects_matched)]
            if show_samples:
                row.append(", ".join(f.samples))
            table.add_row(*row)
        console.print(table)
        summary = Table(title="People and records affected per category (medium confidence and above)", header_style="bold")
        summary.add_column("category")
        summary.add_column("subjects", justify="right")
        summary.add_column("records", justify="right")
        summary.add_column("values", justify="right")
        for cat, s in result.categories.items():
            summary.add_row(cat, _fmt(s.subjects), _fmt(s.records), _fmt(s.values))
        console.print(summary)
    console.print(
        f"Scanned {_fmt(result.records_scanned)} records"
        + (f" of {_fmt(result.subjects_scanned)} subjects" if result.subjects_scanned is not None else "")
        + f" in {len(result.datasets):,} dataset{'' if len(result.datasets) == 1 else 's'}."
    )
    malformed = [e for e in result.errors if e.kind == "malformed"]
    if result.malformed_records:
        console.print(f"[yellow]{result.malformed_records:,} malformed records skipped[/], e.g.:")
        for e in malformed[:5]:
            console.print(f"  {e.dataset}" + (f":{e.line}" if e.line else "") + f": {e.message}")
    for e in result.errors:
        if e.kind != "malformed":
            where = e.dataset or e.target
            console.print(f"[red]{e.kind}[/]: " + (e.message if where in e.message else f"{where}: {e.message}"), markup=True, highlight=False)


def subjects_text(people: Iterable[dict[str, Any]], path: str | Path) -> str:
    """CSV for .csv files, JSON Lines otherwise."""
    if str(path).lower().endswith(".csv"):
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["subject", "email", "categories", "datasets"])
        for p in people:
            w.writerow([p["subject"], p["email"] or "", ";".join(p["categories"]), ";".join(p["datasets"])])
        return buf.getvalue()
    return "".join(orjson.dumps(p).decode() + "\n" for p in people)
