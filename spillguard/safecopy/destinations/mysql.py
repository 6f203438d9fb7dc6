"""MySQL / MariaDB destination. Their DDL commits implicitly, so each dataset is written into a staging
table and swapped in with one atomic RENAME TABLE at commit; an aborted copy drops the staging table."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import pyarrow as pa
import pymysql

from spillguard.errors import UserError
from spillguard.safecopy.destinations.sql import (
    META_TABLE,
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


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class MySQLWriter:
    def __init__(self, dest: MySQLDestination, name: str, mode: str) -> None:
        self.dest = dest
        self.table = name.rpartition(".")[2]
        self.mode = mode
        self.rows = 0
        self.conn = dest.connect()
        # A fixed name: a copy killed mid-way leaves it behind, and the next copy drops it first.
        self.stage = f"_sg_stage_{self.table}"[:64]
        self.columns: pa.Schema | None = None

    def _exec(self, sql: str, args: Any = None) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)

    def _add(self, fields: list[pa.Field], json_cols: set[str]) -> None:
        for f in fields:
            self._exec(f"ALTER TABLE {_q(self.stage)} ADD COLUMN {_q(f.name)} {sql_type(f.type, f.name in json_cols, MYSQL)}")

    def write(self, table: pa.Table) -> None:
        ready, json_cols = sql_ready(table)
        try:
            if self.columns is None:
                self._exec(f"DROP TABLE IF EXISTS {_q(self.stage)}")
                if self.mode == "append" and self.dest.exists(self.table):
                    self._exec(f"CREATE TABLE {_q(self.stage)} LIKE {_q(self.table)}")
                    self._exec(f"INSERT INTO {_q(self.stage)} SELECT * FROM {_q(self.table)}")
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
            if ready.num_rows:
                cols = ", ".join(_q(n) for n in ready.column_names)
                marks = ", ".join("%s" for _ in ready.column_names)
                rows = python_rows(ready)
                with self.conn.cursor() as cur:
                    for start in range(0, len(rows), INSERT_ROWS):
                        # pymysql turns executemany of an INSERT ... VALUES into multi-row statements.
                        cur.executemany(f"INSERT INTO {_q(self.stage)} ({cols}) VALUES ({marks})", rows[start : start + INSERT_ROWS])
        except pymysql.MySQLError as exc:
            self.abort()
            raise UserError(f"{self.dest.target}: writing {self.table} failed ({write_error(exc, self.dest.password)})") from None
        self.rows += ready.num_rows

    def commit(self, meta: dict[str, Any]) -> None:
        if self.columns is None:
            self._exec(f"CREATE TABLE IF NOT EXISTS {_q(self.stage)} (_empty INT)")
        self._exec(f"CREATE TABLE IF NOT EXISTS {_q(META_TABLE)} (dataset VARCHAR(255) NOT NULL, "
                   "copied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), meta LONGTEXT NOT NULL)")
        old = f"_sg_old_{self.table}"[:64]
        if self.dest.exists(self.table):
            self._exec(f"DROP TABLE IF EXISTS {_q(old)}")
            self._exec(f"RENAME TABLE {_q(self.table)} TO {_q(old)}, {_q(self.stage)} TO {_q(self.table)}")
            self._exec(f"DROP TABLE {_q(old)}")
        else:
            self._exec(f"RENAME TABLE {_q(self.stage)} TO {_q(self.table)}")
        self._exec(f"INSERT INTO {_q(META_TABLE)} (dataset, meta) VALUES (%s, %s)", (self.table, meta_json(meta)))
        self.conn.close()

    def abort(self) -> None:
        if self.conn.open:
            try:
                self._exec(f"DROP TABLE IF EXISTS {_q(self.stage)}")
            finally:
                self.conn.close()


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

    def open(self, name: str, mode: str) -> MySQLWriter:
        return MySQLWriter(self, name, mode)

    def dataset_name(self, name: str) -> str:
        return f"{self.database}.{name.rpartition('.')[2]}"

    def scan_plan(self, names: list[str]) -> tuple[list[str], dict[str, Any]]:
        return [self.scan_target], {"include": [self.dataset_name(n) for n in names]}

    def finish(self, commit: bool) -> None:
        pass

    def close(self) -> None:
        pass
