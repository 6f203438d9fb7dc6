"""MySQL / MariaDB destination. Their DDL commits implicitly, so each dataset is written into a staging
table and swapped in with one atomic RENAME TABLE at commit; an aborted copy drops the staging table."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import pyarrow as pa
import pymysql

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
from spillguard.sources.store import StoreOptions, one_line, resolve_password

MYSQL = Dialect(integer="BIGINT", number="DOUBLE", boolean="BOOLEAN", timestamp="DATETIME(6)", text="LONGTEXT", json="LONGTEXT")
INSERT_ROWS = 2000
PUBLISHING = "*publishing*"  # the marker row written just before the stage is renamed into place


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class MySQLWriter:
    """Rows go to the staging table `_sg_stage_<table>`, swapped in by RENAME TABLE at commit. Checkpointed
    (`run` given): a partition's batches are kept until its checkpoint, the DDL they need runs first (MySQL
    commits DDL implicitly), then the rows and the partition's marker row are committed together."""

    def __init__(self, dest: MySQLDestination, name: str, mode: str, run: str | None = None, resume: bool = False) -> None:
        self.dest = dest
        self.table = name.rpartition(".")[2]
        self.mode = mode
        self.rows = 0
        self.run = run
        self.markers = True
        self.conn = dest.connect()
        # A fixed name: a copy killed mid-way leaves it behind, and the next copy drops it first.
        self.stage = f"{STAGE_PREFIX}{self.table}"[:64]
        self.columns: pa.Schema | None = None
        self._done: set[str] = set()
        self._pending: list[pa.Table] = []
        if run:
            self._exec(f"CREATE TABLE IF NOT EXISTS {_q(MARKER_TABLE)} (run VARCHAR(32) NOT NULL, dataset VARCHAR(255) NOT NULL, "
                       "part VARCHAR(64) NOT NULL, PRIMARY KEY (run, dataset, part)) ENGINE=InnoDB")
            if resume:
                with self.conn.cursor() as cur:
                    cur.execute(f"SELECT part FROM {_q(MARKER_TABLE)} WHERE run = %s AND dataset = %s", (run, self.table))
                    self._done = {r[0] for r in cur.fetchall()} - {PUBLISHING}
            if not self._done:
                self._exec(f"DELETE FROM {_q(MARKER_TABLE)} WHERE dataset = %s", (self.table,))

    def done(self) -> set[str]:
        return set(self._done)

    def _exec(self, sql: str, args: Any = None) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)

    def _add(self, fields: list[pa.Field], json_cols: set[str]) -> None:
        for f in fields:
            self._exec(f"ALTER TABLE {_q(self.stage)} ADD COLUMN {_q(f.name)} {sql_type(f.type, f.name in json_cols, MYSQL)}")

    def _prepare(self, table: pa.Table) -> tuple[pa.Table, bool]:
        """The batch ready to insert, after the DDL it needs; True when the stage was just created (it must
        then receive the existing rows of an appended table first)."""
        ready, json_cols = sql_ready(table)
        created = False
        if self.columns is None:
            resumed = bool(self._done) and self.dest.exists(self.stage)
            if not resumed:
                self._exec(f"DROP TABLE IF EXISTS {_q(self.stage)}")
            if resumed or (self.mode == "append" and self.dest.exists(self.table)):
                if not resumed:
                    self._exec(f"CREATE TABLE {_q(self.stage)} LIKE {_q(self.table)}")
                    created = True
                with self.conn.cursor() as cur:
                    cur.execute(f"SHOW COLUMNS FROM {_q(self.stage)}")
                    have = {r[0] for r in cur.fetchall()}
                self._add([f for f in ready.schema if f.name not in have], json_cols)
            else:
                cols = ", ".join(f"{_q(f.name)} {sql_type(f.type, f.name in json_cols, MYSQL)}" for f in ready.schema)
                self._exec(f"CREATE TABLE {_q(self.stage)} ({cols}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")
            self.columns = ready.schema
        else:
            ready, added = align(ready, self.columns)
            if added:
                self._add(added, json_cols)
                self.columns = ready.schema
        return ready, created

    def _insert(self, ready: pa.Table) -> None:
        if ready.num_rows:
            cols = ", ".join(_q(n) for n in ready.column_names)
            marks = ", ".join("%s" for _ in ready.column_names)
            rows = python_rows(ready)
            with self.conn.cursor() as cur:
                for start in range(0, len(rows), INSERT_ROWS):
                    # pymysql turns executemany of an INSERT ... VALUES into multi-row statements.
                    cur.executemany(f"INSERT INTO {_q(self.stage)} ({cols}) VALUES ({marks})", rows[start : start + INSERT_ROWS])

    def write(self, table: pa.Table) -> None:
        if self.run:
            self._pending.append(table)
            return
        try:
            ready, created = self._prepare(table)
            if created:
                self._exec(f"INSERT INTO {_q(self.stage)} SELECT * FROM {_q(self.table)}")
            self._insert(ready)
        except pymysql.MySQLError as exc:
            self.abort()
            raise UserError(f"{self.dest.target}: writing {self.table} failed ({write_error(exc, self.dest.password)})") from None
        self.rows += ready.num_rows

    def checkpoint(self, pid: str, order: int = 0) -> None:
        pending, self._pending = self._pending, []
        try:
            prepared = [self._prepare(t) for t in pending]  # DDL first: it would commit a half-written partition
            self.conn.begin()
            if any(created for _, created in prepared):
                self._exec(f"INSERT INTO {_q(self.stage)} SELECT * FROM {_q(self.table)}")
            for ready, _ in prepared:
                self._insert(ready)
            self._exec(f"INSERT IGNORE INTO {_q(MARKER_TABLE)} VALUES (%s, %s, %s)", (self.run, self.table, pid))
            self.conn.commit()
        except pymysql.MySQLError as exc:
            self.abort()
            raise UserError(f"{self.dest.target}: writing {self.table} failed ({write_error(exc, self.dest.password)})") from None
        self._done.add(pid)
        self.rows += sum(r.num_rows for r, _ in prepared)

    def commit(self, meta: dict[str, Any]) -> None:
        if self.run is None or not self.dest.renamed(self.table, self.run):
            if self.columns is None and not self.dest.exists(self.stage):
                self._exec(f"CREATE TABLE IF NOT EXISTS {_q(self.stage)} (_empty INT)")
            self._exec(f"CREATE TABLE IF NOT EXISTS {_q(META_TABLE)} (dataset VARCHAR(255) NOT NULL, "
                       "copied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), meta LONGTEXT NOT NULL)")
            if self.run:  # RENAME commits on its own: say first that it is about to happen (see published())
                self._exec(f"INSERT IGNORE INTO {_q(MARKER_TABLE)} VALUES (%s, %s, %s)", (self.run, self.table, PUBLISHING))
            old = f"_sg_old_{self.table}"[:64]
            if self.dest.exists(self.table):
                self._exec(f"DROP TABLE IF EXISTS {_q(old)}")
                self._exec(f"RENAME TABLE {_q(self.table)} TO {_q(old)}, {_q(self.stage)} TO {_q(self.table)}")
                self._exec(f"DROP TABLE {_q(old)}")
            else:
                self._exec(f"RENAME TABLE {_q(self.stage)} TO {_q(self.table)}")
        self.conn.begin()
        self._exec(f"INSERT INTO {_q(META_TABLE)} (dataset, meta) VALUES (%s, %s)", (self.table, meta_json(meta)))
        if self.run:
            self._exec(f"DELETE FROM {_q(MARKER_TABLE)} WHERE dataset = %s", (self.table,))
        self.conn.commit()
        self.conn.close()

    def abort(self) -> None:
        """Drop the staging table, unless a checkpointed copy keeps its committed partitions for --resume."""
        if self.conn.open:
            try:
                self.conn.rollback()
                if not self.run:
                    self._exec(f"DROP TABLE IF EXISTS {_q(self.stage)}")
            finally:
                self.conn.close()

    def discard(self) -> None:
        self.abort()
        if self.run:
            conn = self.dest.connect()
            try:
                with conn.cursor() as cur:
                    cur.execute(f"DROP TABLE IF EXISTS {_q(self.stage)}")
                    cur.execute(f"DELETE FROM {_q(MARKER_TABLE)} WHERE run = %s", (self.run,))
            finally:
                conn.close()


