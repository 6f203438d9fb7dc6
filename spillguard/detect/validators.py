"""Candidate validators: run on the few values a pattern already matched, never on every value.

Each takes the matched text plus the whole value and the match start (for context checks) and
says whether the candidate is real. Adding a validator means adding a function to VALIDATORS.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable
from functools import cache, lru_cache
from typing import Any

import numpy as np
import orjson
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from stdnum import iban as std_iban
from stdnum import luhn
from stdnum.de import idnr
from stdnum.es import dni
from stdnum.gb import nhs
from stdnum.in_ import aadhaar
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.pl import pesel
from stdnum.se import personnummer
from stdnum.us import ssn

import spillguard._native as _native
from spillguard.detect import cards, nationalids, phones
from spillguard.detect.arrays import take

Validator = Callable[[str, str, int], bool]

# Regions tried for numbers written without a country code.
PHONE_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "IN", "AU", "CA", "BR")

_VERSION_CONTEXT = re.compile(
    r"(?:\bv|\bversion|\bver\.?|firmware|\bfw|\bbuild|\brelease|\brev\.?|\bupdate[ds]?|\bupgrade[ds]?|\bpatch(?:ed)?|\brom)"
    r"\W*(?:(?:to|is|at|now|from|of)\W+)?$",
    re.I,
)
_VERSION_AFTER = re.compile(r"^\W*(?:(?:is|was|as)\s+(?:the\s+)?)?(?:firmware|fw\b|build\b|release\b|version\b)", re.I)
IPV4_CONTEXT = (32, 24)  # characters before and after a candidate that the IPv4 validator reads
_DATE_LIKE = re.compile(r"^\(?\d{1,4}\)?[./\-]\d{1,2}[./\-]\d{1,4}(?:$|[ T])")


def _email(text: str, value: str, start: int) -> bool:
    local, _, _domain = text.rpartition("@")
    return bool(local) and len(local) <= 64 and ".." not in text and not local.startswith(".")


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _phone(text: str, value: str, start: int) -> bool:
    # Inside longer text: tracking numbers, MTCNs and pieces of longer digit runs are not phones.
    if (start or len(text) != len(value)) and phones.decoy_context(text, value, start):
        return False
    candidate = text.strip()
    if candidate.startswith("00"):
        candidate = "+" + candidate[2:]
    if _DATE_LIKE.match(candidate):
        return False
    digits = _digits(candidate)
    if len(set(digits)) <= 2:  # 0000000000, 1111111 ...
        return False
    regions: tuple[str | None, ...] = (None,) if candidate.startswith("+") else PHONE_REGIONS
    for region in regions:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return True
    return False


def _phone_national(text: str, value: str, start: int) -> bool:
    # Dotted groups of digits are versions or addresses far more often than phone numbers.
    if text.count(".") >= 2 and " " not in text and "-" not in text:
        return False
    return _phone(text, value, start)


def _phone_as_typed(text: str, value: str, start: int) -> bool:
    """Under a phone-named field: typed like a phone number (grouped, or +CC), or bare digits that are a valid number."""
    if text.strip().isdigit():
        return _phone(text, value, start)
    return phones.typed_shape(text)


def _phone_labelled(text: str, value: str, start: int) -> bool:
    """After a phone label (`Phone:`, `call me on`): typed like a phone number, bare digits included."""
    if phones.decoy_context(text, value, start):
        return False
    digits = _digits(text)
    if text.strip().isdigit():
        return 7 <= len(digits) <= 15 and len(set(digits)) > 2
    return phones.typed_shape(text) or _phone(text, value, start)


def _phone_nanp(text: str, value: str, start: int) -> bool:
    if not phones.nanp_shape(text) or phones.decoy_context(text, value, start):
        return False
    return not _VERSION_CONTEXT.search(value[max(0, start - 32) : start])


def _ipv4(text: str, value: str, start: int) -> bool:
    before, after = IPV4_CONTEXT
    if _VERSION_CONTEXT.search(value[max(0, start - before) : start]):
        return False
    # A dotted quad inside a longer dotted number (1.2.3.4.5, a version) is not an address; a full stop after it is.
    if re.search(r"[0-9]\.$", value[max(0, start - 2) : start]) or re.match(r"\.[0-9]", value[start + len(text) : start + len(text) + 2]):
        return False
    if _VERSION_AFTER.match(value[start + len(text) : start + len(text) + after]):
        return False
    try:
        addr = ipaddress.IPv4Address(text)
    except ValueError:
        return False
    # 0.0.0.0 (any address, as in 0.0.0.0/0) and 1.2.3.4 style placeholders are written addresses too.
    return addr is not None


_ADDRESS_BEFORE = re.compile(r"(?:\bip(?:v6)?|addr(?:ess)?|host|src|dst|source|destination|listen|bind|from|to|peer|remote|local|unspecified|loopback|any)(?:\s+(?:on|at|is|to))?\W{0,3}\Z|[=@]\Z", re.I)


def _ipv6(text: str, value: str, start: int) -> bool:
    if text == "::":
        # The unspecified address is two colons: an address only where the text says so (ipv6 ::, src=::).
        if text == value or re.match(r"/[0-9]", value[start + 2 : start + 4]):
            return True  # a whole value, or CIDR notation (::/0)
        return _ADDRESS_BEFORE.search(value[max(0, start - 24) : start]) is not None
    if text.count(":") < 2 or re.match(r"\.[0-9]", value[start + len(text) : start + len(text) + 2]):
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    # A real address has a group of 3+ hex digits or a compressed run; "1:2:3" clock-like text has neither.
    return "::" in text or any(len(g) >= 3 for g in text.split(":"))


def _mac(text: str, value: str, start: int) -> bool:
    hexdigits = re.sub(r"[^0-9A-Fa-f]", "", text).lower()
    return len(hexdigits) == 12 and hexdigits not in ("000000000000", "ffffffffffff")


# Issuer prefixes and lengths: the table of detect/data/card_issuers.toml (a 13-digit millisecond timestamp
# starts with 1 and matches no issuer of that length).


def _card(text: str, value: str, start: int) -> bool:
    if start and cards.identity_context(value, start):
        return False  # a national id that passes Luhn, labelled as such
    if start and cards.shipping_context(value, start):
        return False  # a parcel tracking number written in groups of four
    return cards.is_card_number(_digits(text))


def _card_luhn(text: str, value: str, start: int) -> bool:
    """Labelled as a card: 12-19 digits passing Luhn, any issuer range."""
    digits = _digits(text)
    return 12 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn.is_valid(digits)


# ISO 7064 mod 97-10 as python-stdnum computes it (letters are 10..35), on a translated string and one big integer.
_IBAN_DIGITS = str.maketrans({chr(c): str(c - 55) for c in range(ord("A"), ord("Z") + 1)})
_IBAN_SEPARATORS = str.maketrans("", "", " -.")


def _iban_checksum_ok(candidate: str) -> bool:
    """Whether the compacted candidate passes mod 97: python-stdnum checks this before anything else, so a candidate
    failing it is invalid without the library's slower character-by-character path (most look-alikes in hex fail)."""
    number = candidate.translate(_IBAN_SEPARATORS).strip().upper()
    digits = (number[4:] + number[:4]).translate(_IBAN_DIGITS)
    return digits.isascii() and digits.isdigit() and int(digits) % 97 == 1


