"""MySQL and MariaDB: root with an empty password, anonymous accounts, default passwords."""

from __future__ import annotations

from typing import Any

import pymysql

from spillguard.audit.probes.base import (
    ProbeContext,
    ProbeOutcome,
    Unreachable,
    credential_label,
    datasets_evidence,
)
from spillguard.targets import Target
from spillguard.verdicts import Verdict

_SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")
_ACCESS_DENIED = {1044, 1045, 1130, 1698}  # denied, denied, host not allowed, plugin refused
_CANT_CONNECT = {2002, 2003, 2005, 2013}


def _weak_credentials(target: Target) -> list[tuple[str, str]]:
    # root and the URL's user with an empty password, the anonymous account, then root/root. Four at most.
    creds = [(target.user or "root", ""), ("", ""), ("root", "root")]
    if target.user and target.user != "root":
        creds.insert(1, ("root", ""))
    seen: list[tuple[str, str]] = []
    for c in creds:
        if c not in seen:
            seen.append(c)
    return seen


def _connect(target: Target, user: str, password: str, timeout: float) -> pymysql.connections.Connection:  # type: ignore[type-arg]
    return pymysql.connect(
        host=target.host,
        port=target.port,
        user=user,
        password=password,
        connect_timeout=timeout,
        read_timeout=timeout,
        write_timeout=timeout,
        autocommit=True,
    )


def probe(target: Target, ctx: ProbeContext) -> ProbeOutcome:
    attempts: list[dict[str, Any]] = []
    for user, password in _weak_credentials(target):
        try:
            conn = _connect(target, user, password, ctx.timeout)
        except pymysql.err.OperationalError as exc:
            code = exc.args[0] if exc.args else 0
            if code in _CANT_CONNECT:
                raise Unreachable(str(exc.args[1] if len(exc.args) > 1 else exc)) from exc
            result = "refused" if code in _ACCESS_DENIED else f"error {code}"
            attempts.append({"user": user or "<anonymous>", "password": "empty" if password == "" else "default",
                             "result": result})  # fmt: skip
            if code not in _ACCESS_DENIED:
                return ProbeOutcome(Verdict.ERROR, {"reason": str(exc), "attempts": attempts}, tls=target.tls)
            continue
        with conn:
            evidence = _inside(conn)
        attempts.append({"user": user or "<anonymous>", "password": "empty" if password == "" else "default",
                         "result": "accepted"})  # fmt: skip
        evidence["attempts"] = attempts
        evidence["credential"] = credential_label(user, password)
        evidence["reason"] = f"logged in as {credential_label(user, password)}"
        outcome = ProbeOutcome(
            Verdict.WEAK_CREDENTIALS,
            evidence,
            tls=bool(evidence.pop("_ssl")),
            server_version=evidence.pop("_version"),
        )
        break
    else:
        outcome = ProbeOutcome(
            Verdict.PROTECTED, {"reason": "no empty or default password was accepted", "attempts": attempts},
            tls=target.tls,
        )  # fmt: skip
    if target.admin is not None:
        posture = _posture(target.admin, ctx)
        outcome.server_version = outcome.server_version or posture.pop("_version", None)
        posture.pop("_version", None)
        outcome.evidence["posture"] = posture
    return outcome


def _inside(conn: pymysql.connections.Connection) -> dict[str, Any]:  # type: ignore[type-arg]
    ev: dict[str, Any] = {}
    with conn.cursor() as cur:
        cur.execute("SET SESSION TRANSACTION READ ONLY")
        cur.execute("SELECT VERSION()")
        ev["_version"] = cur.fetchone()[0]
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        row = cur.fetchone()
        ev["_ssl"] = bool(row and row[1])
        cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
        schemas = [r[0] for r in cur.fetchall() if r[0] not in _SYSTEM_SCHEMAS]
        ev["databases"] = len(schemas)
        # TABLE_ROWS is the engine's estimate: a count without reading rows.
        cur.execute(
            "SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME), TABLE_ROWS FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA NOT IN %s AND TABLE_TYPE = 'BASE TABLE'",
            (_SYSTEM_SCHEMAS,),
        )
        ev.update(datasets_evidence([(n, int(c) if c is not None else None) for n, c in cur.fetchall()]))
    return ev


def _posture(admin: Target, ctx: ProbeContext) -> dict[str, Any]:
    posture: dict[str, Any] = {}
    try:
        with (
            _connect(admin, admin.user or "root", admin.password or "", ctx.timeout) as conn,
            conn.cursor() as cur,
        ):
            cur.execute("SELECT VERSION(), @@bind_address, @@require_secure_transport, @@have_ssl")
            version, bind, secure, have_ssl = cur.fetchone()
            posture["_version"] = version
            posture["bind_address"] = bind
            posture["require_secure_transport"] = bool(int(secure)) if secure is not None else None
            posture["have_ssl"] = have_ssl
            try:
                cur.execute(
                    "SELECT User, Host, plugin, authentication_string, account_locked FROM mysql.user"
                )
            except pymysql.err.OperationalError:
                # Servers before account locking: every account counts as unlocked.
                cur.execute("SELECT User, Host, plugin, authentication_string, 'N' FROM mysql.user")
            empty, anywhere, anonymous = [], [], []
            for user, host, plugin, auth, locked in cur.fetchall():
                if str(locked).upper() in ("Y", "1"):
                    continue  # a locked account cannot log in, whatever its password
                account = f"'{user}'@'{host}'"
                # unix_socket / gssapi accounts have no password by design: not an empty password.
                if (auth or "") == "" and plugin in (
                    "",
                    "mysql_native_password",
                    "caching_sha2_password",
                    None,
                ):
                    empty.append(account)
                if host == "%":
                    anywhere.append(account)
                if user == "":
                    anonymous.append(account)
            posture["accounts_with_empty_password"] = sorted(empty)
            posture["accounts_from_any_host"] = sorted(anywhere)
            posture["anonymous_accounts"] = sorted(anonymous)
    except pymysql.err.MySQLError as exc:
        posture["error"] = f"{type(exc).__name__} {exc.args[0] if exc.args else ''}".strip()
    return posture
