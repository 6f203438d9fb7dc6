"""Payment card numbers of every issuer: Luhn plus the issuer table of `data/card_issuers.toml`.

The table becomes one anchored pattern over the digits (prefix ranges expanded to digit classes, one
alternative per issuer and length), used by the Python validator and, unchanged, by Arrow's RE2 for whole
columns. A 13-digit number next to an identity label (`national id`, `CNP`, `EGN`) or under an identity field
is an identity number that happens to pass Luhn, not a card; digits after a parcel-tracking label are a tracking
number.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from importlib import resources

from stdnum import luhn

# A label naming an identity number right before the digits (and no payment word): not a card.
IDENTITY_BEFORE = re.compile(
    r"(?:\bid\b|identity|national|citizen|personal\s+(?:no|number|code)|\bcnp\b|\begn\b|\bjmbg\b|\bemso\b|"
    r"\bssn\b|passport|\btax\b|\bnif\b|\bnie\b|\bdni\b|\bpesel\b|\bnin\b|\bid\s*(?:no|number|#))[^\n0-9]{0,20}\Z",
    re.I,
)
_SHIPPING_BEFORE = re.compile(
    r"(?:track|parcel|package|shipment|waybill|consignment|usps|fedex|\bups\b|\bdhl\b|mtcn|money\s*transfer)[^\n]{0,40}\Z", re.I
)
_PAYMENT_WORDS = re.compile(r"card|credit|debit|visa|master|amex|payment|\bcc\b|\bpan\b", re.I)


def _range_regex(lo: str, hi: str) -> str:
    """Digit strings of len(lo) between lo and hi inclusive, as a regex (no anchors)."""
    if lo == hi:
        return lo
    if len(lo) == 1:
        return f"[{lo}-{hi}]"
    if lo[0] == hi[0]:
        return lo[0] + "(?:" + _range_regex(lo[1:], hi[1:]) + ")"
    rest = len(lo) - 1
    parts = [lo[0] + "(?:" + _range_regex(lo[1:], "9" * rest) + ")"]
    if int(hi[0]) - int(lo[0]) > 1:
        parts.append(f"[{int(lo[0]) + 1}-{int(hi[0]) - 1}][0-9]{{{rest}}}")
    parts.append(hi[0] + "(?:" + _range_regex("0" * rest, hi[1:]) + ")")
    return "(?:" + "|".join(parts) + ")"


@cache
def issuers() -> list[dict[str, object]]:
    doc = tomllib.loads(resources.files("spillguard.detect").joinpath("data/card_issuers.toml").read_text("utf-8"))
    return list(doc["issuer"])


@cache
def issuer_pattern() -> str:
    """One anchored pattern: every issuer's prefixes with the rest of its lengths."""
    alternatives: list[str] = []
    for issuer in issuers():
        for prefix in issuer["prefixes"]:  # type: ignore[attr-defined]
            lo, _, hi = str(prefix).partition("-")
            hi = hi or lo
            head = _range_regex(lo, hi)
            for length in issuer["lengths"]:  # type: ignore[attr-defined]
                alternatives.append(f"{head}[0-9]{{{int(length) - len(lo)}}}")
    return "^(?:" + "|".join(sorted(set(alternatives))) + ")$"


@cache
def issuer_table() -> bytes:
    """The issuer table for the native core: int64 (prefix digits, lowest, highest, bit mask of lengths) per range."""
    import array

    rows = array.array("q")
    for issuer in issuers():
        mask = 0
        for length in issuer["lengths"]:  # type: ignore[attr-defined]
            mask |= 1 << int(length)
        for prefix in issuer["prefixes"]:  # type: ignore[attr-defined]
            lo, _, hi = str(prefix).partition("-")
            hi = hi or lo
            if len(lo) != len(hi):
                raise ValueError(f"card issuer prefix range {prefix!r}: both ends need as many digits")
            rows.extend([len(lo), int(lo), int(hi), mask])
    return rows.tobytes()


@cache
def _issuer_re() -> re.Pattern[str]:
    return re.compile(issuer_pattern())


def is_card_number(digits: str) -> bool:
    return bool(_issuer_re().match(digits)) and len(set(digits)) > 1 and luhn.is_valid(digits)


def identity_context(value: str, start: int, window: int = 32) -> bool:
    before = value[max(0, start - window) : start]
    return IDENTITY_BEFORE.search(before) is not None and not _PAYMENT_WORDS.search(before)


def shipping_context(value: str, start: int, window: int = 48) -> bool:
    """A parcel-tracking or money-transfer label before the digits: a tracking number, not a card."""
    return _SHIPPING_BEFORE.search(value[max(0, start - window) : start]) is not None
