"""The one registry of store targets: which URL schemes spillguard knows, and how to read, show and key them.

Every part that takes a store URL reads this module: `scan` (which source adapter opens a scheme), `audit`
and `watch` (which probe judges it), `report` (which scan and which audit name the same store), and the
coming respond/copy pillars. A new store is one row of `SCHEMES` plus its adapter and/or probe module.

URLs are split here, leniently enough for passwords written without escaping: the user information ends
at the last `@` before the path, so `postgresql://scanner:Scan@Pw#9911@db/app` is the user `scanner` with
the password `Scan@Pw#9911` on the host `db` (a `#` never starts a fragment before that `@`).

The canonical store key (`store_key`) is `KIND://HOST:PORT`:
    KIND  the scheme's store kind (`elasticsearch+https`, `https`, `es` and `opensearch` are all `elasticsearch`)
    HOST  lower-cased, IPv6 in brackets; `localhost` and `::1` are `127.0.0.1`
    PORT  the URL's port, else the scheme's default (`elasticsearch+https` 9200, `https` 443)
so `elasticsearch+https://ES:9200`, `https://es:9200/` and `elasticsearch+http://user:pw@es` are one store, and
credentials, database paths and query options never change the key. A file or folder target is its own key.
A scheme whose URL host names something served elsewhere (an S3 bucket, `s3://BUCKET/PREFIX?endpoint=...`) keys
by that endpoint and the name: `s3://HOST:PORT/BUCKET`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, unquote_plus

from spillguard.errors import UserError


@dataclass(frozen=True, slots=True)
class Scheme:
    """One URL scheme: the store it names and the parts of spillguard that speak it."""

    scheme: str
    kind: str  # the store kind: audit protocol and the first part of the store key
    default_port: int | None  # None: no network port (sqlite) or resolved by DNS (mongodb+srv)
    tls: bool
    password_env: tuple[str, ...] = ()  # read for a scan's password after the URL and SPILLGUARD_PASSWORD
    adapter: str | None = None  # scan source, "module:Class", imported only when a target needs it
    probe: str | None = None  # audit probe module (with `probe(target, ctx)`), imported lazily
    destination: str | None = None  # safe-copy destination, "module:Class", imported only when a copy writes there
    # "module:function" giving (host, port, tls) of the network endpoint when the URL's host names something
    # served there (an S3 bucket); it validates the URL too. None: the URL's host and port are the endpoint.
    endpoint: str | None = None

    @property
    def has_host(self) -> bool:
        return self.kind != "sqlite"


_PG = ("spillguard.sources.postgres:PostgresSource", "spillguard.audit.probes.postgresql", ("PGPASSWORD",))
_MY = ("spillguard.sources.mysql:MySQLSource", "spillguard.audit.probes.mysql", ("MYSQL_PWD",))
_RD = ("spillguard.sources.redis:RedisSource", "spillguard.audit.probes.redis", ("REDISCLI_AUTH",))
_MG = ("spillguard.sources.mongodb:MongoSource", "spillguard.audit.probes.mongodb", ("MONGODB_PASSWORD",))
_ES_SOURCE = "spillguard.sources.elasticsearch:ElasticsearchSource"
_ES_PROBE = "spillguard.audit.probes.elasticsearch"
_ES_ENV = ("ES_PASSWORD", "ELASTIC_PASSWORD")
_OS_ENV = ("OPENSEARCH_PASSWORD", "ES_PASSWORD")
_DEST = "spillguard.safecopy.destinations."
_PG_DEST, _MY_DEST = _DEST + "postgres:PostgresDestination", _DEST + "mysql:MySQLDestination"
_ES_DEST = _DEST + "elasticsearch:ElasticsearchDestination"
_KIBANA = "spillguard.audit.probes.kibana"
_COUCH = "spillguard.audit.probes.couchdb"


def _rows(*rows: Scheme) -> dict[str, Scheme]:
    return {r.scheme: r for r in rows}


SCHEMES: dict[str, Scheme] = _rows(
    Scheme("postgresql", "postgresql", 5432, False, _PG[2], _PG[0], _PG[1], _PG_DEST),
    Scheme("postgres", "postgresql", 5432, False, _PG[2], _PG[0], _PG[1], _PG_DEST),
    Scheme("mysql", "mysql", 3306, False, _MY[2], _MY[0], _MY[1], _MY_DEST),
    Scheme("mariadb", "mysql", 3306, False, _MY[2], _MY[0], _MY[1], _MY_DEST),
    Scheme("redis", "redis", 6379, False, _RD[2], _RD[0], _RD[1]),
    Scheme("rediss", "redis", 6379, True, _RD[2], _RD[0], _RD[1]),
    Scheme("mongodb", "mongodb", 27017, False, _MG[2], _MG[0], _MG[1]),
    Scheme("mongodb+srv", "mongodb", None, True, _MG[2], _MG[0], None),
    Scheme("sqlite", "sqlite", None, False, (), "spillguard.sources.sqlite:SQLiteSource", None, _DEST + "sqlite:SQLiteDestination"),
    Scheme("elasticsearch+http", "elasticsearch", 9200, False, _ES_ENV, _ES_SOURCE, _ES_PROBE, _ES_DEST),
    Scheme("elasticsearch+https", "elasticsearch", 9200, True, _ES_ENV, _ES_SOURCE, _ES_PROBE, _ES_DEST),
    Scheme("opensearch+http", "elasticsearch", 9200, False, _OS_ENV, _ES_SOURCE, _ES_PROBE, _ES_DEST),
    Scheme("opensearch+https", "elasticsearch", 9200, True, _OS_ENV, _ES_SOURCE, _ES_PROBE, _ES_DEST),
    Scheme("elasticsearch", "elasticsearch", 9200, False, _ES_ENV, None, _ES_PROBE),
    Scheme("es", "elasticsearch", 9200, False, _ES_ENV, None, _ES_PROBE),
    Scheme("es+http", "elasticsearch", 9200, False, _ES_ENV, None, _ES_PROBE),
    Scheme("es+https", "elasticsearch", 9200, True, _ES_ENV, None, _ES_PROBE),
    Scheme("opensearch", "elasticsearch", 9200, False, _OS_ENV, None, _ES_PROBE),
    Scheme("http", "elasticsearch", 80, False, (), None, _ES_PROBE),
    Scheme("https", "elasticsearch", 443, True, (), None, _ES_PROBE),
    Scheme("kibana", "kibana", 5601, False, (), None, _KIBANA),
    Scheme("kibana+http", "kibana", 5601, False, (), None, _KIBANA),
    Scheme("kibana+https", "kibana", 5601, True, (), None, _KIBANA),
    Scheme("opensearch-dashboards", "kibana", 5601, False, (), None, _KIBANA),
    Scheme("opensearch-dashboards+https", "kibana", 5601, True, (), None, _KIBANA),
    Scheme("mqtt", "mqtt", 1883, False, (), None, "spillguard.audit.probes.mqtt"),
    Scheme("mqtts", "mqtt", 8883, True, (), None, "spillguard.audit.probes.mqtt"),
    Scheme("memcached", "memcached", 11211, False, (), None, "spillguard.audit.probes.memcached"),
    Scheme("couchdb", "couchdb", 5984, False, (), None, _COUCH),
    Scheme("couchdb+http", "couchdb", 5984, False, (), None, _COUCH),
    Scheme("couchdb+https", "couchdb", 5984, True, (), None, _COUCH),
    Scheme("s3", "s3", None, True, (), "spillguard.sources.s3:S3Source", "spillguard.audit.probes.s3", endpoint="spillguard.s3:endpoint"),
)

# Query parameters whose value is a credential, by name (case-insensitive, anywhere in the name):
# password, pass, passwd, sslpassword, pwd, secret, client_secret, token, key, api_key, access_key, auth, ...
_SECRET_PARAM = re.compile(r"pass|pwd|secret|token|key|auth|cred|sig", re.IGNORECASE)
_REG_NAME = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=%-]*")
_MASK = "***"


def is_url(target: str) -> bool:
    """A target with `scheme://` is a URL; anything else is a file or folder path."""
    return "://" in target


# ------------------------------------------------------------------------------------- splitting


@dataclass(frozen=True, slots=True)
class _Split:
    """A URL cut into its raw pieces (nothing decoded): never fails."""

    scheme: str
    userinfo: str | None
    hostinfo: str
    tail: str  # path, query and fragment, as written


def _split(url: str) -> _Split:
    scheme, _, rest = url.partition("://")
    at = rest.find("@")
    head_end = next((i for i, c in enumerate(rest) if c in "/?"), len(rest))
    userinfo: str | None = None
    if at >= 0 and (at < head_end or not _looks_like_hostinfo(rest[:head_end])):
        # The user information ends at the last '@' before the path that follows the first '@':
        # a password may hold '@', '#', ':' unescaped, a path or query may hold '@' too.
        stop = next((i for i in range(at, len(rest)) if rest[i] in "/?"), len(rest))
        last = rest.rfind("@", 0, stop)
        userinfo, rest = rest[:last], rest[last + 1 :]
    end = next((i for i, c in enumerate(rest) if c in "/?#"), len(rest))
    return _Split(scheme, userinfo, rest[:end], rest[end:])


def _looks_like_hostinfo(text: str) -> bool:
    # "host", "host:9200", "[::1]:5432": then an '@' further on belongs to the path, not to a password.
    host, _, port = text.rpartition(":") if not text.endswith("]") else (text, "", "")
    if not host:
        host, port = text, ""
    return (port == "" or port.isdigit()) and (host.startswith("[") or bool(_REG_NAME.fullmatch(host)))


def _mask_query(query: str) -> str:
    pairs = []
    for pair in re.split(r"([&;])", query):
        name, eq, _value = pair.partition("=")
        if eq and _SECRET_PARAM.search(unquote_plus(name)):
            pair = f"{name}={_MASK}"
        pairs.append(pair)
    return "".join(pairs)


def _mask_tail(tail: str) -> str:
    path, q, rest = tail.partition("?")
    if not q:
        path, h, frag = tail.partition("#")
        return path + (f"#{_MASK}" if h else "")
    query, h, _frag = rest.partition("#")
    return f"{path}?{_mask_query(query)}" + (f"#{_MASK}" if h else "")


def mask_url(target: str) -> str:
    """A target as it may be shown, logged or stored: the password and every credential-like query
    parameter replaced by ***, the user kept. Paths pass unchanged. Never raises."""
    if not is_url(target):
        return target
    try:
        s = _split(target)
        userinfo = ""
        if s.userinfo is not None:
            user, colon, _password = s.userinfo.partition(":")
            userinfo = f"{user}:{_MASK}@" if colon else f"{user}@"
        return f"{s.scheme}://{userinfo}{s.hostinfo}{_mask_tail(s.tail)}"
    except Exception:  # a mask must never be the thing that fails
        return f"{target.partition('://')[0]}://{_MASK}"


# --------------------------------------------------------------------------------------- parsing


@dataclass(frozen=True, slots=True)
class ParsedUrl:
    """A validated store URL: decoded credentials kept apart from everything that may be shown."""

    scheme: Scheme
    hosts: tuple[tuple[str, int | None], ...]  # (host as written, lower-cased, no brackets; port or None)
    user: str | None
    password: str | None = field(repr=False)
    tail: str  # path, query, fragment as written
    raw: _Split = field(repr=False)

    @property
    def host(self) -> str:
        return self.hosts[0][0] if self.hosts else ""

    @property
    def port(self) -> int | None:
        return self.hosts[0][1] if self.hosts else None

    @property
    def path(self) -> str:
        return self.tail.partition("?")[0].partition("#")[0]

    @property
    def query(self) -> str:
        return self.tail.partition("?")[2].partition("#")[0]

    def params(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for pair in re.split(r"[&;]", self.query):
            if pair:
                name, _, value = pair.partition("=")
                out[unquote_plus(name)] = unquote_plus(value)
        return out

    def secrets(self) -> list[str]:
        """Every credential this URL carries (password, secret query values), decoded and as written."""
        found = [self.password] if self.password else []
        if self.raw.userinfo and ":" in self.raw.userinfo:
            found.append(self.raw.userinfo.partition(":")[2])
        for pair in re.split(r"[&;]", self.query):
            name, eq, value = pair.partition("=")
            if eq and value and _SECRET_PARAM.search(unquote_plus(name)):
                found += [value, unquote_plus(value)]
        return sorted({s for s in found if s}, key=len, reverse=True)


def _bad(url: str, why: str, hint: str) -> UserError:
    return UserError(f"target {mask_url(url)}: {why}; {hint}")


def _parse_host(url: str, text: str, default_port: int | None) -> tuple[str, int | None]:
    if text.startswith("["):
        inside, close, after = text[1:].partition("]")
        if not close:
            raise _bad(url, "the IPv6 address has no closing ']'", "write it as [ADDRESS]:PORT")
        try:
            host = str(ipaddress.IPv6Address(inside.split("%")[0]))
        except ValueError:
            raise _bad(url, f"[{inside}] is not an IPv6 address", "write an IPv6 address as [ADDRESS]:PORT") from None
        if after and not after.startswith(":"):
            raise _bad(url, f"unexpected {after!r} after the IPv6 address", "write [ADDRESS]:PORT")
        port_text = after[1:]
    else:
        host, colon, port_text = text.partition(":")
        if not _REG_NAME.fullmatch(host) or "[" in text or "]" in text:
            raise _bad(url, f"{host!r} is not a host name", "use SCHEME://HOST:PORT")
        host = unquote(host).lower()
        if colon and not port_text:
            raise _bad(url, "the port after ':' is empty", "give a port number or leave out the ':'")
    if not host:
        raise _bad(url, "no host", "use SCHEME://HOST:PORT")
    if port_text == "":
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _bad(url, f"port {port_text!r} is not a number from 1 to 65535", "use SCHEME://HOST:PORT")
    return host, int(port_text)


def scheme_of(url: str) -> Scheme:
    """The registry row of a URL's scheme; a clear error naming the known schemes otherwise."""
    name = url.partition("://")[0].lower()
    row = SCHEMES.get(name)
    if row is None:
        known = ", ".join(sorted(SCHEMES))
        raise UserError(f"target {mask_url(url)}: unknown scheme '{name}'; use a file path or one of {known}")
    return row


