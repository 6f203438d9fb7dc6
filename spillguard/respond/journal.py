"""The response journal: append-only SQLite, owner-only, every entry chained to the one before.

Each entry's `hash` is an HMAC-SHA256 (keyed by the install's fingerprint key) over the previous
entry's hash and the entry's own fields, so an entry edited, removed or moved breaks the chain at
that point, and nobody without the key can forge a consistent replacement. Truncating the newest
entries is caught by the keyed anchor (last sequence number and hash) and, across machines, by the
head hash `journal verify` prints, which can be kept elsewhere (in the report, a ticket).

The runner writes an `intent` before a step's side effect and an `outcome` after it; a step with an
outcome and no failures is done, a step with an intent and no outcome was in flight when the process
died and is executed again (every action is idempotent). No entry ever holds a raw token, password
or e-mail address: targets are masked URLs, payloads digests or keyed hashes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spillguard.errors import UserError
from spillguard.keys import derive_key

if TYPE_CHECKING:
    from spillguard.respond.steps import Step, StepOutcome

FORMAT = 1
GENESIS = "0" * 64
# Fields chained by the hash, in this order: changing the list changes FORMAT.
FIELDS = ("seq", "at", "actor", "incident", "kind", "step_key", "action", "target", "scope", "count", "done", "failed", "result", "detail")
KINDS = ("open", "plan", "intent", "outcome", "verify", "decision", "notify", "note")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, incident TEXT NOT NULL, kind TEXT NOT NULL,
    step_key TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, scope TEXT NOT NULL, count INTEGER NOT NULL,
    done INTEGER NOT NULL, failed INTEGER NOT NULL, result TEXT NOT NULL, detail TEXT NOT NULL,
    prev TEXT NOT NULL, hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS entries_step ON entries (step_key, kind);
CREATE TABLE IF NOT EXISTS anchor (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL, mac TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END;
"""


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def journal_key(fingerprint_key: bytes) -> bytes:
    """The chain's key, derived so a journal MAC never equals a fingerprint of any value."""
    return derive_key(fingerprint_key, "spillguard journal chain v1")


@dataclass(slots=True)
class Entry:
    seq: int
    at: str
    actor: str
    incident: str
    kind: str
    step_key: str = ""
    action: str = ""
    target: str = ""  # masked
    scope: str = ""
    count: int = 0
    done: int = 0
    failed: int = 0
    result: str = ""
    detail: str = ""  # masked
    prev: str = GENESIS
    hash: str = ""

    def chained(self) -> bytes:
        return json.dumps([getattr(self, f) for f in FIELDS], ensure_ascii=False, separators=(",", ":")).encode()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class JournalCheck:
    ok: bool
    entries: int
    head: str  # hash of the last entry: keep it elsewhere to catch a truncated journal later
    problems: list[str] = field(default_factory=list)


def _mac(key: bytes, prev: str, entry: Entry) -> str:
    return hmac.new(key, prev.encode() + b"\n" + entry.chained(), hashlib.sha256).hexdigest()


def _anchor_mac(key: bytes, seq: int, head: str) -> str:
    return hmac.new(key, f"anchor:{seq}:{head}".encode(), hashlib.sha256).hexdigest()


def guard_masked(*texts: str) -> None:
    """A journal entry must never carry an e-mail address: a bug upstream, refused loudly."""
    for text in texts:
        if text and _EMAIL.search(text):
            raise ValueError("refusing to journal an unmasked e-mail address")


