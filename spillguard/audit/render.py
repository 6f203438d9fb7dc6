"""The audit as a rich table for people; `--format json` uses `AuditResult.to_json()` instead."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from spillguard.audit.verdict import AuditResult
from spillguard.verdicts import Verdict

STYLE = {
    Verdict.OPEN_READ: "bold red",
    Verdict.WEAK_CREDENTIALS: "bold red",
    Verdict.OPEN_METADATA: "yellow",
    Verdict.PROTECTED: "green",
    Verdict.UNREACHABLE: "dim",
    Verdict.ERROR: "magenta",
}


def stakes_cell(stakes: dict | None) -> str:  # type: ignore[type-arg]
    if not stakes:
        return "-"
    cats = ", ".join(sorted(stakes.get("categories", {})))
    people = stakes.get("subjects")
    who = f"{people:,} people" if isinstance(people, int) else f"{stakes.get('records', 0):,} records"
    return f"{who}" + (f": {cats}" if cats else "")


def render_table(result: AuditResult, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"spillguard audit — {result.checked_at}", show_lines=False)
    for col in ("target", "protocol", "verdict", "tls", "version", "at stake", "evidence", "ms"):
        table.add_column(col, justify="right" if col == "ms" else "left", overflow="fold")
    for t in result.targets:
        label = f"{t.name}\n{t.target}" if t.name else t.target
        table.add_row(
            label,
            t.protocol,
            f"[{STYLE[t.verdict]}]{t.verdict.value}[/]",
            "yes" if t.tls else "[yellow]no[/]",
            t.server_version or "-",
            stakes_cell(t.stakes),
            str(t.evidence.get("reason", "")),
            f"{t.total_ms:.0f}",
        )
    console.print(table)
