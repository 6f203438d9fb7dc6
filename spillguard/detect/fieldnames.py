"""Field names as people write them: `fname`, `LNAME`, `ssn_no`, `CCNumber`, `MothersMaiden`, `po_box`.

`canonical_path` splits every segment of a field path into lower-case words (snake_case, camelCase, CAPS
followed by a word, dashes, spaces, apostrophes) and rewrites them with the tables of `data/field_words.toml`
(whole segments first, then single words). Rules match this form as well as `normalise_path`'s, so one rule
pattern covers every spelling the tables know. Decided once per field path (the engine caches plans).
"""

from __future__ import annotations

import re
import tomllib
from functools import cache, lru_cache
from importlib import resources

_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_SEGMENT = re.compile(r"\.|\[\]|\{\}")


@cache
def _tables() -> tuple[dict[str, str], dict[str, str]]:
    doc = tomllib.loads(resources.files("spillguard.detect").joinpath("data/field_words.toml").read_text("utf-8"))
    return dict(doc.get("segments", {})), dict(doc.get("words", {}))


def words(segment: str) -> list[str]:
    """`CCNumber` -> cc, number; `mother's maiden name` -> mothers, maiden, name; `address1` -> address, 1."""
    return [w.lower() for w in _WORD.findall(segment.replace("'", "").replace("’", ""))]


@lru_cache(maxsize=65536)
def canonical_path(path: str) -> str:
    """The path with every segment rewritten to the words rules know (`ssn_no` -> `ssn_number`)."""
    segments, single = _tables()
    out = []
    for part in _SEGMENT.split(path):
        ws = words(part)
        if not ws:
            continue
        joined = "_".join(ws)
        if joined in segments:
            out.append(segments[joined])
        elif "".join(ws) in segments:
            out.append(segments["".join(ws)])
        else:
            out.append("_".join(single.get(w, w) for w in ws))
    return ".".join(out)
