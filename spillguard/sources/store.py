"""What every live-store adapter shares: options, credentials, dataset filters, pacing, transient errors,
and the reading of rows that the server wrote as JSON.

Store sources take the same keyword options (`open_target(url, **source_options)`):

    sample: int | None       random sample of N records per dataset; None = exhaustive (the default)
    include / exclude        glob patterns on dataset names (`public.users`, `users*`, `session:*`)
    subject_fields           {dataset name or glob: field} naming the person field per dataset
    connect_timeout          seconds to connect and log in (TCP, TLS, login, first answer; default 10)
    read_timeout             seconds a read may wait for the server to send anything (default 120)
    retry_budget             seconds a target may keep failing before it is given up (default 30; see retry.py)
    max_rps                  requests per second per worker process (None = unlimited)
    password                 from --ask-password; otherwise the URL, then the environment
    include_views            also scan SQL views (default False)
    include_hidden           also scan `.`-prefixed Elasticsearch indices (default False)
    partition_rows           records per partition of an exhaustive read (default 50_000)
    seed                     makes samples repeatable (the scan's seed)
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from spillguard.errors import UserError
from spillguard.sources.base import BLOCK_BYTES, MalformedSink, ReaderDefaults, SourceDefaults
from spillguard.sources.records import json_lines_to_tables

# TransientError's home is retry.py; it is re-exported here, where the scan has always imported it from.
from spillguard.sources.retry import DEFAULT_BUDGET_S, Unreachable
from spillguard.sources.retry import TransientError as TransientError
from spillguard.targets import mask_url, parse_url


@dataclass(slots=True)
class StoreOptions:
    sample: int | None = None
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    subject_fields: dict[str, str] = field(default_factory=dict)
    subject_field: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    retry_budget: float = DEFAULT_BUDGET_S
    max_rps: float | None = None
    password: str | None = None
    password_env: str | None = None  # a variable NAME (spillguard.toml), read where the store is opened (Ray workers)
    include_views: bool = False
    include_hidden: bool = False
    partition_rows: int = 50_000
    seed: int = 0

    @classmethod
    def from_kwargs(cls, options: dict[str, Any]) -> StoreOptions:
        """The options of `open_target(url, **options)`; an unknown one is an error, not silently ignored.
        `progress` is passed to every source; only files report it."""
        known = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
        unknown = sorted(set(options) - known - {"progress"})
        if unknown:
            raise UserError(f"unknown source option {unknown[0]!r}; known: {', '.join(sorted(known))}")
        kw = {k: v for k, v in options.items() if k in known and v is not None}
        opts = cls(**kw)
        if opts.sample is not None and opts.sample < 1:
            raise UserError(f"--sample must be a positive number of records, not {opts.sample}")
        for name in ("connect_timeout", "read_timeout"):
            if getattr(opts, name) <= 0:
                raise UserError(f"--{name.replace('_', '-')} must be a positive number of seconds, not {getattr(opts, name)}")
        if opts.retry_budget < 0:
            raise UserError(f"--retry-budget must be zero or more seconds, not {opts.retry_budget}")
        opts.include, opts.exclude = list(opts.include or []), list(opts.exclude or [])
        return opts

    def wanted(self, *names: str) -> bool:
        """A dataset is scanned when one of its names matches an include pattern (or none are given)
        and none matches an exclude pattern."""
        names = tuple(n for n in names if n)
        if self.exclude and any(fnmatch.fnmatchcase(n, p) for n in names for p in self.exclude):
            return False
        if not self.include:
            return True
        return any(fnmatch.fnmatchcase(n, p) for n in names for p in self.include)

    def wanted_table(self, is_view: bool, *names: str) -> bool:
        """A table is scanned when its names are wanted; a view only with include_views as well."""
        return (self.include_views or not is_view) and self.wanted(*names)

    def subject_for(self, *names: str) -> str | None:
        for n in names:
            if n in self.subject_fields:
                return self.subject_fields[n]
        for pattern, fld in self.subject_fields.items():
            if any(fnmatch.fnmatchcase(n, pattern) for n in names):
                return fld
        return self.subject_field


def resolve_password(target: str, options: StoreOptions) -> str | None:
    """The URL's password, else --ask-password or the config's, else its password_env variable read here,
    else SPILLGUARD_PASSWORD, else the scheme's own variables
    (the `password_env` column of `spillguard.targets.SCHEMES`)."""
    url = parse_url(target)
    if url.password is not None:
        return url.password
    if options.password is not None:
        return options.password
    if options.password_env and os.environ.get(options.password_env):
        return os.environ[options.password_env]
    for name in ("SPILLGUARD_PASSWORD", *url.scheme.password_env):
        value = os.environ.get(name)
        if value:
            return value
    return None


def one_line(exc: BaseException, secret: str | None = None) -> str:
    """An exception as one line of text that can never carry the password."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if secret:
        text = text.replace(secret, "***")
    return text[:300]


def unreachable(target: str, exc: BaseException, secret: str | None = None) -> Unreachable:
    """A failed connect: bad input when a scan starts (exit 2), retried when it happens mid-scan."""
    return Unreachable(f"{mask_url(target)}: cannot connect ({one_line(exc, secret)})")


