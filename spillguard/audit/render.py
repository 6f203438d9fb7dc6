"""The audit as a rich table for people; `--format json` uses `AuditResult.to_json()` instead."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from spillguard.audit.verdict import AuditResult, ExposureVerdict
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


# Below this many columns the eight-column table would cut URLs into fragments: use three columns.
WIDE = 120
TARGET_MIN = 32  # a target URL folds into pieces this wide (or narrower only on very narrow screens)
VERDICT_WIDTH = 16  # "weak-credentials"


def render_table(result: AuditResult, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"spillguard audit — {result.checked_at}", show_lines=False)
    longest = max((len(t.target) for t in result.targets), default=10)
    if console.width < WIDE:
        # 10 columns of borders and padding, the verdict, and at least 16 for stakes and evidence.
        _narrow(table, result, min(longest, max(16, console.width - 10 - VERDICT_WIDTH - 16), TARGET_MIN))
    else:
        _wide(table, result, min(longest, TARGET_MIN))
    console.print(table)


def _label(t: ExposureVerdict) -> str:
    return f"{t.name}\n{t.target}" if t.name else t.target


def _verdict(t: ExposureVerdict) -> str:
    return f"[{STYLE[t.verdict]}]{t.verdict.value}[/]"


def _wide(table: Table, result: AuditResult, target_width: int) -> None:
    for col in ("target", "protocol", "verdict", "tls", "version", "at stake", "evidence", "ms"):
        table.add_column(
            col, justify="right" if col == "ms" else "left", overflow="fold",
            min_width=target_width if col == "target" else (VERDICT_WIDTH if col == "verdict" else None),
        )  # fmt: skip
    for t in result.targets:
        table.add_row(
            _label(t), t.protocol, _verdict(t), "yes" if t.tls else "[yellow]no[/]", t.server_version or "-",
            stakes_cell(t.stakes), str(t.evidence.get("reason", "")), f"{t.total_ms:.0f}",
        )  # fmt: skip


def _narrow(table: Table, result: AuditResult, target_width: int) -> None:
    # Protocol, TLS and version go under the verdict, the evidence under the stakes; timings are left out.
    table.add_column("target", overflow="fold", min_width=target_width, ratio=3)
    table.add_column("verdict", overflow="fold", min_width=VERDICT_WIDTH, max_width=VERDICT_WIDTH)
    table.add_column("at stake / evidence", overflow="fold", ratio=2)
    for t in result.targets:
        tls = "tls" if t.tls else "[yellow]no tls[/]"
        about = " ".join(x for x in (t.protocol, t.server_version) if x)
        reason = str(t.evidence.get("reason", ""))
        table.add_row(
            _label(t),
            f"{_verdict(t)}\n[dim]{about}[/]\n{tls}",
            stakes_cell(t.stakes) + (f"\n[dim]{escape(reason)}[/]" if reason else ""),
        )
