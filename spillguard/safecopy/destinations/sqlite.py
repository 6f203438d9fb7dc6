"""SQLite destination: the database file is created owner-only; every dataset of a copy is written
in one transaction on one connection (SQLite has one writer at a time, and its DDL is transactional),
committed by `finish(True)`, so an aborted copy leaves the file as it was."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pyarrow as pa

from spillguard.errors import UserError
from spillguard.safecopy.destinations.sql import (
    MARKER_TABLE,
    META_TABLE,
    STAGE_PREFIX,
    Dialect,
    align,
    meta_json,
    python_rows,
    sql_ready,
    sql_type,
    write_error,
)

SQLITE = Dialect(integer="INTEGER", number="REAL", boolean="INTEGER", timestamp="TEXT", text="TEXT", json="TEXT")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SQLiteWriter:
    """Plain: inside the destination's one transaction. Staged (`run` given, a checkpointed copy): rows go to
    `_sg_stage_<name>`, each partition committed with its marker row; publishing renames (or, appending,
    inserts) the stage into place in one transaction with the copy's metadata."""

    def __init__(self, dest: SQLiteDestination, name: str, mode: str, run: str | None = None, resume: bool = False) -> None:
        self.dest = dest
        self.name = name
        self.mode = mode
        self.rows = 0
        self.run = run
        self.markers = True
        self.table = f"{STAGE_PREFIX}{name}" if run else name
        self.columns: pa.Schema | None = None
        self._done: set[str] = set()
        if run:
            db = dest.transaction()
            db.execute(f"CREATE TABLE IF NOT EXISTS {MARKER_TABLE} (run TEXT NOT NULL, dataset TEXT NOT NULL, part TEXT NOT NULL, "
                       "PRIMARY KEY (run, dataset, part))")
            if resume:
                self._done = {r[0] for r in db.execute(f"SELECT part FROM {MARKER_TABLE} WHERE run = ? AND dataset = ?", (run, name))}
            if not self._done:
                db.execute(f"DROP TABLE IF EXISTS {_q(self.table)}")
                db.execute(f"DELETE FROM {MARKER_TABLE} WHERE dataset = ?", (name,))
            dest.finish(True)

    @property
    def db(self) -> sqlite3.Connection:
        return self.dest.transaction()

    def done(self) -> set[str]:
        return set(self._done)

    def _add(self, fields: list[pa.Field], json_cols: set[str]) -> None:
        for f in fields:
            self.db.execute(f"ALTER TABLE {_q(self.table)} ADD COLUMN {_q(f.name)} {sql_type(f.type, f.name in json_cols, SQLITE)}")

    def _exists(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None

    def _create(self, table: pa.Table, json_cols: set[str]) -> None:
        if self.mode == "replace" and not self.run:
            self.db.execute(f"DROP TABLE IF EXISTS {_q(self.table)}")
        if (self.mode == "append" or self.run) and self._exists(self.table):
            have = {r[1] for r in self.db.execute(f"PRAGMA table_info({_q(self.table)})")}
            self._add([f for f in table.schema if f.name not in have], json_cols)
            return
        cols = ", ".join(f"{_q(f.name)} {sql_type(f.type, f.name in json_cols, SQLITE)}" for f in table.schema)
        self.db.execute(f"CREATE TABLE {_q(self.table)} ({cols})")

    def write(self, table: pa.Table) -> None:
        ready, json_cols = sql_ready(table)
        try:
            if self.columns is None:
                self._create(ready, json_cols)
                self.columns = ready.schema
            else:
                ready, added = align(ready, self.columns)
                if added:
                    self._add(added, json_cols)
                    self.columns = ready.schema
            if ready.num_rows:
                cols = ", ".join(_q(n) for n in ready.column_names)
                marks = ", ".join("?" for _ in ready.column_names)
                self.db.executemany(f"INSERT INTO {_q(self.table)} ({cols}) VALUES ({marks})", python_rows(ready))
        except sqlite3.Error as exc:
            self.abort()
            raise UserError(f"{self.dest.target}: writing {self.name} failed ({write_error(exc)})") from None
        self.rows += ready.num_rows

    def checkpoint(self, pid: str, order: int = 0) -> None:
        self.db.execute(f"INSERT OR IGNORE INTO {MARKER_TABLE} VALUES (?, ?, ?)", (self.run, self.name, pid))
        self.dest.finish(True)

    def _publish(self) -> None:
        db = self.db
        if not self._exists(self.table):
            db.execute(f"CREATE TABLE {_q(self.table)} (_empty INTEGER)")
        if self.mode == "append" and self._exists(self.name):
            have = {r[1] for r in db.execute(f"PRAGMA table_info({_q(self.name)})")}
            staged = [(r[1], r[2]) for r in db.execute(f"PRAGMA table_info({_q(self.table)})")]
            for col, typ in staged:
                if col not in have:
                    db.execute(f"ALTER TABLE {_q(self.name)} ADD COLUMN {_q(col)} {typ}")
            cols = ", ".join(_q(c) for c, _ in staged)
            db.execute(f"INSERT INTO {_q(self.name)} ({cols}) SELECT {cols} FROM {_q(self.table)}")
            db.execute(f"DROP TABLE {_q(self.table)}")
        else:
            db.execute(f"DROP TABLE IF EXISTS {_q(self.name)}")
            db.execute(f"ALTER TABLE {_q(self.table)} RENAME TO {_q(self.name)}")
        db.execute(f"DELETE FROM {MARKER_TABLE} WHERE dataset = ?", (self.name,))

    def commit(self, meta: dict[str, Any]) -> None:
        if self.run:
            self._publish()
        elif self.columns is None:
            if self.mode == "replace":
                self.db.execute(f"DROP TABLE IF EXISTS {_q(self.name)}")
            self.db.execute(f"CREATE TABLE IF NOT EXISTS {_q(self.name)} (_empty INTEGER)")
        self.db.execute(f"CREATE TABLE IF NOT EXISTS {META_TABLE} (dataset TEXT NOT NULL, copied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ')), meta TEXT NOT NULL)")
        self.db.execute(f"INSERT INTO {META_TABLE} (dataset, meta) VALUES (?, ?)", (self.name, meta_json(meta)))
        if self.run:
            self.dest.finish(True)  # a checkpointed copy publishes dataset by dataset

    def abort(self) -> None:
        self.dest.finish(False)

    def discard(self) -> None:
        self.abort()
        if self.run:
            self.db.execute(f"DROP TABLE IF EXISTS {_q(self.table)}")
            self.db.execute(f"DELETE FROM {MARKER_TABLE} WHERE run = ?", (self.run,))
            self.dest.finish(True)


class SQLiteDestination:
    """sqlite:///absolute/path.db or sqlite://relative/path.db; created (0600) when missing."""

    def __init__(self, target: str, **_options: Any) -> None:
        self.target = target
        parts = urlsplit(target)
        self.path = Path(unquote((parts.netloc or "") + parts.path))
        if not self.path.parent.is_dir():
            raise UserError(f"{target}: folder {self.path.parent} does not exist; create it first")
        if not self.path.exists():
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
            os.close(fd)
        self.scan_target = f"sqlite:///{self.path.resolve()}"
        self.audit_url = None
        self._tx: sqlite3.Connection | None = None
        try:
            self.connect().close()
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{target}: not a writable SQLite database ({exc})") from None

    def connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db

    def transaction(self) -> sqlite3.Connection:
        if self._tx is None:
            self._tx = self.connect()
            self._tx.execute("BEGIN IMMEDIATE")
        return self._tx

    def scan_plan(self, names: list[str]) -> tuple[list[str], dict[str, Any]]:
        return [self.scan_target], {"include": [self.dataset_name(n) for n in names]}

    def finish(self, commit: bool) -> None:
        if self._tx is not None:
            self._tx.execute("COMMIT" if commit else "ROLLBACK")
            self._tx.close()
            self._tx = None

    def exists(self, name: str) -> bool:
        db = self.connect()
        try:
            return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None
        finally:
            db.close()

    def open(self, name: str, mode: str, run: str | None = None, resume: bool = False) -> SQLiteWriter:
        return SQLiteWriter(self, name, mode, run, resume)

    def published(self, name: str, run: str) -> bool:
        """Whether the copy `run` already made `name` visible (its metadata row commits with the data)."""
        db = self.connect()
        try:
            if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (META_TABLE,)).fetchone() is None:
                return False
            like = f'%"run":"{run}"%'  # meta rows are compact JSON with sorted keys
            return db.execute(f"SELECT 1 FROM {META_TABLE} WHERE dataset = ? AND meta LIKE ?", (name, like)).fetchone() is not None
        finally:
            db.close()

    def dataset_name(self, name: str) -> str:
        return name

    def close(self) -> None:
        self.finish(False)
