"""The pure-Python paths the native core replaced, kept as references: the differential tests hold the core to
them, and bench/bench_native.py times both side by side. Not used by spillguard itself."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spillguard.detect.arrays import as_text, string_buffers, unique_counts

_DATABASES: dict[tuple[tuple[bytes, ...], tuple[int, ...], tuple[int, ...]], object] = {}


def _database(exprs: list[bytes], flags: list[int], ids: list[int]) -> object:
    """Compiled once per pattern set, as the engine kept them."""
    import hyperscan

    key = (tuple(exprs), tuple(flags), tuple(ids))
    if key not in _DATABASES:
        db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        db.compile(expressions=exprs, ids=ids, elements=len(exprs), flags=flags)
        _DATABASES[key] = db
    return _DATABASES[key]


def matches(exprs: list[bytes], flags: list[int], ids: list[int], text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(rule id, value index) per match end: values joined with "\\n" by Arrow, the Python Vectorscan binding with
    a Python callback per match, value indices by numpy."""
    n = len(text)
    db: Any = _database(exprs, flags, ids)
    filled = pc.fill_null(text, "") if text.null_count else text
    filled = filled.cast(pa.string())  # Arrow's join has no 64-bit-offset kernel
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, n], pa.int32()), filled), "\n")
    j_off, j_data = string_buffers(joined)
    data = j_data[j_off[0] : j_off[1]].tobytes() + b"\n"
    offsets, _ = string_buffers(filled)
    starts = offsets[:-1] - offsets[0] + np.arange(n, dtype=np.int64)
    ids_found: list[int] = []
    ends: list[int] = []
    add_id, add_end = ids_found.append, ends.append

    def on_match(rule_id: int, _from: int, to: int, _flags: int, _ctx: object) -> None:
        add_id(rule_id)
        add_end(to)

    db.scan(data, match_event_handler=on_match)
    if not ids_found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rid = np.asarray(ids_found, np.int64)
    return rid, np.clip(np.searchsorted(starts, np.asarray(ends, np.int64) - 2, side="right") - 1, 0, n - 1)


def keyed_hash64(keys: np.ndarray, len_key: np.uint64, arr: pa.Array) -> np.ndarray:
    """spillguard.keys.Hasher as numpy computed it: per byte (b + 1) * key[position], summed per value (a padded
    matrix product, or one flat reduceat), xor length * len_key, splitmix64; nulls 0, a zero result 1."""
    arr = as_text(arr)
    valid = np.asarray(arr.is_valid()) if arr.null_count else None
    if valid is not None:
        arr = pc.fill_null(arr, "")
    offsets, data = string_buffers(arr)
    base, n = offsets[0], len(arr)
    lengths = np.diff(offsets)
    chunk = data[base : offsets[-1]]
    rows = np.flatnonzero(lengths)
    width = int(lengths.max()) if n else 0
    with np.errstate(over="ignore"):
        if rows.size and width <= keys.size and rows.size * width <= 2 * chunk.size:
            # one padded row per value: a matrix-vector product (the fast path for similar lengths)
            grid = np.zeros((rows.size, width), np.uint64)
            grid[np.arange(width) < lengths[rows][:, None]] = chunk.astype(np.uint64) + np.uint64(1)
            sums = np.zeros(n, np.uint64)
            sums[rows] = grid @ keys[:width]
        else:
            wide = chunk.astype(np.uint64)
            pos = np.arange(wide.size, dtype=np.int64) - np.repeat(offsets[:-1] - base, lengths)
            parts = (wide + np.uint64(1)) * keys[pos & (keys.size - 1)]
            sums = np.zeros(n, np.uint64)
            filled = lengths > 0
            sums[filled] = np.add.reduceat(parts, (offsets[:-1] - base)[filled]) if parts.size else 0
        h = sums ^ (lengths.astype(np.uint64) * len_key)
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    h[h == 0] = 1
    if valid is not None:
        h[~valid] = 0
    return h


def _sha256_each(chunks: Iterable[bytes]) -> Iterator[bytes]:
    return (hashlib.sha256(c).digest() for c in chunks)


def hmac_digests(key: bytes, arr: pa.Array) -> bytes:
    """HMAC-SHA-256 of each value (a null as empty) as hashlib computed it, value by value, concatenated."""
    arr = as_text(arr)
    arr = pc.fill_null(arr, "") if arr.null_count else arr
    values = arr.view(pa.large_binary() if pa.types.is_large_string(arr.type) else pa.binary()).to_pylist()
    k0 = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
    ipad, opad = bytes(b ^ 0x36 for b in k0), bytes(b ^ 0x5C for b in k0)
    return b"".join(_sha256_each(opad + d for d in _sha256_each(ipad + v for v in values)))


_PAD = 256  # sorts after every byte value


