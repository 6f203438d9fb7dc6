"""What every live-store adapter shares: options, credentials, dataset filters, pacing, transient errors,
and the reading of rows that the server wrote as JSON.

Store sources take the same keyword options (`open_target(url, **source_options)`):

    sample: int | None       random sample of N records per dataset; None = exhaustive (the default)
    include / exclude        glob patterns on dataset names (`public.users`, `users*`, `session:*`)
    subject_fields           {dataset name or glob: field} naming the person field per dataset
    connect_timeout          seconds before an unreachable host is reported (default 10)
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
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from spillguard.errors import UserError
from spillguard.sources.base import MalformedSink, ReaderDefaults, SourceDefaults
from spillguard.sources.records import json_lines_to_tables
from spillguard.targets import mask_url, parse_url

# Bytes of JSON lines handed to Arrow's reader at once: big enough to amortise, small enough to keep RSS flat.
BLOCK_BYTES = 8 << 20

class TransientError(Exception):
    """The connection dropped mid-read: the partition is retried from its start (its last checkpoint)."""


@dataclass(slots=True)
class StoreOptions:
    sample: int | None = None
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    subject_fields: dict[str, str] = field(default_factory=dict)
    subject_field: str | None = None
    connect_timeout: float = 10.0
    max_rps: float | None = None
    password: str | None = None
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
    """The URL's password, else --ask-password, else SPILLGUARD_PASSWORD, else the scheme's own variables
    (the `password_env` column of `spillguard.targets.SCHEMES`)."""
    url = parse_url(target)
    if url.password is not None:
        return url.password
    if options.password is not None:
        return options.password
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


def unreachable(target: str, exc: BaseException, secret: str | None = None) -> UserError:
    return UserError(f"{mask_url(target)}: cannot connect ({one_line(exc, secret)})")


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