class MySQLDestination:
    """mysql://user[:password]@host[:port]/database (the database is required); mariadb:// alike."""

    def __init__(self, target: str, **options: Any) -> None:
        from spillguard.targets import mask_url

        self.target = mask_url(target)
        opts = StoreOptions.from_kwargs(options)
        self.password = resolve_password(target, opts)
        parts = urlsplit(target)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 3306
        self.user = unquote(parts.username) if parts.username else "root"
        self.database = unquote(parts.path.strip("/"))
        if not self.database:
            raise UserError(f"{self.target}: name the database to copy into: mysql://user@host:port/DATABASE")
        self.timeout = opts.connect_timeout
        self.scan_target = target
        netloc = parts.netloc.rsplit("@", 1)[-1]
        self.audit_url = urlunsplit(parts._replace(netloc=f"{parts.username}@{netloc}" if parts.username else netloc))
        self.connect().close()

    def connect(self) -> pymysql.connections.Connection:
        try:
            return pymysql.connect(
                host=self.host, port=self.port, user=self.user, password=self.password or "", database=self.database,
                connect_timeout=max(1, int(self.timeout)), charset="utf8mb4", autocommit=True,
            )
        except pymysql.MySQLError as exc:
            raise UserError(f"{self.target}: cannot connect ({one_line(exc, self.password)})") from None

    def exists(self, name: str) -> bool:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
                            (self.database, name.rpartition(".")[2]))
                return cur.fetchone() is not None
        finally:
            conn.close()

    def open(self, name: str, mode: str, run: str | None = None, resume: bool = False) -> MySQLWriter:
        return MySQLWriter(self, name, mode, run, resume)

    def published(self, name: str, run: str) -> bool:
        """Whether the copy `run` already made `name` visible with its metadata."""
        if not self.exists(META_TABLE):
            return False
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"SELECT 1 FROM {_q(META_TABLE)} WHERE dataset = %s AND meta LIKE %s",
                            (name.rpartition(".")[2], f'%"run":"{run}"%'))
                return cur.fetchone() is not None
        finally:
            conn.close()

    def renamed(self, table: str, run: str) -> bool:
        """Whether the copy `run` renamed its stage of `table` into place and stopped before its metadata:
        the publishing marker is there and the stage is gone."""
        if not self.exists(MARKER_TABLE) or self.exists(f"{STAGE_PREFIX}{table}"[:64]):
            return False
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"SELECT 1 FROM {_q(MARKER_TABLE)} WHERE run = %s AND dataset = %s AND part = %s", (run, table, PUBLISHING))
                return cur.fetchone() is not None
        finally:
            conn.close()

    def dataset_name(self, name: str) -> str:
        return f"{self.database}.{name.rpartition('.')[2]}"

    def scan_plan(self, names: list[str]) -> tuple[list[str], dict[str, Any]]:
        return [self.scan_target], {"include": [self.dataset_name(n) for n in names]}

    def finish(self, commit: bool) -> None:
        pass

    def close(self) -> None:
        pass
