"""Elasticsearch and OpenSearch: banner, `_cat/indices`, a one-document `_search`, and the 401 realm.

The same checks run through an open Kibana's console proxy (see kibana.py): `Cluster` hides the route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from spillguard.audit.probes.base import ProbeContext, ProbeOutcome, credential_label, datasets_evidence
from spillguard.audit.probes.http import Budget, client, json_or_none, realm, request
from spillguard.targets import Target
from spillguard.verdicts import Verdict

# Shipped defaults an outsider tries: Elasticsearch < 6.8 (elastic/changeme), the OpenSearch demo config (admin/admin).
WEAK_CREDENTIALS: tuple[tuple[str, str], ...] = (("elastic", "changeme"), ("admin", "admin"))

# Search without _source: we learn that a document is readable and how many there are, not what it says.
SEARCH_BODY = {"size": 1, "_source": False, "track_total_hits": True}

Send = Callable[[str, str, dict[str, Any] | None], httpx.Response]


def security_layer(realm_name: str | None) -> str | None:
    if realm_name is None:
        return None
    low = realm_name.lower()
    if "opensearch" in low:
        return "OpenSearch Security plugin"
    if low == "security":
        return "Elasticsearch security (X-Pack)"
    return f"other ({realm_name}): a proxy or gateway in front of the cluster"


def direct_sender(http: httpx.Client, budget: Budget, auth: tuple[str, str] | None = None) -> Send:
    def send(method: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
        return request(http, budget, method, path, json=body, auth=auth)

    return send


def check_cluster(
    send: Send, evidence: dict[str, Any]
) -> tuple[Verdict | None, str | None, dict[str, Any] | None]:
    """Run the three outsider checks. Returns (verdict or None when the banner itself was refused, version, banner)."""
    banner_resp = send("GET", "/", None)
    evidence["banner_status"] = banner_resp.status_code
    banner = json_or_none(banner_resp) if banner_resp.status_code == 200 else None
    if banner_resp.status_code in (401, 403):
        evidence["auth_realm"] = realm(banner_resp)
        evidence["security_layer"] = security_layer(evidence["auth_realm"])
        return None, None, None
    if banner_resp.status_code != 200 or not isinstance(banner, dict) or "version" not in banner:
        evidence["reason"] = f"GET / answered {banner_resp.status_code} without an Elasticsearch banner"
        return Verdict.ERROR, None, None
    version = banner.get("version", {})
    evidence["distribution"] = (
        "opensearch" if version.get("distribution") == "opensearch" else "elasticsearch"
    )
    number = version.get("number")

    cat = send("GET", "/_cat/indices?format=json&bytes=b&h=index,docs.count,status", None)
    evidence["cat_indices_status"] = cat.status_code
    listed = cat.status_code == 200 and isinstance(json_or_none(cat), list)
    if listed:
        rows = json_or_none(cat)
        datasets = [(r.get("index", "?"), _int(r.get("docs.count"))) for r in rows if isinstance(r, dict)]
        evidence.update(datasets_evidence(datasets))
        evidence["system_indices"] = sum(1 for n, _ in datasets if n.startswith("."))
    elif cat.status_code in (401, 403):
        evidence["cat_indices_realm"] = realm(cat)

    search = send("POST", "/_search", SEARCH_BODY)
    evidence["search_status"] = search.status_code
    readable = False
    if search.status_code == 200:
        body = json_or_none(search) or {}
        hits = body.get("hits", {}) if isinstance(body, dict) else {}
        total = hits.get("total")
        evidence["search_total_hits"] = total.get("value") if isinstance(total, dict) else total
        # Only whether a document came back: its id can be an e-mail address, so it is not kept.
        evidence["search_returned_document"] = bool(hits.get("hits"))
        readable = True
    if readable:
        evidence["reason"] = "anonymous _search answered: anyone can read the documents"
        return Verdict.OPEN_READ, number, banner
    if listed:
        evidence["reason"] = "anonymous _cat/indices answered but _search was refused"
        return Verdict.OPEN_METADATA, number, banner
    evidence["reason"] = "the banner answers anonymously but listing and search are refused"
    return Verdict.PROTECTED, number, banner


def _int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def probe(target: Target, ctx: ProbeContext) -> ProbeOutcome:
    budget = Budget()
    evidence: dict[str, Any] = {}
    with client(target, ctx.timeout, ctx.source_address) as http:
        verdict, version, _ = check_cluster(direct_sender(http, budget), evidence)
        if verdict is None:
            verdict, version = _try_weak(http, budget, evidence)
        outcome = ProbeOutcome(verdict, evidence, tls=target.tls, server_version=version)
    if target.admin is not None:
        outcome.evidence["posture"] = posture(target.admin, ctx)
    return outcome


def _try_weak(http: httpx.Client, budget: Budget, evidence: dict[str, Any]) -> tuple[Verdict, str | None]:
    tried = []
    for user, password in WEAK_CREDENTIALS:
        resp = request(http, budget, "GET", "/", auth=(user, password))
        tried.append({"user": user, "password": "default", "status": resp.status_code})
        body = json_or_none(resp)
        if resp.status_code == 200 and isinstance(body, dict) and "version" in body:
            evidence["attempts"] = tried
            evidence["credential"] = credential_label(user, password)
            inner: dict[str, Any] = {}
            check_cluster(direct_sender(http, budget, (user, password)), inner)
            for k in ("dataset_count", "records_total", "datasets", "search_total_hits", "distribution"):
                if k in inner:
                    evidence[k] = inner[k]
            evidence["reason"] = f"the cluster accepts {credential_label(user, password)}"
            return Verdict.WEAK_CREDENTIALS, body.get("version", {}).get("number")
    evidence["attempts"] = tried
    evidence["reason"] = (
        f"anonymous requests are refused ({evidence.get('security_layer') or 'HTTP 401/403'})"
    )
    return Verdict.PROTECTED, None


def posture(admin: Target, ctx: ProbeContext) -> dict[str, Any]:
    """Security settings seen from the inside with admin credentials; missing APIs are reported, not guessed."""
    out: dict[str, Any] = {}
    budget = Budget()
    auth = (admin.user or "elastic", admin.password or "") if admin.user or admin.password else None
    with client(admin, ctx.timeout, ctx.source_address) as http:
        xpack = request(http, budget, "GET", "/_xpack", auth=auth)
        body = json_or_none(xpack)
        if xpack.status_code == 200 and isinstance(body, dict):
            sec = body.get("features", {}).get("security", {})
            out["security_enabled"] = sec.get("enabled")
        else:
            out["xpack_api"] = f"unavailable (HTTP {xpack.status_code})"
        osd = request(http, budget, "GET", "/_plugins/_security/authinfo", auth=auth)
        if osd.status_code == 200:
            out["opensearch_security"] = True
            out["opensearch_user"] = (json_or_none(osd) or {}).get("user_name")
        nodes = request(http, budget, "GET", "/_nodes/settings?flat_settings=true", auth=auth)
        nbody = json_or_none(nodes)
        if nodes.status_code == 200 and isinstance(nbody, dict):
            roles: set[str] = set()
            audit: set[str] = set()
            anon_osd: set[str] = set()
            for node in (nbody.get("nodes") or {}).values():
                settings = node.get("settings", {}) if isinstance(node, dict) else {}
                r = settings.get("xpack.security.authc.anonymous.roles")
                if r:
                    roles.update(r if isinstance(r, list) else str(r).split(","))
                if "xpack.security.enabled" in settings and "security_enabled" not in out:
                    out["security_enabled"] = str(settings["xpack.security.enabled"]).lower() == "true"
                if "plugins.security.disabled" in settings:
                    out["security_enabled"] = str(settings["plugins.security.disabled"]).lower() != "true"
                audit.add(str(settings.get("xpack.security.audit.enabled", "false")).lower())
                anon_osd.add(str(settings.get("http.anonymous_auth_enabled", "false")).lower())
            out["anonymous_roles"] = sorted(roles)
            out["audit_logging"] = "true" in audit
            if "true" in anon_osd:
                out["opensearch_anonymous_auth"] = True
        else:
            out["nodes_settings"] = f"unavailable (HTTP {nodes.status_code})"
    return out
