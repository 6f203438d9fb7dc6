"""The exposure model the audit, the watch and the report speak: per-target results, the audit (verdicts and
what they mean: spillguard.verdicts).

`AuditResult.to_json()` is exactly what `spillguard audit --format json` prints (schema version 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from spillguard.verdicts import EXPOSED, SEVERITY, Verdict

SCHEMA_VERSION = 1


# Exit codes of `audit` and `watch --once`.
EXIT_OK = 0  # every target protected
EXIT_EXPOSED = 1  # at least one target readable by outsiders (open-read, open-metadata, weak-credentials)
EXIT_ERROR = 2  # nothing exposed, but a target could not be judged (unreachable, error); also usage errors


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def exit_code_for(verdicts: list[str]) -> int:
    if any(v in EXPOSED for v in verdicts):
        return EXIT_EXPOSED
    if any(v in (Verdict.UNREACHABLE, Verdict.ERROR) for v in verdicts):
        return EXIT_ERROR
    return EXIT_OK


@dataclass(slots=True)
class ExposureVerdict:
    """What an anonymous outsider can do with one target, with the evidence (never record contents)."""

    target: str  # masked URL: never holds a password
    protocol: str
    verdict: Verdict
    evidence: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    tls: bool = False
    server_version: str | None = None
    total_ms: float = 0.0
    stakes: dict[str, Any] | None = None
    host: str = ""
    port: int = 0
    # The watch history's key for this target (store key + keyed credentials tag); not in the JSON.
    history_key: str = ""

    @property
    def exposed(self) -> bool:
        return self.verdict in EXPOSED

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "name": self.name,
            "protocol": self.protocol,
            "verdict": str(self.verdict),
            "evidence": self.evidence,
            "tls": self.tls,
            "server_version": self.server_version,
            "timings": {"total_ms": round(self.total_ms, 3)},
            "stakes": self.stakes,
        }


@dataclass(slots=True)
class AuditResult:
    """What `spillguard.audit()` returns."""

    checked_at: str
    targets: list[ExposureVerdict]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": SCHEMA_VERSION,
            "checked_at": self.checked_at,
            "targets": [t.to_json() for t in self.targets],
        }

    @property
    def exit_code(self) -> int:
        return exit_code_for([t.verdict for t in self.targets])

    def worst(self) -> Verdict | None:
        if not self.targets:
            return None
        return min((t.verdict for t in self.targets), key=lambda v: SEVERITY[v])
