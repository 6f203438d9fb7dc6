"""Redis: an anonymous `INFO` tells everything; `NOAUTH` means requirepass, `DENIED` means protected mode.

Speaks RESP over a plain socket: three commands do not justify a client library's connection pooling.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

from spillguard.audit.probes.base import (
    ProbeContext,
    ProbeOutcome,
    connect,
    datasets_evidence,
    recv_exact,
    recv_line,
)
from spillguard.targets import Target
from spillguard.verdicts import Verdict


class RedisError(Exception):
    pass


def _encode(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def _read(sock: socket.socket) -> Any:
    line = recv_line(sock)
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode(errors="replace")
    if kind == b"-":
        raise RedisError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else recv_exact(sock, n + 2)[:-2].decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read(sock) for _ in range(n)]
    raise RedisError(f"unexpected reply {line[:40]!r}")


def _command(sock: socket.socket, *args: str) -> Any:
    sock.sendall(_encode(*args))
    return _read(sock)


def _open(target: Target, timeout: float, source: str | None = None) -> socket.socket:
    sock = connect(target.host, target.port, timeout, source)
    if target.tls:
        # An outsider does not care whose certificate it is; we only record that TLS was spoken.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        sock = ctx.wrap_socket(sock, server_hostname=target.host)
    return sock


def parse_info(text: str) -> dict[str, str]:
    info: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            k, _, v = line.partition(":")
            info[k] = v
    return info


def _keyspace(info: dict[str, str]) -> list[tuple[str, int | None]]:
    out: list[tuple[str, int | None]] = []
    for k, v in info.items():
        if k.startswith("db") and k[2:].isdigit():
            fields = dict(p.split("=", 1) for p in v.split(",") if "=" in p)
            out.append((k, int(fields.get("keys", "0"))))
    return out


def probe(target: Target, ctx: ProbeContext) -> ProbeOutcome:
    evidence: dict[str, Any] = {}
    with _open(target, ctx.timeout, ctx.source_address) as sock:
        try:
            info = parse_info(_command(sock, "INFO"))
        except RedisError as exc:
            msg = str(exc)
            code = msg.split(" ", 1)[0]
            evidence["info_reply"] = code
            if code == "NOAUTH" or "AUTH" in code:
                evidence["reason"] = "INFO refused without a password (requirepass is set)"
                verdict = Verdict.PROTECTED
            elif code == "DENIED":
                evidence["protected_mode"] = True
                evidence["reason"] = (
                    "protected mode refused the outside client: there is no password, "
                    "only the missing bind keeps it closed"
                )
                verdict = Verdict.PROTECTED
            else:
                evidence["reason"] = f"INFO answered with an error: {code}"
                verdict = Verdict.ERROR
            outcome = ProbeOutcome(verdict, evidence, tls=target.tls)
        else:
            evidence["info_reply"] = "answered"
            evidence["reason"] = "INFO answered without credentials: anyone can read every key"
            evidence.update(datasets_evidence(_keyspace(info)))
            evidence["protected_mode_applies"] = False
            outcome = ProbeOutcome(
                Verdict.OPEN_READ, evidence, tls=target.tls, server_version=info.get("redis_version")
            )
    if target.admin is not None:
        outcome.evidence["posture"] = _posture(target.admin, ctx)
    return outcome


def _posture(admin: Target, ctx: ProbeContext) -> dict[str, Any]:
    """The server's own settings, read with admin credentials: never the password itself."""
    posture: dict[str, Any] = {}
    try:
        with _open(admin, ctx.timeout) as sock:
            if admin.password is not None:
                args = ("AUTH", admin.user, admin.password) if admin.user else ("AUTH", admin.password)
                _command(sock, *args)
            for key in ("requirepass", "protected-mode", "bind"):
                try:
                    reply = _command(sock, "CONFIG", "GET", key)
                except RedisError as exc:
                    posture[key] = f"unavailable: {str(exc).split(' ', 1)[0]}"
                    continue
                value = reply[1] if isinstance(reply, list) and len(reply) == 2 else None
                if key == "requirepass":
                    posture["requirepass_set"] = bool(value)
                elif key == "protected-mode":
                    posture["protected_mode"] = value == "yes"
                else:
                    posture["bind"] = value
                    # An empty bind listens on every interface, like an explicit wildcard.
                    posture["bound_to_all"] = value == "" or (
                        value is not None and any(a in ("0.0.0.0", "*", "::", "-::*") for a in value.split())
                    )
    except (OSError, RedisError) as exc:
        posture["error"] = f"{type(exc).__name__}: {str(exc).split(' ', 1)[0]}"
    return posture
