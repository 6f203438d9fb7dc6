"""What one response step is: its idempotency key, what it acts on, and what came of it.

Its own module so that the journal (which records steps) and the action contract (which plans and runs them)
both read it without importing each other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


def step_key(incident: str, action: str, items: Iterable[str | bytes]) -> str:
    """Deterministic idempotency key of a step: the same incident, action and batch give the same key."""
    h = hashlib.sha256()
    for part in (incident, action):
        h.update(part.encode())
        h.update(b"\x00")
    seq = list(items)
    try:
        ordered: list[Any] = sorted(seq)  # all text or all bytes: sorted and joined in C, no Python step per item
    except TypeError:
        ordered = sorted(i.decode("utf-8", "surrogateescape") if isinstance(i, bytes) else i for i in seq)
    joined = b"\n".join(ordered) if ordered and isinstance(ordered[0], bytes) else "\n".join(ordered).encode("utf-8", "surrogateescape")
    if joined.count(b"\n") == max(0, len(ordered) - 1):  # no item holds a newline: the joined text is unambiguous
        h.update(joined)
    else:
        for text in ordered:
            item = text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")
            h.update(len(item).to_bytes(4, "big"))
            h.update(item)
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class Step:
    key: str  # step_key(incident, action id, batch content)
    action: str  # the playbook action id
    description: str  # masked: never a raw token, password or e-mail address
    count: int  # how many tokens / sessions / rows / people this step acts on
    payload: tuple = ()  # digests or keyed subject hashes of the batch, never raw values


@dataclass(slots=True)
class StepOutcome:
    done: int  # items the store changed (or confirmed already gone)
    failed: int = 0
    detail: str = ""  # masked
