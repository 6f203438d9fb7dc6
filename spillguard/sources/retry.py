"""How a scan rides out a store that fails mid-read: one retry budget per target, and a circuit breaker.

A store read that fails transiently (a dropped connection, a server restarting, a read timeout) is retried
from the start of its partition, after a backoff of 0.5, 1, 2, 4, then 5 s between attempts. Two clocks
bound the retries, both set by the retry budget (`--retry-budget`, default 30 s):

* the **target's outage**: it starts at the first failure since the target last delivered data, and ends
  when any read of the target delivers data again. When it has lasted the whole budget, the target's
  breaker opens: the failing partition gives up, and every partition of the target not yet scanned is
  given up without being tried. A dead server so ends the scan within about the budget, whatever the
  number of partitions.
* the **partition's own retries**: a partition that keeps failing while the rest of the target works
  (a read the server cannot finish) gives up after the budget too, so no partition loops forever.

A restart shorter than the budget is survived with exact counts: a retried partition starts over on a new
connection into a fresh state, so nothing is counted twice. Every partition that gives up, or is not tried
because its target's breaker is open, is reported as not scanned (`NotScanned`): never a silent under-count.

Breakers live in the process that reads (the scan itself, or each worker process); a worker whose breaker
opens says so in its result (`target_down`), and the scan then stops handing out that target's partitions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from spillguard.errors import UserError
from spillguard.sources.base import MalformedSink, Partition

T = TypeVar("T")

DEFAULT_BUDGET_S = 30.0
FIRST_DELAY_S = 0.5
MAX_DELAY_S = 5.0


class TransientError(Exception):
    """The store failed in a way a retry can cure (a dropped connection, a server restarting, a read
    timeout): the partition is retried from its start (its last checkpoint)."""


class Unreachable(UserError):
    """The store could not be connected to (refused, timed out, starting up or shutting down). When a scan
    starts, this is bad input (exit code 2, one line); in the middle of a scan, the server went away after
    answering, so it is transient and retried within the budget."""


class GaveUp(Exception):
    """A partition was not scanned: retries spent, or its target's breaker open. `target_down` is true when
    the target itself is given up (the scan should stop handing out its partitions)."""

    def __init__(self, message: str, *, target_down: bool) -> None:
        super().__init__(message)
        self.target_down = target_down


@dataclass(slots=True)
class Breaker:
    """One target's outage clock and circuit breaker, in one process."""

    shown: str  # the target as it may be shown (password masked)
    budget: float = DEFAULT_BUDGET_S
    clock: Callable[[], float] = time.monotonic
    down_since: float | None = None  # first failure since the target last delivered data
    open_reason: str | None = None  # set once the breaker opens; it stays open for the rest of the scan

    def alive(self) -> None:
        """The target delivered data: any outage is over."""
        if self.open_reason is None:
            self.down_since = None

    def check(self) -> None:
        """Raise GaveUp when the breaker is open: the partition is not tried."""
        if self.open_reason is not None:
            raise GaveUp(not_tried(self.open_reason), target_down=True)

    def failed(self, exc: BaseException, partition_since: float) -> float:
        """A read failed transiently at the partition's attempt that started failing at `partition_since`:
        the seconds to wait before the next attempt, or GaveUp when the budget is spent."""
        now = self.clock()
        if self.down_since is None:
            self.down_since = now
        if self.open_reason is not None:
            raise GaveUp(self.open_reason, target_down=True)
        if now - self.down_since >= self.budget:
            self.open_reason = f"{self.shown} failed for {now - self.down_since:.0f} s, the retry budget ({self.budget:g} s; --retry-budget): {exc}"
            raise GaveUp(self.open_reason, target_down=True)
        if now - partition_since >= self.budget:
            raise GaveUp(f"retried for {now - partition_since:.0f} s, the retry budget ({self.budget:g} s; --retry-budget): {exc}", target_down=False)
        return max(0.0, min(self.budget - (now - partition_since), self.budget - (now - self.down_since)))

    def backoff(self, attempt: int, allowed: float) -> float:
        """Delay before retry number `attempt` (0-based): 0.5, 1, 2, 4, then 5 s, within what the budget allows."""
        return min(FIRST_DELAY_S * 2**min(attempt, 8), MAX_DELAY_S, allowed)


_NOT_TRIED = "not tried: "


def not_tried(reason: str) -> str:
    """Why a partition was not tried: its target was given up, for `reason`."""
    return reason if reason.startswith(_NOT_TRIED) else _NOT_TRIED + reason


