"""The one-process copy's write-behind thread: calls run in order, the first error stops the rest and reaches
the copying thread, a copy that stops skips what waits."""

from __future__ import annotations

import threading
import time

import pytest

from spillguard.errors import UserError
from spillguard.safecopy.run import _WriteBehind


def test_calls_run_in_order_on_another_thread():
    seen: list[tuple[int, str]] = []
    behind = _WriteBehind()
    for i in range(50):
        behind.call(lambda i: seen.append((i, threading.current_thread().name)), i)
    behind.close(ok=True)
    assert [i for i, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"spillguard-write-behind"}


def test_the_first_error_stops_the_rest_and_is_raised_in_the_copying_thread():
    seen: list[int] = []
    gate = threading.Event()

    def fail() -> None:
        gate.wait(5)
        raise UserError("writing public.users failed")

    behind = _WriteBehind()
    behind.call(fail)
    behind.call(seen.append, 1)  # waits behind the failing call: never runs
    gate.set()
    with pytest.raises(UserError, match="writing public.users failed"):
        for i in range(2, 5000):  # the copying thread learns of the error at a later call
            behind.call(seen.append, i)
            time.sleep(0.001)
    with pytest.raises(UserError, match="writing public.users failed"):
        behind.close(ok=True)  # and at the end, had it made no further call
    assert seen == [] and not behind._thread.is_alive()


def test_a_stopped_copy_skips_what_waits():
    seen: list[int] = []
    behind = _WriteBehind()

    def in_progress() -> None:  # the call running when the copy stops (e.g. Ctrl-C while reading)
        while not behind._skip:
            time.sleep(0.001)
        seen.append(0)

    behind.call(in_progress)
    behind.call(seen.append, 1)
    behind.call(seen.append, 2)
    behind.close(ok=False)  # the call in progress ends, the rest is skipped
    assert seen == [0] and not behind._thread.is_alive()