def entropy_per_value(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(Shannon entropy in bits per character, byte length) of every value, vectorised."""
    text = pc.fill_null(as_text(arr), "")
    offsets, data = string_buffers(text)
    n = len(text)
    lengths = np.diff(offsets)
    base = offsets[0]
    chunk = data[base : offsets[-1]]
    if chunk.size == 0:
        return np.zeros(n), lengths
    rows = np.flatnonzero(lengths)
    row_len = lengths[rows]
    width = int(row_len.max())
    if rows.size * width <= 2 * chunk.size:
        # Each value's bytes sorted within its own row (16-bit row sorts are SIMD, a global int64 sort is
        # not); runs of equal bytes are the counts, in the same (value, byte) order as the general path.
        if rows.size * width == chunk.size:
            grid = chunk.reshape(rows.size, width).astype(np.uint16)
        else:
            grid = np.full((rows.size, width), _PAD, np.uint16)
            grid[np.arange(width) < row_len[:, None]] = chunk
        grid.sort(axis=1)
        flat = grid.ravel()
        edge = np.empty(flat.size, bool)
        edge[0] = True
        np.not_equal(flat[1:], flat[:-1], out=edge[1:])
        edge[::width] = True
        bounds = np.flatnonzero(edge)
        counts = np.diff(np.append(bounds, flat.size))
        real = flat[bounds] != _PAD
        who = rows[bounds[real] // width]
        counts = counts[real]
    else:  # lengths too uneven to pad
        owner = np.repeat(np.arange(n, dtype=np.int64), lengths)
        keys, counts = unique_counts(owner * 256 + chunk.astype(np.int64))
        who = keys // 256
    p = counts / lengths[who]
    contrib = -p * np.log2(p)
    return np.bincount(who, weights=contrib, minlength=n), lengths


MAX_DEPTH = 64


def _depth(line: bytes) -> int:
    """Bracket nesting depth of one line (brackets inside strings count too: an upper bound)."""
    b = np.frombuffer(line, np.uint8)
    step = ((b == 123) | (b == 91)).astype(np.int32) - ((b == 125) | (b == 93)).astype(np.int32)
    return int(np.cumsum(step).max()) if b.size else 0


def _scan_lines(data: bytes) -> tuple[np.ndarray, int]:
    """(indices of lines Arrow's reader must not get, lines that begin with `{`) in one pass over the block.

    A line is suspect when it is not an object (`null` as a first line crashes the reader) or is nested
    deeper than MAX_DEPTH. Vectorised (bracket positions, not a per-byte count); exact depth only for
    the few lines with many brackets."""
    arr = np.frombuffer(data, np.uint8)
    starts = np.concatenate(([0], np.flatnonzero(arr == 10) + 1))
    starts = starts[starts < arr.size]
    if starts.size == 0:
        return np.zeros(0, np.int64), 0
    first = arr[starts]
    objects = int(np.count_nonzero(first == 123))
    # Blank: an empty line, or a lone CR (CRLF files). A CR followed by anything else is not blank:
    # Arrow skips the CR as whitespace, and a non-object after it (`\rnull`) crashes the process.
    after = starts + 1
    lone_cr = (first == 13) & ((after == arr.size) | (arr[np.minimum(after, arr.size - 1)] == 10))
    suspect = (first != 123) & (first != 10) & ~lone_cr
    brackets = np.flatnonzero((arr | 32) == 123)  # `{` or `[`: they differ only in bit 5
    opens = np.diff(np.searchsorted(brackets, np.append(starts, arr.size)))
    for i in np.flatnonzero(~suspect & (opens > MAX_DEPTH)).tolist():
        end = starts[i + 1] if i + 1 < starts.size else arr.size
        suspect[i] = _depth(data[starts[i] : end]) > MAX_DEPTH
    return np.flatnonzero(suspect), objects


# -- placeholders.is_placeholder's literal alternations, before they became a back-reference and substring searches

def token_filler(secret: str) -> bool:
    import re
    import string

    from spillguard.detect import placeholders as ph

    runs = [re.escape(c * ph.MIN_RUN) for c in string.ascii_letters + string.digits]
    runs += [re.escape(c * ph._FILL_RUN) for c in ph._FILL]
    return re.search("|".join([*runs, *ph._sequences(ph.MIN_SEQUENCE)]), secret) is not None


def placeholder_words(secret: str) -> bool:
    import re

    from spillguard.detect import placeholders as ph

    forms = ph._WORD_FORMS if len(secret) <= ph.LONG else [w for w in ph._WORD_FORMS if len(w) > ph._SHORT_WORD]
    return re.search("|".join(re.escape(w) for w in forms), secret) is not None


# -- freetext.free_text_values before spaces were counted natively and lengths read from the offsets

def free_text_values(text: pa.Array) -> np.ndarray | None:
    from spillguard.detect import freetext as ft

    lengths = np.asarray(pc.fill_null(pc.binary_length(text), 0), dtype=np.int64)
    enough = ft.MIN_PROSE_SHARE * max(int(np.count_nonzero(lengths)), 1)
    if np.count_nonzero(lengths >= ft._MIN_BYTES) < enough:
        return None
    spaces = np.asarray(pc.fill_null(pc.count_substring(text, " "), 0), dtype=np.int64)
    mask = spaces >= ft.MIN_WORDS - 1
    if mask.any():
        idx = np.flatnonzero(mask)
        cand = text.take(pa.array(idx))
        letters = np.asarray(pc.fill_null(pc.count_substring_regex(cand, r"[\pL ]"), 0), dtype=np.int64)
        length = np.asarray(pc.fill_null(pc.utf8_length(cand), 1), dtype=np.int64)
        small = np.asarray(pc.fill_null(pc.match_substring_regex(cand, ft._SMALL_WORD), False), dtype=bool)
        mask[idx] = (letters >= ft.MIN_LETTER_SHARE * np.maximum(length, 1)) & small
    if np.count_nonzero(mask) < enough:
        return None
    return np.flatnonzero(spaces >= 1)


# -- validators._vec_card before its native pass

def vec_card(values: pa.Array) -> np.ndarray:
    from spillguard.detect import cards
    from spillguard.detect.validators import _vec_bool

    digits = pc.replace_substring_regex(pc.fill_null(values, ""), r"[^0-9]", "")
    offsets, data = string_buffers(digits)
    n = len(digits)
    lengths = np.diff(offsets)
    base = offsets[0]
    d = data[base : offsets[-1]].astype(np.int64) - 48
    if d.size == 0:
        return np.zeros(n, bool)
    owner = np.repeat(np.arange(n), lengths)
    from_end = (offsets[1:][owner] - base - 1) - np.arange(d.size)
    doubled = d * 2
    v = np.where(from_end % 2 == 1, doubled - 9 * (doubled > 9), d)
    sums = np.bincount(owner, weights=v, minlength=n).astype(np.int64)
    first = np.zeros(n, np.int64)
    first[lengths > 0] = d[(offsets[:-1] - base)[lengths > 0]]
    same = np.bincount(owner, weights=(d != first[owner]), minlength=n) == 0
    issuer = _vec_bool(pc.match_substring_regex(digits, cards.issuer_pattern()))
    out: np.ndarray = (sums % 10 == 0) & issuer & ~same
    return out


def resolve_value_eager(ruleset: Any, value: str, rule_ids: Iterable[int]) -> list[tuple[int, int, int]]:
    """RuleSet.resolve_value as it was: every match validated, then the most specific non-overlapping ones kept."""
    spans: list[tuple[int, int, int, int]] = []
    for rid in rule_ids:
        rule = ruleset.rules[rid]
        for m in rule.value_re.finditer(value):
            start, end = rule.span(m)
            if ruleset._validate(rid, value[start:end], value, start):
                spans.append((-rule.priority, -(end - start), start, rid))
    spans.sort()
    kept: list[tuple[int, int, int]] = []
    for _neg_pri, neg_len, start, rid in spans:
        end = start - neg_len
        if all(end <= s or start >= e for _, s, e in kept):
            kept.append((rid, start, end))
    kept.sort(key=lambda k: k[1])
    return kept


def collapse_same_category_sorted(ruleset: Any, value_idx: np.ndarray, rule_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RuleSet._collapse_same_category as it was: the pairs sorted by value and falling priority (lexsort), the
    first of each value kept, and every pair of a value whose rules span several categories."""
    spanning = ruleset._spans_lines[rule_idx]
    if spanning.any():
        v, r = collapse_same_category_sorted(ruleset, value_idx[~spanning], rule_idx[~spanning])
        return np.concatenate([v, value_idx[spanning]]), np.concatenate([r, rule_idx[spanning]])
    if value_idx.size < 2:
        return value_idx, rule_idx
    counts = np.bincount(value_idx)
    if not (counts[value_idx] > 1).any():
        return value_idx, rule_idx
    cats = ruleset._category_code[rule_idx]
    order = np.lexsort((-ruleset._priority[rule_idx], value_idx))
    v_sorted, r_sorted = value_idx[order], rule_idx[order]
    starts = np.flatnonzero(np.r_[True, v_sorted[1:] != v_sorted[:-1]])
    cat_sorted = cats[order]
    same = np.minimum.reduceat(cat_sorted, starts) == np.maximum.reduceat(cat_sorted, starts)
    group = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, v_sorted.size]))
    first = np.zeros(v_sorted.size, bool)
    first[starts] = True
    keep = first | ~same[group]
    return v_sorted[keep], r_sorted[keep]


def _re2(values: pa.Array, pattern: str) -> np.ndarray:
    return np.asarray(pc.fill_null(pc.match_substring_regex(values, pattern), False), dtype=bool)


def vec_email(values: pa.Array) -> np.ndarray:
    """validators._vec_email as Arrow's RE2 kernel ran it."""
    out: np.ndarray = ~_re2(values, r"\.\.|^\.|^[^@]{65,}@")
    return out


def vec_ipv6(values: pa.Array) -> np.ndarray:
    """validators._vec_ipv6 as Arrow's RE2 kernel ran it."""
    out: np.ndarray = _re2(values, r"::|[0-9A-Fa-f]{3}") & ~_re2(values, r"::.*::")
    return out


def vec_mac(values: pa.Array) -> np.ndarray:
    """validators._vec_mac as Arrow's RE2 kernel ran it."""
    out: np.ndarray = ~_re2(values, r"^[0:.\-]+$|^[fF:.\-]+$")
    return out
