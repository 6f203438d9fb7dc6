"""National identifiers: UK National Insurance numbers, US SSNs however they are separated, and every id type
python-stdnum validates, named by a field (`spillguard/rules/national_ids.toml` maps field names to modules).

A rule names a python-stdnum module as its validator, `validator = "stdnum:br.cpf"`; the module is imported the
first time a candidate needs it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from functools import cache

from stdnum.us import ssn

# Prefixes HMRC never issues: the first letter not D F I Q U V, the second not D F I Q U V O, and not these pairs.
_NINO = re.compile(r"^[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z][0-9]{6}[A-D]$")
_NINO_NEVER = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def uk_nino(text: str, value: str, start: int) -> bool:
    compact = re.sub(r"[ \-]", "", text).upper()
    return bool(_NINO.match(compact)) and compact[:2] not in _NINO_NEVER


def us_ssn_any(text: str, value: str, start: int) -> bool:
    """An SSN written with dashes, spaces or dots (one kind of separator), checked by the SSA's rules."""
    seps = set(re.sub(r"[0-9]", "", text))
    if len(seps) > 1:
        return False
    return ssn.is_valid(re.sub(r"[ .\-]", "", text))


def us_ssn_labelled(text: str, value: str, start: int) -> bool:
    """Undivided or oddly grouped SSN digits right after an SSN label."""
    digits = re.sub(r"[ .\-]", "", text)
    return len(digits) == 9 and ssn.is_valid(digits)


@cache
def _stdnum_module(name: str) -> object:
    return importlib.import_module(f"stdnum.{name}")


def stdnum_validator(name: str) -> Callable[[str, str, int], bool] | None:
    """The validator of `stdnum:<country>.<module>`, or None when python-stdnum has no such module."""
    if not re.fullmatch(r"[a-z_]+\.[a-z_0-9]+", name):
        return None
    try:
        module = _stdnum_module(name)
    except ImportError:
        return None
    is_valid = getattr(module, "is_valid", None)
    if is_valid is None:
        return None

    def validate(text: str, value: str, start: int) -> bool:
        return bool(is_valid(text.strip()))

    return validate
