"""What the SQL destinations share: Arrow batches made SQL-ready, column types per dialect, the
alignment of later batches to the table the first one created, and the copy-metadata table."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from spillguard.errors import UserError

META_TABLE = "spillguard_copies"  # one row per dataset copy: key ids, policy digest, counts (never a key)
# A checkpointed copy (--state) writes each dataset into a stage table, one commit per partition together
# with its row in the marker table; publishing moves the stage into place.
MARKER_TABLE = "_sg_copy_parts"
STAGE_PREFIX = "_sg_stage_"


@dataclass(frozen=True, slots=True)
class Dialect:
    integer: str
    number: str
    boolean: str
    timestamp: str
    text: str
    json: str


def _json_text(arr: pa.Array) -> pa.Array:
    """Objects and arrays as JSON text (the one per-value step: SQL has no Arrow nested types)."""
    return pa.array([None if v is None else orjson.dumps(v, default=str).decode() for v in arr.to_pylist()], pa.string())


def sql_ready(table: pa.Table) -> tuple[pa.Table, set[str]]:
    """(table with only SQL-storable columns, names of the columns that hold JSON text)."""
    cols, names, json_cols = [], [], set()
    for name, col in zip(table.column_names, table.columns, strict=True):
        arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        t = arr.type
        if pa.types.is_dictionary(t):
            arr = arr.dictionary_decode()
            t = arr.type
        if pa.types.is_struct(t) or pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_map(t):
            arr = _json_text(arr)
            json_cols.add(name)
        elif pa.types.is_null(t):
            arr = pa.nulls(len(arr), pa.string())
        elif pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
            arr = arr.cast(pa.string())
        elif pa.types.is_date(t):
            arr = arr.cast(pa.timestamp("s"))
        elif pa.types.is_timestamp(t) and t.tz is not None:
            arr = arr.cast(pa.timestamp(t.unit))
        cols.append(arr)
        names.append(name)
    return pa.Table.from_arrays(cols, names=names), json_cols


def sql_type(t: pa.DataType, is_json: bool, d: Dialect) -> str:
    if is_json:
        return d.json
    if pa.types.is_boolean(t):
        return d.boolean
    if pa.types.is_integer(t):
        return d.integer
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return d.number
    if pa.types.is_timestamp(t):
        return d.timestamp
    return d.text


def align(table: pa.Table, schema: pa.Schema) -> tuple[pa.Table, list[pa.Field]]:
    """A later batch in the first batch's shape: missing columns null, types cast; new columns returned."""
    added = [f for f in table.schema if f.name not in schema.names]
    cols = []
    for f in schema:
        if f.name not in table.column_names:
            cols.append(pa.nulls(table.num_rows, f.type))
            continue
        arr = table.column(f.name)
        if arr.type != f.type:
            try:
                arr = pc.cast(arr, f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise UserError(
                    f"column {f.name!r} changed type during the copy ({f.type} then {arr.type}); "
                    "declare it in the policy's types table or generalise it"
                ) from None
        cols.append(arr)
    for f in added:
        cols.append(table.column(f.name))
    return pa.Table.from_arrays(cols, schema=pa.schema(list(schema) + added)), added


def python_rows(table: pa.Table) -> Sequence[tuple[Any, ...]]:
    """Rows for DB-API executemany: times as ISO text, everything else as Arrow converts it."""
    cols = []
    for col in table.columns:
        if pa.types.is_timestamp(col.type):
            col = pc.strftime(col, format="%Y-%m-%d %H:%M:%S")
        cols.append(col.to_pylist())
    return list(zip(*cols, strict=True))


_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'|`[^`]*`")


def write_error(exc: BaseException, secret: str | None = None) -> str:
    """A store's error about rows it refused, without the quoted values stores put in such messages
    (`invalid input syntax for type bigint: "jane@example.com"`): copied values never reach a log."""
    from spillguard.sources.store import one_line

    text = one_line(exc, secret)
    return _QUOTED.sub("…", text.split(" CONTEXT: ")[0])[:200]


def meta_json(meta: dict[str, Any]) -> str:
    return orjson.dumps(meta, option=orjson.OPT_SORT_KEYS).decode()
