"""Reading the report's inputs: scan JSON, audit JSON and the watch history database.

Everything here checks the contract (schema version, required keys) and turns a bad input into a
`UserError` naming the file and what to do, so the report code can trust the documents it gets.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from spillguard.errors import UserError
from spillguard.targets import store_key

# The report joins scans, audits and watch history by the one canonical store key of the target registry.
target_key = store_key

SCAN_VERSION = 1
AUDIT_VERSION = 1

_SCAN_KEYS = ("started_at", "finished_at", "targets", "datasets", "findings", "summary")
_FINDING_KEYS = ("target", "dataset", "field", "category", "rule", "records_matched", "values_matched")


def _read_json(path: str | Path, kind: str, hint: str) -> Any:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{kind} file {p} does not exist; {hint}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {kind} file {p} ({exc.__class__.__name__}: {exc}); {hint}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{kind} file {p} is not valid JSON (line {exc.lineno}: {exc.msg}); {hint}") from None


def validate_scan(doc: Any, name: str = "scan") -> dict[str, Any]:
    """Check a scan document against schema version 1; return it unchanged."""
    hint = "produce it with `spillguard scan --format json -o FILE`"
    if not isinstance(doc, dict):
        raise UserError(f"{name} is not a spillguard scan result (expected a JSON object); {hint}")
    if doc.get("version") != SCAN_VERSION:
        raise UserError(
            f"{name} has scan schema version {doc.get('version')!r}, this spillguard reads version "
            f"{SCAN_VERSION}; re-run the scan with this version of spillguard"
        )
    missing = [k for k in _SCAN_KEYS if k not in doc]
    if missing:
        raise UserError(f"{name} is not a complete scan result (missing {', '.join(missing)}); {hint}")
    if not isinstance(doc["findings"], list) or not isinstance(doc["summary"], dict):
        raise UserError(f"{name}: 'findings' must be a list and 'summary' an object; {hint}")
    for i, f in enumerate(doc["findings"]):
        if not isinstance(f, dict) or any(k not in f for k in _FINDING_KEYS):
            raise UserError(f"{name}: finding #{i + 1} lacks one of {', '.join(_FINDING_KEYS)}; {hint}")
    if not isinstance(doc["summary"].get("categories", {}), dict):
        raise UserError(f"{name}: summary.categories must be an object; {hint}")
    return doc


def validate_audit(doc: Any, name: str = "audit") -> dict[str, Any]:
    hint = "produce it with `spillguard audit --format json -o FILE`"
    if not isinstance(doc, dict) or "targets" not in doc or "checked_at" not in doc:
        raise UserError(f"{name} is not a spillguard audit result (expected checked_at and targets); {hint}")
    if doc.get("version") != AUDIT_VERSION:
        raise UserError(
            f"{name} has audit schema version {doc.get('version')!r}, this spillguard reads version "
            f"{AUDIT_VERSION}; re-run the audit with this version of spillguard"
        )
    for i, t in enumerate(doc["targets"]):
        if not isinstance(t, dict) or "target" not in t or "verdict" not in t:
            raise UserError(f"{name}: target #{i + 1} lacks 'target' or 'verdict'; {hint}")
    return doc


def load_scan(path: str | Path) -> dict[str, Any]:
    return validate_scan(
        _read_json(path, "scan", "produce it with `spillguard scan --format json -o FILE`"),
        f"scan file {path}",
    )


def load_audit(path: str | Path) -> dict[str, Any]:
    return validate_audit(
        _read_json(path, "audit", "produce it with `spillguard audit --format json -o FILE`"),
        f"audit file {path}",
    )


@dataclass(frozen=True, slots=True)
class Observation:
    """One verdict for one target at one time, from the watch history or an audit run."""

    target: str
    at: str
    verdict: str
    source: str  # "watch" | "audit"


def read_history(path: str | Path) -> list[Observation]:
    """Every observation and transition of a `spillguard watch --state` database, oldest first."""
    p = Path(path)
    if not p.is_file():
        raise UserError(
            f"watch history {p} does not exist; pass the file given to `spillguard watch --state`"
        )
    # Read-only: the watcher may be writing to it right now, and a report must never change evidence.
    uri = f"file:{quote(str(p.resolve()))}?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise UserError(
            f"cannot open watch history {p} read-only ({exc}); check the path and permissions"
        ) from None
    try:
        rows: list[Observation] = []
        for target, at, verdict in con.execute("SELECT target, checked_at, verdict FROM observations"):
            rows.append(Observation(str(target), str(at), str(verdict), "watch"))
        for target, at, verdict in con.execute("SELECT target, at, new_verdict FROM transitions"):
            rows.append(Observation(str(target), str(at), str(verdict), "watch"))
    except sqlite3.DatabaseError as exc:
        raise UserError(
            f"{p} is not a spillguard watch history ({exc}); pass the file given to `spillguard watch --state`"
        ) from None
    finally:
        con.close()
    rows.sort(key=lambda o: (o.at, o.target))
    return rows


def audit_observations(audits: list[dict[str, Any]]) -> list[Observation]:
    out = []
    for doc in audits:
        for t in doc["targets"]:
            out.append(Observation(str(t["target"]), str(doc["checked_at"]), str(t["verdict"]), "audit"))
    return out
