"""PostgreSQL rows read as COPY text, typed as the `row_to_json` reading types them.

The server sends plain `COPY (SELECT ...) TO STDOUT` text (about half its cost of rendering each row as JSON); the
native core (native/copytext.c) decodes a whole block into Arrow string columns, and each column becomes the
Arrow values Arrow's JSON reader makes of that column's `row_to_json` text, by vectorised casts:

    bool                    -> bool
    int2, int4, int8        -> int64
    float4, float8, numeric -> int64 when every value of the block is an integer that fits, else double
    built-in text-like types (text, varchar, uuid, inet, interval, ...), enums
                            -> string, or timestamp[s] when every value of the block reads as one (as the
                               JSON reader infers it), null when every value is null
    date, timestamp         -> their ISO text (DateStyle ISO) in JSON's form (`T` between date and time), then
                               timestamp[s] when every value of the block casts to one, else that text
    everything else (json, jsonb, arrays, composites, hstore, timestamptz, extension types)
                            -> sent as `to_json(column)` text and parsed by Arrow's JSON reader, those columns only

A block whose JSON reading would not be the single fast parse of records.json_lines_to_tables (NaN or Infinity
among numbers, nested values whose types clash, bytes that are not UTF-8, very deep documents) is turned back
into the exact lines `row_to_json` would have sent and read by json_lines_to_tables: its results are the
JSON path's, malformed-record reports and all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from spillguard._native import copy_text_columns, json_object_lines
from spillguard.detect.arrays import whole_array
from spillguard.sources.base import MalformedSink
from spillguard.sources.records import json_lines_table, json_lines_to_tables, valid_utf8

# Built-in types row_to_json writes as a JSON string of their text output (json_categorize_type's "other").
_TEXT_TYPES = frozenset({
    "text", "varchar", "bpchar", "name", "char", "uuid", "inet", "cidr", "macaddr", "macaddr8", "interval",
    "time", "timetz", "money", "xml", "bit", "varbit", "oid", "tsvector", "tsquery", "pg_lsn", "point", "line",
    "lseg", "box", "path", "polygon", "circle", "int4range", "int8range", "numrange", "tsrange", "tstzrange",
    "daterange", "regclass", "regtype", "regproc", "xid", "cid", "tid",
})  # fmt: skip
_KINDS = {"bool": "bool", "int2": "int", "int4": "int", "int8": "int", "float4": "number", "float8": "number", "numeric": "number",
          "date": "date", "timestamp": "timestamp"}
# Row_to_json's columns: `hits` and `_source` make json_lines_to_tables unwrap search hits; such tables are
# read as JSON lines whole.
SEARCH_HIT_NAMES = frozenset({"hits", "_source"})
FIRST_FIELD_NAME = "_"  # the column a table without columns is read as (`SELECT 1 AS _`)


@dataclass(frozen=True, slots=True)
class CopyColumn:
    """One column of the SELECT: its name, how its COPY text becomes Arrow values, and its expression."""

    name: str
    kind: str  # "bool", "int", "number", "date", "timestamp", "text", "json"
    expr: sql.Composable


def copy_column(name: str, typname: str, base: str, typtype: str, builtin: bool) -> CopyColumn:
    """The column as both readings select it (bytea as escaped text, json as jsonb, as `row_to_json` got
    them), and how its text is typed. `base`, `typtype`: the type's, or the domain's base type's."""
    ident = sql.Identifier(name)
    if typname == "bytea":
        return CopyColumn(name, "text", sql.SQL("encode({}, 'escape')").format(ident))  # text stored as bytes stays readable
    if typname == "json":
        # json keeps its original newlines; jsonb text never has any
        return CopyColumn(name, "json", sql.SQL("{}::jsonb").format(ident))
    if builtin and typtype == "b" and base in _KINDS:
        return CopyColumn(name, _KINDS[base], ident)
    if (builtin and typtype == "b" and base in _TEXT_TYPES) or typtype == "e":
        return CopyColumn(name, "text", ident)
    return CopyColumn(name, "json", ident)


def select_list(columns: list[CopyColumn], text: bool) -> sql.Composable:
    """The SELECT list: as `row_to_json` reads it, or as COPY text (nested and date/time columns as JSON)."""
    exprs = []
    for c in columns:
        expr = c.expr
        if text and c.kind == "json":
            expr = sql.SQL("to_json({})::text").format(expr)
        exprs.append(sql.SQL("{} AS {}").format(expr, sql.Identifier(c.name)))
    return sql.SQL(", ").join(exprs) if exprs else sql.SQL("1 AS {}").format(sql.Identifier(FIRST_FIELD_NAME))


