"""Memcached: the text protocol has no authentication, so an answered `stats` means anyone can read keys."""

from __future__ import annotations

from typing import Any

from spillguard.audit.probes.base import ProbeContext, ProbeOutcome, connect, recv_line
from spillguard.targets import Target
from spillguard.verdicts import Verdict

MAX_STAT_LINES = 200


def probe(target: Target, ctx: ProbeContext) -> ProbeOutcome:
    with connect(target.host, target.port, ctx.timeout, ctx.source_address) as sock:
        sock.sendall(b"stats\r\n")
        stats: dict[str, str] = {}
        first = recv_line(sock, limit=4096)
        line = first
        for _ in range(MAX_STAT_LINES):
            if line == b"END" or not line.startswith(b"STAT "):
                break
            _, key, value = line.decode(errors="replace").split(" ", 2)
            stats[key] = value
            line = recv_line(sock, limit=4096)
    evidence: dict[str, Any] = {"stats_reply": "answered" if stats else first[:40].decode(errors="replace")}
    if not stats:
        # SASL-only servers answer ERROR to text commands.
        evidence["reason"] = "stats refused: the server requires SASL authentication"
        return ProbeOutcome(Verdict.PROTECTED, evidence, tls=False)
    items = int(stats.get("curr_items", "0"))
    evidence.update(
        {"records_total": items, "dataset_count": 1, "datasets": [{"name": "cache", "records": items}]}
    )
    evidence["reason"] = "stats answered without authentication: any key can be read with get"
    return ProbeOutcome(Verdict.OPEN_READ, evidence, tls=False, server_version=stats.get("version"))