def _iban(text: str, value: str, start: int) -> bool:
    # Mod 97 and the country's length; a bank's own account check is not required (test IBANs often fail it).
    # A short group after a space may be the next word (`... 8741 ALL CAPS`): the IBAN before it still counts.
    head, sep, tail = text.rpartition(" ")
    for candidate in (text, head if sep and len(tail) <= 3 else ""):
        letters = re.sub(r"[^A-Za-z]", "", candidate)
        # Typed in one case (bANK is a word); mod 97 and the country's length.
        if (
            candidate
            and (letters.isupper() or letters.islower())
            and _iban_checksum_ok(candidate)
            and std_iban.is_valid(re.sub(r"[ \-]", "", candidate).upper(), check_country=False)
        ):
            return True
    return False


def _us_ssn(text: str, value: str, start: int) -> bool:
    return ssn.is_valid(text)


def _es_dni(text: str, value: str, start: int) -> bool:
    return dni.is_valid(text)


def _it_codicefiscale(text: str, value: str, start: int) -> bool:
    return codicefiscale.is_valid(text)


_NATIONAL_ID_MODULES = (bsn, idnr, pesel, personnummer, aadhaar, nhs)


def _national_id(text: str, value: str, start: int) -> bool:
    compact = re.sub(r"[ \-]", "", text)
    return any(mod.is_valid(compact) for mod in _NATIONAL_ID_MODULES)