class CopyDecodeError(ValueError):
    """A block that is not COPY text of the expected columns (the message names the row)."""


def text_lines_to_tables(block: bytes | bytearray, first_row: int, dataset: str, malformed: MalformedSink,
                         columns: list[CopyColumn]) -> Iterator[pa.Table]:
    """Tables for a block of whole COPY text rows of `columns` (rows numbered from `first_row`), as
    records.json_lines_to_tables gives them for the same rows sent by `row_to_json`."""
    try:
        rows, decoded = copy_text_columns(block, len(columns), first_row)
    except ValueError as exc:
        raise CopyDecodeError(str(exc)) from None
    if rows == 0:
        return
    strings = []
    for off, data, valid, nulls, wide in decoded:
        kind = pa.large_string() if wide else pa.string()
        buffers = [None if valid is None else pa.py_buffer(valid), pa.py_buffer(off), pa.py_buffer(data)]
        strings.append(pa.Array.from_buffers(kind, rows, buffers, null_count=nulls))
    table = None
    if valid_utf8(block) and not any(wide for *_, wide in decoded):
        table = _typed(strings, columns, rows)
    if table is not None:
        yield table
    else:
        yield from json_lines_to_tables(_row_json_lines(strings, columns), first_row, dataset, malformed)


def _typed(strings: list[pa.Array], columns: list[CopyColumn], rows: int) -> pa.Table | None:
    """The table the JSON reading makes of these rows, or None when it would not be one fast parse."""
    out: dict[str, pa.Array] = {}
    nested = [(c, s) for c, s in zip(columns, strings, strict=True) if c.kind == "json"]
    if nested:
        # One JSON line per row of the nested columns' values (null where NULL), as row_to_json would nest them.
        prefixes = [(("{" if i == 0 else ",") + json.dumps(c.name) + ":").encode() for i, (c, _) in enumerate(nested)]
        values = []
        for _, s in nested:
            bufs = s.buffers()
            values.append((bufs[1], bufs[2], s.offset, len(s), pa.types.is_large_string(s.type), bufs[0] if s.null_count else None))
        read = json_lines_table(json_object_lines(prefixes, values, rows))
        if read is None or read.num_rows != rows or read.schema.names != [c.name for c, _ in nested]:
            return None
        out.update(zip(read.schema.names, (whole_array(col) for col in read.columns), strict=True))
    for c, s in zip(columns, strings, strict=True):
        if c.kind == "json":
            continue
        if s.null_count == rows:
            out[c.name] = pa.nulls(rows)
        elif c.kind == "bool":
            out[c.name] = pc.equal(s, "t")
        elif c.kind == "int":
            out[c.name] = pc.cast(s, pa.int64())
        elif c.kind == "number":
            value = _number(s)
            if value is None:
                return None
            out[c.name] = value
        elif c.kind in ("date", "timestamp"):
            out[c.name] = _timestamp(s, c.kind == "timestamp")
        else:
            out[c.name] = _text(s, rows)
    return pa.table([out[c.name] for c in columns], names=[c.name for c in columns])


def _joined(lines: pa.Array) -> memoryview:
    """The values of a string array without nulls, one after the other: its data buffer's used part, not copied
    (the view holds the buffer)."""
    offsets = np.frombuffer(lines.buffers()[1], np.int32, len(lines) + 1, lines.offset * 4)
    return memoryview(lines.buffers()[2].slice(int(offsets[0]), int(offsets[-1]) - int(offsets[0])))


def _number(s: pa.Array) -> pa.Array | None:
    """int64 when every value is an integer literal that fits, else double; None for NaN and Infinity (the
    JSON reading gets them as strings among numbers)."""
    data = np.frombuffer(s.buffers()[2], np.uint8)
    if np.any((data == ord("N")) | (data == ord("I"))):
        return None
    if not np.any((data == ord(".")) | (data == ord("e"))):
        try:
            return pc.cast(s, pa.int64())
        except pa.ArrowInvalid:
            pass  # an integer past int64: a double, as the JSON reader reads it
    return pc.cast(s, pa.float64())


def _timestamp(s: pa.Array, with_time: bool) -> pa.Array:
    """A date or timestamp column as the JSON reading has it: JSON writes `2020-01-02T03:04:05` (and keeps
    ` BC`, `infinity`); Arrow's reader infers timestamp[s] when its ISO 8601 parser, the one the cast uses,
    reads every value (no fractions of a second, four-digit years), else keeps the strings."""
    if with_time:
        s = pc.replace_substring(s, " ", "T", max_replacements=1)
    try:
        return pc.cast(s, pa.timestamp("s"))
    except pa.ArrowInvalid:
        return s


