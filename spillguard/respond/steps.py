"""What one response step is: its idempotency key, what it acts on, and what came of it.

Its own module so that the journal (which records steps) and the action contract (which plans and runs them)
both read it without importing each other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass


def step_key(incident: str, action: str, items: Iterable[str | bytes]) -> str:
    """Deterministic idempotency key of a step: the same incident, action and batch give the same key."""
    h = hashlib.sha256()
    for part in (incident, action):
        h.update(part.encode())
        h.update(b"\x00")
    texts = sorted(i.decode("utf-8", "surrogateescape") if isinstance(i, bytes) else i for i in items)
    joined = "\n".join(texts)
    if joined.count("\n") == max(0, len(texts) - 1):  # no item holds a newline: the joined text is unambiguous
        h.update(joined.encode("utf-8", "surrogateescape"))
    else:
        for text in texts:
            item = text.encode("utf-8", "surrogateescape")
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
