"""Flatten nested Arrow columns into leaves: `address.city`, `devices[].mac`, `tags[]`.

Each leaf keeps, for every value, the index of the record it came from, so counts of records and
subjects stay exact for values inside arrays. All work is Arrow/numpy, none per value.

Distinct fields get distinct paths: a key that holds `.`, `[`, `]`, `{`, `}` or `"` (or is empty) is
written quoted, `["a.b"]`, so it never reads as the nested `a.b` or the array `c[]`; a name that occurs
twice at one place (a CSV header `email,email`) is `email` then `email#2`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spillguard.detect.arrays import whole_array

MAX_DEPTH = 64


@dataclass(slots=True)
class Leaf:
    path: str  # as shown to users: devices[].mac
    values: pa.Array
    rows: np.ndarray | None  # record index per value; None when values are one per record


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_PLAIN = re.compile(r'[^.\[\]{}"]+')
_QUOTED = re.compile(r'\["((?:[^"\\]|\\.)*)"\]')
_REPEAT = re.compile(r"#\d+(?=[.\[]|$)")


@lru_cache(maxsize=65536)
def child_path(path: str, name: str) -> str:
    """The path of field `name` under `path` (`a.b`, or `a["b.c"]` for a name that could read as a path)."""
    if _PLAIN.fullmatch(name):
        return f"{path}.{name}" if path else name
    return f"{path}[{json.dumps(name, ensure_ascii=False)}]"


@lru_cache(maxsize=65536)
def normalise_path(path: str) -> str:
    """The form field patterns are matched against: camelCase→snake, lower case, no [] or dashes;
    a quoted key counts as its text, a repeated name (`email#2`) as the name."""
    path = _REPEAT.sub("", _QUOTED.sub(lambda m: "." + json.loads(f'"{m.group(1)}"').replace("[]", ""), path))
    parts = []
    for part in path.replace("[]", "").split("."):
        part = _CAMEL.sub("_", part).lower().replace("-", "_").replace(" ", "_")
        parts.append(part)
    return ".".join(p for p in parts if p)


def _walk(arr: pa.Array, path: str, rows: np.ndarray | None, out: list[Leaf], depth: int) -> None:
    t = arr.type
    if depth > MAX_DEPTH:
        # Pathologically deep documents: scan the rest of the subtree as JSON text.
        out.append(Leaf(path, pa.array([None if v is None else str(v) for v in arr.to_pylist()], pa.string()), rows))
        return
    if pa.types.is_struct(t):
        for i in range(t.num_fields):
            name = t.field(i).name
            child = pc.struct_field(arr, [i])  # respects the parent's nulls
            _walk(child, child_path(path, name), rows, out, depth + 1)
        return
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        flat = pc.list_flatten(arr)
        parents = np.asarray(pc.list_parent_indices(arr), dtype=np.int64)
        child_rows = parents if rows is None else rows[parents]
        _walk(flat, f"{path}[]", child_rows, out, depth + 1)
        return
    if pa.types.is_map(t):
        keys = arr.keys
        items = arr.items
        parents = np.asarray(pc.list_parent_indices(arr), dtype=np.int64)
        child_rows = parents if rows is None else rows[parents]
        _walk(keys, f"{path}{{}}.key", child_rows, out, depth + 1)
        _walk(items, f"{path}{{}}.value", child_rows, out, depth + 1)
        return
    if pa.types.is_null(t):
        return
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
    out.append(Leaf(path, arr, rows))


def flatten_table(table: pa.Table | pa.RecordBatch) -> list[Leaf]:
    columns = [whole_array(c) for c in table.columns] if isinstance(table, pa.Table) else list(table.columns)
    out: list[Leaf] = []
    for name, col in zip(table.schema.names, columns, strict=True):
        _walk(col, child_path("", name), None, out, 0)
    seen: dict[str, int] = {}
    for leaf in out:
        n = seen[leaf.path] = seen.get(leaf.path, 0) + 1
        if n > 1:
            leaf.path = f"{leaf.path}#{n}"
    return out
