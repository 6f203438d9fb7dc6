"""Phone numbers as people type them, and the numbers that only look like phone numbers.

- Under a phone-named field, a value typed like a phone number (digit groups with separators, an optional
  `+`/`00` and a real calling code, 7 to 15 digits) is somebody's number even where the numbering plan does not
  allocate it (`+52 171557118`); bare digits there must still be a valid number.
- In text, a number right after a phone label (`Phone:`, `call me on`, `Fax`) is a phone when it is typed
  like one; North American shapes (`(312)515-2239`, `1-234-567-8900`, `312.714.8142`) are phones on their own.
- Decoys: a candidate preceded by a parcel-tracking, money-transfer (MTCN), order, account or similar label is
  not a phone, nor is a piece of a longer run of digit groups (a 22-digit tracking number written in fours).
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import spillguard._native as _native
from spillguard.detect.arrays import take

_EXTENSION = re.compile(r"\s*(?:x|ext\.?|#)\s*[0-9]{1,6}$", re.I)
_DATE_LIKE = re.compile(r"^\(?\d{1,4}\)?[./\-]\d{1,2}[./\-]\d{1,4}$|^(?:19|20)\d\d[./\-]\d{1,2}$")
_IP_LIKE = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_GROUPS = re.compile(r"[0-9]+")
# Labels that make the digits after them something else than a phone number (within the context window).
DECOY_BEFORE = re.compile(
    r"(?:track(?:ing)?|parcel|package|shipment|shipping|waybill|consignment|\bawb|\bups\b|fedex|usps|\bdhl\b|"
    r"mtcn|money\s*transfer|control\s*(?:no|number|#)|western\s*union|moneygram|invoice|order|account|acct|"
    r"iban|\bssn\b|social\s*security|isbn|serial|reference|\bref\b|case|ticket|transaction|confirmation|\bid\b|"
    r"\bmember|\bpolicy|\bcustomer|passport|licen[cs]e|\bcard|\bflight|booking|employee|student|\btax|\bvat\b|"
    r"routing|insurance|\bnational\b|\bpatient|\bclaim|\bbatch|\blot\b|\bmodel|\bpart\b|\bproduct|\bsku\b|version)"
    r"[^\n0-9]{0,24}\Z",
    re.I,
)
_RUN_BEFORE = re.compile(r"[0-9][ \-.]\Z|[0-9]\Z")
_RUN_AFTER = re.compile(r"^[ \-.][0-9]|^[0-9]")


@lru_cache(maxsize=1)
def calling_codes() -> frozenset[str]:
    from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

    return frozenset(str(cc) for cc in COUNTRY_CODE_TO_REGION_CODE)


def _strip_extension(text: str) -> str:
    return _EXTENSION.sub("", text.strip())


def typed_shape(text: str) -> bool:
    """Digits typed like a phone number: `+CC` with a real calling code, or groups with separators."""
    core = _strip_extension(text)
    if core.startswith("00"):
        core = "+" + core[2:]
    digits = "".join(ch for ch in core if ch.isdigit())
    if core.startswith("+"):
        return 8 <= len(digits) <= 15 and any(digits[:n] in calling_codes() for n in (1, 2, 3))
    if not 7 <= len(digits) <= 15 or len(set(digits)) <= 2:
        return False
    if _DATE_LIKE.match(core) or _IP_LIKE.match(core):
        return False
    groups = _GROUPS.findall(core)
    return 2 <= len(groups) <= 6 and all(len(g) <= 8 for g in groups)


def in_longer_number(text: str, value: str, start: int) -> bool:
    """The candidate is a piece of a longer run of digit groups (a 22-digit tracking number written in fours)."""
    return bool(_RUN_BEFORE.search(value[max(0, start - 2) : start]) or _RUN_AFTER.match(value[start + len(text) : start + len(text) + 2]))


def decoy_context(text: str, value: str, start: int, window: int = 32) -> bool:
    """A tracking/MTCN/order label before the candidate, or the candidate is a piece of a longer digit run."""
    if in_longer_number(text, value, start):
        return True
    return DECOY_BEFORE.search(value[max(0, start - window) : start]) is not None


def nanp_shape(text: str) -> bool:
    """North American number: [1] NXX NXX XXXX with N in 2-9 (the numbering plan's structure, not its allocations)."""
    digits = "".join(ch for ch in _strip_extension(text) if ch.isdigit())
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    if len(digits) != 10:
        return False
    area, exchange = digits[:3], digits[3:6]
    return area[0] not in "01" and area[1:] != "11" and exchange[0] not in "01" and len(set(digits)) > 2


# -- vectorised, for whole values -------------------------------------------------------------------------------

def _vec_bool(arr: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(arr, False), dtype=bool)


def vec_typed_shape(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """typed_shape for `+CC` numbers (decided here); the rest (grouped national numbers) is left to Python.
    ASCII values are decided by the native core in one pass, the others by _vec_typed_shape_arrow."""
    if len(values) == 0:
        return np.zeros(0, bool), np.zeros(0, bool)
    from spillguard.detect.arrays import native_column
    from spillguard.detect.checks import trimmed_ascii

    column, valid = native_column(values)
    verdict = np.frombuffer(_native.phone_shape(*column, trimmed_ascii(), _code_table()), np.uint8)
    accepted, intl = verdict == 3, (verdict & 1).astype(bool)
    if valid is not None:  # a null is the empty value: not a phone's shape either way
        accepted &= valid
        intl &= valid
    unsure = np.flatnonzero(verdict == 2)
    if unsure.size:
        accepted[unsure], intl[unsure] = _vec_typed_shape_arrow(take(values, unsure))
    return accepted, intl


@lru_cache(maxsize=1)
def _code_table() -> bytes:
    """Flags of the calling codes for the native core: 10 one-digit, 100 two-digit, 1000 three-digit entries."""
    table = bytearray(1110)
    for code in calling_codes():
        table[{1: 0, 2: 10, 3: 110}[len(code)] + int(code)] = 1
    return bytes(table)


def _vec_typed_shape_arrow(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    core = pc.replace_substring_regex(pc.fill_null(values, ""), r"(?i)\s*(?:x|ext\.?|#)\s*[0-9]{1,6}$", "")
    core = pc.replace_substring_regex(pc.utf8_trim_whitespace(core), r"^00", "+")
    compact = pc.replace_substring_regex(core, r"[^0-9+]", "")
    intl = _vec_bool(pc.match_substring_regex(compact, r"^\+[0-9]{8,15}$"))
    digits = pc.utf8_slice_codeunits(compact, 1)
    codes = pa.array(sorted(calling_codes()))
    known = np.zeros(len(values), bool)
    for n in (1, 2, 3):
        known |= _vec_bool(pc.is_in(pc.utf8_slice_codeunits(digits, 0, n), value_set=codes))
    accepted = intl & known
    return accepted, intl
