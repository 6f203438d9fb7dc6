"""MySQL and MariaDB: every base table (optionally views) of the server or of the URL's database.

Rows leave the server as JSON objects (`JSON_OBJECT`), so JSON columns arrive nested (MySQL's JSON
type and MariaDB's `json_valid`-checked LONGTEXT alike), binary text stays readable, and the client
hands whole blocks to Arrow's JSON reader. Tables with a single integer primary key are read in key
ranges, each range a partition; transactions are READ ONLY. Connecting and logging in are bounded by the
connect timeout, every later read and write by the read timeout.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pymysql
import pymysql.cursors

from spillguard.errors import UserError
from spillguard.sources.base import MalformedSink, Partition, since_bound
from spillguard.sources.retry import TransientError, Unreachable
from spillguard.sources.store import (
    ReconnectingDataset,
    StoreSource,
    close_quietly,
    json_row_tables,
    one_line,
    partition_count,
    split_range,
    unreachable,
)

FETCH_ROWS = 5000
SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")
_INT_TYPES = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint"}
_BINARY_TYPES = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
# Errors a retry on a new connection can cure: cannot connect (2002, 2003), server gone away (2006), lost
# connection (2013, 2055), shutdown in progress (1053), connection killed (1927), too many connections (1040),
# network read/write errors (1158-1161), deadlock or lock wait timeout (1213, 1205), disconnected for
# inactivity (4031).
_TRANSIENT = {2002, 2003, 2006, 2013, 2055, 1053, 1927, 1040, 1158, 1159, 1160, 1161, 1213, 1205, 4031}


def transient(exc: pymysql.MySQLError) -> bool:
    if isinstance(exc, pymysql.err.InterfaceError):
        return True  # the connection was already closed
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    return code in _TRANSIENT


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _lit(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


@contextmanager
def _unbuffered(conn: pymysql.connections.Connection) -> Iterator[pymysql.cursors.SSCursor]:
    """A streaming cursor that, when a read on it fails, is let go instead of drained. pymysql closes an
    unbuffered cursor (and collects its result) by reading the rest of the result, from a socket a lost
    connection has already closed: an AttributeError that would hide the transient error and fail the partition
    instead of retrying it. The connection is reset by the caller."""
    cur = conn.cursor(pymysql.cursors.SSCursor)
    try:
        yield cur
    except pymysql.MySQLError:
        result = cur._result  # noqa: SLF001 - pymysql has no public way to abandon an unbuffered result
        if result is not None:
            result.unbuffered_active = False
        cur.connection = None
        raise
    finally:
        cur.close()  # drains what is left of a healthy result; nothing once let go


def _fetched(cur: pymysql.cursors.SSCursor) -> Iterator[list[bytes]]:
    """The JSON_OBJECT text of each fetch of rows (a NULL row has no columns to scan)."""
    while True:
        rows = cur.fetchmany(FETCH_ROWS)
        if not rows:
            return
        yield [doc.encode() if isinstance(doc, str) else bytes(doc) for (doc,) in rows if doc is not None]


@dataclass(slots=True)
class MySQLTable(ReconnectingDataset):
    source: MySQLSource
    schema: str
    table: str
    kind: str
    rows: int
    subject_field: str | None

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"

    def estimate(self) -> tuple[int, str] | None:
        """About how many records the table holds (information_schema's estimate)."""
        return (self.rows, "records")

    def _pk(self) -> str | None:
        cols = self.source.query(
            "SELECT k.COLUMN_NAME, c.DATA_TYPE FROM information_schema.KEY_COLUMN_USAGE k "
            "JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = k.TABLE_SCHEMA AND c.TABLE_NAME = k.TABLE_NAME AND c.COLUMN_NAME = k.COLUMN_NAME "
            "WHERE k.TABLE_SCHEMA = %s AND k.TABLE_NAME = %s AND k.CONSTRAINT_NAME = 'PRIMARY'",
            (self.schema, self.table),
        )
        if len(cols) == 1 and str(cols[0][1]).lower() in _INT_TYPES:
            return str(cols[0][0])
        return None

    def partitions(self) -> list[Partition]:
        base = {"schema": self.schema, "table": self.table}
        opts = self.source.options
        if opts.sample is not None:
            return [Partition(self.name, {**base, "sample": opts.sample})]
        pk = self._pk() if self.kind != "VIEW" else None
        n = partition_count(self.rows, opts.partition_rows)
        if pk is None or n == 1:
            return [Partition(self.name, base)]
        lo, hi = self.source.query(f"SELECT MIN({_q(pk)}), MAX({_q(pk)}) FROM {_q(self.schema)}.{_q(self.table)}")[0]
        if lo is None:
            return [Partition(self.name, base)]
        ranges = split_range(int(lo), int(hi), n)
        parts = []
        for i, (a, b) in enumerate(ranges):
            # The first and last ranges are open, so rows added outside [min, max] since are read too.
            parts.append(Partition(self.name, {**base, "pk": pk, "range": [a if i else None, b if i + 1 < len(ranges) else None]}))
        return parts

    def _select(self, spec: dict[str, Any]) -> str:
        cols = self.source.query(
            "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
            (self.schema, self.table),
        )
        json_cols = self.source.json_columns(self.schema, self.table)
        args = []
        for col, dtype in cols:
            col = str(col)
            dtype = str(dtype).lower()
            if dtype == "json" or col in json_cols:
                expr = f"JSON_EXTRACT({_q(col)}, '$')"  # embedded as JSON, not as an escaped string
            elif dtype in _BINARY_TYPES:
                expr = f"CONVERT({_q(col)} USING utf8mb4)"  # text kept in bytes stays readable
            elif dtype == "bit":
                expr = f"CAST({_q(col)} AS UNSIGNED)"
            elif dtype in ("geometry", "point", "linestring", "polygon"):
                expr = f"ST_AsText({_q(col)})"
            else:
                expr = _q(col)
            args.append(f"{_lit(col)}, {expr}")
        sql = f"SELECT JSON_OBJECT({', '.join(args)}) FROM {_q(self.schema)}.{_q(self.table)}"
        if "sample" in spec:
            seed = self.source.options.seed % 2**31
            return f"{sql} ORDER BY RAND({seed}) LIMIT {int(spec['sample'])}"
        conds = []
        if "range" in spec:
            a, b = spec["range"]
            if a is not None:
                conds.append(f"{_q(spec['pk'])} >= {int(a)}")
            if b is not None:
                conds.append(f"{_q(spec['pk'])} < {int(b)}")
        if (bound := since_bound(spec)) is not None:
            fld, value = bound
            conds.append(f"{_q(fld)} >= {_lit(value) if isinstance(value, str) else repr(value)}")
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        return sql

    def read(self, partition: Partition, malformed: MalformedSink) -> Iterator[pa.Table]:
        src = self.source
        try:
            sql = self._select(partition.spec)
            conn = src.connection()
            with _unbuffered(conn) as cur:
                cur.execute("START TRANSACTION READ ONLY")
                src.limiter.wait()
                cur.execute(sql)
                yield from json_row_tables(_fetched(cur), self.name, malformed)
                cur.execute("ROLLBACK")
        except pymysql.MySQLError as exc:
            src.reset()
            if transient(exc):
                raise TransientError(one_line(exc, src.password)) from None
            raise UserError(f"{self.name}: {one_line(exc, src.password)}") from None


class MySQLSource(StoreSource):
    """mysql://user[:password]@host[:port][/database]; mariadb:// alike. Without a database: all of them."""

    def __init__(self, target: str, **options: Any) -> None:
        super().__init__(target, "mysql", options)
        parts = urlsplit(target)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 3306
        self.user = unquote(parts.username) if parts.username else "root"
        self.database = unquote(parts.path.strip("/")) or None
        self._conn: pymysql.connections.Connection | None = None
        self._json: dict[tuple[str, str], set[str]] | None = None
        self._catalog: list[tuple[str, str, str, int]] | None = None
        self.connection()

    def connection(self) -> pymysql.connections.Connection:
        if self._conn is not None and self._conn.open:
            return self._conn
        opts = self.options
        # The handshake, login and session setup are reads too: bounded by the connect timeout until done.
        conn = pymysql.connect(
            host=self.host, port=self.port, user=self.user, password=self.password or "", database=self.database,
            connect_timeout=opts.connect_timeout, read_timeout=opts.connect_timeout, write_timeout=opts.connect_timeout,
            charset="utf8mb4", autocommit=True, defer_connect=True,
        )
        try:
            conn.connect()
            with conn.cursor() as cur:
                cur.execute("SET SESSION TRANSACTION READ ONLY")
                cur.execute("SET SESSION group_concat_max_len = 1048576")
        except pymysql.MySQLError as exc:
            close_quietly(conn, pymysql.MySQLError)
            if transient(exc):
                raise unreachable(self.target, exc, self.password) from None
            raise UserError(f"{self.target}: cannot connect ({one_line(exc, self.password)})") from None
        # From now on a server that goes silent is a transient fault after read_timeout, not a hung scan.
        # pymysql has no setter; it applies these before its next read and write.
        conn._read_timeout = conn._write_timeout = opts.read_timeout  # noqa: SLF001
        self._conn = conn
        return conn

    def reset(self) -> None:
        close_quietly(self._conn, pymysql.MySQLError)
        self._conn = None

    def query(self, sql: str, args: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
        self.limiter.wait()
        try:
            with self.connection().cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())
        except pymysql.MySQLError as exc:
            # Unreachable: retried within a partition's read, one clear line (exit 2) when listing tables.
            self.reset()
            if transient(exc):
                raise Unreachable(f"{self.target}: {one_line(exc, self.password)}") from None
            raise UserError(f"{self.target}: {one_line(exc, self.password)}") from None

    def json_columns(self, schema: str, table: str) -> set[str]:
        """MariaDB's JSON is LONGTEXT with a json_valid() check: find those columns by their check."""
        if self._json is None:
            found: dict[tuple[str, str], set[str]] = {}
            try:
                rows = self.query(
                    "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
                    "WHERE CHECK_CLAUSE LIKE %s",
                    ("%json_valid%",),
                )
            except Unreachable:
                raise
            except UserError:
                rows = []  # MySQL before 8.0.16 has no CHECK_CONSTRAINTS; its JSON type is found by DATA_TYPE
            for sch, tab, clause in rows:
                for col in re.findall(r"json_valid\(`((?:[^`]|``)+)`\)", str(clause), flags=re.I):
                    found.setdefault((str(sch), str(tab)), set()).add(col.replace("``", "`"))
            self._json = found
        return self._json.get((schema, table), set())

    def _tables(self) -> list[tuple[str, str, str, int]]:
        if self._catalog is not None:
            return self._catalog
        sql = (
            "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, COALESCE(TABLE_ROWS, 0) FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA NOT IN ({', '.join(_lit(s) for s in SYSTEM_SCHEMAS)})"
        )
        args: tuple[Any, ...] = ()
        if self.database:
            sql += " AND TABLE_SCHEMA = %s"
            args = (self.database,)
        try:
            rows = self.query(sql + " ORDER BY 1, 2", args)
        except UserError as exc:
            raise type(exc)(f"{self.target}: cannot list tables ({str(exc).removeprefix(self.target + ': ')})") from None
        self._catalog = [(str(s), str(t), str(k), int(n)) for s, t, k, n in rows]
        return self._catalog

    def datasets(self) -> Iterator[MySQLTable]:
        for schema, table, kind, rows in self._tables():
            if kind not in ("BASE TABLE", "SYSTEM VERSIONED", "VIEW"):
                continue
            if self.options.wanted_table(kind == "VIEW", f"{schema}.{table}", table):
                yield MySQLTable(self, schema, table, kind, rows, self.options.subject_for(f"{schema}.{table}", table))

    def dataset(self, name: str) -> MySQLTable:
        for schema, table, kind, rows in self._tables():
            if f"{schema}.{table}" == name:
                return MySQLTable(self, schema, table, kind, rows, None)
        raise UserError(f"{self.target}: table {name} disappeared during the scan")
