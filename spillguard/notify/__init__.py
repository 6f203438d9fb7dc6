"""Where notifications go, shared by `watch` and `respond`: one module per kind of sink, one row each here.

A new kind of sink is its module (a class with `name` and `send(Message)`, and `from_config`) plus one row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from spillguard.config import SinkConfig
from spillguard.errors import UserError
from spillguard.notify import command, file, smtp, stdout, webhook
from spillguard.notify.command import CommandSink
from spillguard.notify.file import FileSink
from spillguard.notify.message import Fact, Message, Sink, SinkError, dumps
from spillguard.notify.smtp import SmtpSink
from spillguard.notify.stdout import StdoutSink
from spillguard.notify.webhook import WebhookSink


@dataclass(frozen=True, slots=True)
class SinkKind:
    name: str
    build: Callable[[SinkConfig], Sink]
    summary: str


SINKS: dict[str, SinkKind] = {
    k.name: k
    for k in (
        SinkKind("stdout", stdout.from_config, "JSON lines on standard output"),
        SinkKind("file", file.from_config, "JSON lines appended to an owner-only file"),
        SinkKind("webhook", webhook.from_config, "HTTP POST of the JSON (HMAC-signed) or a Slack card"),
        SinkKind("smtp", smtp.from_config, "e-mail over SMTP"),
        SinkKind("command", command.from_config, "a local command, JSON on stdin"),
    )
}


def build_sink(cfg: SinkConfig) -> Sink:
    kind = SINKS.get(cfg.type)
    if kind is None:
        raise UserError(f"sink type {cfg.type!r} is unknown; use one of {', '.join(SINKS)}")
    return kind.build(cfg)


__all__ = [
    "SINKS", "CommandSink", "Fact", "FileSink", "Message", "Sink", "SinkError", "SinkKind", "SmtpSink",
    "StdoutSink", "WebhookSink", "build_sink", "dumps",
]  # fmt: skip
