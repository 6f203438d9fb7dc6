"""An HTTP webhook: the message's JSON document (optionally HMAC-signed), or a Slack-compatible card."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import urlsplit

from spillguard.config import SinkConfig
from spillguard.notify.message import Message, SinkError, dumps

SIGNATURE_HEADER = "X-Spillguard-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def slack_payload(message: Message) -> dict[str, Any]:
    fields = [{"title": f.title, "value": f.value, "short": f.short} for f in message.facts]
    return {
        "text": f"spillguard: {message.subject}",
        "attachments": [{"color": "danger" if message.urgent else "good", "fields": fields, "ts": message.at}],
    }


class WebhookSink:
    name = "webhook"

    def __init__(self, url: str, fmt: str = "json", secret: str | None = None, timeout: float = 10.0) -> None:
        self.url, self.fmt, self.secret, self.timeout = url, fmt, secret, timeout

    def send(self, message: Message) -> None:
        import httpx  # loaded by the first webhook sent, not by every command that may alert

        payload = slack_payload(message) if self.fmt == "slack" else message.fields
        body = dumps(payload).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "spillguard-watch/1"}
        if message.key:
            headers[IDEMPOTENCY_HEADER] = message.key
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        try:
            resp = httpx.post(self.url, content=body, headers=headers, timeout=self.timeout, trust_env=False)
        except httpx.HTTPError as exc:
            raise SinkError(f"webhook {_safe_url(self.url)}: {type(exc).__name__}") from exc
        if resp.status_code >= 300:
            raise SinkError(f"webhook {_safe_url(self.url)}: HTTP {resp.status_code}")


def _safe_url(url: str) -> str:
    # Slack webhook URLs carry their secret in the path: name only scheme, host and port.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def from_config(cfg: SinkConfig) -> WebhookSink:
    return WebhookSink(cfg.url or "", cfg.format, cfg.secret(), cfg.timeout)
