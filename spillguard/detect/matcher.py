"""Rule patterns as compiled Vectorscan databases, run over whole columns by the native core.

One home for how a rule becomes an engine expression (flags), how databases are compiled and cached (compiling
costs ~0.1 s each; scans and workers reuse them, across runs through a cache on disk holding rules only, no
data), and how a string column is scanned: `spillguard._native` (native/matcher.c) joins the values with "\n",
runs the database once and returns (rule id, value index) per match end, with no Python call per match.
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Sequence
from functools import cache
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import spillguard._native as _native
from spillguard.cache import cache_file, drop_entries, read_cached, write_cached

Matcher = _native.Matcher
_Key = tuple[tuple[bytes, ...], tuple[int, ...], tuple[int, ...]]
_COMPILED: dict[_Key, _native.Matcher] = {}
_MAX_BLOCK = 2**31  # a column's joined text above this is scanned in halves (the engine's block limit is 4 GB)


class PatternRule(Protocol):
    ignore_case: bool

    def hyperscan_expression(self, utf8: bool = False) -> bytes: ...


class CompileError(Exception):
    """The engine refused a pattern: `index` is the position of the refused expression (-1: the set as a whole)."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.message = message
        self.index = index


def rule_flags(ignore_case: bool, utf8: bool = False) -> int:
    """Every rule runs multi-line (^ and $ at value boundaries: values are joined with newlines). `utf8`: in UTF-8
    mode, for columns of valid UTF-8 (the engine's choice, RuleSet._raw_hits): classes and repeats count code points
    as Python's re does, and Vectorscan 5.4.9 takes other internal paths than in byte mode, where it misses matches of
    some small databases (tests/detect/test_engine_library.py)."""
    return int(_native.FLAG_MULTILINE | (_native.FLAG_CASELESS if ignore_case else 0) | (_native.FLAG_UTF8 if utf8 else 0))


def _cache_name(key: _Key) -> str:
    """The cache entry of a database: its patterns, the library, and the CPU it was compiled for (a database tuned
    for one CPU's instruction sets does not load on another: a cache shared by two kinds of machine keeps one entry
    for each instead of compiling again on every run, ~10 s for the built-in rules)."""
    where = (_native.vectorscan_version(), _native.vectorscan_platform(), platform.machine())
    digest = hashlib.sha256(repr((key, *where)).encode()).hexdigest()[:32]
    return f"{digest}.image"


def _load(key: _Key) -> _native.Matcher | None:
    """The cached database, mapped from its image (native/matcher.c: no copy; a damaged entry is refused)."""
    try:
        return _native.Matcher.map(str(cache_file("vectorscan", _cache_name(key))))
    except (OSError, _native.NativeError):
        return None


@cache
def _drop_former_entries() -> None:
    """Serialized databases (`.db`), the cache's form before images: ~2 MB each, never read again. Once a process."""
    drop_entries("vectorscan", ".db")


def _store(key: _Key, matcher: _native.Matcher) -> None:
    write_cached("vectorscan", _cache_name(key), matcher.image())
    _drop_former_entries()


def _key(expressions: Sequence[bytes], flags: Sequence[int], ids: Sequence[int]) -> _Key:
    return (tuple(expressions), tuple(flags), tuple(ids))


def cached_patterns(expressions: Sequence[bytes], flags: Sequence[int], ids: Sequence[int]) -> _native.Matcher | None:
    """The database of the expressions if this process or the disk cache holds it, without compiling."""
    key = _key(expressions, flags, ids)
    matcher = _COMPILED.get(key)
    if matcher is None:
        matcher = _load(key)
        if matcher is not None:
            _COMPILED[key] = matcher
    return matcher


def _spent_name(expressions: Sequence[bytes], flags: Sequence[int], ids: Sequence[int]) -> str:
    return _cache_name(_key(expressions, flags, ids)).removesuffix(".image") + ".spent"


def spent_before(expressions: Sequence[bytes], flags: Sequence[int], ids: Sequence[int]) -> float:
    """Seconds earlier runs on this machine scanned with wider databases where this one would have served (a number
    in the cache beside the databases; RuleSet weighs compiling it against them)."""
    data = read_cached("vectorscan", _spent_name(expressions, flags, ids))
    try:
        return max(float(data or b"0"), 0.0)
    except ValueError:
        return 0.0


