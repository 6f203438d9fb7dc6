"""What every probe shares: the outcome it returns, how failures are classified, dataset-name masking."""

from __future__ import annotations

import errno
import re
import socket
from dataclasses import dataclass, field
from typing import Any

from spillguard.verdicts import Verdict

# Default and empty credentials an outsider would try first; kept short so a probe stays a handful of requests.
MAX_DATASETS_IN_EVIDENCE = 20


class Unreachable(Exception):
    """Nothing answered: refused, timed out, no route, unknown host."""


@dataclass(slots=True)
class ProbeContext:
    timeout: float = 5.0
    # Dataset names known from an inventory or the config, for stores that cannot list their own.
    dataset_hints: list[str] = field(default_factory=list)
    # How long an MQTT probe listens on '#', in seconds.
    mqtt_listen: float = 1.0
    # Local address to connect from (socket and HTTP probes): probe from the interface an outsider would reach.
    source_address: str | None = None


@dataclass(slots=True)
class ProbeOutcome:
    verdict: Verdict
    evidence: dict[str, Any] = field(default_factory=dict)
    tls: bool = False
    server_version: str | None = None


_UNREACHABLE_ERRNOS = {
    errno.ECONNREFUSED,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ETIMEDOUT,
    errno.ECONNRESET,
    errno.EADDRNOTAVAIL,
}


def is_unreachable_error(exc: BaseException) -> bool:
    if isinstance(
        exc, Unreachable | socket.timeout | TimeoutError | socket.gaierror | ConnectionRefusedError
    ):
        return True
    return isinstance(exc, OSError) and exc.errno in _UNREACHABLE_ERRNOS


_EMAIL = re.compile(r"[A-Za-z0-9._%+]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_LONG_DIGITS = re.compile(r"\d{6,}")
_PHONE = re.compile(r"\+\d[\d .-]{6,}\d")


def mask_dataset_name(name: str) -> str:
    """Dataset names can carry personal data (`user_jane.doe@example.com`, `tenant_4915112345678`): mask it."""
    name = _EMAIL.sub(lambda m: m.group(0)[0] + "***@" + m.group(0).rpartition("@")[2], name)
    name = _PHONE.sub(lambda m: "+" + "#" * 4, name)
    return _LONG_DIGITS.sub(lambda m: m.group(0)[:2] + "#" * (len(m.group(0)) - 2), name)


def datasets_evidence(datasets: list[tuple[str, int | None]]) -> dict[str, Any]:
    """Counts and masked names of the biggest datasets, never their contents."""
    ranked = sorted(datasets, key=lambda d: -(d[1] or 0))
    known = [c for _, c in datasets if c is not None]
    return {
        "dataset_count": len(datasets),
        "records_total": sum(known) if known else None,
        "datasets": [
            {"name": mask_dataset_name(n), "records": c} for n, c in ranked[:MAX_DATASETS_IN_EVIDENCE]
        ],
    }


def credential_label(user: str, password: str) -> str:
    """How evidence names a working weak credential without spelling out the password."""
    return f"{user or '<anonymous>'} with {'an empty password' if password == '' else 'its default password'}"


def recv_line(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    buf = bytearray()
    while not buf.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionResetError(errno.ECONNRESET, "connection closed by server")
        buf += chunk
        if len(buf) > limit:
            raise ValueError("reply line too long")
    return bytes(buf[:-2])


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(65536, n - len(buf)))
        if not chunk:
            raise ConnectionResetError(errno.ECONNRESET, "connection closed by server")
        buf += chunk
    return bytes(buf)


def connect(host: str, port: int, timeout: float, source: str | None = None) -> socket.socket:
    try:
        return socket.create_connection(
            (host, port), timeout=timeout, source_address=(source, 0) if source else None
        )
    except OSError as exc:
        raise Unreachable(f"{host}:{port}: {exc.strerror or exc}") from exc
