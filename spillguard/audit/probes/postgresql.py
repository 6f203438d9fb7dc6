"""PostgreSQL: does the server let an outsider in with no password (trust) or a default one?"""

from __future__ import annotations

from typing import Any

import psycopg

from spillguard.audit.probes.base import (
    ProbeContext,
    ProbeOutcome,
    Unreachable,
    credential_label,
    datasets_evidence,
)
from spillguard.targets import Target
from spillguard.verdicts import Verdict

# Tried in order; the first that works ends the probe. Two attempts keep us well below any lockout.
WEAK_PASSWORDS: tuple[str | None, ...] = (None, "postgres")

_UNREACHABLE_HINTS = (
    "connection refused",
    "could not translate host name",
    "no route to host",
    "timeout expired",
    "network is unreachable",
    "connection timed out",
)


def _connect(target: Target, user: str, password: str | None, timeout: float) -> psycopg.Connection[Any]:
    dbname = target.path.lstrip("/") or "postgres"
    return psycopg.connect(
        host=target.host,
        port=target.port,
        user=user,
        password=password if password is not None else "",
        dbname=dbname,
        connect_timeout=max(1, int(timeout)),
        sslmode=target.params.get("sslmode", "prefer"),
        # Read-only and bounded, whatever the account may do.
        options=f"-c default_transaction_read_only=on -c statement_timeout={int(timeout * 1000)}",
        autocommit=True,
        # An outsider has no ~/.pgpass: never let the probe borrow the local user's saved passwords.
        passfile="/nonexistent/spillguard/pgpass",
    )


def _classify(exc: psycopg.OperationalError) -> str:
    msg = str(exc).lower()
    if any(h in msg for h in _UNREACHABLE_HINTS):
        return "unreachable"
    if "password" in msg or "authentication" in msg or "no pg_hba.conf entry" in msg or "role" in msg:
        return "refused"
    return "error"


def probe(target: Target, ctx: ProbeContext) -> ProbeOutcome:
    user = target.user or "postgres"
    attempts: list[dict[str, Any]] = []
    conn: psycopg.Connection[Any] | None = None
    used: str | None = None
    for password in WEAK_PASSWORDS:
        try:
            conn = _connect(target, user, password, ctx.timeout)
            used = password
            break
        except psycopg.OperationalError as exc:
            kind = _classify(exc)
            if kind == "unreachable":
                raise Unreachable(" ".join(str(exc).split())) from exc
            attempts.append(
                {"user": user, "password": "none" if password is None else "default", "result": kind}
            )
            if kind == "error":
                return ProbeOutcome(
                    Verdict.ERROR, {"reason": str(exc).strip().splitlines()[-1], "attempts": attempts}
                )
    if conn is None:
        return _protected(target, ctx, attempts)
    with conn:
        evidence = _inside(conn)
        evidence["attempts"] = attempts + [{"user": user, "password": "none" if used is None else "default",
                                            "result": "accepted"}]  # fmt: skip
        evidence["credential"] = credential_label(user, "" if used is None else "default")
        evidence["reason"] = (
            "the server let us in without asking for a password (trust)"
            if used is None
            else f"logged in as {user} with a default password"
        )
        tls = bool(evidence.pop("_ssl", False))
        version = evidence.pop("_version", None)
    outcome = ProbeOutcome(Verdict.WEAK_CREDENTIALS, evidence, tls=tls, server_version=version)
    if target.admin is not None:
        posture = _posture(target.admin, ctx)
        posture.pop("_version", None)
        posture.pop("_ssl", None)
        outcome.evidence["posture"] = posture
    return outcome


def _protected(target: Target, ctx: ProbeContext, attempts: list[dict[str, Any]]) -> ProbeOutcome:
    evidence: dict[str, Any] = {"reason": "no empty or default password was accepted", "attempts": attempts}
    outcome = ProbeOutcome(Verdict.PROTECTED, evidence, tls=target.tls)
    if target.admin is not None:
        outcome.evidence["posture"] = _posture(target.admin, ctx)
        outcome.server_version = outcome.evidence["posture"].pop("_version", None)
        outcome.tls = bool(outcome.evidence["posture"].pop("_ssl", target.tls))
    return outcome


def _inside(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    ev: dict[str, Any] = {}
    ev["_version"] = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    ev["_ssl"] = bool(row and row[0])
    ev["superuser"] = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]  # type: ignore[index]
    dbs = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1")]
    ev["databases"] = len(dbs)
    # Planner statistics give row counts without reading a single row; reltuples is -1 before the first
    # ANALYZE, and then the activity counters are the best estimate.
    tables = conn.execute(
        "SELECT n.nspname || '.' || c.relname, "
        "CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint ELSE COALESCE(s.n_live_tup, 0) END "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
        "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg_toast%'"
    ).fetchall()
    ev.update(datasets_evidence([(name, int(n)) for name, n in tables]))
    return ev


def _posture(admin: Target, ctx: ProbeContext) -> dict[str, Any]:
    posture: dict[str, Any] = {}
    try:
        with _connect(admin, admin.user or "postgres", admin.password, ctx.timeout) as conn:
            posture["_version"] = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
            row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
            posture["_ssl"] = bool(row and row[0])
            for setting in ("listen_addresses", "ssl", "password_encryption"):
                posture[setting] = conn.execute(f"SHOW {setting}").fetchone()[0]  # type: ignore[index]
            rules = conn.execute(
                "SELECT line_number, type, database, user_name, address, netmask, auth_method, error "
                "FROM pg_hba_file_rules"
            ).fetchall()
            risky = []
            for line, typ, db, users, address, netmask, method, error in rules:
                open_net = address in ("0.0.0.0", "::", "all") or netmask in ("0.0.0.0", "::")
                if method == "trust" or (typ != "local" and open_net):
                    risky.append({"line": line, "type": typ, "database": db, "user": users, "address": address,
                                  "netmask": netmask, "method": method, "error": error})  # fmt: skip
            posture["hba_rules"] = len(rules)
            posture["hba_risky_rules"] = risky
            posture["hba_trust"] = any(r["method"] == "trust" for r in risky)
            posture["hba_open_to_any_address"] = any(
                r["address"] in ("0.0.0.0", "::", "all") or r["netmask"] in ("0.0.0.0", "::") for r in risky
            )
    except psycopg.Error as exc:
        posture["error"] = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return posture
