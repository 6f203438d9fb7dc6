"""The watch's memory: every observation, every transition, and per target what was last alerted.

A watched target is known by its history key: the registry's store key plus a keyed hash of its credentials
(`spillguard.targets.credentials_tag`), so two targets that differ only by their password have two
histories and no credential is ever stored. `target` columns hold the masked URL, as the report reads them.

One SQLite file (owner-only, WAL). Each observation is recorded in one transaction together with its
transition and the state change, so a crash or Ctrl-C leaves either all of it or none of it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from spillguard.audit.verdict import ExposureVerdict
from spillguard.errors import UserError
from spillguard.verdicts import Verdict, is_exposed

SCHEMA = """
CREATE TABLE IF NOT EXISTS observations (
    id INTEGER PRIMARY KEY,
    target TEXT NOT NULL,
    checked_at TEXT NOT NULL,
    verdict TEXT NOT NULL,
    evidence TEXT NOT NULL,
    duration_ms REAL,
    target_key TEXT
);
CREATE INDEX IF NOT EXISTS observations_target ON observations (target, id);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY,
    target TEXT NOT NULL,
    at TEXT NOT NULL,
    old_verdict TEXT,
    new_verdict TEXT NOT NULL,
    evidence TEXT NOT NULL,
    target_key TEXT
);
CREATE INDEX IF NOT EXISTS transitions_target ON transitions (target, id);
CREATE TABLE IF NOT EXISTS target_state (
    target TEXT PRIMARY KEY,  -- the history key
    verdict TEXT NOT NULL,
    since TEXT NOT NULL,
    checked_at TEXT NOT NULL,
    first_exposed_at TEXT,
    alerted_verdict TEXT,
    last_alert_at TEXT
);
"""


@dataclass(slots=True)
class TargetState:
    target: str
    verdict: str
    since: str
    checked_at: str
    first_exposed_at: str | None
    alerted_verdict: str | None
    last_alert_at: str | None


@dataclass(slots=True)
class Observation:
    """What recording one verdict changed."""

    target: str
    previous: str | None  # verdict observed before this one (None: first time seen)
    state: TargetState


def parse_ts(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


class History:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        p = Path(self.path)
        if p.parent and not p.parent.exists():
            raise UserError(f"watch state {self.path}: directory {p.parent} does not exist; create it first")
        try:
            # Created owner-only before SQLite touches it: evidence lists what is exposed where.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            self.db = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            self._add_key_columns()
        except (OSError, sqlite3.DatabaseError) as exc:
            raise UserError(
                f"watch state {self.path}: cannot open it as SQLite ({exc}); give another --state file"
            ) from None

    def _add_key_columns(self) -> None:
        # Histories written before targets had history keys: add the column, keep every row. Their
        # target_state rows were keyed by masked URL, so each target starts a fresh state (and may alert
        # once more) rather than sharing one state between logins.
        for table in ("observations", "transitions"):
            columns = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
            if "target_key" not in columns:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN target_key TEXT")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def state(self, target: str) -> TargetState | None:
        row = self.db.execute(
            "SELECT target, verdict, since, checked_at, first_exposed_at, alerted_verdict, last_alert_at "
            "FROM target_state WHERE target = ?",
            (target,),
        ).fetchone()
        return TargetState(*row) if row else None

    def record(self, v: ExposureVerdict, checked_at: str) -> Observation:
        evidence = json.dumps(v.evidence, sort_keys=True, default=str)
        verdict = str(v.verdict)
        key = v.history_key or v.target
        self.db.execute("BEGIN IMMEDIATE")
        try:
            prev = self.state(key)
            self.db.execute(
                "INSERT INTO observations (target, checked_at, verdict, evidence, duration_ms, target_key) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (v.target, checked_at, verdict, evidence, v.total_ms, key),
            )
            if prev is None or prev.verdict != verdict:
                self.db.execute(
                    "INSERT INTO transitions (target, at, old_verdict, new_verdict, evidence, target_key) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (v.target, checked_at, prev.verdict if prev else None, verdict, evidence, key),
                )
            first_exposed = prev.first_exposed_at if prev else None
            if is_exposed(verdict) and first_exposed is None:
                first_exposed = checked_at
            elif verdict == Verdict.PROTECTED:
                # Only a confirmed protected ends an exposure; unreachable may just be our own network.
                first_exposed = None
            state = TargetState(
                target=key,
                verdict=verdict,
                since=prev.since if prev and prev.verdict == verdict else checked_at,
                checked_at=checked_at,
                first_exposed_at=first_exposed,
                alerted_verdict=prev.alerted_verdict if prev else None,
                last_alert_at=prev.last_alert_at if prev else None,
            )
            self._save(state)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return Observation(key, prev.verdict if prev else None, state)

    def mark_alerted(self, target: str, verdict: str, at: str | None) -> None:
        self.db.execute(
            "UPDATE target_state SET alerted_verdict = ?, last_alert_at = COALESCE(?, last_alert_at) WHERE target = ?",
            (verdict, at, target),
        )

    def _save(self, s: TargetState) -> None:
        self.db.execute(
            "INSERT INTO target_state (target, verdict, since, checked_at, first_exposed_at, alerted_verdict, "
            "last_alert_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (target) DO UPDATE SET verdict = excluded.verdict, "
            "since = excluded.since, checked_at = excluded.checked_at, first_exposed_at = excluded.first_exposed_at, "
            "alerted_verdict = excluded.alerted_verdict, last_alert_at = excluded.last_alert_at",
            (
                s.target,
                s.verdict,
                s.since,
                s.checked_at,
                s.first_exposed_at,
                s.alerted_verdict,
                s.last_alert_at,
            ),
        )

    def transitions(self, target: str | None = None) -> list[dict[str, Any]]:
        """Every transition, or those of one target given by its masked URL or its history key."""
        sql = "SELECT id, target, at, old_verdict, new_verdict, evidence FROM transitions"
        where = " WHERE target = ? OR target_key = ? ORDER BY id" if target else " ORDER BY id"
        rows = self.db.execute(sql + where, (target, target) if target else ()).fetchall()
        return [
            {
                "id": r[0],
                "target": r[1],
                "at": r[2],
                "old_verdict": r[3],
                "new_verdict": r[4],
                "evidence": json.loads(r[5]),
            }
            for r in rows
        ]

    def observation_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM observations").fetchone()[0])
