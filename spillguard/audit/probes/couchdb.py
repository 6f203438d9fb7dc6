"""CouchDB: `/_all_dbs` and a database's `_all_docs` without credentials mean "admin party"."""

from __future__ import annotations

from typing import Any

from spillguard.audit.probes.base import ProbeContext, ProbeOutcome, credential_label, datasets_evidence
from spillguard.audit.probes.http import Budget, client, json_or_none, realm, request
from spillguard.targets import Target
from spillguard.verdicts import Verdict

WEAK_CREDENTIALS: tuple[tuple[str, str], ...] = (("admin", "admin"), ("admin", "password"))
MAX_DB_INFO = 5  # databases whose doc_count we ask for


def probe(target: Target, ctx: ProbeContext) -> ProbeOutcome:
    budget = Budget()
    evidence: dict[str, Any] = {}
    with client(target, ctx.timeout, ctx.source_address) as http:
        root = request(http, budget, "GET", "/")
        body = json_or_none(root)
        version = body.get("version") if isinstance(body, dict) else None
        evidence["banner_status"] = root.status_code
        auth = None
        dbs_resp = request(http, budget, "GET", "/_all_dbs")
        evidence["all_dbs_status"] = dbs_resp.status_code
        if dbs_resp.status_code in (401, 403):
            evidence["auth_realm"] = realm(dbs_resp)
            tried = []
            for user, password in WEAK_CREDENTIALS:
                r = request(http, budget, "GET", "/_all_dbs", auth=(user, password))
                tried.append({"user": user, "password": "default", "status": r.status_code})
                if r.status_code == 200:
                    auth, dbs_resp = (user, password), r
                    evidence["credential"] = credential_label(user, password)
                    break
            evidence["attempts"] = tried
            if auth is None:
                evidence["reason"] = "/_all_dbs refused without credentials"
                return ProbeOutcome(Verdict.PROTECTED, evidence, tls=target.tls, server_version=version)
        dbs = json_or_none(dbs_resp)
        if dbs_resp.status_code != 200 or not isinstance(dbs, list):
            evidence["reason"] = f"/_all_dbs answered {dbs_resp.status_code}"
            return ProbeOutcome(Verdict.ERROR, evidence, tls=target.tls, server_version=version)
        datasets: list[tuple[str, int | None]] = []
        readable = False
        for name in dbs:
            count = None
            if len(datasets) < MAX_DB_INFO and budget.left > 1:
                r = request(http, budget, "GET", f"/{name}", auth=auth)
                info = json_or_none(r)
                if r.status_code == 200 and isinstance(info, dict):
                    count = info.get("doc_count")
                    readable = readable or not str(name).startswith("_")
            datasets.append((str(name), count))
        evidence.update(datasets_evidence(datasets))
        if auth is not None:
            evidence["reason"] = f"CouchDB accepts {evidence['credential']}"
            verdict = Verdict.WEAK_CREDENTIALS
        elif readable:
            evidence["reason"] = "admin party: databases are listed and readable without credentials"
            verdict = Verdict.OPEN_READ
        else:
            evidence["reason"] = "/_all_dbs answers without credentials, the databases do not"
            verdict = Verdict.OPEN_METADATA
        return ProbeOutcome(verdict, evidence, tls=target.tls, server_version=version)
