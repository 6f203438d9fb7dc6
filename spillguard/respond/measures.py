"""Measures taken, from a response journal, for the impact report and the Art. 33/34 drafts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spillguard.respond.journal import Journal


def _when(at: str) -> str:
    return at[:16].replace("T", " ") + " UTC"


def measures_from_journal(path: str | Path, key: bytes) -> tuple[list[str], dict[str, Any]]:
    """(one sentence per action with its counts and first/last times, the chain's state)."""
    with Journal(path, key, create=False) as journal:
        check = journal.verify()
        per_action: dict[tuple[str, str], dict[str, Any]] = {}
        verified: dict[str, tuple[str, int]] = {}
        for e in journal.entries():
            if e.kind == "outcome":
                a = per_action.setdefault((e.incident, e.action), {"target": e.target, "scope": e.scope, "done": 0, "failed": 0,
                                                                    "first": e.at, "last": e.at, "detail": e.detail})
                a["done"] += e.done
                a["failed"] = e.failed  # the latest attempt decides what is still failing
                a["last"] = e.at
            elif e.kind == "verify":
                verified[e.action] = (e.at, e.failed)
            elif e.kind in ("decision", "notify"):
                per_action.setdefault((e.incident, f"{e.kind}:{e.seq}"), {"note": f"{_when(e.at)}: {e.detail or e.result}"})
    lines: list[str] = []
    for (_incident, action), a in per_action.items():
        if "note" in a:
            lines.append(a["note"])
            continue
        text = (f"{_when(a['first'])} to {_when(a['last'])}: {action} ({a['scope']} scope) at {a['target']}: "
                f"{a['done']:,} done" + (f", {a['failed']:,} failed" if a["failed"] else "") + ".")
        if action in verified:
            at, active = verified[action]
            text += f" Verified {_when(at)}: " + ("nothing still active." if not active else f"{active:,} still active.")
        lines.append(text)
    state = {"journal": str(path), "intact": check.ok, "entries": check.entries, "head": check.head, "problems": check.problems}
    if not check.ok:
        lines.append(f"WARNING: the response journal {Path(path).name} failed verification: {'; '.join(check.problems)}")
    return lines, state


def apply_to_report(report: Any, lines: list[str], state: dict[str, Any]) -> None:
    """Put the journal's measures into the report: Art. 33(3)(d) measures taken and every Art. 34 notice."""
    taken = [m for m in report.art33.get("measures_taken", []) if not m.startswith("[")]
    report.art33["measures_taken"] = taken + lines
    report.art33["journal"] = state
    for notice in report.art34:
        measures = notice.get("measures")
        if isinstance(measures, list):
            notice["measures"] = [m for m in measures if not m.startswith("[")] + [
                "We revoked the exposed access credentials, ended the affected sessions and disconnected linked services "
                "(see the measures taken, recorded in a tamper-evident journal)."]
