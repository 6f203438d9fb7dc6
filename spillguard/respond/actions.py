"""The contract every response action speaks: plan steps, execute one step idempotently, verify.

An action is one configured adapter of the playbook (a token table, a session store, an OAuth
server, an HTTP admin API, the notification ledger ...). It plans a list of Steps (read-only,
exact counts), executes one Step at a time (re-running a finished step is harmless), and verifies
afterwards what is still active. The runner journals an intent before and an outcome after every
step, so a rerun after kill -9 skips finished steps and re-executes only the in-flight ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar, runtime_checkable

from spillguard.respond.steps import Step, StepOutcome

if TYPE_CHECKING:
    from spillguard.leaked import LeakedSet
    from spillguard.respond.journal import Journal
    from spillguard.respond.subjects import Subjects

Scope = Literal["exact", "all"]
SCOPES: tuple[Scope, ...] = ("exact", "all")
T = TypeVar("T")


@dataclass(slots=True)
class Verification:
    action: str
    checked: int  # items looked up
    still_active: int  # of those, how many a store still accepts
    details: list[str] = field(default_factory=list)  # masked: what is still active and where


@dataclass(slots=True)
class Limits:
    """How hard the runner may push a store or an API."""

    batch: int = 10_000  # items per step (one statement / one pipeline)
    per_second: float | None = None  # items a second, for HTTP and mail; None = as fast as the store allows
    retries: int = 4
    backoff_s: float = 0.5


@dataclass(slots=True)
class Context:
    incident: str
    scope: Scope
    leaked: LeakedSet
    subjects: Subjects
    journal: Journal | None  # None while only planning without a journal file
    key: bytes  # the install's fingerprint key (keyed hashes of subjects and recipients)
    limits: Limits = field(default_factory=Limits)
    dry_run: bool = True
    actor: str = "spillguard"
    cutoff: str = ""  # UTC time of the incident's first execute: "not valid before" cut-offs use it on every rerun


@runtime_checkable
class Action(Protocol):
    id: str
    kind: str

    def plan(self, ctx: Context) -> list[Step]: ...

    def execute(self, ctx: Context, step: Step) -> StepOutcome: ...

    def verify(self, ctx: Context) -> Verification: ...


def batches(items: list[T], size: int) -> Iterable[list[T]]:
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + size]


def with_retries(fn: Callable[[], T], limits: Limits, transient: tuple[type[BaseException], ...]) -> T:
    """fn() retried with exponential backoff on the given transient errors; the last one is raised."""
    delay = limits.backoff_s
    for attempt in range(limits.retries + 1):
        try:
            return fn()
        except transient:
            if attempt == limits.retries:
                raise
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


class Pacer:
    """Spaces calls so at most `per_second` items go out a second (None: no limit)."""

    def __init__(self, per_second: float | None) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self.next_at = time.monotonic()

    def wait(self, items: int = 1) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        if self.next_at > now:
            time.sleep(self.next_at - now)
        self.next_at = max(now, self.next_at) + self.interval * items
