"""PostgreSQL: every table (optionally views) of the URL's database, read with COPY in ctid ranges.

Rows leave the server as COPY text, decoded in blocks by the native core into Arrow columns typed as
the JSON reading types them (sources/pgtext.py): json/jsonb columns arrive nested (`devices[].mac`), arrays
as lists, composites and hstore as objects, inet/macaddr as text, all without a per-row Python step. Tables
the text reading cannot type (no columns, or columns named like search hits) are read as one JSON object per
line (`row_to_json`) handed to Arrow's JSON reader in blocks, the reading the text one is held to.
Sessions are read-only (`default_transaction_read_only` and READ ONLY transactions).

libpq bounds connecting (`connect_timeout`) but has no read timeout: a ReadWatchdog ends a read that
received nothing for `read_timeout` seconds, and TCP keepalives notice a peer that vanished.
"""

from __future__ import annotations

import functools
import math
import os
import select
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import pq, sql
from psycopg.generators import fetch_many

from spillguard._native import copy_out_read
from spillguard.errors import UserError
from spillguard.sources.base import BLOCK_BYTES, MalformedSink, Partition, since_bound
from spillguard.sources.pgtext import (
    SEARCH_HIT_NAMES,
    CopyColumn,
    CopyDecodeError,
    copy_column,
    select_list,
    text_lines_to_tables,
)
from spillguard.sources.records import count_newlines, json_lines_to_tables
from spillguard.sources.retry import TransientError, Unreachable
from spillguard.sources.store import (
    ReadWatchdog,
    ReconnectingDataset,
    StoreSource,
    WatchedRead,
    close_quietly,
    one_line,
    partition_count,
    shut_socket,
    unreachable,
)

# Row separators that JSON text can never contain raw, so COPY's CSV mode never quotes anything.
_COPY_OPTIONS = "FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02', ESCAPE E'\\x01'"

_DISCOVER = """
SELECT n.nspname, c.relname, c.relkind, c.reltuples::float8,
       pg_relation_size(c.oid) / current_setting('block_size')::int AS pages
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm', 'v', 'f') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%'
ORDER BY 1, 2
"""
# Each column's type, and the type a domain is based on (its base, type kind, whether built in, whether it has
# a cast to json), which decide how row_to_json writes it.
_COLUMNS = """
SELECT a.attname, t.typname, b.typname, b.typtype, b.oid < 16384 AND NOT EXISTS (
         SELECT 1 FROM pg_cast WHERE castsource = b.oid AND casttarget = 'json'::regtype)
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
WHERE a.attrelid = (quote_ident(%s) || '.' || quote_ident(%s))::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
# SQLSTATEs a retry can cure besides connection exceptions (class 08): the server shutting down, crashed or
# starting up, too many connections, a conflict with recovery on a standby, a deadlock.
_RETRY_STATES = {"57P01", "57P02", "57P03", "53300", "40001", "40P01"}


def transient(exc: psycopg.Error) -> bool:
    """Whether a retry on a new connection may succeed. Errors without a SQLSTATE are the connection's own
    (lost, refused, closed, timed out); errors with one are the server's answer to this query."""
    if isinstance(exc, psycopg.InterfaceError):
        return True  # the connection was already closed
    state = exc.sqlstate
    if state is None:
        return isinstance(exc, psycopg.OperationalError)
    return state.startswith("08") or state in _RETRY_STATES


_WAIT, _MORE, _END, _ERROR = range(4)  # copy_out_read's statuses


@functools.cache
def libpq_path() -> str | None:
    """The file of the one libpq this process has loaded (psycopg's), or None (none, several, no /proc)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            paths = {parts[5].strip() for line in fh if "libpq" in line and len(parts := line.split(None, 5)) == 6}
    except OSError:
        return None
    paths = {p for p in paths if os.path.basename(p).startswith("libpq") and ".so" in p}
    return paths.pop() if len(paths) == 1 else None


def copy_blocks(conn: psycopg.Connection[Any], copy: psycopg.Copy, watched: WatchedRead) -> Iterator[bytearray]:
    """The rows of a COPY TO STDOUT in blocks of about BLOCK_BYTES (whole rows; the last block may be shorter or
    empty): read by libpq straight into the block natively (no Python step per row, no copy to join), or from
    psycopg's one row per call where the native reader cannot find psycopg's libpq. The block being filled is
    `watched.rows` (the watchdog sees it grow); `watched.blocks` counts those handed on. Waiting for the server
    is a poll() of the socket: Ctrl-C interrupts it, and the read watchdog's shutdown ends it."""
    block = watched.rows = bytearray()
    path = libpq_path()
    if path is None:
        for chunk in copy:
            block += chunk
            if len(block) >= BLOCK_BYTES:
                watched.blocks += 1
                yield block
                block = watched.rows = bytearray()
        yield block
        return
    pgconn = conn.pgconn
    fd = pgconn.socket
    readable = select.poll()
    readable.register(fd, select.POLLIN)
    while True:
        status = copy_out_read(path, pgconn.pgconn_ptr, fd, block, BLOCK_BYTES)
        if len(block) >= BLOCK_BYTES:
            watched.blocks += 1
            yield block
            block = watched.rows = bytearray()
        if status == _WAIT:
            readable.poll()
        elif status == _END:
            # the COPY's own result: an error the server raised after its last row is raised here
            for result in conn.wait(fetch_many(pgconn)):
                if result.status != pq.ExecStatus.COMMAND_OK:
                    raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)
            yield block
            return
        elif status == _ERROR:
            raise psycopg.OperationalError(f"error reading COPY data: {pgconn.error_message.decode('utf-8', 'replace')}")