@dataclass(eq=False, slots=True)
class WatchedRead:
    """One read under a ReadWatchdog. The read loop appends what it receives to `rows` (its own buffer, a list or
    a bytearray, so progress costs nothing per row), bumps `blocks` when it hands a buffer on and starts a new one, and
    sets `paused` while the records it handed on are being scanned (the server is not being waited for)."""

    on_stall: Callable[[], None]
    since: float
    rows: list[Any] | bytearray = field(default_factory=list)
    blocks: int = 0
    paused: bool = False
    seen: tuple[int, int] = (0, 0)
    stalled: bool = False  # the watchdog gave up on this read

    def check(self, now: float, timeout: float) -> None:
        progress = (self.blocks, len(self.rows))
        if self.paused or progress != self.seen:
            self.seen, self.since = progress, now
        elif not self.stalled and now - self.since >= timeout:
            self.stalled = True
            self.on_stall()


class ReadWatchdog:
    """A read timeout for drivers that have none (libpq): while a read is watched, a thread checks twice a
    second that it received something; after `timeout` seconds of silence it calls the read's `on_stall`,
    which shuts the connection's socket so that the blocked read fails at once (and is retried)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._reads: set[WatchedRead] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    @contextlib.contextmanager
    def watch(self, on_stall: Callable[[], None]) -> Iterator[WatchedRead]:
        read = WatchedRead(on_stall, time.monotonic())
        with self._lock:
            self._reads.add(read)
            # A forked worker inherits the object but not the thread.
            if self._thread is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="spillguard-read-timeout", daemon=True)
                self._thread.start()
        try:
            yield read
        finally:
            with self._lock:
                self._reads.discard(read)

    def _run(self) -> None:
        tick = min(0.5, self.timeout / 4)
        while True:
            time.sleep(tick)
            # Under the lock: a read that has left `watch` (its socket perhaps closed, the descriptor reused)
            # is never acted on.
            with self._lock:
                if not self._reads:
                    self._thread = None  # idle: the next watched read starts a new thread
                    return
                now = time.monotonic()
                for read in self._reads:
                    read.check(now, self.timeout)


def shut_socket(fd: int) -> Callable[[], None]:
    """An on_stall that ends a blocked read on the socket `fd`: shutting the socket down (through a
    duplicate, so the driver still owns and closes its own descriptor) makes the driver see end-of-file."""

    def shut() -> None:
        with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)

    return shut


class RateLimiter:
    """Spaces requests evenly so a scan never sends more than `rps` requests a second (per process)."""

    def __init__(self, rps: float | None) -> None:
        self.interval = 1.0 / rps if rps else 0.0
        self.next_at = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            delay = self.next_at - now
            self.next_at = max(now, self.next_at) + self.interval
        if delay > 0:
            time.sleep(delay)


class StoreSource(SourceDefaults):
    """What every live-store source holds: the target as shown (password masked), the options,
    the password and the pacing of its requests. `family` names the store (its password variables are
    the registry's, by scheme)."""

    def __init__(self, target: str, family: str, options: dict[str, Any]) -> None:
        self.target = mask_url(target)
        self.options = StoreOptions.from_kwargs(options)
        self.password = resolve_password(target, self.options)
        self.limiter = RateLimiter(self.options.max_rps)

    def reset(self) -> None:
        """Drop the connection (after it failed); the next request opens a new one."""
        raise NotImplementedError

    def close(self) -> None:
        self.reset()


def close_quietly(conn: Any, errors: type[Exception]) -> None:
    """Close a connection that may be broken already: an error closing it changes nothing."""
    if conn is not None:
        with contextlib.suppress(errors):
            conn.close()


class ReconnectingDataset(ReaderDefaults):
    """A dataset of a source that holds connections: after a dropped connection, resetting the
    dataset resets its source, so the partition's retry starts on a new connection."""

    __slots__ = ()
    source: StoreSource

    def reset(self) -> None:
        self.source.reset()


def json_row_tables(batches: Iterable[list[bytes]], dataset: str, malformed: MalformedSink) -> Iterator[pa.Table]:
    """Rows fetched as JSON text, one object per row, as Arrow tables of about BLOCK_BYTES each.

    `batches` are the rows of successive fetches; a block ends after the fetch that fills it."""
    line, size = 1, 0
    buf: list[bytes] = []
    for rows in batches:
        for row in rows:
            buf.append(row)
            size += len(row)
        if size >= BLOCK_BYTES:
            yield from json_lines_to_tables(b"\n".join(buf), line, dataset, malformed)
            line += len(buf)
            buf, size = [], 0
    if buf:
        yield from json_lines_to_tables(b"\n".join(buf), line, dataset, malformed)


def split_range(lo: int, hi: int, parts: int) -> list[tuple[int, int]]:
    """[lo, hi] cut into at most `parts` contiguous half-open ranges [a, b); the last ends at hi + 1."""
    parts = max(1, min(parts, hi - lo + 1))
    step = (hi - lo + 1 + parts - 1) // parts
    return [(a, min(a + step, hi + 1)) for a in range(lo, hi + 1, step)]


def partition_count(rows: float, per_partition: int, cap: int = 4096) -> int:
    return max(1, min(cap, int(rows // max(per_partition, 1)) + (1 if rows % max(per_partition, 1) else 0)))