# Breakers of this process, by target (the target string may carry a password: memory only, never shown).
_breakers: dict[str, Breaker] = {}


def breaker_for(target: str, shown: str, budget: float | None) -> Breaker:
    """This process's breaker of the target (a worker makes one when it first reads the target)."""
    b = _breakers.get(target)
    if b is None:
        b = _breakers[target] = Breaker(shown, DEFAULT_BUDGET_S if budget is None else float(budget))
    return b


def fresh_breaker(target: str, shown: str, budget: float | None) -> Breaker:
    """A closed breaker for a new scan of the target (an earlier scan in this process may have opened one)."""
    _breakers.pop(target, None)
    return breaker_for(target, shown, budget)


def with_retries(
    attempt: Callable[[], T],
    breaker: Breaker,
    reset: Callable[[], None],
    on_retry: Callable[[BaseException], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `attempt` until it succeeds. A TransientError or Unreachable is retried after a backoff, with
    `reset` first (drop the broken connection) and `on_retry` told why, while the budget allows; then
    GaveUp. Other errors pass."""
    since: float | None = None
    n = 0
    while True:
        breaker.check()
        try:
            result = attempt()
        except (TransientError, Unreachable) as exc:
            if since is None:
                since = breaker.clock()
            allowed = breaker.failed(exc, since)
            reset()
            if on_retry is not None:
                on_retry(exc)
            sleep(breaker.backoff(n, allowed))
            n += 1
            continue
        breaker.alive()
        return result


def retried_warning(partitions: int, attempts: int, first_reason: str) -> str:
    """The scan's note that a target failed and was retried: nothing lost, but worth knowing."""
    return (
        f"{partitions} partition{'' if partitions == 1 else 's'} read again from the start after the store failed "
        f"({attempts} retr{'y' if attempts == 1 else 'ies'}; first: {first_reason}); counts are exact"
    )


class Delivering:
    """A dataset reader whose every batch tells the target's breaker that the target is alive: an outage
    ends when data flows again, not only when a whole partition is done."""

    __slots__ = ("_breaker", "_reader")

    def __init__(self, reader: Any, breaker: Breaker) -> None:
        self._reader = reader
        self._breaker = breaker

    def read(self, partition: Partition, malformed: MalformedSink) -> Iterator[Any]:
        for table in self._reader.read(partition, malformed):
            self._breaker.alive()
            yield table

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)


def partition_estimate(reader: Any, partition: Partition, partitions: int) -> tuple[float | None, str]:
    """About how many records (or keys) one of a dataset's `partitions` partitions holds, from the store's
    statistics (`reader.estimate()`), and in what unit; None when the store cannot tell."""
    estimate = getattr(reader, "estimate", None)
    found = estimate() if estimate is not None else None
    if found is None:
        return None, "records"
    count, unit = found
    if "sample" in partition.spec:
        return float(min(count, int(partition.spec["sample"]))), unit
    return count / max(1, partitions), unit


@dataclass(slots=True)
class _Missing:
    partitions: int = 0
    records: float = 0.0
    known: bool = True  # every missing partition's size was known
    unit: str = "records"
    reason: str = ""


@dataclass(slots=True)
class NotScanned:
    """The partitions of one target that were not scanned, per dataset, so that the scan reports each
    dataset once: how many of its partitions and about how many records are missing, and why."""

    datasets: dict[str, _Missing] = field(default_factory=dict)

    def add(self, dataset: str, reason: str, estimate: tuple[float | None, str] = (None, "records")) -> None:
        m = self.datasets.setdefault(dataset, _Missing())
        m.partitions += 1
        records, m.unit = estimate
        if records is None:
            m.known = False
        else:
            m.records += records
        if not m.reason or (m.reason.startswith(_NOT_TRIED) and not reason.startswith(_NOT_TRIED)):
            m.reason = reason  # the first real failure says more than "not tried"

    def __bool__(self) -> bool:
        return bool(self.datasets)

    def messages(self, partitions: dict[str, int]) -> list[tuple[str, str]]:
        """(dataset, message) per dataset with missing partitions; `partitions` holds each dataset's total."""
        out = []
        for dataset, m in self.datasets.items():
            total = partitions.get(dataset, m.partitions)
            what = f"{m.partitions} of {total} partitions not scanned" if total > 1 else "not scanned"
            if m.known and m.records >= 0.5:
                what += f" (about {round(m.records):,} {m.unit})"
            out.append((dataset, f"{what}: {m.reason}"))
        return out