def parse_url(url: str) -> ParsedUrl:
    """Split and validate a store URL; a malformed one is a `UserError` of one line (exit 2)."""
    row = scheme_of(url)
    s = _split(url)
    user = password = None
    if s.userinfo is not None:
        u, colon, p = s.userinfo.partition(":")
        user = unquote(u) or None
        password = unquote(p) if colon else None
    if not row.has_host:
        return ParsedUrl(row, (), user, password, s.hostinfo + s.tail, s)
    pieces = s.hostinfo.split(",") if row.kind == "mongodb" else [s.hostinfo]
    hosts = tuple(_parse_host(url, piece, row.default_port) for piece in pieces)
    return ParsedUrl(row, hosts, user, password, s.tail, s)


def check_targets(targets: list[str]) -> None:
    """Validate every URL target before any work starts (paths are checked by their source)."""
    for t in targets:
        if is_url(t):
            served_by(parse_url(t))


def served_by(p: ParsedUrl) -> tuple[str, int | None, bool]:
    """The network endpoint (host, port, tls) a parsed URL talks to: its own host and port, or what the
    scheme's `endpoint` function says (an S3 bucket's endpoint)."""
    if p.scheme.endpoint is None:
        return p.host, p.port, p.scheme.tls
    import importlib

    module_name, function_name = p.scheme.endpoint.split(":")
    found: tuple[str, int | None, bool] = getattr(importlib.import_module(module_name), function_name)(p)
    return found


