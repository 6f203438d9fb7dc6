"""SQLite files, opened read-only (`mode=ro` URI): every table (optionally views), read in rowid ranges.

Rows are built as JSON by SQLite itself (`json_object`), with text that holds a JSON object or
array embedded as nested JSON and blobs read as text, then parsed in blocks by Arrow.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pyarrow as pa

from spillguard.errors import UserError
from spillguard.sources.base import MalformedSink, Partition, ReaderDefaults, SourceDefaults, since_bound
from spillguard.sources.retry import TransientError
from spillguard.sources.store import RateLimiter, StoreOptions, json_row_tables, partition_count, split_range

FETCH_ROWS = 5000
_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}  # "database is locked" (error codes since Python 3.11)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(slots=True)
class SQLiteTable(ReaderDefaults):
    source: SQLiteSource
    table: str
    kind: str
    subject_field: str | None

    @property
    def name(self) -> str:
        return self.table

    def _has_rowid(self) -> bool:
        if self.kind != "table":
            return False
        try:
            self.source.db().execute(f"SELECT rowid FROM {_q(self.table)} LIMIT 0")
        except sqlite3.OperationalError:
            return False  # WITHOUT ROWID table
        return True

    def partitions(self) -> list[Partition]:
        opts = self.source.options
        base = {"table": self.table}
        if opts.sample is not None:
            return [Partition(self.name, {**base, "sample": opts.sample})]
        if not self._has_rowid():
            return [Partition(self.name, base)]
        lo, hi, count = self.source.db().execute(f"SELECT MIN(rowid), MAX(rowid), COUNT(*) FROM {_q(self.table)}").fetchone()
        n = partition_count(count or 0, opts.partition_rows)
        if lo is None or n == 1:
            return [Partition(self.name, base)]
        ranges = split_range(int(lo), int(hi), n)
        return [
            Partition(self.name, {**base, "rowid": [a if i else None, b if i + 1 < len(ranges) else None]})
            for i, (a, b) in enumerate(ranges)
        ]

    def _select(self, spec: dict[str, Any]) -> str:
        cols = [row[1] for row in self.source.db().execute(f"PRAGMA table_info({_q(self.table)})")]
        args = []
        for col in cols:
            c = _q(col)
            # JSON text becomes nested JSON; blobs are read as text; everything else as stored.
            expr = (
                f"CASE WHEN typeof({c}) = 'blob' THEN CAST({c} AS TEXT) "
                f"WHEN typeof({c}) = 'text' AND substr(ltrim({c}), 1, 1) IN ('{{', '[') AND json_valid({c}) THEN json({c}) "
                f"ELSE {c} END"
            )
            args.append(f"{_lit(col)}, {expr}")
        sql = f"SELECT json_object({', '.join(args)}) FROM {_q(self.table)}"
        if "sample" in spec:
            # SQLite's random() cannot be seeded: order by a seeded hash of the rowid instead.
            seed = self.source.options.seed % 1_000_003
            order = f"((rowid + {seed}) * 2654435761) % 4294967311" if self._has_rowid() else "random()"
            return f"{sql} ORDER BY {order} LIMIT {int(spec['sample'])}"
        conds = []
        if "rowid" in spec:
            a, b = spec["rowid"]
            conds = ([f"rowid >= {int(a)}"] if a is not None else []) + ([f"rowid < {int(b)}"] if b is not None else [])
        if (bound := since_bound(spec)) is not None:
            fld, value = bound
            conds.append(f"{_q(fld)} >= {_lit(value) if isinstance(value, str) else repr(value)}")
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        return sql

    def _fetched(self, cur: sqlite3.Cursor) -> Iterator[list[bytes]]:
        """The json_object text of each fetch of rows, paced by --max-rps."""
        while True:
            self.source.limiter.wait()
            rows = cur.fetchmany(FETCH_ROWS)
            if not rows:
                return
            yield [doc.encode("utf-8", "surrogateescape") for (doc,) in rows]

    def read(self, partition: Partition, malformed: MalformedSink) -> Iterator[pa.Table]:
        try:
            cur = self.source.db().execute(self._select(partition.spec))
            yield from json_row_tables(self._fetched(cur), self.name, malformed)
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorcode", None) in _BUSY:
                # A writer held its lock longer than the busy timeout (--connect-timeout): retried within the budget.
                raise TransientError(f"{self.name}: {exc}") from None
            raise UserError(f"{self.source.target}: {self.name}: {exc}") from None


class SQLiteSource(SourceDefaults):
    """sqlite:///absolute/path.db or sqlite://relative/path.db, opened read-only."""

    def __init__(self, target: str, **options: Any) -> None:
        self.target = target
        self.options = StoreOptions.from_kwargs(options)
        parts = urlsplit(target)
        raw = unquote((parts.netloc or "") + parts.path)
        self.path = Path(raw)
        if not self.path.is_file():
            raise UserError(f"{target}: no such SQLite file; use sqlite:///absolute/path.db")
        self.limiter = RateLimiter(self.options.max_rps)
        self._db: sqlite3.Connection | None = None
        try:
            self.db().execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{target}: not a readable SQLite database ({exc})") from None

    def db(self) -> sqlite3.Connection:
        if self._db is None:
            uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, timeout=self.options.connect_timeout, check_same_thread=False)
            self._db.text_factory = lambda b: b.decode("utf-8", "replace")
        return self._db

    def datasets(self) -> Iterator[SQLiteTable]:
        rows = self.db().execute(
            "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
        ).fetchall()
        for name, kind in rows:
            if self.options.wanted_table(kind == "view", name):
                yield SQLiteTable(self, name, kind, self.options.subject_for(name))

    def dataset(self, name: str) -> SQLiteTable:
        row = self.db().execute("SELECT type FROM sqlite_master WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise UserError(f"{self.target}: table {name} disappeared during the scan")
        return SQLiteTable(self, name, row[0], None)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
        self._db = None