def _date_like(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> bool:
    """Whether every value starts `DDDD-DD-DD`, as every ISO 8601 timestamp Arrow's reader infers does."""
    if not starts.size or np.any(ends - starts < 10):
        return False
    for k in range(10):
        head = data[starts + k]
        if not np.all(head == 45 if k in (4, 7) else (head >= 48) & (head <= 57)):
            return False
    return True


_TIMESTAMP_CHARS = re.compile(r'[\x00-\x1f"\\]')


def _text(s: pa.Array, rows: int) -> pa.Array:
    """Strings, unless every value reads as a timestamp, which Arrow's JSON reader infers from such strings."""
    valid = np.ones(rows, bool) if s.null_count == 0 else np.asarray(s.is_valid())
    offsets = np.frombuffer(s.buffers()[1], np.int32, rows + 1)
    data = np.frombuffer(s.buffers()[2], np.uint8)
    if valid[0] and not _date_like(data, offsets[:1], offsets[1:2]):
        return s  # the usual case: the first value does not start like a date
    starts, ends = offsets[:-1][valid], offsets[1:][valid]
    if not _date_like(data, starts, ends):
        return s
    if np.all(ends - starts == 10):
        # Only dates (`DDDD-DD-DD`, a date column stored as text): the reader's ISO 8601 parser is the cast's, so
        # the cast reads them as the JSON reading does, or refuses them all as it keeps them all strings.
        try:
            return pc.cast(s, pa.timestamp("s"))
        except pa.ArrowInvalid:
            return s
    return _text_read_as_json(s, rows)


def _text_read_as_json(s: pa.Array, rows: int) -> pa.Array:
    """What Arrow's JSON reading makes of a string column whose values all start like dates: timestamp[s] when it
    reads every value as one, else the strings."""
    if pc.any(pc.match_substring_regex(s, _TIMESTAMP_CHARS.pattern)).as_py():
        return s  # a quote, backslash or control character: never a timestamp
    lines = pc.binary_join_element_wise(pa.scalar('{"v":"'), s, pa.scalar('"}\n'), "")
    read = json_lines_table(_joined(pc.fill_null(lines, '{"v":null}\n')))
    if read is None or read.num_rows != rows:
        return s
    column = read.column(0).combine_chunks()
    return column if pa.types.is_timestamp(column.type) else s


_ESCAPES = {i: b"\\u%04x" % i for i in range(32)} | {8: b"\\b", 9: b"\\t", 10: b"\\n", 12: b"\\f", 13: b"\\r"}
_ESCAPE = re.compile(rb'[\x00-\x1f"\\]')


def _json_string(value: bytes) -> bytes:
    """`value` as a JSON string, escaped as PostgreSQL's escape_json escapes it."""
    return b'"' + _ESCAPE.sub(lambda m: b"\\" + m[0] if m[0] in (b'"', b"\\") else _ESCAPES[m[0][0]], value) + b'"'


def _row_json_lines(strings: list[pa.Array], columns: list[CopyColumn]) -> bytes:
    """The rows as `row_to_json` sends them, one JSON object per line, for the blocks the typed reading cannot
    take (rare: a Python step per value)."""
    keys = [_json_string(c.name.encode()) + b":" for c in columns]
    cells: list[list[bytes]] = []
    for c, s in zip(columns, strings, strict=True):
        values = s.view(pa.large_binary() if pa.types.is_large_string(s.type) else pa.binary()).to_pylist()
        if c.kind == "text":
            cells.append([b"null" if v is None else _json_string(v) for v in values])
        elif c.kind in ("date", "timestamp"):
            cells.append([b"null" if v is None else _json_string(v.replace(b" ", b"T", 1 if c.kind == "timestamp" else 0)) for v in values])
        elif c.kind == "bool":
            cells.append([b"null" if v is None else b"true" if v == b"t" else b"false" for v in values])
        elif c.kind == "number":
            cells.append([b"null" if v is None else b'"' + v + b'"' if v in (b"NaN", b"Infinity", b"-Infinity") else v for v in values])
        else:
            cells.append([b"null" if v is None else v for v in values])
    return b"".join(b"{" + b",".join(k + v for k, v in zip(keys, row, strict=True)) + b"}\n" for row in zip(*cells, strict=True))