def normalized_url(url: str) -> str:
    """The URL with its user and password percent-encoded, so any URL parser reads what the user meant
    (`Scan@Pw#9911` stays one password). Everything else is kept as written."""
    p = parse_url(url)
    s = p.raw
    if s.userinfo is None:
        return url
    userinfo = quote(p.user or "", safe="")
    if p.password is not None:
        userinfo += ":" + quote(p.password, safe="")
    return f"{s.scheme}://{userinfo}@{s.hostinfo}{s.tail}"


def with_password(url: str, password: str) -> str:
    """The URL with `password` set (credentials from the environment or a prompt), user kept."""
    p = parse_url(url)
    s = p.raw
    return f"{s.scheme}://{quote(p.user or '', safe='')}:{quote(password, safe='')}@{s.hostinfo}{s.tail}"


# ------------------------------------------------------------------------------------ store key


def _key_host(host: str, port: int | None) -> str:
    if host in ("localhost", "::1", "0:0:0:0:0:0:0:1"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port else host


def store_key(target: str) -> str:
    """The canonical identity of a store (see the module docstring): `KIND://HOST:PORT`, a path for files.

    Works on masked URLs (as scan and audit results hold them) and never raises: a URL that cannot be
    parsed is its own key."""
    t = target.strip()
    if not is_url(t):
        return t
    try:
        p = parse_url(t)
    except UserError:
        return t
    if not p.scheme.has_host:
        return f"{p.scheme.kind}://{p.path}"
    if p.scheme.endpoint is not None:  # KIND://ENDPOINT_HOST:PORT/NAME (an S3 bucket on its endpoint)
        try:
            host, port, _tls = served_by(p)
        except UserError:
            return t
        return f"{p.scheme.kind}://{_key_host(host, port)}/{p.host}"
    hosts = sorted({_key_host(h, port) for h, port in p.hosts})
    return f"{p.scheme.kind}://{','.join(hosts)}"


def credentials_tag(key: bytes, user: str | None, password: str | None) -> str:
    """A keyed hash of a target's credentials: tells two logins apart without keeping either."""
    from spillguard.keys import keyed_hex  # keys loads numpy and Arrow: not for every URL parsed

    return keyed_hex(key, f"spillguard-credentials\x00{user or ''}\x00{password or ''}", 16)


# --------------------------------------------------------------------------------- audit target


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
    history_key: str = ""  # set by `watch`: store key + credentials tag

    def __repr__(self) -> str:
        # The URL and its query may hold secrets: only the masked form is ever printed.
        return f"Target({self.masked!r}, protocol={self.protocol!r}, name={self.name!r})"

    @property
    def masked(self) -> str:
        return mask_url(self.url)

    @property
    def store_key(self) -> str:
        return store_key(self.url)

    @property
    def host_port(self) -> str:
        return _key_host(self.host, self.port)

    @property
    def http_base(self) -> str:
        scheme = "https" if self.tls else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}{self.path.rstrip('/')}"

    def secrets(self) -> list[str]:
        """Every credential the target carries, for scrubbing driver messages."""
        try:
            found = parse_url(self.url).secrets()
        except UserError:  # a Target built by hand from a URL the registry would refuse
            found = []
        if self.password:
            found.append(self.password)
        return sorted(set(found), key=len, reverse=True)