def record_spent(expressions: Sequence[bytes], flags: Sequence[int], ids: Sequence[int], seconds: float) -> None:
    # Written a few times a scan (a file and a rename each): not synced, a number lost in a crash only delays a compile.
    write_cached("vectorscan", _spent_name(expressions, flags, ids), f"{seconds:.6f}".encode(), sync=False)


def compile_patterns(expressions: Sequence[bytes], flags: Sequence[int], ids: Sequence[int]) -> _native.Matcher:
    """One database of the expressions (reported under `ids`); from memory, the disk cache, or compiled now."""
    matcher = cached_patterns(expressions, flags, ids)
    if matcher is None:
        key = _key(expressions, flags, ids)
        try:
            matcher = _native.Matcher(list(expressions), list(flags), list(ids))
        except _native.NativeError as exc:
            message, index = exc.args if len(exc.args) == 2 else (str(exc), -1)  # (message, expression index)
            raise CompileError(str(message), int(index)) from None
        _store(key, matcher)
        _COMPILED[key] = matcher
    return matcher


def compile_rules(rules: Sequence[PatternRule]) -> _native.Matcher:
    """The rules as the scan runs them over text (UTF-8 mode), reported under their positions in `rules`."""
    return compile_patterns(
        [r.hyperscan_expression(utf8=True) for r in rules], [rule_flags(r.ignore_case, utf8=True) for r in rules], range(len(rules))
    )


def scan_text(matcher: _native.Matcher, text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(id, value index) of every match end in a string or large_string array without nulls."""
    n = len(text)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    wide = pa.types.is_large_string(text.type) or pa.types.is_large_binary(text.type)
    bufs = text.buffers()
    if wide and n > 1:
        off = np.frombuffer(bufs[1], np.int64)
        if off[text.offset + n] - off[text.offset] + n >= _MAX_BLOCK:
            half = n // 2
            r1, v1 = scan_text(matcher, text.slice(0, half))
            r2, v2 = scan_text(matcher, text.slice(half))
            return np.concatenate([r1, r2]), np.concatenate([v1, v2 + half])
    ids, values = matcher.scan(bufs[1], bufs[2], text.offset, n, wide)
    return np.frombuffer(ids, np.int64), np.frombuffer(values, np.int64)


def valid_utf8(text: pa.Array) -> bool:
    """Whether a string array's values are valid UTF-8 (a view of bytea or BLOB bytes may not be; ~0.1 ns a byte)."""
    try:
        text.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def text_bytes(text: pa.Array) -> int:
    """The bytes of a string array's values, from its offsets."""
    if len(text) == 0:
        return 0
    wide = pa.types.is_large_string(text.type) or pa.types.is_large_binary(text.type)
    off = np.frombuffer(text.buffers()[1], np.int64 if wide else np.int32)
    return int(off[text.offset + len(text)] - off[text.offset])


def scan_distinct(matcher: _native.Matcher, text: pa.Array) -> tuple[np.ndarray, np.ndarray, int]:
    """scan_text over each distinct value once: (id, value index) of every match end, grouped by value, and the
    bytes of the distinct values. A match that cannot hold a newline depends on its value alone (each value is
    scanned between the same separators), so for such patterns scanning one copy of each repeated value and handing
    its matches to every row holding it gives the pairs scan_text gives; a column of names, cities or device models
    costs its distinct values instead of its rows. (Matches of patterns that can span lines depend on the
    neighbouring values: the engine scans those over every row, `Rule.spans_lines`.)"""
    encoded = pc.dictionary_encode(text)
    distinct = encoded.dictionary
    ids, at = scan_text(matcher, distinct)
    if ids.size == 0:
        return ids, at, text_bytes(distinct)
    codes = np.asarray(encoded.indices, dtype=np.int64)
    hit = np.zeros(len(distinct), bool)
    hit[at] = True
    rows = np.flatnonzero(hit[codes])  # the rows holding a value with a match, grouped by that value below
    row_codes = codes[rows]
    order = np.argsort(row_codes, kind="stable")
    rows, row_codes = rows[order], row_codes[order]
    first = np.searchsorted(row_codes, at, "left")
    count = np.searchsorted(row_codes, at, "right") - first
    total = int(count.sum())
    runs = np.repeat(first - (np.cumsum(count) - count), count)
    return np.repeat(ids, count), rows[np.arange(total, dtype=np.int64) + runs], text_bytes(distinct)
