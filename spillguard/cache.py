"""The on-disk cache of work derived from spillguard's own rules, never from scanned data: compiled Vectorscan
databases (detect/matcher.py) and the parsed built-in rule files (rules/__init__.py).

Entries are named by a digest of everything they derive from, so a changed input is a new entry, never a stale
one; a missing, unreadable or read-only cache only costs the work again.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def cache_file(kind: str, name: str) -> Path:
    """Where entry `name` of one kind of cached work lives (`$XDG_CACHE_HOME/spillguard/<kind>/<name>`)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "spillguard" / kind / name


def read_cached(kind: str, name: str) -> bytes | None:
    try:
        return cache_file(kind, name).read_bytes()
    except OSError:
        return None


def write_cached(kind: str, name: str, data: bytes) -> None:
    """Store an entry whole or not at all (written aside, then renamed over), readable by its owner only."""
    path = cache_file(kind, name)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError:  # a read-only or odd home only costs the work again next run
        with contextlib.suppress(OSError):
            tmp.unlink()
