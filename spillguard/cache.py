"""The on-disk cache of work derived from spillguard's own rules, never holding scanned data: compiled Vectorscan
databases (detect/matcher.py; a narrowed one holds the rules some column's bytes let match, which says which rules,
not what the column holds, and beside it the seconds scans spent without it), and the parsed built-in rule files
(rules/__init__.py), and readings of the rules' patterns (`readings`: what a match needs of a column, which
patterns can span lines).

Entries are named by a digest of everything they derive from, so a changed input is a new entry, never a stale
one; a missing, unreadable or read-only cache only costs the work again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson

from spillguard.errors import UserError
from spillguard.outfiles import private_file


def _folder(kind: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "spillguard" / kind


def cache_file(kind: str, name: str) -> Path:
    """Where entry `name` of one kind of cached work lives (`$XDG_CACHE_HOME/spillguard/<kind>/<name>`)."""
    return _folder(kind) / name


def read_cached(kind: str, name: str) -> bytes | None:
    try:
        return cache_file(kind, name).read_bytes()
    except OSError:
        return None


T = TypeVar("T")
R = TypeVar("R")


def readings(
    kind: str, key: object, items: Sequence[T], read: Callable[[T], R], encode: Callable[[R], object], decode: Callable[[Any], R]
) -> list[R]:
    """`read` of each item, kept as JSON in the cache under a digest of `key`, which names everything a reading
    depends on (the items, the reading's version, the Python that parses patterns): loaded when the entry is there
    whole, else read and stored."""
    name = f"{hashlib.sha256(repr(key).encode()).hexdigest()[:32]}.json"
    cached = read_cached(kind, name)
    if cached is not None:
        try:
            out = [decode(d) for d in orjson.loads(cached)]
            if len(out) == len(items):
                return out
        except (orjson.JSONDecodeError, TypeError, ValueError, IndexError, KeyError):
            pass  # a damaged entry: read again and rewritten
    out = [read(item) for item in items]
    write_cached(kind, name, orjson.dumps([encode(r) for r in out]))
    return out


def write_cached(kind: str, name: str, data: bytes, sync: bool = True) -> None:
    """Store an entry whole or not at all, owner-only (outfiles.private_file: written aside, then renamed over);
    `sync=False` for a small entry written often whose loss in a crash costs nothing (its reader takes a missing
    or damaged one as absent)."""
    path = cache_file(kind, name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with private_file(path, sync=sync) as fh:
            fh.write(data)
    except (OSError, UserError):
        pass  # a read-only or odd home only costs the work again next run


def drop_entries(kind: str, suffix: str) -> None:
    """Remove the entries of one kind whose names end with `suffix`: a form this version no longer reads (they would
    take their space for good). Whatever cannot be removed stays, as an unwritable cache only costs work."""
    with contextlib.suppress(OSError):
        for path in _folder(kind).glob(f"*{suffix}"):
            with contextlib.suppress(OSError):
                path.unlink()
