"""MongoDB: `listDatabases` without credentials, then a one-document `find` that returns only `_id` presence."""

from __future__ import annotations

import contextlib
from typing import Any

import pymongo
from pymongo.errors import (
    ConnectionFailure,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from spillguard.audit.probes.base import ProbeContext, ProbeOutcome, Unreachable, datasets_evidence
from spillguard.targets import Target
from spillguard.verdicts import Verdict

UNAUTHORIZED = {13, 18}  # Unauthorized, AuthenticationFailed
COMMAND_NOT_FOUND = 59
MAX_COLLECTIONS = 20


def _client(target: Target, timeout: float, with_credentials: bool) -> pymongo.MongoClient[dict[str, Any]]:
    ms = int(timeout * 1000)
    kwargs: dict[str, Any] = {
        "host": target.host,
        "port": target.port,
        "serverSelectionTimeoutMS": ms,
        "connectTimeoutMS": ms,
        "socketTimeoutMS": ms,
        "directConnection": True,
        "retryReads": False,
        "appname": "spillguard-audit",
    }
    if target.tls:
        kwargs.update(tls=True, tlsAllowInvalidCertificates=True)
    if with_credentials and target.user:
        kwargs.update(
            username=target.user,
            password=target.password or "",
            authSource=target.params.get("authSource", "admin"),
        )
    return pymongo.MongoClient(**kwargs)


def _hints(target: Target, ctx: ProbeContext) -> list[tuple[str, str | None]]:
    """(database, collection) pairs to try when the server cannot list its own databases."""
    out: list[tuple[str, str | None]] = []
    for hint in ctx.dataset_hints:
        db, _, coll = hint.partition(".")
        if db and (db, coll or None) not in out:
            out.append((db, coll or None))
    db = target.path.strip("/")
    if db and (db, None) not in out:
        out.append((db, None))
    # Present on every server: a find here proves reads are allowed even when nothing else is named.
    out.append(("admin", "system.version"))
    return out


def probe(target: Target, ctx: ProbeContext) -> ProbeOutcome:
    evidence: dict[str, Any] = {}
    client = _client(target, ctx.timeout, with_credentials=False)
    try:
        try:
            hello = client.admin.command("hello")
        except ServerSelectionTimeoutError as exc:
            raise Unreachable(
                f"{target.host_port}: no MongoDB server answered ({str(exc).split(',')[0]})"
            ) from exc
        evidence["set_name"] = hello.get("setName")
        version = None
        with contextlib.suppress(OperationFailure):
            version = client.admin.command("buildInfo").get("version")
        verdict = _list_and_read(client, target, ctx, evidence)
        outcome = ProbeOutcome(verdict, evidence, tls=target.tls, server_version=version)
    except ConnectionFailure as exc:
        raise Unreachable(str(exc)) from exc
    finally:
        client.close()
    return outcome


def _list_and_read(
    client: pymongo.MongoClient[dict[str, Any]], target: Target, ctx: ProbeContext, evidence: dict[str, Any]
) -> Verdict:
    try:
        listing = client.admin.command("listDatabases", nameOnly=False)
    except OperationFailure as exc:
        evidence["list_databases"] = exc.code
        if exc.code in UNAUTHORIZED:
            evidence["reason"] = "listDatabases refused without credentials (authorization enabled)"
            return Verdict.PROTECTED
        if exc.code != COMMAND_NOT_FOUND:
            evidence["reason"] = f"listDatabases failed with code {exc.code}"
            return Verdict.ERROR
        evidence["list_databases"] = "not supported by this server"
        return _read_hinted(client, target, ctx, evidence)
    evidence["list_databases"] = "answered"
    databases = [d["name"] for d in listing.get("databases", [])]
    datasets: list[tuple[str, int | None]] = []
    readable = False
    for db in databases:
        if db in ("admin", "local", "config"):
            continue
        try:
            names = client[db].list_collection_names()
        except OperationFailure:
            continue
        for coll in names[:MAX_COLLECTIONS]:
            try:
                count = client[db][coll].estimated_document_count()
                readable = readable or client[db][coll].find_one({}, {"_id": 1}) is not None or count == 0
            except OperationFailure:
                count = None
            datasets.append((f"{db}.{coll}", count))
    evidence["databases"] = len(databases)
    evidence.update(datasets_evidence(datasets))
    if readable or not datasets:
        evidence["reason"] = "listDatabases and find answered without credentials"
        return Verdict.OPEN_READ
    evidence["reason"] = "listDatabases answered without credentials, reads were refused"
    return Verdict.OPEN_METADATA


def _read_hinted(
    client: pymongo.MongoClient[dict[str, Any]], target: Target, ctx: ProbeContext, evidence: dict[str, Any]
) -> Verdict:
    tried = []
    for db, coll in _hints(target, ctx):
        if coll is None:
            continue
        try:
            # Projection on _id only, and the document itself is dropped: we keep that a read succeeded.
            doc = client[db][coll].find_one({}, {"_id": 1})
        except OperationFailure as exc:
            tried.append({"dataset": f"{db}.{coll}", "result": exc.code})
            if exc.code in UNAUTHORIZED:
                evidence["find_attempts"] = tried
                evidence["reason"] = "find refused without credentials"
                return Verdict.PROTECTED
            continue
        tried.append({"dataset": f"{db}.{coll}", "result": "answered", "document_returned": doc is not None})
        evidence["find_attempts"] = tried
        evidence["reason"] = "find answered without credentials: anyone can read the collections"
        return Verdict.OPEN_READ
    evidence["find_attempts"] = tried
    evidence["reason"] = "the server neither lists its databases nor answers find"
    return Verdict.ERROR
