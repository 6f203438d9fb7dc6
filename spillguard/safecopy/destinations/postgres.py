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
    MARKER_TABLE,
    META_TABLE,
    STAGE_PREFIX,
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
    """Plain: one transaction for the dataset, DDL included. Staged (`run` given, a checkpointed copy): rows go
    to `_sg_stage_<table>`, each partition committed with its marker row; the publish transaction renames
    (or, appending, inserts) the stage into place with the copy's metadata."""

    write_behind = True  # psycopg connections may be used from another thread (safecopy/run.py _WriteBehind)

    def __init__(self, dest: PostgresDestination, name: str, mode: str, run: str | None = None, resume: bool = False) -> None:
        self.dest = dest
        self.schema, self.table = _split(name)
        self.mode = mode
        self.rows = 0
        self.run = run
        self.markers = True
        self.conn = dest.connect()
        self.columns: pa.Schema | None = None
        self.json_cols: set[str] = set()
        self.target = sql.Identifier(self.schema, self.table)
        self.stage = f"{STAGE_PREFIX}{self.table}"[:63]
        self.rel = sql.Identifier(self.schema, self.stage) if run else self.target
        self._done: set[str] = set()
        # The schema on its own, committed: a second dataset's writer would otherwise wait for this one's
        # transaction to end (CREATE SCHEMA takes a lock until commit) while the copy waits for it.
        if self.conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)).fetchone() is None:
            with dest.connect() as conn:
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
        if run:
            self._start(resume)

    def _start(self, resume: bool) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS public.{} (run text NOT NULL, dataset text NOT NULL, part text NOT NULL, "
                                "PRIMARY KEY (run, dataset, part))").format(sql.Identifier(MARKER_TABLE)))
            if resume:
                cur.execute(sql.SQL("SELECT part FROM public.{} WHERE run = %s AND dataset = %s").format(sql.Identifier(MARKER_TABLE)),
                            (self.run, self.dataset))
                self._done = {r[0] for r in cur.fetchall()}
            if not self._done:  # a fresh start: whatever an earlier copy left in the stage goes
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self.rel))
                cur.execute(sql.SQL("DELETE FROM public.{} WHERE dataset = %s").format(sql.Identifier(MARKER_TABLE)), (self.dataset,))
        self.conn.commit()

    @property
    def dataset(self) -> str:
        return f"{self.schema}.{self.table}"

    def done(self) -> set[str]:
        return set(self._done)

    def _columns_of(self, cur: psycopg.Cursor[Any], table: str) -> dict[str, str]:
        cur.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(quote_ident(%s) || '.' || quote_ident(%s)) AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY a.attnum", (self.schema, table))
        return {r[0]: r[1] for r in cur.fetchall()}

    def _exists(self, cur: psycopg.Cursor[Any], table: str) -> bool:
        cur.execute("SELECT to_regclass(quote_ident(%s) || '.' || quote_ident(%s)) IS NOT NULL", (self.schema, table))
        row = cur.fetchone()
        return bool(row and row[0])

    def _create(self, table: pa.Table, json_cols: set[str]) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            if self.mode == "replace" and not self.run:
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self.rel))
            if (self.run or self.mode == "append") and self._exists(cur, self.stage if self.run else self.table):
                have = self._columns_of(cur, self.stage if self.run else self.table)
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

    def checkpoint(self, pid: str, order: int = 0) -> None:
        """The rows written since the last checkpoint and the partition's marker, in one commit."""
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql.SQL("INSERT INTO public.{} VALUES (%s, %s, %s) ON CONFLICT DO NOTHING").format(
                    sql.Identifier(MARKER_TABLE)), (self.run, self.dataset, pid))
            self.conn.commit()
        except psycopg.Error as exc:
            self.abort()
            raise UserError(f"{self.dest.target}: committing a partition of {self.dataset} failed ({write_error(exc, self.dest.password)})") from None

    def _publish(self, cur: psycopg.Cursor[Any]) -> None:
        if not self._exists(cur, self.stage):
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            cur.execute(sql.SQL("CREATE TABLE {} ()").format(self.rel))
        if self.mode == "append" and self._exists(cur, self.table):
            have, staged = self._columns_of(cur, self.table), self._columns_of(cur, self.stage)
            for name, typ in staged.items():
                if name not in have:
                    cur.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(self.target, sql.Identifier(name), sql.SQL(typ)))
            if staged:
                cols = sql.SQL(", ").join(sql.Identifier(n) for n in staged)
                cur.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(self.target, cols, cols, self.rel))
            cur.execute(sql.SQL("DROP TABLE {}").format(self.rel))
        else:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self.target))
            cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(self.rel, sql.Identifier(self.table)))
        cur.execute(sql.SQL("DELETE FROM public.{} WHERE dataset = %s").format(sql.Identifier(MARKER_TABLE)), (self.dataset,))

    def commit(self, meta: dict[str, Any]) -> None:
        with self.conn.cursor() as cur:
            if self.run:
                self._publish(cur)
            elif self.columns is None:  # a dataset with no rows still gets its (empty) table
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
        """Roll back what is not committed; a staged copy keeps its committed partitions for --resume."""
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()

    def discard(self) -> None:
        """Drop the stage and the markers of a staged copy that was rolled back (a halt)."""
        self.abort()
        if self.run:
            with self.dest.connect() as conn, conn.cursor() as cur:
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self.rel))
                cur.execute(sql.SQL("DELETE FROM public.{} WHERE run = %s").format(sql.Identifier(MARKER_TABLE)), (self.run,))


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

    def open(self, name: str, mode: str, run: str | None = None, resume: bool = False) -> PostgresWriter:
        return PostgresWriter(self, name, mode, run, resume)

    def published(self, name: str, run: str) -> bool:
        """Whether the copy `run` already made `name` visible (its metadata row commits with the data)."""
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{META_TABLE}",))
            row = cur.fetchone()
            if not (row and row[0]):
                return False
            cur.execute(sql.SQL("SELECT 1 FROM public.{} WHERE dataset = %s AND meta->>'run' = %s").format(sql.Identifier(META_TABLE)),
                        (self.dataset_name(name), run))
            return cur.fetchone() is not None

    def dataset_name(self, name: str) -> str:
        schema, table = _split(name)
        return f"{schema}.{table}"

    def scan_plan(self, names: list[str]) -> tuple[list[str], dict[str, Any]]:
        return [self.scan_target], {"include": [self.dataset_name(n) for n in names]}

    def finish(self, commit: bool) -> None:
        pass  # each dataset commits its own transaction

    def close(self) -> None:
        pass
