"""E-mail over SMTP (plain, STARTTLS or implicit TLS); the password comes from an environment variable."""

from __future__ import annotations

import hashlib
import smtplib
from email.message import EmailMessage

from spillguard.config import SinkConfig
from spillguard.notify.message import Message, SinkError


class SmtpSink:
    name = "smtp"

    def __init__(self, cfg: SinkConfig) -> None:
        self.cfg = cfg
        self.password = cfg.password()

    def send(self, message: Message) -> None:
        c = self.cfg
        msg = EmailMessage()
        msg["Subject"] = f"[spillguard] {message.subject}"
        msg["From"] = c.sender or ""
        msg["To"] = ", ".join(c.to)
        if message.key:
            # The same notification re-sent keeps its Message-ID, so mail systems can drop the duplicate.
            msg["Message-ID"] = f"<{hashlib.sha256(message.key.encode()).hexdigest()[:32]}@spillguard>"
        msg.set_content(message.body)
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


def from_config(cfg: SinkConfig) -> SmtpSink:
    return SmtpSink(cfg)