class Journal:
    """One incident response's journal file. Opening a missing file creates it owner-only."""

    def __init__(self, path: str | Path, fingerprint_key: bytes, *, actor: str = "spillguard", create: bool = True) -> None:
        self.path = Path(path)
        self.actor = actor
        self._key = journal_key(fingerprint_key)
        if not self.path.exists():
            if not create:
                raise UserError(f"{self.path}: no such journal; give the --journal file `respond execute` wrote")
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except OSError as exc:
                raise UserError(f"{self.path}: cannot create the journal ({exc.strerror}); choose a writable path") from None
            os.close(fd)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            # WAL with a full sync: each entry is durable on commit with one fsync (the rollback journal took
            # three: 20 ms instead of 3.6 ms per entry on this machine's disk, two entries per step).
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE name='format'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{self.path}: not a spillguard journal ({exc}); give the journal file respond wrote") from None
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('format', ?)", (str(FORMAT),))
        elif row[0] != str(FORMAT):
            raise UserError(f"{self.path}: journal format {row[0]} is not {FORMAT}; use the spillguard version that wrote it")

    # -- writing ---------------------------------------------------------------------------------
    def append(self, kind: str, *, incident: str, step_key: str = "", action: str = "", target: str = "", scope: str = "",
               count: int = 0, done: int = 0, failed: int = 0, result: str = "", detail: str = "", actor: str | None = None) -> Entry:
        if kind not in KINDS:
            raise ValueError(f"unknown journal entry kind {kind!r}")
        guard_masked(target, detail, result, action)
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            last = db.execute("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
            entry = Entry(seq, _now(), actor or self.actor, incident, kind, step_key, action, target, scope, int(count),
                          int(done), int(failed), result, detail, prev)
            entry.hash = _mac(self._key, prev, entry)
            db.execute(f"INSERT INTO entries ({', '.join(FIELDS)}, prev, hash) VALUES ({', '.join('?' * (len(FIELDS) + 2))})",
                       [getattr(entry, f) for f in FIELDS] + [entry.prev, entry.hash])
            db.execute("INSERT OR REPLACE INTO anchor VALUES (1, ?, ?, ?)", (seq, entry.hash, _anchor_mac(self._key, seq, entry.hash)))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return entry

    def intent(self, step: Step, *, incident: str, target: str = "", scope: str = "") -> Entry:
        return self.append("intent", incident=incident, step_key=step.key, action=step.action, target=target, scope=scope,
                           count=step.count, detail=step.description)

    def outcome(self, step: Step, outcome: StepOutcome, *, incident: str, target: str = "", scope: str = "") -> Entry:
        result = "done" if outcome.failed == 0 else "failed"
        return self.append("outcome", incident=incident, step_key=step.key, action=step.action, target=target, scope=scope,
                           count=step.count, done=outcome.done, failed=outcome.failed, result=result, detail=outcome.detail)

    # -- reading ---------------------------------------------------------------------------------
    def done(self, key: str) -> bool:
        """The step finished without failures in an earlier (or this) run."""
        row = self._db.execute("SELECT 1 FROM entries WHERE step_key=? AND kind='outcome' AND failed=0 LIMIT 1", (key,)).fetchone()
        return row is not None

    def in_flight(self, incident: str | None = None) -> set[str]:
        """Steps with an intent and no outcome: the process died between the two."""
        sql = ("SELECT step_key FROM entries WHERE kind='intent' {inc} EXCEPT "
               "SELECT step_key FROM entries WHERE kind='outcome' {inc}")
        if incident is None:
            rows = self._db.execute(sql.format(inc=""))
        else:
            rows = self._db.execute(sql.format(inc="AND incident=?"), (incident, incident))
        return {r[0] for r in rows}

    def entries(self, incident: str | None = None) -> Iterator[Entry]:
        sql = f"SELECT {', '.join(FIELDS)}, prev, hash FROM entries"
        args: tuple = ()
        if incident is not None:
            sql += " WHERE incident=?"
            args = (incident,)
        for row in self._db.execute(sql + " ORDER BY rowid", args):
            yield Entry(*row)

    def verify(self) -> JournalCheck:
        """Walk the chain in storage order: every edited, removed, inserted or reordered entry is named."""
        problems: list[str] = []
        prev, expected, n, head = GENESIS, 1, 0, GENESIS
        for entry in self.entries():
            n += 1
            if entry.seq != expected:
                problems.append(f"entry {entry.seq}: expected sequence {expected} (an entry was removed, inserted or moved)")
            if entry.prev != prev:
                problems.append(f"entry {entry.seq}: does not follow the entry before it (removed or reordered)")
            if not hmac.compare_digest(entry.hash, _mac(self._key, entry.prev, entry)):
                problems.append(f"entry {entry.seq}: content does not match its hash (edited)")
            prev, head, expected = entry.hash, entry.hash, entry.seq + 1
        anchor = self._db.execute("SELECT seq, hash, mac FROM anchor WHERE id=1").fetchone()
        if anchor is None:
            if n:
                problems.append("the journal's anchor is missing (edited)")
        else:
            a_seq, a_hash, a_mac = anchor
            if not hmac.compare_digest(a_mac, _anchor_mac(self._key, a_seq, a_hash)):
                problems.append("the journal's anchor does not match its key (edited, or another install's key)")
            elif a_seq != (expected - 1) or a_hash != head:
                problems.append(f"the journal ends at entry {expected - 1} but was last written at entry {a_seq} (entries removed)")
        return JournalCheck(ok=not problems, entries=n, head=head, problems=problems)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- export ---------------------------------------------------------------------------------------
def export_json(journal: Journal, incident: str | None = None) -> str:
    check = journal.verify()
    doc = {
        "journal": str(journal.path), "verified": check.ok, "head": check.head, "problems": check.problems,
        "entries": [e.as_dict() for e in journal.entries(incident)],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def export_markdown(journal: Journal, incident: str | None = None) -> str:
    check = journal.verify()
    lines = [
        "# Response journal",
        "",
        f"- File: `{journal.path.name}`",
        f"- Chain: {'intact' if check.ok else 'BROKEN'} ({check.entries} entries, head `{check.head[:16]}…`)",
    ]
    lines += [f"- Problem: {p}" for p in check.problems]
    lines += ["", "| # | time (UTC) | actor | kind | action | target | scope | count | done | failed | result | detail |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in journal.entries(incident):
        cells = [str(e.seq), e.at, e.actor, e.kind, e.action, e.target, e.scope, f"{e.count:,}", f"{e.done:,}",
                 f"{e.failed:,}", e.result, e.detail]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
