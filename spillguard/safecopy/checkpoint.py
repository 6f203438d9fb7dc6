"""The `--state FILE` of a copy: watermarks between runs, and the partitions of a copy in progress, so an
interrupted copy (`kill -9` included) continues with `--resume` where it stopped.

SQLite in WAL mode, owner-only. It holds:
  - `watermark`: per dataset, the field and the last value copied by a finished run (a time or a counter);
  - `run`: the copy in progress, if any: its id (also recorded in the destination), what must not change for
    a resume (masked source and destination, policy digest, key ids, options, input signatures), and the seed
    of the keyed hashes the proof compares;
  - `part`: per finished partition, what the summary and the proof need: row and transform counts, fields
    handled by --on-new, malformed-record positions, the highest watermark seen, and the keyed 64-bit hashes
    of source identifier values (numpy arrays read with allow_pickle=False). Never a value.

A partition counts as done when the destination says so (a marker committed with its rows), or, for
destinations whose writes are idempotent (Elasticsearch with derived document ids), when this file says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import secrets
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from spillguard.errors import UserError
from spillguard.outfiles import check_state_path, open_state_db

STATE_FORMAT = 2  # 1 was a JSON file of watermarks only


def part_id(key: str) -> str:
    """The name a partition is checkpointed under, in the state file and in the destination's markers."""
    return hashlib.sha256(key.encode()).hexdigest()[:24]


@dataclass(slots=True)
class SavedPart:
    """One finished partition as the state file keeps it."""

    rows: int = 0
    notes: dict[str, int] = field(default_factory=dict)
    auto: dict[str, str] = field(default_factory=dict)
    malformed: list[dict[str, Any]] = field(default_factory=list)
    seen: Any = None
    by_path: dict[str, np.ndarray] = field(default_factory=dict)
    long_values: np.ndarray | None = None

    def encode(self) -> tuple[bytes, bytes]:
        paths = sorted(self.by_path)
        doc = {"rows": self.rows, "notes": self.notes, "auto": self.auto, "malformed": self.malformed,
               "seen": self.seen, "paths": paths, "long": self.long_values is not None}
        arrays = [self.by_path[p] for p in paths] + ([self.long_values] if self.long_values is not None else [])
        buf = io.BytesIO()
        np.savez(buf, *arrays)
        return orjson.dumps(doc, default=str), buf.getvalue()

    @classmethod
    def decode(cls, doc_bytes: bytes, blob: bytes) -> SavedPart:
        doc = orjson.loads(doc_bytes)
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = [npz[f"arr_{i}"].astype(np.uint64, copy=False) for i in range(len(npz.files))]
        paths = list(doc["paths"])
        return cls(int(doc["rows"]), dict(doc["notes"]), dict(doc["auto"]), list(doc["malformed"]), doc["seen"],
                   dict(zip(paths, arrays, strict=False)), arrays[len(paths)] if doc["long"] else None)


