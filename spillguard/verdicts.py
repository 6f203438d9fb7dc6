"""The verdict registry: what each exposure verdict means, in one place.

The audit decides verdicts, the watch alerts on them, the report cuts exposure windows from them and
words them for people; all read this table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    OPEN_READ = "open-read"
    OPEN_METADATA = "open-metadata"
    WEAK_CREDENTIALS = "weak-credentials"
    PROTECTED = "protected"
    UNREACHABLE = "unreachable"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class VerdictInfo:
    verdict: Verdict
    severity: int  # 0 is the worst: the order of the audit table, of `worst()` and of exposure windows
    exposed: bool  # readable by outsiders: an exposure window is open while a store has this verdict
    label: str  # one line for people
    plain: str | None  # how an Art. 34 notice says what outsiders could do ("… and {plain}")


VERDICTS: dict[str, VerdictInfo] = {
    v.verdict.value: v
    for v in (
        VerdictInfo(Verdict.OPEN_READ, 0, True, "anyone can read the data without credentials",
                    "anyone on the internet could read it without a password"),
        VerdictInfo(Verdict.WEAK_CREDENTIALS, 1, True, "a default or guessable password opens it",
                    "it was protected only by a default or easily guessed password"),
        VerdictInfo(Verdict.OPEN_METADATA, 2, True, "anyone can list what it holds without credentials",
                    "anyone on the internet could see what it contained, without a password"),
        VerdictInfo(Verdict.ERROR, 3, False, "the probe failed; exposure unknown", None),
        VerdictInfo(Verdict.UNREACHABLE, 4, False, "not reachable from here; exposure unknown", None),
        VerdictInfo(Verdict.PROTECTED, 5, False, "credentials are required", None),
    )
}  # fmt: skip

EXPOSED: frozenset[str] = frozenset(k for k, v in VERDICTS.items() if v.exposed)
SEVERITY: dict[str, int] = {k: v.severity for k, v in VERDICTS.items()}
_LEAST_SEVERE = len(VERDICTS)  # an unknown verdict string (a newer spillguard's) ranks below every known one


def is_exposed(verdict: str | None) -> bool:
    return verdict in EXPOSED


def severity(verdict: str) -> int:
    return SEVERITY.get(verdict, _LEAST_SEVERE)


def worse(a: str, b: str) -> bool:
    """Whether verdict `a` is strictly worse than `b`."""
    return severity(a) < severity(b)


def worst(verdicts: Iterable[str]) -> str:
    return min(verdicts, key=severity)


def plain_exposure(verdict: str | None) -> str | None:
    """How a notice to people says what outsiders could do, for an exposed verdict."""
    info = VERDICTS.get(verdict or "")
    return info.plain if info else None
