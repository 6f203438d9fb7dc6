"""The retry budget and circuit breaker of spillguard/sources/retry.py, on a simulated clock, and how each
store's errors are classified (retry or give up)."""

from __future__ import annotations

import pytest

from spillguard.errors import UserError
from spillguard.sources.base import Partition
from spillguard.sources.retry import (
    Breaker,
    GaveUp,
    NotScanned,
    TransientError,
    Unreachable,
    partition_estimate,
    with_retries,
)


class Clock:
    """Simulated time: sleeping advances it, and so does each failing attempt (a connect timeout)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def failing(clock: Clock, cost: float = 0.0, error: type[Exception] = TransientError, times: int = 10**9):
    """An attempt that fails `times` times (each costing `cost` seconds), then returns "done"."""
    calls = [0]

    def attempt() -> str:
        calls[0] += 1
        clock.now += cost
        if calls[0] <= times:
            raise error("connection refused")
        return "done"

    return attempt, calls


def test_dead_target_gives_up_after_the_budget_with_backoff_0_5_1_2_4_then_5():
    clock = Clock()
    breaker = Breaker("redis://cache:6379", budget=30, clock=clock)
    attempt, calls = failing(clock)
    with pytest.raises(GaveUp) as err:
        with_retries(attempt, breaker, reset=lambda: None, sleep=clock.sleep)
    assert clock.slept[:6] == [0.5, 1, 2, 4, 5, 5]
    assert 30 <= clock.now - 1000 < 30 + 5
    assert err.value.target_down and breaker.open_reason is not None
    assert "retry budget (30 s" in str(err.value) and "connection refused" in str(err.value)
    # every later partition of the target fails at once, without an attempt
    attempt2, calls2 = failing(clock)
    before = clock.now
    with pytest.raises(GaveUp, match="^not tried: "):
        with_retries(attempt2, breaker, reset=lambda: None, sleep=clock.sleep)
    assert calls2[0] == 0 and clock.now == before


def test_a_slow_failure_counts_against_the_budget_too():
    clock = Clock()
    breaker = Breaker("pg", budget=10, clock=clock)
    attempt, calls = failing(clock, cost=3.0, error=Unreachable)  # each attempt waits out a 3 s connect timeout
    with pytest.raises(GaveUp):
        with_retries(attempt, breaker, reset=lambda: None, sleep=clock.sleep)
    # noticed after the first attempt's 3 s, then the budget, plus at most the attempt that spent it
    assert 3 + 10 <= clock.now - 1000 <= 3 + 10 + 3


def test_a_restart_within_the_budget_is_retried_until_it_succeeds():
    clock = Clock()
    breaker = Breaker("pg", budget=30, clock=clock)
    resets: list[int] = []
    retried: list[str] = []
    attempt, calls = failing(clock, cost=0.1, times=3)
    assert with_retries(attempt, breaker, reset=lambda: resets.append(1), on_retry=lambda e: retried.append(str(e)), sleep=clock.sleep) == "done"
    assert calls[0] == 4 and len(resets) == 3 and retried == ["connection refused"] * 3
    assert breaker.down_since is None and breaker.open_reason is None  # data flowed again: the outage is over


def test_outage_clock_is_shared_by_the_partitions_of_a_target():
    clock = Clock()
    breaker = Breaker("es", budget=20, clock=clock)
    first, _ = failing(clock, times=2)
    with_retries(first, breaker, reset=lambda: None, sleep=clock.sleep)  # recovers: clock reset
    assert breaker.down_since is None
    # The server dies: partition A retries for the whole budget; B, started 5 s into the outage, gets only the rest.
    breaker.failed(TransientError("x"), clock.now)
    clock.now += 5
    b, _ = failing(clock)
    with pytest.raises(GaveUp) as err:
        with_retries(b, breaker, reset=lambda: None, sleep=clock.sleep)
    assert err.value.target_down
    assert clock.now - (breaker.down_since or 0) < 20 + 0.01


def test_a_partition_that_keeps_failing_while_its_target_works_gives_up_alone():
    clock = Clock()
    breaker = Breaker("mysql", budget=8, clock=clock)
    attempt, _ = failing(clock, cost=1.0)

    def attempt_while_others_succeed() -> str:
        breaker.alive()  # other partitions keep delivering data
        return attempt()

    with pytest.raises(GaveUp) as err:
        with_retries(attempt_while_others_succeed, breaker, reset=lambda: None, sleep=clock.sleep)
    assert not err.value.target_down and breaker.open_reason is None
    assert err.value.args[0].startswith("retried for ")


def test_other_errors_are_not_retried():
    clock = Clock()
    breaker = Breaker("pg", budget=30, clock=clock)
    attempt, calls = failing(clock, error=UserError)
    with pytest.raises(UserError):
        with_retries(attempt, breaker, reset=lambda: None, sleep=clock.sleep)
    assert calls[0] == 1 and clock.slept == []


def test_zero_budget_gives_up_at_the_first_failure():
    clock = Clock()
    breaker = Breaker("pg", budget=0, clock=clock)
    attempt, calls = failing(clock)
    with pytest.raises(GaveUp):
        with_retries(attempt, breaker, reset=lambda: None, sleep=clock.sleep)
    assert calls[0] == 1


class _Reader:
    def __init__(self, estimate: tuple[int, str] | None) -> None:
        self._estimate = estimate

    def estimate(self) -> tuple[int, str] | None:
        return self._estimate


def test_not_scanned_is_one_message_per_dataset_with_partitions_and_records():
    missing = NotScanned()
    users = _Reader((1_000_000, "records"))
    part = Partition("public.users", {"ctid": [0, 10]})
    missing.add("public.users", "not tried: pg failed for 30 s", partition_estimate(users, part, 40))
    missing.add("public.users", "pg failed for 30 s: connection refused", partition_estimate(users, part, 40))
    missing.add("public.users", "not tried: pg failed for 30 s", partition_estimate(users, part, 40))
    missing.add("sessions:*", "not tried: x", partition_estimate(_Reader((600_000, "keys")), Partition("sessions:*", {"shard": 1}), 6))
    missing.add("public.logs", "permission denied", partition_estimate(object(), Partition("public.logs", {}), 1))
    messages = dict(missing.messages({"public.users": 40, "sessions:*": 6, "public.logs": 1}))
    assert messages["public.users"] == "3 of 40 partitions not scanned (about 75,000 records): pg failed for 30 s: connection refused"
    assert messages["sessions:*"] == "1 of 6 partitions not scanned (about 100,000 keys): not tried: x"
    assert messages["public.logs"] == "not scanned: permission denied"  # no estimate: no made-up number
    sample = partition_estimate(users, Partition("public.users", {"sample": 500}), 1)
    assert sample == (500.0, "records")


def test_postgres_errors_are_classified():
    import psycopg
    from psycopg import errors

    from spillguard.sources.postgres import transient

    retry = [errors.lookup("57P01")("shutdown"), errors.lookup("57P03")("starting up"), errors.lookup("08006")("x"),
             errors.lookup("40001")("recovery conflict"), psycopg.OperationalError("server closed the connection"),
             psycopg.InterfaceError("the connection is closed")]  # fmt: skip
    final = [errors.lookup("57014")("statement timeout"), errors.lookup("42501")("permission denied"),
             errors.lookup("42P01")("no such table"), errors.lookup("53100")("disk full")]  # fmt: skip
    assert [transient(e) for e in retry] == [True] * len(retry)
    assert [transient(e) for e in final] == [False] * len(final)


def test_mysql_errors_are_classified():
    import pymysql

    from spillguard.sources.mysql import transient

    assert transient(pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"))
    assert transient(pymysql.err.OperationalError(2003, "Can't connect"))
    assert transient(pymysql.err.OperationalError(1053, "Server shutdown in progress"))
    assert transient(pymysql.err.InterfaceError(0, ""))
    assert not transient(pymysql.err.OperationalError(1045, "Access denied"))
    assert not transient(pymysql.err.OperationalError(1142, "SELECT command denied"))
    assert not transient(pymysql.err.ProgrammingError(1146, "Table doesn't exist"))