def shannon_entropy(text: str) -> float:
    if not text:
        return 0.0
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _entropy(text: str, value: str, start: int) -> bool:
    return shannon_entropy(text) >= 3.5


def _b64url_json(part: str) -> dict[str, Any] | None:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        doc = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _jwt(text: str, value: str, start: int) -> bool:
    parts = text.split(".")
    if len(parts) != 3:
        return False
    header = _b64url_json(parts[0])
    payload = _b64url_json(parts[1])
    return header is not None and isinstance(header.get("alg"), str) and payload is not None


def _url_credentials(text: str, value: str, start: int) -> bool:
    # `text` is the password (the rule's secret group); a whole URL is accepted too.
    password = text.split("://", 1)[1].rsplit("@", 1)[0].split(":", 1)[1] if "://" in text else text
    return bool(password) and set(password) != {"*"}  # masked already: nothing leaked


_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _base62(number: int, width: int) -> str:
    digits = ""
    while number:
        number, rest = divmod(number, 62)
        digits = _BASE62[rest] + digits
    return digits.rjust(width, "0")


def _crc32_base62(text: str, value: str, start: int) -> bool:
    """GitHub (ghp_, gho_, ghu_, ghs_, ghr_) and npm (npm_) tokens: 30 random base62 characters after the
    prefix, then their CRC32 in 6 base62 digits (GitHub's 2021 token format; npm's copies it)."""
    body = text.rsplit("_", 1)[-1]
    if len(body) != 36:
        return False
    return _base62(binascii.crc32(body[:30].encode()), 6) == body[30:]


