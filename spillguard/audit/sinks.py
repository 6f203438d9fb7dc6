"""Where watch alerts go: JSON lines on stdout or in a file, a webhook (Slack or signed JSON), SMTP, a command.

An alert is a plain dict (see `watch.build_alert`); it holds the masked target URL, verdicts, stakes and
evidence, never a credential. Each sink's `send(alert)` raises `SinkError` when delivery failed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shlex
import smtplib
import subprocess
import sys
from email.message import EmailMessage
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from spillguard.config import SinkConfig

SIGNATURE_HEADER = "X-Spillguard-Signature"


class SinkError(Exception):
    pass


class Sink(Protocol):
    name: str

    def send(self, alert: dict[str, Any]) -> None: ...


def dumps(alert: dict[str, Any]) -> str:
    return json.dumps(alert, sort_keys=True, default=str, separators=(",", ":"))


def headline(alert: dict[str, Any]) -> str:
    who = alert.get("name") or alert["target"]
    old = alert.get("old_verdict") or "unknown"
    event = alert["event"]
    if event == "reminder":
        return f"{who} is still {alert['new_verdict']} (exposed since {alert.get('first_exposed_at')})"
    if event == "recovered":
        return f"{who} recovered: {old} → {alert['new_verdict']}"
    return f"{who}: {old} → {alert['new_verdict']}"


def stakes_line(alert: dict[str, Any]) -> str:
    s = alert.get("stakes")
    if not s:
        return "at stake: unknown (no inventory for this target)"
    cats = ", ".join(f"{k} ({v.get('subjects') if v.get('subjects') is not None else v.get('records')})"
                     for k, v in sorted(s.get("categories", {}).items()))  # fmt: skip
    people = s.get("subjects")
    return f"at stake: {people if people is not None else 'unknown'} people, {s.get('records')} records; {cats or 'no personal data found'}"


class StdoutSink:
    name = "stdout"

    def send(self, alert: dict[str, Any]) -> None:
        sys.stdout.write(dumps(alert) + "\n")
        sys.stdout.flush()


class FileSink:
    name = "file"

    def __init__(self, path: str) -> None:
        self.path = path

    def send(self, alert: dict[str, Any]) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            # An existing alert file others can read (e.g. 0644) is tightened: alerts name what is exposed where.
            if os.fstat(fd).st_mode & 0o077:
                try:
                    os.fchmod(fd, 0o600)
                except OSError:
                    os.close(fd)
                    raise SinkError(f"file {self.path}: others can read it and it cannot be made owner-only; "
                                    "chmod 600 it or give another --alert-file") from None
            with os.fdopen(fd, "a") as fh:
                fh.write(dumps(alert) + "\n")
        except OSError as exc:
            raise SinkError(f"file {self.path}: {exc.strerror or exc}") from exc


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def slack_payload(alert: dict[str, Any]) -> dict[str, Any]:
    exposed = alert["event"] in ("exposed", "reminder") or alert.get("new_exposed")
    fields = [
        {"title": "target", "value": alert["target"], "short": False},
        {
            "title": "verdict",
            "value": f"{alert.get('old_verdict') or 'unknown'} → {alert['new_verdict']}",
            "short": True,
        },
        {"title": "first seen exposed", "value": str(alert.get("first_exposed_at") or "-"), "short": True},
        {"title": "at stake", "value": stakes_line(alert), "short": False},
        {"title": "evidence", "value": str(alert.get("evidence", {}).get("reason", "")), "short": False},
    ]
    return {
        "text": f"spillguard: {headline(alert)}",
        "attachments": [{"color": "danger" if exposed else "good", "fields": fields, "ts": alert.get("at")}],
    }


class WebhookSink:
    name = "webhook"

    def __init__(self, url: str, fmt: str = "json", secret: str | None = None, timeout: float = 10.0) -> None:
        self.url, self.fmt, self.secret, self.timeout = url, fmt, secret, timeout

    def send(self, alert: dict[str, Any]) -> None:
        payload = slack_payload(alert) if self.fmt == "slack" else alert
        body = dumps(payload).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "spillguard-watch/1"}
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


class SmtpSink:
    name = "smtp"

    def __init__(self, cfg: SinkConfig) -> None:
        self.cfg = cfg
        self.password = cfg.password()

    def send(self, alert: dict[str, Any]) -> None:
        c = self.cfg
        msg = EmailMessage()
        msg["Subject"] = f"[spillguard] {headline(alert)}"
        msg["From"] = c.sender or ""
        msg["To"] = ", ".join(c.to)
        msg.set_content(
            f"{headline(alert)}\n\n{stakes_line(alert)}\nfirst seen exposed: {alert.get('first_exposed_at') or '-'}\n"
            f"checked at: {alert['at']}\n\nevidence:\n{json.dumps(alert.get('evidence', {}), indent=2, default=str)}\n"
        )
        try:
            smtp_cls = smtplib.SMTP_SSL if c.ssl else smtplib.SMTP
            with smtp_cls(c.host or "localhost", c.port, timeout=c.timeout) as smtp:
                if c.starttls:
                    smtp.starttls()
                if c.username:
                    smtp.login(c.username, self.password or "")
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise SinkError(f"smtp {c.host}:{c.port}: {type(exc).__name__}: {exc}") from exc


class CommandSink:
    name = "command"

    def __init__(self, command: list[str] | str, timeout: float = 30.0) -> None:
        # No shell: the alert reaches the command on stdin and in SPILLGUARD_* variables, never in argv.
        self.argv = shlex.split(command) if isinstance(command, str) else list(command)
        self.timeout = timeout

    def send(self, alert: dict[str, Any]) -> None:
        env = dict(os.environ)
        env.update({
            "SPILLGUARD_EVENT": alert["event"],
            "SPILLGUARD_TARGET": alert["target"],
            "SPILLGUARD_OLD_VERDICT": alert.get("old_verdict") or "",
            "SPILLGUARD_NEW_VERDICT": alert["new_verdict"],
        })  # fmt: skip
        try:
            res = subprocess.run(self.argv, input=dumps(alert) + "\n", text=True, capture_output=True,
                                 timeout=self.timeout, env=env)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SinkError(f"command {self.argv[0]}: {exc}") from exc
        if res.returncode != 0:
            raise SinkError(f"command {self.argv[0]} exited {res.returncode}: {res.stderr.strip()[:200]}")


def build_sink(cfg: SinkConfig) -> Sink:
    if cfg.type == "stdout":
        return StdoutSink()
    if cfg.type == "file":
        return FileSink(cfg.path or "spillguard-alerts.jsonl")
    if cfg.type == "webhook":
        return WebhookSink(cfg.url or "", cfg.format, cfg.secret(), cfg.timeout)
    if cfg.type == "smtp":
        return SmtpSink(cfg)
    return CommandSink(cfg.command or [], cfg.timeout if cfg.timeout != 10.0 else 30.0)
