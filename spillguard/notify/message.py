"""What every sink delivers: a message that knows nothing of the pillar that sent it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class SinkError(Exception):
    """Delivery failed; the message names the sink and why, never a credential."""


@dataclass(frozen=True, slots=True)
class Fact:
    """A short labelled line of a chat card (Slack attachment field)."""

    title: str
    value: str
    short: bool = False


@dataclass(frozen=True, slots=True)
class Message:
    """One notification.

    `fields` is the structured document: JSON sinks (stdout, file, JSON webhook, a command's stdin) deliver
    exactly it. `subject` and `body` are for people (e-mail subject and text, chat headline). `key` is the
    idempotency key: the same notification sent twice carries the same key, so a receiver or a ledger can
    drop the second one. Nothing here may hold a credential or unmasked personal data.
    """

    subject: str
    body: str
    fields: Mapping[str, Any]
    key: str
    at: str | None = None  # when the notified event happened (ISO 8601)
    urgent: bool = False  # something is exposed or must be acted on: chat cards show it in red
    facts: tuple[Fact, ...] = ()
    variables: Mapping[str, str] = field(default_factory=dict)  # SPILLGUARD_<NAME> for command sinks


class Sink(Protocol):
    name: str

    def send(self, message: Message) -> None:
        """Deliver or raise `SinkError`."""
        ...


def dumps(doc: Mapping[str, Any]) -> str:
    """One line of canonical JSON (sorted keys), the form every JSON sink writes."""
    return json.dumps(doc, sort_keys=True, default=str, separators=(",", ":"))