def parse_target(url: str, *, name: str | None = None, password: str | None = None) -> Target:
    """An audit target from a URL; `password` (e.g. from an environment variable) overrides the URL's."""
    p = parse_url(url)
    if p.scheme.probe is None:
        probed = ", ".join(sorted(s for s, r in SCHEMES.items() if r.probe))
        raise UserError(f"target {mask_url(url)}: audit cannot probe {p.scheme.scheme}:// targets; use one of {probed}")
    host, port, tls = served_by(p)
    if port is None:
        raise UserError(f"target {mask_url(url)}: no port; use {p.scheme.scheme}://HOST:PORT")
    params = p.params()
    if p.scheme.kind == "mongodb" and params.get("tls", params.get("ssl", "")).lower() == "true":
        tls = True
    if p.scheme.kind == "postgresql" and params.get("sslmode", "") in ("require", "verify-ca", "verify-full"):
        tls = True
    return Target(
        url=url, protocol=p.scheme.kind, host=host, port=port, tls=tls, user=p.user,
        password=password if password is not None else p.password, path=p.path, params=params, name=name,
    )  # fmt: skip


def probe_module(kind: str) -> str:
    """The audit probe module of a store kind (every scheme of one kind shares its probe)."""
    for row in SCHEMES.values():
        if row.kind == kind and row.probe:
            return row.probe
    raise KeyError(kind)


def adapter_of(url: str) -> tuple[Scheme, str]:
    """The scheme row and source adapter ("module:Class") that scans a URL; a clear error if none does."""
    row = scheme_of(url)
    if row.adapter is None:
        scanned = ", ".join(sorted(f"{s}://" for s, r in SCHEMES.items() if r.adapter))
        raise UserError(f"{mask_url(url)}: scan cannot read {row.scheme}:// targets; use a path or one of {scanned}")
    return row, row.adapter
