"""National identifiers: UK National Insurance numbers, US SSNs however they are separated, and every id type
python-stdnum validates, named by a field (`spillguard/rules/national_ids.toml` maps field names to modules).

A rule names a python-stdnum module as its validator, `validator = "stdnum:br.cpf"`; the module is imported the
first time a candidate needs it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
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
def _stdnum_check(name: str) -> Callable[[str], bool]:
    check: Callable[[str], bool] = importlib.import_module(f"stdnum.{name}").is_valid
    return check


def stdnum_validator(name: str) -> Callable[[str, str, int], bool] | None:
    """The validator of `stdnum:<country>.<module>`, or None when python-stdnum has no such module. The module is
    found without importing it (loading the rules stays fast) and imported when a candidate first needs it."""
    if not re.fullmatch(r"[a-z_]+\.[a-z_0-9]+", name):
        return None
    country, module = name.split(".")
    try:
        spec = importlib.util.find_spec(f"stdnum.{country}")
    except ImportError:
        return None
    locations = spec.submodule_search_locations if spec is not None else None
    if not locations or not any(os.path.exists(os.path.join(loc, f"{module}.py")) for loc in locations):
        return None

    def validate(text: str, value: str, start: int) -> bool:
        return bool(_stdnum_check(name)(text.strip()))

    return validate