class CopyCheckpoint:
    """The state file of one copy destination; see the module doc."""

    def __init__(self, path: str | Path, destination: str) -> None:
        self.path = Path(path)
        self.destination = destination
        check_state_path(self.path)
        if self.path.exists() and self.path.stat().st_size and self.path.read_bytes()[:16] != b"SQLite format 3\x00":
            raise UserError(f"--state {self.path}: not a state file of this spillguard (an older copy state?); "
                            "delete it to copy everything again, or choose another --state file")
        try:
            self.db = open_state_db(self.path)
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
            self.db.execute("CREATE TABLE IF NOT EXISTS watermark (dataset TEXT PRIMARY KEY, field TEXT NOT NULL, last TEXT)")
            self.db.execute("CREATE TABLE IF NOT EXISTS run (id TEXT PRIMARY KEY, identity TEXT NOT NULL, seed INTEGER NOT NULL, "
                            "started_at TEXT NOT NULL DEFAULT (datetime('now')))")
            self.db.execute("CREATE TABLE IF NOT EXISTS part (dataset TEXT NOT NULL, id TEXT NOT NULL, doc BLOB NOT NULL, "
                            "arrays BLOB NOT NULL, PRIMARY KEY (dataset, id))")
            stored = dict(self.db.execute("SELECT k, v FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise UserError(f"--state {self.path}: not a spillguard copy state ({exc}); choose another --state file") from None
        if not stored:
            self.db.execute("INSERT INTO meta VALUES ('format', ?), ('destination', ?)", (str(STATE_FORMAT), destination))
        elif stored.get("format") != str(STATE_FORMAT):
            raise UserError(f"--state {self.path}: copy state format {stored.get('format')!r} is not supported; delete it to start over")
        elif stored.get("destination") != destination:
            raise UserError(f"--state {self.path}: this state belongs to the copy to {stored.get('destination')}, not {destination}; use another --state")
        self.run_id = ""
        self.seed = 0
        self.resumed = False

    # -- watermarks of finished runs

    def watermark(self, dataset: str, fld: str) -> Any:
        row = self.db.execute("SELECT field, last FROM watermark WHERE dataset = ?", (dataset,)).fetchone()
        if row is None:
            return None
        if row[0] != fld:
            raise UserError(f"--state {self.path}: {dataset} was copied with watermark {row[0]!r}, not {fld!r}; use another --state")
        return orjson.loads(row[1]) if row[1] is not None else None

    # -- the copy in progress

    def pending(self, resume: bool) -> str | None:
        """The id of the interrupted copy this file records, if any; refused unless the copy is `resume`d."""
        row = self.db.execute("SELECT id FROM run").fetchone()
        if row is not None and not resume:
            done = self.parts_saved()
            raise UserError(f"--state {self.path}: holds an interrupted copy ({done} partition(s) done); "
                            "pass --resume to continue it, or use another --state file")
        return str(row[0]) if row is not None else None

    def start(self, identity: dict[str, Any], resume: bool, seed: int) -> None:
        """Begin a copy, or continue the interrupted one (`resume`), refusing when what it copies changed."""
        row = self.db.execute("SELECT id, identity, seed FROM run").fetchone()
        if row is not None and resume:
            before = orjson.loads(row[1])
            for what in ("source", "destination", "policy_sha256", "keys", "options", "signatures"):
                if before.get(what) != identity.get(what):
                    label = {"policy_sha256": "the policy (its digest)", "keys": "a key (its key id)",
                             "signatures": "the source's content", "options": "the copy options"}.get(what, f"the {what}")
                    raise UserError(f"--state {self.path}: {label} changed since the interrupted copy; it cannot be resumed: "
                                    "run it with the same source, policy, key and options, or use another --state file")
            self.run_id, self.seed, self.resumed = str(row[0]), int(row[2]), True
            return
        self.run_id, self.seed = secrets.token_hex(8), seed
        self.db.execute("INSERT INTO run (id, identity, seed) VALUES (?, ?, ?)",
                        (self.run_id, orjson.dumps(identity, option=orjson.OPT_SORT_KEYS, default=str).decode(), seed))

    def partitions(self) -> dict[str, list[dict[str, Any]]]:
        """The partition specs the interrupted copy planned, per dataset (a resume reuses them)."""
        row = self.db.execute("SELECT identity FROM run").fetchone()
        return dict(orjson.loads(row[0]).get("partitions") or {}) if row is not None else {}

    def saved(self, dataset: str) -> dict[str, SavedPart]:
        return {pid: SavedPart.decode(doc, blob) for pid, doc, blob in
                self.db.execute("SELECT id, doc, arrays FROM part WHERE dataset = ?", (dataset,))}

    def save(self, dataset: str, pid: str, part: SavedPart) -> None:
        doc, blob = part.encode()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("INSERT OR REPLACE INTO part VALUES (?, ?, ?, ?)", (dataset, pid, doc, blob))

    def parts_saved(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM part").fetchone()[0])

    def finish(self, watermarks: dict[str, tuple[str, Any]]) -> None:
        """The copy committed everywhere: keep its watermarks, forget its partitions."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for dataset, (fld, last) in watermarks.items():
                self.db.execute("INSERT OR REPLACE INTO watermark VALUES (?, ?, ?)",
                                (dataset, fld, orjson.dumps(last, default=str).decode() if last is not None else None))
            self.db.execute("DELETE FROM part")
            self.db.execute("DELETE FROM run")

    def abandon(self) -> None:
        """The copy was rolled back (a halt): nothing of it is kept."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("DELETE FROM part")
            self.db.execute("DELETE FROM run")

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.close()
