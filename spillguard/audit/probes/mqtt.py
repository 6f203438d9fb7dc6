"""MQTT brokers: does an anonymous client get in, and does a bounded subscription to '#' deliver messages?

Only counts leave the probe: messages and distinct topics seen, never payloads or topic names
(topics often carry device ids and MAC addresses).
"""

from __future__ import annotations

import secrets
import ssl
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from spillguard.audit.probes.base import ProbeContext, ProbeOutcome, Unreachable
from spillguard.targets import Target
from spillguard.verdicts import Verdict

MAX_MESSAGES = 1000  # stop listening early on a busy broker


class _Session:
    def __init__(self, target: Target, username: str | None, password: str | None, timeout: float) -> None:
        self.timeout = timeout
        self.connack: int | None = None
        self.suback: list[int] | None = None
        self.messages = 0
        self.topics: set[str] = set()
        self.version: str | None = None
        self.done = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"spillguard-audit-{secrets.token_hex(4)}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if target.tls:
            self.client.tls_set(cert_reqs=ssl.CERT_NONE)
            self.client.tls_insecure_set(True)
        self.client.connect_timeout = timeout
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        try:
            self.client.connect(target.host, target.port, keepalive=max(5, int(timeout) + 5))
        except OSError as exc:
            raise Unreachable(f"{target.host_port}: {exc.strerror or exc}") from exc

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        self.connack = int(getattr(rc, "value", rc))

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, rcs: Any, props: Any = None
    ) -> None:
        self.suback = [int(getattr(r, "value", r)) for r in rcs]

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == "$SYS/broker/version":
            self.version = msg.payload.decode(errors="replace")[:80]
            return
        self.messages += 1
        self.topics.add(msg.topic)

    def loop_until(self, cond: Any, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if cond():
                return True
            self.client.loop(timeout=0.05)
        return bool(cond())

    def close(self) -> None:
        try:
            self.client.disconnect()
            self.client.loop(timeout=0.05)
        except Exception:  # noqa: S110 - closing a session whose socket is already gone
            pass


def probe(target: Target, ctx: ProbeContext) -> ProbeOutcome:
    session = _Session(target, None, None, ctx.timeout)
    try:
        if not session.loop_until(lambda: session.connack is not None, ctx.timeout):
            return ProbeOutcome(Verdict.ERROR, {"reason": "no CONNACK within the timeout"}, tls=target.tls)
        evidence: dict[str, Any] = {"anonymous_connect": session.connack == 0, "connack": session.connack}
        if session.connack != 0:
            evidence["reason"] = f"anonymous CONNECT refused (return code {session.connack})"
            outcome = ProbeOutcome(Verdict.PROTECTED, evidence, tls=target.tls)
        else:
            session.client.subscribe([("#", 0), ("$SYS/broker/version", 0)])
            session.loop_until(lambda: session.suback is not None, ctx.timeout)
            granted = bool(session.suback) and session.suback[0] < 0x80
            evidence["subscribe_all_granted"] = granted
            if granted:
                session.loop_until(lambda: session.messages >= MAX_MESSAGES, ctx.mqtt_listen)
            evidence["listened_s"] = ctx.mqtt_listen if granted else 0
            evidence["messages_seen"] = session.messages
            evidence["distinct_topics"] = len(session.topics)
            if granted:
                evidence["reason"] = (
                    "anonymous clients may connect and subscribe to '#': every message is readable"
                )
                verdict = Verdict.OPEN_READ
            else:
                evidence["reason"] = "anonymous CONNECT accepted but the subscription to '#' was refused"
                verdict = Verdict.PROTECTED
            outcome = ProbeOutcome(verdict, evidence, tls=target.tls, server_version=session.version)
    finally:
        session.close()
    if target.admin is not None:
        outcome.evidence["posture"] = _posture(
            target.admin, ctx, bool(outcome.evidence.get("anonymous_connect"))
        )
        outcome.server_version = outcome.server_version or outcome.evidence["posture"].pop("_version", None)
        outcome.evidence["posture"].pop("_version", None)
    return outcome


def _posture(admin: Target, ctx: ProbeContext, anonymous_ok: bool) -> dict[str, Any]:
    # Mosquitto does not publish its configuration; allow_anonymous is what the anonymous CONNECT showed.
    posture: dict[str, Any] = {"allow_anonymous": anonymous_ok, "allow_anonymous_source": "observed"}
    try:
        session = _Session(admin, admin.user, admin.password, ctx.timeout)
    except Unreachable as exc:
        posture["error"] = str(exc)
        return posture
    try:
        session.loop_until(lambda: session.connack is not None, ctx.timeout)
        posture["admin_connect"] = session.connack == 0
        if session.connack == 0:
            session.client.subscribe("$SYS/broker/version", 0)
            session.loop_until(lambda: session.version is not None, min(ctx.timeout, 2.0))
            posture["_version"] = session.version
    finally:
        session.close()
    return posture
