"""Write connections to the stores a playbook acts on, in the URL forms `scan` takes.

Scan sources are read-only by construction; a response needs to delete and update, so it opens its
own connections here. Every error is one line naming the masked URL; a password never appears.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from spillguard.errors import UserError
from spillguard.sources.store import one_line
from spillguard.targets import mask_url

SQL_SCHEMES = {"postgresql": "postgresql", "postgres": "postgresql", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite"}
REDIS_SCHEMES = ("redis", "rediss")
# Bind parameters per statement SQLite accepts (32766 since 3.32; older builds 999).
SQLITE_MAX_PARAMS = 30_000


def scheme_of(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


class SqlStore:
    """One SQL database: PostgreSQL (psycopg), MySQL/MariaDB (PyMySQL) or SQLite, autocommit."""

    def __init__(self, url: str, password: str | None = None, connect_timeout: float = 10.0) -> None:
        self.url = url
        self.shown = mask_url(url)
        self.password = password
        self.dialect = SQL_SCHEMES.get(scheme_of(url), "")
        if not self.dialect:
            raise UserError(f"{self.shown}: not a SQL store URL; use postgresql://, mysql://, mariadb:// or sqlite:///path")
        self.errors: tuple[type[BaseException], ...]
        # A playbook name -> the database's own spelling: PostgreSQL folds unquoted names to lower case, so
        # Spring Session's SPRING_SESSION is spring_session there (require() fills this).
        self.names: dict[str, str] = {}
        try:
            self.conn = self._connect(connect_timeout)
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - any driver error is one clear line
            raise UserError(f"{self.shown}: cannot connect ({one_line(exc, password)}); check the store URL and credential") from None

    def _connect(self, timeout: float) -> Any:
        parts = urlsplit(self.url)
        password = self.password if self.password is not None else (unquote(parts.password) if parts.password else None)
        if self.dialect == "postgresql":
            import psycopg

            self.errors = (psycopg.OperationalError, psycopg.InterfaceError)
            self.integrity = psycopg.Error
            kwargs: dict[str, Any] = {"connect_timeout": max(2, int(timeout)), "application_name": "spillguard-respond", "autocommit": True}
            if password is not None:
                kwargs["password"] = password
            return psycopg.connect("postgresql://" + self.url.split("://", 1)[1], **kwargs)
        if self.dialect == "mysql":
            import pymysql

            self.errors = (pymysql.OperationalError, pymysql.InterfaceError)
            self.integrity = pymysql.MySQLError
            return pymysql.connect(
                host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
                user=unquote(parts.username) if parts.username else "root", password=password or "",
                database=unquote(parts.path.strip("/")) or None, connect_timeout=max(1, int(timeout)),
                charset="utf8mb4", autocommit=True, read_timeout=600, write_timeout=600,
            )
        self.errors = (sqlite3.OperationalError,)
        self.integrity = sqlite3.Error
        path = Path(unquote((parts.netloc or "") + parts.path))
        if not path.is_file():
            raise UserError(f"{self.shown}: no such SQLite file; use sqlite:///absolute/path.db")
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 30000")
        return conn

    # -- SQL text ------------------------------------------------------------------------------
    def q(self, name: str) -> str:
        """A quoted identifier as the database spells it (see `require`); `schema.table` quoted part by part."""
        name = self.names.get(name, name)
        quote = "`" if self.dialect == "mysql" else '"'
        return ".".join(quote + p.replace(quote, quote * 2) + quote for p in name.split("."))

    @property
    def p(self) -> str:
        return "?" if self.dialect == "sqlite" else "%s"

    def member(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """`column IN (values)` as SQL and parameters: one array parameter in PostgreSQL."""
        if self.dialect == "postgresql":
            return f"{self.q(column)} = ANY({self.p})", [list(values)]
        return f"{self.q(column)} IN ({', '.join([self.p] * len(values))})", list(values)

    def now(self) -> str:
        return {"postgresql": "now()", "mysql": "CURRENT_TIMESTAMP(6)", "sqlite": "strftime('%Y-%m-%d %H:%M:%f', 'now')"}[self.dialect]

    def max_batch(self, wanted: int) -> int:
        return min(wanted, SQLITE_MAX_PARAMS) if self.dialect == "sqlite" else min(wanted, 60_000) if self.dialect == "mysql" else wanted

    # -- running -------------------------------------------------------------------------------
    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.cursor()
        try:
            cur.execute(sql, tuple(args) if self.dialect != "postgresql" else list(args))
            return list(cur.fetchall())
        finally:
            cur.close()

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """One statement in its own transaction (autocommit); the rows it changed."""
        cur = self.conn.cursor()
        try:
            cur.execute(sql, tuple(args) if self.dialect != "postgresql" else list(args))
            return max(0, cur.rowcount)
        finally:
            cur.close()

    def columns(self, table: str) -> set[str] | None:
        """The table's column names, or None when the table does not exist."""
        if self.dialect == "sqlite":
            rows = self.query(f"PRAGMA table_info({self.q(table)})")
            return {r[1] for r in rows} or None
        if "." in table:
            schema, name = table.split(".", 1)
            where, args = "table_schema = %s AND table_name = %s", [schema, name]
        else:
            schema_fn = "current_schema()" if self.dialect == "postgresql" else "DATABASE()"
            where, args = f"table_schema = {schema_fn} AND table_name = %s", [table]
        rows = self.query(f"SELECT column_name FROM information_schema.columns WHERE {where}", args)
        return {r[0] for r in rows} or None

    def _table_named(self, table: str) -> str | None:
        """The one table whose name matches `table` but for case, as the database spells it."""
        schema, _, name = table.rpartition(".")
        where = "table_schema = %s" if schema else ("table_schema = current_schema()" if self.dialect == "postgresql"
                                                     else "table_schema = DATABASE()")
        rows = self.query(f"SELECT table_name FROM information_schema.tables WHERE {where} AND lower(table_name) = lower(%s)",
                          [schema, name] if schema else [name])
        if len(rows) != 1:
            return None
        return f"{schema}.{rows[0][0]}" if schema else str(rows[0][0])

    def require(self, table: str, columns: Sequence[str | None], what: str) -> None:
        """Bad input before anything changes: a missing table or column is one clear line. A name that differs
        only in case from the database's (one match) is used as the database spells it."""
        have = self.columns(table)
        if have is None and self.dialect != "sqlite":
            actual = self._table_named(table)
            if actual is not None:
                self.names[table] = actual
                have = self.columns(actual)
        if have is None:
            raise UserError(f"{what}: table {table!r} does not exist in {self.shown}; fix `table` in the playbook")
        by_lower: dict[str, list[str]] = {}
        for c in have:
            by_lower.setdefault(c.lower(), []).append(c)
        for col in columns:
            if not col or col in have:
                continue
            same = by_lower.get(col.lower(), [])
            if len(same) != 1:
                raise UserError(f"{what}: column {col!r} does not exist in {table} ({self.shown}); fix the playbook "
                                f"(columns: {', '.join(sorted(have))})")
            self.names[col] = same[0]

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken connection changes nothing
            self.conn.close()


def redis_client(url: str, password: str | None = None, connect_timeout: float = 10.0) -> Any:
    import redis

    kwargs: dict[str, Any] = {"socket_connect_timeout": connect_timeout, "socket_timeout": 300}
    if password is not None:
        kwargs["password"] = password
    client = redis.Redis.from_url(url, **kwargs)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise UserError(f"{mask_url(url)}: cannot connect ({one_line(exc, password)}); check the store URL and credential") from None
    return client
