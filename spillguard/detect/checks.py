"""Vectorised plausibility checks for field-only rules: one boolean per value, no Python loops."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import spillguard._native as _native
from spillguard.detect.arrays import as_text, native_column, string_buffers, take

_NUMERIC = r"^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*$"
# No counted repeat: RE2 expands {0,78} over Unicode classes into a large, slow automaton.
_NAME = r"^\p{L}[\p{L}\p{M} .'’\-]*[\p{L}\p{M}.]$"
_DATE_PATTERNS = (
    r"^\s*(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})(?:[T ].*)?$",
    r"^\s*(?P<d>\d{1,2})[./\-](?P<m>\d{1,2})[./\-](?P<y>\d{4})\s*$",
    r"^\s*(?P<y>\d{4})/(?P<m>\d{1,2})/(?P<d>\d{1,2})\s*$",
    r"^\s*(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})\s*$",
    r"^\s*(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4})\s*$",  # US order: 3/29/1982
)


def _bool(arr: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(arr, False), dtype=bool)


def as_number(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(values as float64, is-numeric mask)."""
    t = arr.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        valid = np.asarray(arr.is_valid())
        values = np.asarray(pc.fill_null(pc.cast(arr, pa.float64()), 0.0), dtype=np.float64)
        return values, valid & np.isfinite(values)
    if pa.types.is_boolean(t):
        return np.zeros(len(arr), np.float64), np.zeros(len(arr), bool)
    text = as_text(arr)
    ok = _bool(pc.match_substring_regex(text, _NUMERIC))
    cleaned = pc.if_else(pa.array(ok), pc.utf8_trim_whitespace(text), "0")
    values = np.asarray(pc.fill_null(pc.cast(cleaned, pa.float64()), 0.0), dtype=np.float64)
    return values, ok & np.isfinite(values)


# Tests of one character, true for a value when any of its characters passes; _any_char decides ASCII
# values from their bytes with a table that the test itself builds.
_CHAR_TESTS: dict[str, Callable[[pa.Array], np.ndarray]] = {
    "letter_or_digit": lambda text: _bool(pc.match_substring_regex(text, r"[\p{L}\p{N}]")),
    "space": lambda text: _bool(pc.match_substring_regex(text, r"\s")),
    # Any character Arrow's trim keeps: the value is not empty once whitespace is trimmed.
    "not_whitespace": lambda text: _bool(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(text)), 0)),
}


@cache
def _ascii_table(test: str) -> np.ndarray:
    """Per byte value: 1 where that ASCII character passes the test (bytes from 128 up never decide)."""
    table = np.zeros(256, np.uint8)
    table[:128] = _CHAR_TESTS[test](pa.array([chr(c) for c in range(128)], pa.string()))
    return table


def native_verdicts(
    arr: pa.Array, native: Callable[..., bytes], extra: tuple[object, ...], fallback: Callable[[pa.Array], np.ndarray]
) -> np.ndarray:
    """A check run by the native core, one verdict byte per value (1 passes, 0 fails, 2 undecided): the undecided
    values go to `fallback` (the check's Arrow path), nulls fail. The one home of that contract (native/checks.c)."""
    if len(arr) == 0:
        return np.zeros(0, bool)
    column, valid = native_column(arr)
    verdict = np.frombuffer(native(*column, *extra), np.uint8)
    out: np.ndarray = verdict == 1
    undecided = np.flatnonzero(verdict == 2)
    if undecided.size:
        out[undecided] = fallback(take(as_text(arr), undecided))
    if valid is not None:
        out &= valid
    return out


def _any_char(text: pa.Array, test: str) -> np.ndarray:
    """_CHAR_TESTS[test] per value: from the bytes (native core) when an ASCII character passes or every byte is
    ASCII; the few other values (non-ASCII text without a passing ASCII character) run the test itself."""
    return native_verdicts(text, _native.any_byte, (_ascii_table(test).tobytes(),), _CHAR_TESTS[test])


def _nonempty(arr: pa.Array) -> np.ndarray:
    if pa.types.is_boolean(arr.type):
        return np.zeros(len(arr), bool)
    return _any_char(as_text(arr), "not_whitespace")


def _text(arr: pa.Array) -> np.ndarray:
    return _any_char(as_text(arr), "letter_or_digit")


def _person_name(arr: pa.Array) -> np.ndarray:
    """A name's shape: values of code points below U+0800 (and ’) by the native core, the rest by
    _person_name_arrow."""
    return native_verdicts(arr, _native.name_shape, (_name_classes(), _NAME_MAX), _person_name_arrow)


_NAME_MAX = 80


@cache
def trimmed_ascii() -> bytes:
    """Per byte value: 1 where Arrow's utf8_trim_whitespace removes that ASCII character."""
    return bytes((np.frombuffer(_name_classes()[:128], np.uint8) >> 2 & 1).tolist() + [0] * 128)


@cache
def _name_classes() -> bytes:
    """Per code point below U+0800, its class for the native person_name check, decided by the Arrow kernels the
    check's Arrow path uses: 1 letter (\\p{L}), 2 inner punctuation, 4 whitespace (utf8_trim_whitespace), 16 mark
    (\\p{M}), 32 the full stop."""
    chars = pa.array([chr(c) for c in range(0x800)], pa.string())
    letter = _bool(pc.match_substring_regex(chars, r"^\p{L}$"))
    mark = _bool(pc.match_substring_regex(chars, r"^\p{M}$"))
    space = np.asarray(pc.utf8_length(pc.utf8_trim_whitespace(chars))) == 0
    inner = np.zeros(0x800, bool)
    inner[[ord(" "), ord("."), ord("'"), ord("-")]] = True
    dot = np.zeros(0x800, bool)
    dot[ord(".")] = True
    classes = letter * 1 | inner * 2 | space * 4 | mark * 16 | dot * 32
    return bytes(classes.astype(np.uint8).tobytes())


