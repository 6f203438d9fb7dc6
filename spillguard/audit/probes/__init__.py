"""One probe per protocol: `probe(target, ctx) -> ProbeOutcome`, acting as an anonymous outsider, read-only."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from spillguard.audit.probes.base import ProbeContext, ProbeOutcome, Unreachable

Probe = Callable[..., ProbeOutcome]

# protocol -> module; imported lazily so a missing optional client only breaks its own protocol.
PROBES: dict[str, str] = {
    "elasticsearch": "spillguard.audit.probes.elasticsearch",
    "kibana": "spillguard.audit.probes.kibana",
    "mongodb": "spillguard.audit.probes.mongodb",
    "redis": "spillguard.audit.probes.redis",
    "postgresql": "spillguard.audit.probes.postgresql",
    "mysql": "spillguard.audit.probes.mysql",
    "mqtt": "spillguard.audit.probes.mqtt",
    "memcached": "spillguard.audit.probes.memcached",
    "couchdb": "spillguard.audit.probes.couchdb",
}


def probe_for(protocol: str) -> Probe:
    return importlib.import_module(PROBES[protocol]).probe  # type: ignore[no-any-return]


__all__ = ["PROBES", "Probe", "ProbeContext", "ProbeOutcome", "Unreachable", "probe_for"]
