"""Kibana and OpenSearch Dashboards: an open dashboard is an open cluster through its console proxy."""

from __future__ import annotations

from typing import Any

import httpx

from spillguard.audit.probes import elasticsearch
from spillguard.audit.probes.base import ProbeContext, ProbeOutcome
from spillguard.audit.probes.http import Budget, client, json_or_none, realm, request
from spillguard.targets import Target
from spillguard.verdicts import Verdict

# Kibana wants kbn-xsrf on POSTs, OpenSearch Dashboards osd-xsrf; sending both costs nothing.
XSRF = {"kbn-xsrf": "spillguard", "osd-xsrf": "spillguard"}


def proxy_sender(http: httpx.Client, budget: Budget) -> elasticsearch.Send:
    def send(method: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
        # The console proxy forwards any method; we only ever forward GET and a search POST.
        return request(
            http, budget, "POST", "/api/console/proxy", params={"path": path, "method": method}, json=body,
            headers=XSRF,
        )  # fmt: skip

    return send


def probe(target: Target, ctx: ProbeContext) -> ProbeOutcome:
    budget = Budget()
    evidence: dict[str, Any] = {"via": "console proxy"}
    with client(target, ctx.timeout, ctx.source_address) as http:
        status = request(http, budget, "GET", "/api/status", headers=XSRF)
        evidence["status_api"] = status.status_code
        body = json_or_none(status)
        version = None
        if isinstance(body, dict) and isinstance(body.get("version"), dict):
            version = body["version"].get("number")
        if status.status_code in (401, 403):
            evidence["auth_realm"] = realm(status)
            evidence["reason"] = "the dashboard asks for a login before its APIs"
            return ProbeOutcome(Verdict.PROTECTED, evidence, tls=target.tls, server_version=version)
        inner: dict[str, Any] = {}
        verdict, es_version, _ = elasticsearch.check_cluster(proxy_sender(http, budget), inner)
        evidence.update(inner)
        if verdict is None:
            evidence["reason"] = "the dashboard is open but its cluster refused the proxied requests"
            verdict = Verdict.PROTECTED
        elif verdict is Verdict.ERROR and status.status_code != 200:
            evidence["reason"] = (
                f"no Kibana status API and no working console proxy (HTTP {status.status_code})"
            )
        else:
            evidence["reason"] = "through the console proxy: " + str(inner.get("reason", ""))
        if es_version:
            evidence["elasticsearch_version"] = es_version
        return ProbeOutcome(verdict, evidence, tls=target.tls, server_version=version or es_version)
