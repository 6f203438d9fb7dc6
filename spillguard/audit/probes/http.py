"""HTTP plumbing shared by the Elasticsearch, Kibana and CouchDB probes."""

from __future__ import annotations

import re
from typing import Any

import httpx

from spillguard.audit.probes.base import Unreachable
from spillguard.targets import Target

USER_AGENT = "spillguard-audit/1 (read-only exposure check)"
MAX_REQUESTS = 12  # per probe: a bound on what one audit of one target may send


def client(target: Target, timeout: float, source: str | None = None) -> httpx.Client:
    # verify=False: an outsider reaches a self-signed cluster just as well; we judge access, not certificates.
    return httpx.Client(
        base_url=target.http_base,
        timeout=timeout,
        transport=httpx.HTTPTransport(verify=False, local_address=source),
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        trust_env=False,
    )


class Budget:
    """Counts requests so that no probe can exceed MAX_REQUESTS, whatever the server answers."""

    def __init__(self, limit: int = MAX_REQUESTS) -> None:
        self.left = limit

    def take(self) -> None:
        if self.left <= 0:
            raise RuntimeError("request budget of this probe exhausted")
        self.left -= 1


def request(http: httpx.Client, budget: Budget, method: str, path: str, **kwargs: Any) -> httpx.Response:
    budget.take()
    try:
        return http.request(method, path, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise Unreachable(f"{http.base_url}: {exc}") from exc


def json_or_none(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


_REALM = re.compile(r'realm="([^"]*)"', re.IGNORECASE)


def realm(resp: httpx.Response) -> str | None:
    header = resp.headers.get("www-authenticate")
    if not header:
        return None
    m = _REALM.search(header)
    return m.group(1) if m else header.split(" ", 1)[0]
