"""Redis: keys grouped by pattern (`user:*`, `session:*:tokens`) into datasets, every type read with
bounded commands (MGET, HSCAN, LRANGE chunks, SSCAN, ZSCAN, XRANGE COUNT).

A record is one string, one hash, or one element of a list, set, sorted set or stream, with the key
name in `_key`. Values holding a JSON object or array are parsed, so their fields are scanned by name.
Redis has no read-only session; spillguard sends only read commands.

Connecting (TCP, the TLS handshake of rediss://, AUTH and SELECT) is bounded by the connect timeout and
every later reply by the read timeout; redis-py's own retries are off, so a failure reaches the scan's
retry budget at once instead of being retried silently first.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import pyarrow as pa
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from spillguard.errors import UserError
from spillguard.sources.base import MalformedSink, Partition
from spillguard.sources.records import docs_to_tables
from spillguard.sources.retry import TransientError
from spillguard.sources.store import (
    ReconnectingDataset,
    StoreSource,
    one_line,
    partition_count,
    unreachable,
)

SCAN_COUNT = 1000
BATCH_KEYS = 500
CHUNK = 1000  # elements per LRANGE / HSCAN / SSCAN / ZSCAN / XRANGE call
SMALL_HASH = 1000
# A key segment that names one thing (an id) rather than a kind of thing.
_ID_SEGMENT = re.compile(
    r"\d+"
    r"|[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"  # uuid
    r"|(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}"  # hex id
    r"|(?=(?:\D*\d){3})[\w.+-]+"  # a token with several digits: usr_0001234, a1b2c3
    r"|[^:]*@[^:]*"  # an e-mail address
    r"|[\w-]{20,}"  # long opaque tokens
)


def key_pattern(key: str) -> str:
    """`user:123:tokens` -> `user:*:tokens`: digit, uuid, hex and other id segments become `*`."""
    return ":".join("*" if _ID_SEGMENT.fullmatch(seg) else seg for seg in key.split(":"))


def _glob_escape(pattern: str) -> str:
    """The pattern as a Redis MATCH glob: literal segments escaped, `*` segments kept."""
    out = []
    for seg in pattern.split(":"):
        out.append("*" if seg == "*" else re.sub(r"([\\*?\[\]])", r"\\\1", seg))
    return ":".join(out)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def _value(raw: bytes | str) -> Any:
    """Element text; a JSON object or array is parsed so its fields are scanned under their names."""
    if isinstance(raw, bytes):
        head = raw[:1]
        if head in (b"{", b"["):
            try:
                return orjson.loads(raw)
            except orjson.JSONDecodeError:
                pass
        return _text(raw)
    return raw


@dataclass(slots=True)
class RedisPattern(ReconnectingDataset):
    source: RedisSource
    db: int
    pattern: str
    keys: int
    subject_field: str | None

    @property
    def name(self) -> str:
        return self.pattern if self.db == 0 else f"db{self.db}:{self.pattern}"

    def estimate(self) -> tuple[int, str] | None:
        """How many keys match the pattern (a key of a list, set or stream holds many records)."""
        return (self.keys, "keys")

    def partitions(self) -> list[Partition]:
        base = {"db": self.db, "pattern": self.pattern}
        opts = self.source.options
        if opts.sample is not None:
            return [Partition(self.name, {**base, "sample": opts.sample})]
        # Keys are dealt to partitions by a hash of their name: stable across runs and processes.
        shards = partition_count(self.keys, max(1, opts.partition_rows // 10))
        return [Partition(self.name, {**base, "shard": i, "shards": shards}) for i in range(shards)]

    def _keys(self, client: redis.Redis, spec: dict[str, Any]) -> Iterator[bytes]:
        shards, shard = int(spec.get("shards", 1)), int(spec.get("shard", 0))
        cursor = 0
        while True:
            self.source.limiter.wait()
            cursor, batch = client.scan(cursor=cursor, match=_glob_escape(self.pattern), count=SCAN_COUNT)
            for key in batch:
                if key_pattern(_text(key)) != self.pattern:
                    continue  # a longer key that the glob also matched belongs to another pattern
                if shards > 1 and zlib.crc32(key) % shards != shard:
                    continue
                yield key
            if cursor == 0:
                return

    def _sampled(self, client: redis.Redis, n: int) -> list[bytes]:
        rng = random.Random(self.source.options.seed)
        reservoir: list[bytes] = []
        for i, key in enumerate(self._keys(client, {})):
            if i < n:
                reservoir.append(key)
            else:
                j = rng.randrange(i + 1)
                if j < n:
                    reservoir[j] = key
        return sorted(reservoir)

    def read(self, partition: Partition, malformed: MalformedSink) -> Iterator[pa.Table]:
        client = self.source.client(self.db)
        try:
            spec = partition.spec
            keys: Iterable[bytes] = self._sampled(client, int(spec["sample"])) if "sample" in spec else self._keys(client, spec)
            yield from docs_to_tables(self._records(client, keys), self.name, malformed)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self.source.reset()
            raise TransientError(one_line(exc, self.source.password)) from None
        except redis.RedisError as exc:
            raise UserError(f"{self.name}: {one_line(exc, self.source.password)}") from None

    def _records(self, client: redis.Redis, keys: Iterable[bytes]) -> Iterator[dict[str, Any]]:
        batch: list[bytes] = []
        for key in keys:
            batch.append(key)
            if len(batch) >= BATCH_KEYS:
                yield from self._batch(client, batch)
                batch = []
        if batch:
            yield from self._batch(client, batch)

    def _batch(self, client: redis.Redis, keys: list[bytes]) -> Iterator[dict[str, Any]]:
        limiter = self.source.limiter
        limiter.wait()
        pipe = client.pipeline(transaction=False)
        for k in keys:
            pipe.type(k)
        types = [t.decode() if isinstance(t, bytes) else str(t) for t in pipe.execute()]
        strings = [k for k, t in zip(keys, types, strict=True) if t == "string"]
        if strings:
            limiter.wait()
            for k, v in zip(strings, client.mget(strings), strict=True):
                if v is not None:
                    yield _record(k, _value(v))
        for k, t in zip(keys, types, strict=True):
            if t == "hash":
                yield from self._hash(client, k)
            elif t == "list":
                yield from self._list(client, k)
            elif t == "set":
                for members in self._scan_chunks(client.sscan, k):
                    for m in members:
                        yield _record(k, _value(m))
            elif t == "zset":
                for pairs in self._scan_chunks(client.zscan, k):
                    for m, score in pairs:
                        yield {"_key": _text(k), "member": _value(m), "score": score}
            elif t == "stream":
                yield from self._stream(client, k)
            elif t == "ReJSON-RL":
                limiter.wait()
                raw = client.execute_command("JSON.GET", k)
                if raw is not None:
                    yield _record(k, _value(raw))

    def _hash(self, client: redis.Redis, key: bytes) -> Iterator[dict[str, Any]]:
        """A small hash is one record (an object); a big one is a map, one record per field."""
        self.source.limiter.wait()
        if client.hlen(key) <= SMALL_HASH:
            self.source.limiter.wait()
            doc: dict[str, Any] = {"_key": _text(key)}
            for f, v in client.hgetall(key).items():
                doc[_text(f)] = _value(v)
            yield doc
            return
        name = _text(key)
        for chunk in self._scan_chunks(client.hscan, key):
            for f, v in chunk.items():
                yield {"_key": name, "field": _text(f), "value": _value(v)}

    def _list(self, client: redis.Redis, key: bytes) -> Iterator[dict[str, Any]]:
        start = 0
        while True:
            self.source.limiter.wait()
            items = client.lrange(key, start, start + CHUNK - 1)
            for item in items:
                yield _record(key, _value(item))
            if len(items) < CHUNK:
                return
            start += CHUNK

    def _scan_chunks(self, command: Any, key: bytes) -> Iterator[Any]:
        cursor = 0
        while True:
            self.source.limiter.wait()
            cursor, chunk = command(key, cursor=cursor, count=CHUNK)
            yield chunk
            if cursor == 0:
                return

    def _stream(self, client: redis.Redis, key: bytes) -> Iterator[dict[str, Any]]:
        start: bytes | str = "-"
        while True:
            self.source.limiter.wait()
            entries = client.xrange(key, min=start, max="+", count=CHUNK)
            for entry_id, fields in entries:
                doc: dict[str, Any] = {"_key": _text(key), "_id": _text(entry_id)}
                for f, v in fields.items():
                    doc[_text(f)] = _value(v)
                yield doc
            if len(entries) < CHUNK:
                return
            start = b"(" + entries[-1][0]


class _BoundedHandshake:
    """redis-py waits for the TLS handshake and the login replies with the read timeout: this waits for them
    with the connect timeout instead, and for every later reply with the read timeout."""

    _handshaking = False
    socket_timeout: float | None
    socket_connect_timeout: float | None
    _sock: Any
    _parser: Any

    def connect(self) -> None:
        self._bounded(super().connect)  # type: ignore[misc]

    def connect_check_health(self, *args: Any, **kwargs: Any) -> None:  # redis-py 6+: connect() and sends use it
        self._bounded(super().connect_check_health, *args, **kwargs)  # type: ignore[misc]

    def _bounded(self, connect: Any, *args: Any, **kwargs: Any) -> None:
        if self._handshaking or self._sock is not None:
            connect(*args, **kwargs)
            return
        read_timeout = self.socket_timeout
        self._handshaking = True
        self.socket_timeout = self.socket_connect_timeout
        try:
            connect(*args, **kwargs)
        finally:
            self._handshaking = False
            self.socket_timeout = read_timeout
        if self._sock is not None:
            self._sock.settimeout(read_timeout)
            buffer = getattr(self._parser, "_buffer", None)
            if buffer is not None and hasattr(buffer, "socket_timeout"):
                buffer.socket_timeout = read_timeout  # the pure-Python parser restores this after a custom timeout
            if hasattr(self._parser, "_socket_timeout"):
                self._parser._socket_timeout = read_timeout  # hiredis sets it before every read  # noqa: SLF001


class _Connection(_BoundedHandshake, redis.Connection):
    pass


class _SSLConnection(_BoundedHandshake, redis.SSLConnection):
    pass


def _record(key: bytes, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {"_key": _text(key), **value}
    return {"_key": _text(key), "value": value}


class RedisSource(StoreSource):
    """redis://[user:password@]host[:port][/db]; rediss:// for TLS. Without /db every db with keys."""

    def __init__(self, target: str, **options: Any) -> None:
        super().__init__(target, "redis", options)
        parts = urlsplit(target)
        self.db: int | None = None
        path = parts.path.strip("/")
        if path:
            if not path.isdigit():
                raise UserError(f"{self.target}: the path must be a database number, like redis://host:6379/0")
            self.db = int(path)
        netloc = parts.hostname or "127.0.0.1"
        if ":" in netloc:
            netloc = f"[{netloc}]"
        netloc += f":{parts.port or 6379}"
        self.base_url = urlunsplit((parts.scheme, netloc, "", parts.query, ""))
        self.username = parts.username or None
        self._clients: dict[int, redis.Redis] = {}
        self._catalog: dict[int, dict[str, int]] | None = None
        self.ping()

    def ping(self) -> None:
        """Connect and log in: a failed login is bad input; anything else Unreachable (retried mid-scan)."""
        try:
            self.client(self.db or 0).ping()
        except (redis.AuthenticationError, redis.ResponseError) as exc:
            self.reset()
            raise UserError(f"{self.target}: login failed ({one_line(exc, self.password)})") from None
        except redis.RedisError as exc:
            self.reset()
            raise unreachable(self.target, exc, self.password) from None

    def client(self, db: int) -> redis.Redis:
        c = self._clients.get(db)
        if c is None:
            c = redis.Redis.from_url(
                self.base_url, db=db, username=self.username, password=self.password,
                connection_class=_SSLConnection if self.base_url.startswith("rediss:") else _Connection,
                socket_connect_timeout=self.options.connect_timeout, socket_timeout=self.options.read_timeout,
                retry=Retry(NoBackoff(), 0),  # the scan's retry budget decides, not redis-py
                decode_responses=False,
            )
            self._clients[db] = c
        return c

    def reset(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients = {}

    def _dbs(self) -> list[int]:
        if self.db is not None:
            return [self.db]
        info = self.client(0).info("keyspace")
        return sorted(int(name[2:]) for name in info if name.startswith("db")) or [0]

    def catalog(self) -> dict[int, dict[str, int]]:
        """db -> pattern -> number of keys, from one SCAN over each keyspace."""
        if self._catalog is not None:
            return self._catalog
        out: dict[int, dict[str, int]] = {}
        try:
            for db in self._dbs():
                counts: dict[str, int] = {}
                client = self.client(db)
                cursor = 0
                while True:
                    self.limiter.wait()
                    cursor, keys = client.scan(cursor=cursor, count=SCAN_COUNT)
                    for k in keys:
                        p = key_pattern(_text(k))
                        counts[p] = counts.get(p, 0) + 1
                    if cursor == 0:
                        break
                out[db] = counts
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self.reset()
            raise unreachable(self.target, exc, self.password) from None
        except redis.RedisError as exc:
            raise UserError(f"{self.target}: cannot list keys ({one_line(exc, self.password)})") from None
        self._catalog = out
        return out

    def datasets(self) -> Iterator[RedisPattern]:
        for db, patterns in self.catalog().items():
            for pattern in sorted(patterns):
                reader = RedisPattern(self, db, pattern, patterns[pattern], None)
                if not self.options.wanted(reader.name, pattern):
                    continue
                reader.subject_field = self.options.subject_for(reader.name, pattern)
                yield reader

    def dataset(self, name: str) -> RedisPattern:
        db, pattern = 0, name
        m = re.fullmatch(r"db(\d+):(.*)", name)
        if m and (self.db is None or self.db != 0):
            db, pattern = int(m.group(1)), m.group(2)
        return RedisPattern(self, db, pattern, 0, self.options.subject_for(name, pattern))


__all__ = ["RedisSource", "key_pattern"]
