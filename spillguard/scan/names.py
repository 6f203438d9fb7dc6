"""How dataset and field names are kept where they may be written down (the state file) and shown.

Names can hold personal data themselves (a file named after a customer, an object keyed by e-mail).
Output shows them masked; the state file keeps the masked form plus a keyed hash, so two names that
mask alike stay apart and nobody can read the name back, and shown_name() gives the same text for both.
"""

from __future__ import annotations

from functools import lru_cache

from spillguard.detect.masking import mask_identifiers
from spillguard.keys import keyed_hex

_HASHED = "\x1e"  # separates a stored name's masked form from its keyed hash


NAME_HASH_CHARS = 24  # hex characters of the keyed hash a state file keeps of a name (96 bits)


def stored_name(key: bytes, name: str) -> str:
    """A name as the state file may keep it: unchanged when masking leaves it alone, else masked + keyed hash."""
    masked = mask_identifiers(name)
    return name if masked == name else f"{masked}{_HASHED}{keyed_hex(key, name, NAME_HASH_CHARS)}"


@lru_cache(maxsize=1 << 16)
def shown_name(name: str) -> str:
    """A name (raw or stored) as output shows it."""
    masked, sep, _hash = name.partition(_HASHED)
    return masked if sep else mask_identifiers(name)