def _b64_any(part: str) -> bytes | None:
    part = part.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(part + "=" * (-len(part) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _pypi_macaroon(text: str, value: str, start: int) -> bool:
    """PyPI API tokens are `pypi-` + a base64 macaroon whose location is pypi.org or test.pypi.org."""
    raw = _b64_any(text.removeprefix("pypi-"))
    return raw is not None and (b"pypi.org" in raw[:40]) and b"identifier" in raw


_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _bech32_polymod(values: list[int]) -> int:
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def _bech32(text: str, value: str, start: int) -> bool:
    """Bech32 checksum (BIP 173), as age secret keys (`AGE-SECRET-KEY-1...`) carry it."""
    lowered = text.lower()
    hrp, sep, data = lowered.rpartition("1")
    if not sep or not hrp or len(data) < 6 or any(c not in _BECH32 for c in data):
        return False
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    return _bech32_polymod(expanded + [_BECH32.index(c) for c in data]) == 1


def _discord_bot_token(text: str, value: str, start: int) -> bool:
    """A Discord bot token's first part is the bot's numeric id (a snowflake) in base64."""
    raw = _b64_any(text.split(".", 1)[0])
    return raw is not None and raw.isdigit() and 15 <= len(raw) <= 20


def _basic_auth(text: str, value: str, start: int) -> bool:
    """HTTP Basic credentials decode to `user:password` in printable text."""
    raw = _b64_any(text)
    if raw is None:
        return False
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    user, sep, password = decoded.partition(":")
    return bool(sep) and bool(password) and decoded.isprintable()


def _blood_pressure(text: str, value: str, start: int) -> bool:
    sys_, _, dia = text.partition("/")
    return int(sys_) > int(dia)


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_NUMERIC_DATE = re.compile(r"([0-9]{1,4})[./\-]([0-9]{1,2})[./\-]([0-9]{1,4})")
_WORD_DATE = re.compile(r"([0-9]{1,2})(?:st|nd|rd|th)?(?:\s+of)?\s+([a-z]{3})[a-z]*\.?,?\s+([0-9]{4})|([a-z]{3})[a-z]*\.?\s+([0-9]{1,2})(?:st|nd|rd|th)?,?\s+([0-9]{4})")


def _birth_date(text: str, value: str, start: int) -> bool:
    """The date after a birth cue is a real calendar date of a living person (1900 to today)."""
    import datetime as dt

    low = text.lower()
    candidates: list[tuple[int, int, int]] = []
    numeric = _NUMERIC_DATE.search(low)
    if numeric:
        a, b, c = (int(x) for x in numeric.groups())
        if a > 31:  # 1988-04-03
            candidates.append((a, b, c))
        else:
            full = c + (1900 if c >= 30 else 2000) if c < 100 else c
            candidates += [(full, b, a), (full, a, b)]  # day first or month first
    for m in _WORD_DATE.finditer(low):
        day, month, year = (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(5), m.group(4), m.group(6))
        if month in _MONTHS:
            candidates.append((int(year), _MONTHS.index(month) + 1, int(day)))
    today = dt.date.today()
    for y, mo, d in candidates:
        try:
            when = dt.date(y, mo, d)
        except ValueError:
            continue
        if dt.date(1900, 1, 1) <= when <= today:
            return True
    return False




class _Validators(dict[str, Validator]):
    """The validator table; `stdnum:<country>.<module>` names resolve to python-stdnum's own check on first use."""

    def __missing__(self, name: str) -> Validator:
        found = nationalids.stdnum_validator(name[len("stdnum:"):]) if name.startswith("stdnum:") else None
        if found is None:
            raise KeyError(name)
        self[name] = found
        return found

    def __contains__(self, name: object) -> bool:
        if dict.__contains__(self, name):
            return True
        try:
            self[name]  # type: ignore[index]
        except KeyError:
            return False
        return True


VALIDATORS: dict[str, Validator] = _Validators({
    "birth_date": _birth_date,
    "email": _email,
    "phone": _phone,
    "phone_as_typed": _phone_as_typed,
    "phone_labelled": _phone_labelled,
    "phone_nanp": _phone_nanp,
    "uk_nino": nationalids.uk_nino,
    "us_ssn_any": nationalids.us_ssn_any,
    "us_ssn_labelled": nationalids.us_ssn_labelled,
    "phone_national": _phone_national,
    "ipv4": _ipv4,
    "ipv6": _ipv6,
    "mac": _mac,
    "card": _card,
    "card_luhn": _card_luhn,
    "iban": _iban,
    "us_ssn": _us_ssn,
    "es_dni": _es_dni,
    "it_codicefiscale": _it_codicefiscale,
    "national_id": _national_id,
    "entropy": _entropy,
    "jwt": _jwt,
    "blood_pressure": _blood_pressure,
    "url_credentials": _url_credentials,
    "crc32_base62": _crc32_base62,
    "pypi_macaroon": _pypi_macaroon,
    "bech32": _bech32,
    "discord_bot_token": _discord_bot_token,
    "basic_auth": _basic_auth,
})


# -- Vectorised forms -------------------------------------------------------------------------
# Used when a candidate is the whole value (structured columns, the common case): the same
# decision as the Python validator above, computed for a whole column slice at once.

def _vec_bool(arr: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(arr, False), dtype=bool)


# The shapes native/checks.c tells in one pass per column (shapes), by kind: RE2 took ~100 ns a value for each.
SHAPES = {"email_malformed": 0, "mac_blank": 1, "ipv6_shaped": 2}


def _shapes(values: pa.Array, kind: str) -> np.ndarray:
    """Whether each value has the shape (a null has none)."""
    from spillguard.detect.arrays import native_column

    if len(values) == 0:
        return np.zeros(0, bool)
    column, _valid = native_column(values)  # a null is read as "", which has none of the shapes
    return np.frombuffer(_native.shapes(*column, SHAPES[kind]), np.uint8).astype(bool)


def _vec_email(values: pa.Array) -> np.ndarray:
    out: np.ndarray = ~_shapes(values, "email_malformed")  # "..", a leading ".", 65+ characters before the "@"
    return out


def _vec_ipv4(values: pa.Array) -> np.ndarray:
    return np.ones(len(values), bool)  # the pattern is the whole check for a whole value


def _vec_ipv6(values: pa.Array) -> np.ndarray:
    return _shapes(values, "ipv6_shaped")  # "::" or three hex digits in a row, and not two "::" on one line


def _vec_mac(values: pa.Array) -> np.ndarray:
    out: np.ndarray = ~_shapes(values, "mac_blank")  # not only zeros, or only f's, and separators
    return out


def _vec_card(values: pa.Array) -> np.ndarray:
    """cards.is_card_number of every value's digits, in one native pass (Luhn, one digit repeated, issuer table)."""
    from spillguard.detect.arrays import native_column

    if len(values) == 0:
        return np.zeros(0, bool)
    column, valid = native_column(values)
    out: np.ndarray = np.frombuffer(_native.card_check(*column, cards.issuer_table()), np.uint8).astype(bool)
    return out if valid is None else out & valid


_PHONE_TYPES = ("fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "personal_number", "voip", "pager", "uan", "voicemail")


@cache
def _national_pattern(country_code: int) -> str | None:
    """Every number type of every region sharing a calling code, as one anchored RE2 pattern."""
    from phonenumbers import PhoneMetadata
    from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

    parts = []
    prefixes: set[str] = set()
    for region in COUNTRY_CODE_TO_REGION_CODE.get(country_code, ()):
        meta = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
        if meta is None:
            continue
        if meta.national_prefix and meta.national_prefix.isdigit():
            prefixes.add(meta.national_prefix)  # phonenumbers strips it even after a +CC
        for kind in _PHONE_TYPES:
            desc = getattr(meta, kind, None)
            if desc is not None and desc.national_number_pattern:
                parts.append(desc.national_number_pattern)
    if not parts:
        return None
    optional = "(?:" + "|".join(sorted(prefixes)) + ")?" if prefixes else ""
    return optional + "(?:" + "|".join(f"(?:{p})" for p in parts) + ")"


@lru_cache(maxsize=64)
def _numbers_pattern(codes: tuple[str, ...]) -> str:
    """One anchored pattern for "+CC national" of the given calling codes (prefix-free, so unambiguous)."""
    bodies = [f"{code}{body}" for code in codes if (body := _national_pattern(int(code))) is not None]
    return "^(?:" + "|".join(bodies) + ")$" if bodies else "^$."


def _vec_phone(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """is_valid_number for whole international numbers, from the same metadata, as one regex."""
    compact = pc.replace_substring_regex(pc.fill_null(values, ""), r"[ ().\-]", "")
    compact = pc.replace_substring_regex(compact, r"^00", "+")
    shaped = _vec_bool(pc.match_substring_regex(compact, r"^\+[1-9][0-9]{6,16}$"))
    digits = pc.utf8_slice_codeunits(compact, 1)
    todo = shaped.copy()
    codes = pa.array(sorted(phones.calling_codes()))
    present: set[str] = set()
    for length in (1, 2, 3):  # calling codes are prefix-free: the first known prefix is the code
        prefix = pc.utf8_slice_codeunits(digits, 0, length)
        known = todo & _vec_bool(pc.is_in(prefix, value_set=codes))
        if known.any():
            todo &= ~known
            present.update(take(prefix, np.flatnonzero(known)).unique().to_pylist())
    # One regex for the codes present (compiling one per code per batch cost more than matching).
    result = shaped & ~todo
    if present:
        result &= _vec_bool(pc.match_substring_regex(digits, _numbers_pattern(tuple(sorted(present)))))
    # Numbers without a country code depend on the configured regions: left to the Python validator.
    return result, shaped


# Validators that look around the match (an IPv4 after "firmware" is a version): never decided from the
# match alone.
CONTEXT_VALIDATORS = frozenset({"ipv4", "ipv6", "phone", "phone_national", "phone_nanp", "phone_labelled", "phone_as_typed", "card"})

# Each returns the accepted mask, or (accepted, decided) when it can only decide some candidates.
VECTOR_VALIDATORS: dict[str, Callable[[pa.Array], np.ndarray | tuple[np.ndarray, np.ndarray]]] = {
    "phone": _vec_phone,
    "phone_as_typed": phones.vec_typed_shape,
    "email": _vec_email,
    "ipv4": _vec_ipv4,
    "ipv6": _vec_ipv6,
    "mac": _vec_mac,
    "card": _vec_card,
}