def _person_name_arrow(arr: pa.Array) -> np.ndarray:
    text = pc.utf8_trim_whitespace(as_text(arr))
    out: np.ndarray = _bool(pc.match_substring_regex(text, _NAME)) & _bool(pc.less_equal(pc.utf8_length(text), _NAME_MAX))
    return out


# ABO group with an optional Rh factor, as written on forms: A+, O neg, AB Rh-negative, B positive.
_BLOOD_TYPE = r"(?i)^\s*(?:A|B|AB|O|0)\s*(?:[+-]|\s(?:Rh\s?)?(?:pos(?:itive)?|neg(?:ative)?)|Rh\s?[+-]|Rh[DdPpNn]\w*)?\s*$"
# ICD-10 code: a letter, two digits (or digit + A/B in ICD-10-CM), an optional dot and up to four more characters.
_ICD10 = r"^\s*[A-TV-Z][0-9][0-9AB](?:\.?[0-9A-TV-Z]{1,4})?\s*$"


def _blood_type(arr: pa.Array) -> np.ndarray:
    return _bool(pc.match_substring_regex(as_text(arr), _BLOOD_TYPE))


def _icd10(arr: pa.Array) -> np.ndarray:
    return _bool(pc.match_substring_regex(as_text(arr), _ICD10))


def _date(arr: pa.Array) -> np.ndarray:
    this_year = dt.date.today().year
    t = arr.type
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        years = pc.year(arr)
        return _bool(pc.and_(pc.greater_equal(years, 1900), pc.less_equal(years, this_year)))
    text = as_text(arr)
    result = np.zeros(len(arr), bool)
    for pattern in _DATE_PATTERNS:
        parts = pc.extract_regex(text, pattern)
        if parts.null_count == len(parts):
            continue
        y = pc.cast(pc.struct_field(parts, "y"), pa.int32())
        m = pc.cast(pc.struct_field(parts, "m"), pa.int32())
        d = pc.cast(pc.struct_field(parts, "d"), pa.int32())
        ok = pc.and_(
            pc.and_(pc.greater_equal(y, 1900), pc.less_equal(y, this_year)),
            pc.and_(pc.and_(pc.greater_equal(m, 1), pc.less_equal(m, 12)), pc.and_(pc.greater_equal(d, 1), pc.less_equal(d, 31))),
        )
        result |= _bool(ok)
    return result


def _range(lo: float, hi: float) -> Callable[[pa.Array], np.ndarray]:
    def check(arr: pa.Array) -> np.ndarray:
        values, ok = as_number(arr)
        return ok & (values >= lo) & (values <= hi)

    return check


def entropy_per_value(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(Shannon entropy in bits per byte, byte length) of every value, by the native core (nulls: 0 and 0)."""
    text = pc.fill_null(as_text(arr), "")
    offsets, _ = string_buffers(text)
    ent = np.frombuffer(_native.entropy(*native_column(text)[0]), np.float64) if len(text) else np.zeros(0)
    return ent, np.diff(offsets)


# "Bearer <token>": the credential is the part after the scheme word. The one list, for both paths.
_SCHEME_WORDS = ("bearer", "basic", "token", "digest", "apikey")
_SCHEME = rf"^(?i:{'|'.join(_SCHEME_WORDS)})\s+"
_SECRET_LENGTH = (16, 16384)
_SECRET_ENTROPY = 3.0


def _secret(arr: pa.Array) -> np.ndarray:
    """A credential-like value: after an authorization scheme, no space, 16..16384 bytes, entropy >= 3 bits per byte.
    Decided by the native core in one pass; values it leaves undecided (non-ASCII near the start, where RE2's
    Unicode case folding could make a scheme word) take the Arrow path."""
    schemes = "\n".join(_SCHEME_WORDS).encode()
    return native_verdicts(arr, _native.secret_check, (*_SECRET_LENGTH, _SECRET_ENTROPY, schemes), _secret_arrow)


def _secret_arrow(arr: pa.Array) -> np.ndarray:
    text = pc.replace_substring_regex(as_text(arr), _SCHEME, "")
    ent, lengths = entropy_per_value(text)
    no_space = ~_any_char(text, "space")
    valid = np.asarray(text.is_valid())
    out: np.ndarray = valid & no_space & (lengths >= _SECRET_LENGTH[0]) & (lengths <= _SECRET_LENGTH[1]) & (ent >= _SECRET_ENTROPY)
    return out


def _number(arr: pa.Array, lo: float | None, hi: float | None) -> np.ndarray:
    return _range(lo if lo is not None else float("-inf"), hi if hi is not None else float("inf"))(arr)


# The checks a rule's `check` may name, in one place: the rule loader validates against these keys.
# Each takes the column and the rule's check_min/check_max (used by "number" only).
CHECKS: dict[str, Callable[[pa.Array, float | None, float | None], np.ndarray]] = {
    "nonempty": lambda arr, lo, hi: _nonempty(arr),
    "text": lambda arr, lo, hi: _text(arr),
    "person_name": lambda arr, lo, hi: _person_name(arr),
    "date": lambda arr, lo, hi: _date(arr),
    "number": _number,
    "latitude": lambda arr, lo, hi: _range(-90.0, 90.0)(arr),
    "longitude": lambda arr, lo, hi: _range(-180.0, 180.0)(arr),
    "secret": lambda arr, lo, hi: _secret(arr),
    "blood_type": lambda arr, lo, hi: _blood_type(arr),
    "icd10": lambda arr, lo, hi: _icd10(arr),
}


def run_check(name: str, arr: pa.Array, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    return CHECKS[name](arr, lo, hi)
