"""Target URLs: which protocol a URL names, where it points, and how to show it without its secrets."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from spillguard.errors import UserError

# scheme -> (protocol, default port, tls)
SCHEMES: dict[str, tuple[str, int, bool]] = {
    "elasticsearch": ("elasticsearch", 9200, False),
    "elasticsearch+http": ("elasticsearch", 9200, False),
    "elasticsearch+https": ("elasticsearch", 9200, True),
    "es": ("elasticsearch", 9200, False),
    "es+http": ("elasticsearch", 9200, False),
    "es+https": ("elasticsearch", 9200, True),
    "opensearch": ("elasticsearch", 9200, False),
    "opensearch+http": ("elasticsearch", 9200, False),
    "opensearch+https": ("elasticsearch", 9200, True),
    "http": ("elasticsearch", 80, False),
    "https": ("elasticsearch", 443, True),
    "kibana": ("kibana", 5601, False),
    "kibana+http": ("kibana", 5601, False),
    "kibana+https": ("kibana", 5601, True),
    "opensearch-dashboards": ("kibana", 5601, False),
    "opensearch-dashboards+https": ("kibana", 5601, True),
    "mongodb": ("mongodb", 27017, False),
    "redis": ("redis", 6379, False),
    "rediss": ("redis", 6379, True),
    "postgres": ("postgresql", 5432, False),
    "postgresql": ("postgresql", 5432, False),
    "mysql": ("mysql", 3306, False),
    "mariadb": ("mysql", 3306, False),
    "mqtt": ("mqtt", 1883, False),
    "mqtts": ("mqtt", 8883, True),
    "memcached": ("memcached", 11211, False),
    "couchdb": ("couchdb", 5984, False),
    "couchdb+http": ("couchdb", 5984, False),
    "couchdb+https": ("couchdb", 5984, True),
}

_SECRET_PARAMS = re.compile(r"(pass|secret|token|key|auth)", re.IGNORECASE)


@dataclass(slots=True)
class Target:
    """One endpoint to audit. `password` is kept apart so that nothing prints it by accident."""

    url: str  # as given, may hold a password: never log it
    protocol: str
    host: str
    port: int
    tls: bool
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    path: str = ""
    params: dict[str, str] = field(default_factory=dict)
    name: str | None = None
    admin: Target | None = None
    include: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        # The URL and its query may hold secrets: only the masked form is ever printed.
        return f"Target({self.masked!r}, protocol={self.protocol!r}, name={self.name!r})"

    @property
    def masked(self) -> str:
        return mask_url(self.url)

    @property
    def host_port(self) -> str:
        return host_port(self.host, self.port)

    @property
    def http_base(self) -> str:
        scheme = "https" if self.tls else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}{self.path.rstrip('/')}"


def host_port(host: str, port: int) -> str:
    host = host.lower().strip("[]")
    if host in ("localhost", "::1"):
        host = "127.0.0.1"
    return f"{host}:{port}"


def mask_url(url: str) -> str:
    """The URL with its password (and secret-looking query parameters) replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user, sep, _ = userinfo.partition(":")
        netloc = f"{user}:***@{hostinfo}" if sep else f"{user}@{hostinfo}"
    query = parts.query
    if query:
        pairs = [
            (k, "***" if _SECRET_PARAMS.search(k) else v) for k, v in parse_qsl(query, keep_blank_values=True)
        ]
        query = urlencode(pairs, safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def parse_target(url: str, *, name: str | None = None, password: str | None = None) -> Target:
    """Parse a target URL; `password` (e.g. from an environment variable) overrides the URL's."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UserError(
            f"target {mask_url(url)!r}: not a valid URL ({exc}); use e.g. redis://HOST:PORT"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        known = ", ".join(sorted({s.split("+")[0] for s in SCHEMES}))
        raise UserError(f"target {mask_url(url)!r}: unknown scheme {scheme!r}; use one of {known}")
    if not parts.hostname:
        raise UserError(f"target {mask_url(url)!r}: no host; use SCHEME://HOST:PORT")
    protocol, default_port, tls = SCHEMES[scheme]
    params = dict(parse_qsl(parts.query))
    if protocol == "mongodb" and params.get("tls", params.get("ssl", "")).lower() == "true":
        tls = True
    if protocol == "postgresql" and params.get("sslmode", "") in ("require", "verify-ca", "verify-full"):
        tls = True
    return Target(
        url=url,
        protocol=protocol,
        host=parts.hostname,
        port=port or default_port,
        tls=tls,
        user=unquote(parts.username) if parts.username else None,
        password=password if password is not None else (unquote(parts.password) if parts.password else None),
        path=parts.path,
        params=params,
        name=name,
    )


def with_password(url: str, password: str) -> str:
    """The URL with `password` set, for credentials that come from the environment."""
    parts = urlsplit(url)
    user = parts.username or ""
    hostinfo = parts.netloc.rpartition("@")[2]
    netloc = f"{user}:{quote(password, safe='')}@{hostinfo}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