@dataclass(slots=True)
class PostgresTable(ReconnectingDataset):
    source: PostgresSource
    schema: str
    table: str
    kind: str
    rows: float
    pages: int
    subject_field: str | None

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"

    def estimate(self) -> tuple[int, str] | None:
        """About how many records the table holds (planner statistics; unknown before its first ANALYZE)."""
        return (int(self.rows), "records") if self.rows >= 0 else None

    def partitions(self) -> list[Partition]:
        base = {"schema": self.schema, "table": self.table}
        opts = self.source.options
        if opts.sample is not None:
            return [Partition(self.name, {**base, "sample": opts.sample})]
        # Views, partitioned parents and foreign tables have no ctid ranges: one partition.
        if self.kind not in ("r", "m") or self.pages < 2:
            return [Partition(self.name, base)]
        n = partition_count(self.rows, opts.partition_rows) if self.rows > 0 else max(1, self.pages // 2000)
        n = min(n, self.pages)
        step = math.ceil(self.pages / n)
        cuts = list(range(0, self.pages, step))
        specs = []
        for i, lo in enumerate(cuts):
            hi = cuts[i + 1] if i + 1 < len(cuts) else None  # the last range is open: rows added since are read too
            specs.append(Partition(self.name, {**base, "ctid": [lo, hi]}))
        return specs

    def _columns(self, cur: psycopg.Cursor[Any]) -> list[CopyColumn]:
        cur.execute(_COLUMNS, (self.schema, self.table))
        return [copy_column(name, typname, base, typtype, plain) for name, typname, base, typtype, plain in cur.fetchall()]

    def _select(self, columns: sql.Composable, spec: dict[str, Any]) -> sql.Composable:
        rel = sql.Identifier(self.schema, self.table)
        select = sql.SQL("SELECT {} FROM {}").format(columns, rel)
        if "sample" in spec:
            n = int(spec["sample"])
            if self.kind in ("r", "m") and self.rows > 20 * n:
                pct = min(100.0, 100.0 * 4 * n / self.rows)
                select = sql.SQL("SELECT {} FROM {} TABLESAMPLE BERNOULLI ({}) REPEATABLE ({})").format(
                    columns, rel, sql.Literal(pct), sql.Literal(self.source.options.seed % 2**31)
                )
            return sql.SQL("{} ORDER BY random() LIMIT {}").format(select, sql.Literal(n))
        conds: list[sql.Composable] = []
        if "ctid" in spec:
            lo, hi = spec["ctid"]
            conds.append(sql.SQL("ctid >= {}::tid").format(sql.Literal(f"({int(lo)},0)")))
            if hi is not None:
                conds.append(sql.SQL("ctid < {}::tid").format(sql.Literal(f"({int(hi)},0)")))
        if (bound := since_bound(spec)) is not None:
            # COPY takes no parameters: the bound is composed as a quoted literal.
            conds.append(sql.SQL("{} >= {}").format(sql.Identifier(bound[0]), sql.Literal(bound[1])))
        if conds:
            select = sql.SQL("{} WHERE {}").format(select, sql.SQL(" AND ").join(conds))
        return select

    def read(self, partition: Partition, malformed: MalformedSink) -> Iterator[pa.Table]:
        return self._read(partition, malformed, as_text=True)

    def read_row_json(self, partition: Partition, malformed: MalformedSink) -> Iterator[pa.Table]:
        """The partition read as row_to_json lines (what `read` does for the tables COPY text cannot type)."""
        return self._read(partition, malformed, as_text=False)

    def _read(self, partition: Partition, malformed: MalformedSink, as_text: bool) -> Iterator[pa.Table]:
        src = self.source
        conn = src.connection()
        watched = None
        try:
            with src.watchdog.watch(shut_socket(conn.fileno())) as watched, conn.cursor() as cur:
                if "sample" in partition.spec:
                    # random() repeats for the same seed within the session: samples are reproducible.
                    cur.execute("SELECT setseed(%s)", ((src.options.seed % 2**31) / 2**31,))
                columns = self._columns(cur)
                as_text = as_text and bool(columns) and not SEARCH_HIT_NAMES & {c.name for c in columns}
                select = self._select(select_list(columns, as_text), partition.spec)
                if as_text:
                    cur.execute("SET LOCAL datestyle = 'ISO'")  # dates in the form row_to_json writes (the field order stays)
                    query = sql.SQL("COPY ({}) TO STDOUT").format(select)
                else:
                    query = sql.SQL("COPY (SELECT row_to_json(r)::text FROM ({}) r) TO STDOUT WITH ({})").format(
                        select, sql.SQL(_COPY_OPTIONS)
                    )

                def tables(block: bytearray, line: int) -> Iterator[pa.Table]:
                    # one row per line either way: COPY text and JSON escape the newlines in values
                    if as_text:
                        return text_lines_to_tables(block, line, self.name, malformed, columns)
                    return json_lines_to_tables(block, line, self.name, malformed)

                src.limiter.wait()
                line = 1
                with cur.copy(query) as copy:
                    for block in copy_blocks(conn, copy, watched):
                        if block:
                            watched.paused = True  # scanning what arrived is not waiting for the server
                            yield from tables(block, line)
                            watched.paused = False
                            line += count_newlines(block)
                conn.rollback()  # waits for the server too: watched
        except CopyDecodeError as exc:
            src.reset()  # the COPY was abandoned mid-stream
            raise UserError(f"{self.name}: the server's COPY data cannot be read ({exc})") from None
        except psycopg.Error as exc:
            src.reset()
            if watched is not None and watched.stalled:
                raise TransientError(
                    f"{self.name}: the server sent nothing for {src.options.read_timeout:g} s (--read-timeout)"
                ) from None
            if transient(exc):
                raise TransientError(one_line(exc, src.password)) from None
            raise UserError(f"{self.name}: {one_line(exc, src.password)}") from None


class PostgresSource(StoreSource):
    """postgresql://user[:password]@host[:port]/database[?sslmode=...]"""

    def __init__(self, target: str, **options: Any) -> None:
        super().__init__(target, "postgresql", options)
        self.url = "postgresql://" + target.split("://", 1)[1]
        self._conn: psycopg.Connection[Any] | None = None
        self._catalog: list[tuple[str, str, str, float, int]] | None = None
        self.watchdog = ReadWatchdog(self.options.read_timeout)
        self.connection()  # fail fast: an unreachable server or a bad login is one clear line

    def connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        kwargs: dict[str, Any] = {
            "connect_timeout": max(2, math.ceil(self.options.connect_timeout)),
            "options": "-c default_transaction_read_only=on",
            "application_name": "spillguard",
            # A peer that vanished mid-COPY is noticed in about a minute (then retried), not waited on forever.
            "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
        }
        if self.password is not None:
            kwargs["password"] = self.password
        try:
            conn = psycopg.connect(self.url, **kwargs)
        except psycopg.Error as exc:
            # libpq gives connect failures no SQLSTATE: a refused port, a server starting up and a wrong
            # password look alike. All are Unreachable: bad input when the scan starts, retried (within the
            # budget) when the server was there a moment ago.
            raise unreachable(self.target, exc, self.password) from None
        conn.read_only = True
        self._conn = conn
        return conn

    def reset(self) -> None:
        close_quietly(self._conn, psycopg.Error)
        self._conn = None

    def _tables(self) -> list[tuple[str, str, str, float, int]]:
        if self._catalog is not None:
            return self._catalog
        conn = self.connection()
        watched = None
        try:
            with self.watchdog.watch(shut_socket(conn.fileno())) as watched, conn.cursor() as cur:
                cur.execute(_DISCOVER)
                rows = cur.fetchall()
                conn.rollback()
        except psycopg.Error as exc:
            self.reset()
            why = f"no answer for {self.options.read_timeout:g} s" if watched is not None and watched.stalled else one_line(exc, self.password)
            error = Unreachable if transient(exc) else UserError
            raise error(f"{self.target}: cannot list tables ({why})") from None
        self._catalog = rows
        return rows

    def _reader(self, schema: str, table: str, kind: str, rows: float, pages: int) -> PostgresTable:
        name = f"{schema}.{table}"
        return PostgresTable(self, schema, table, kind, rows, int(pages or 0), self.options.subject_for(name, table))

    def datasets(self) -> Iterator[PostgresTable]:
        for schema, table, kind, rows, pages in self._tables():
            if self.options.wanted_table(kind == "v", f"{schema}.{table}", table):
                yield self._reader(schema, table, kind, rows, pages)

    def dataset(self, name: str) -> PostgresTable:
        for schema, table, kind, rows, pages in self._tables():
            if f"{schema}.{table}" == name:
                return self._reader(schema, table, kind, rows, pages)
        raise UserError(f"{self.target}: table {name} disappeared during the scan")
