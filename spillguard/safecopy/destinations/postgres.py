"""PostgreSQL destination: one transaction per dataset (DDL included), rows sent with COPY in CSV
written by Arrow, so nothing of the copy is visible until it commits and a halted copy leaves nothing."""

from __future__ import annotations

import io
import math
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql

from spillguard.errors import UserError
from spillguard.safecopy.destinations.sql import (
    META_TABLE,
    Dialect,
    align,
    meta_json,
    sql_ready,
    sql_type,
    write_error,
)
from spillguard.sources.store import StoreOptions, one_line, resolve_password

PG = Dialect(integer="bigint", number="double precision", boolean="boolean", timestamp="timestamp", text="text", json="jsonb")


def _split(name: str) -> tuple[str, str]:
    schema, _, table = name.rpartition(".")
    return schema or "public", table


class PostgresWriter:
    def __init__(self, dest: PostgresDestination, name: str, mode: str) -> None:
        self.dest = dest
        self.schema, self.table = _split(name)
        self.mode = mode
        self.rows = 0
        self.conn = dest.connect()
        self.columns: pa.Schema | None = None
        self.json_cols: set[str] = set()
        self.rel = sql.Identifier(self.schema, self.table)

    def _create(self, table: pa.Table, json_cols: set[str]) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            if self.mode == "replace":
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self.rel))
            if self.mode == "append" and self.dest.exists(f"{self.schema}.{self.table}"):
                cur.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
                    (self.schema, self.table),
                )
                have = {r[0] for r in cur.fetchall()}
                self._add_columns([f for f in table.schema if f.name not in have], json_cols)
                return
            cols = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(sql_type(f.type, f.name in json_cols, PG)))
                for f in table.schema
            )
            cur.execute(sql.SQL("CREATE TABLE {} ({})").format(self.rel, cols))

    def _add_columns(self, fields: list[pa.Field], json_cols: set[str]) -> None:
        with self.conn.cursor() as cur:
            for f in fields:
                cur.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                    self.rel, sql.Identifier(f.name), sql.SQL(sql_type(f.type, f.name in json_cols, PG))))

    def write(self, table: pa.Table) -> None:
        ready, json_cols = sql_ready(table)
        try:
            if self.columns is None:
                self._create(ready, json_cols)
                self.columns, self.json_cols = ready.schema, json_cols
            else:
                ready, added = align(ready, self.columns)
                if added:
                    self._add_columns(added, json_cols)
                    self.columns = ready.schema
            if ready.num_rows == 0:
                return
            buf = io.BytesIO()
            pacsv.write_csv(ready, buf, pacsv.WriteOptions(include_header=False))
            cols = sql.SQL(", ").join(sql.Identifier(n) for n in ready.column_names)
            with self.conn.cursor() as cur, cur.copy(
                sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(self.rel, cols)
            ) as copy:
                copy.write(buf.getbuffer())
        except psycopg.Error as exc:
            self.abort()
            raise UserError(f"{self.dest.target}: writing {self.schema}.{self.table} failed ({write_error(exc, self.dest.password)})") from None
        self.rows += ready.num_rows

    def commit(self, meta: dict[str, Any]) -> None:
        with self.conn.cursor() as cur:
            if self.columns is None:  # a dataset with no rows still gets its (empty) table
                cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
                if self.mode == "replace":
                    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self.rel))
                cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ()").format(self.rel))
            cur.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS public.{} (dataset text NOT NULL, copied_at timestamptz NOT NULL DEFAULT now(), meta jsonb NOT NULL)"
            ).format(sql.Identifier(META_TABLE)))
            cur.execute(sql.SQL("INSERT INTO public.{} (dataset, meta) VALUES (%s, %s)").format(sql.Identifier(META_TABLE)),
                        (f"{self.schema}.{self.table}", meta_json(meta)))
        self.conn.commit()
        self.conn.close()

    def abort(self) -> None:
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()


class PostgresDestination:
    """postgresql://user[:password]@host[:port]/database — tables written as schema.table (public by default)."""

    def __init__(self, target: str, **options: Any) -> None:
        from spillguard.targets import mask_url

        self.target = mask_url(target)
        opts = StoreOptions.from_kwargs(options)
        self.password = resolve_password(target, opts)
        self.url = "postgresql://" + target.split("://", 1)[1]
        self.scan_target = target
        parts = urlsplit(self.url)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        user = parts.username
        self.audit_url = urlunsplit(parts._replace(netloc=f"{user}@{netloc}" if user else netloc))
        self.timeout = opts.connect_timeout
        self.connect().close()  # fail fast: an unreachable server or a bad login is one clear line

    def connect(self) -> psycopg.Connection[Any]:
        kwargs: dict[str, Any] = {"connect_timeout": max(2, math.ceil(self.timeout)), "application_name": "spillguard-copy"}
        if self.password is not None:
            kwargs["password"] = self.password
        try:
            return psycopg.connect(self.url, **kwargs)
        except psycopg.Error as exc:
            raise UserError(f"{self.target}: cannot connect ({one_line(exc, self.password)})") from None

    def exists(self, name: str) -> bool:
        schema, table = _split(name)
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = %s", (schema, table))
            return cur.fetchone() is not None

    def open(self, name: str, mode: str) -> PostgresWriter:
        return PostgresWriter(self, name, mode)

    def dataset_name(self, name: str) -> str:
        schema, table = _split(name)
        return f"{schema}.{table}"

    def scan_plan(self, names: list[str]) -> tuple[list[str], dict[str, Any]]:
        return [self.scan_target], {"include": [self.dataset_name(n) for n in names]}

    def finish(self, commit: bool) -> None:
        pass  # each dataset commits its own transaction

    def close(self) -> None:
        pass
