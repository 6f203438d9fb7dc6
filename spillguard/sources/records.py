"""Turn JSON records (bytes of JSON lines, or Python dicts) into Arrow tables, robustly.

The fast path is Arrow's JSON reader on a whole block. A block it rejects (a malformed line, or a
field whose type changes between records) is split in halves and retried, so only the smallest
troublesome pieces fall back to per-line parsing, where malformed lines are reported by number.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

import spillguard._native as _native
from spillguard.sources.base import MalformedSink

_SLOW_LINES = 256
_ES_META = ("_index", "_type", "_id", "_score", "_routing", "_version", "_seq_no", "_primary_term", "sort")


def unwrap_search_hits(table: pa.Table) -> pa.Table:
    """Elasticsearch exports (search hits, elasticdump): the record is `_source`, the rest is metadata.
    A whole search response per line ({"hits": {"hits": [...]}}) is exploded into its hits first."""
    names = table.schema.names
    if "hits" in names and "_source" not in names:
        hits = table.column("hits").combine_chunks()
        if pa.types.is_struct(hits.type) and hits.type.get_field_index("hits") >= 0:
            inner = pc.struct_field(hits, "hits")
            if pa.types.is_list(inner.type) and pa.types.is_struct(inner.type.value_type):
                flat = pc.list_flatten(inner)
                table = pa.Table.from_arrays(flat.flatten(), names=[f.name for f in flat.type])
                names = table.schema.names
    if "_source" not in names:
        return table
    src = table.column("_source")
    if not pa.types.is_struct(src.type):
        return table
    src = src.combine_chunks()
    children = src.flatten()
    cols = {src.type.field(i).name: children[i] for i in range(src.type.num_fields)}
    for name in names:
        if name not in ("_source", *_ES_META) and name not in cols:
            cols[name] = table.column(name).combine_chunks()
    if not cols:
        return pa.table({})
    return pa.table(cols)


def _arrow_read(data: bytes | memoryview) -> pa.Table:
    return pj.read_json(
        io.BytesIO(data),
        read_options=pj.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 16)),
        parse_options=pj.ParseOptions(newlines_in_values=False, unexpected_field_behavior="infer"),
    )


def _native_array(desc: tuple[Any, ...]) -> pa.Array:
    """One column from the native reader's description: its buffers wrapped, not copied."""
    kind, n, nulls, valid = desc[:4]
    validity = pa.py_buffer(valid) if valid is not None else None
    if kind == "null":
        return pa.nulls(n)
    if kind in _PRIMITIVE:
        return pa.Array.from_buffers(_PRIMITIVE[kind], n, [validity, pa.py_buffer(desc[4])], nulls)
    if kind == "string":
        offsets, data, dates = desc[4:]
        text = pa.Array.from_buffers(pa.string(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(data)], nulls)
        if dates is not None:  # every value begins like a date: Arrow decides whether they are timestamps
            return _as_arrow_types_dates(text, dates)
        return text
    if kind == "list":
        child = _native_array(desc[5])
        return pa.Array.from_buffers(pa.list_(child.type), n, [validity, pa.py_buffer(desc[4])], nulls, children=[child])
    fields = desc[4]
    children = [_native_array(sub) for _, sub in fields]
    struct = pa.struct([pa.field(name, child.type) for (name, _), child in zip(fields, children, strict=True)])
    return pa.Array.from_buffers(struct, n, [validity], nulls, children=children)


_PRIMITIVE = {"bool": pa.bool_(), "int": pa.int64(), "double": pa.float64()}
_DAY = 10  # len("YYYY-MM-DD")


def _as_arrow_types_dates(text: pa.Array, dates: object) -> pa.Array:
    """A column whose values all begin like a date, typed as Arrow's JSON reader types it: timestamp[s] when every
    value is one, else text. Plain days (all YYYY-MM-DD) are cast by Arrow's ISO 8601 parser, the one its reader
    uses for text without a zone; anything else is read by that reader from the values' own JSON text."""
    if pc.all(pc.equal(pc.binary_length(text), _DAY)).as_py() is not False:
        try:
            return text.cast(pa.timestamp("s"))
        except pa.ArrowInvalid:
            return text  # a day that does not exist (2024-02-30): the reader keeps such a column as text
    column = _arrow_read(bytes(dates)).column("v").combine_chunks()
    return text if pa.types.is_string(column.type) else column


def _read_block(data: bytes | memoryview) -> pa.Table:
    """The block's objects as a table, typed as Arrow's JSON reader types them: by the native reader
    (native/jsonl.c), or by Arrow's when the native one gives the block back (anything unusual, errors)."""
    desc = _native.json_lines_columns(data)
    if desc is None or not desc[4]:  # no fields at all: Arrow's reader counts the rows of `{}` lines
        return _arrow_read(data)
    fields = desc[4]
    return pa.Table.from_arrays([_native_array(sub) for _, sub in fields], names=[name for name, _ in fields])


def _scalars_as_text(doc: Any, depth: int = 0) -> Any:
    if isinstance(doc, dict):
        if depth >= 64:
            return orjson.dumps(doc).decode()
        return {str(k): _scalars_as_text(v, depth + 1) for k, v in doc.items()}
    if isinstance(doc, list):
        if depth >= 64:
            return orjson.dumps(doc).decode()
        return [_scalars_as_text(v, depth + 1) for v in doc]
    if doc is None or isinstance(doc, str):
        return doc
    return orjson.dumps(doc).decode() if not isinstance(doc, float | int | bool) else str(doc)


def _docs_to_table_slow(docs: list[dict[str, Any]]) -> pa.Table:
    """For records Arrow cannot type consistently: every scalar as text; if a field is sometimes an
    object and sometimes not, that field's values are kept as JSON text."""
    texts = [_scalars_as_text(d) for d in docs]
    try:
        return _read_block(b"\n".join(orjson.dumps(d) for d in texts))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    flat = [
        {k: (orjson.dumps(v).decode() if isinstance(v, dict | list) else v) for k, v in d.items()} for d in texts
    ]
    keys: dict[str, None] = {}
    for d in flat:
        keys.update(dict.fromkeys(d))
    return pa.table({k: pa.array([d.get(k) for d in flat], pa.string()) for k in keys})


MAX_DEPTH = 64  # deeper subtrees are kept as JSON text; Arrow's reader must never see deep or non-object lines


def _scan_lines(data: bytes | memoryview) -> tuple[np.ndarray, int, bool]:
    """(indices of lines Arrow's reader must not get, lines that begin with `{`, whether the block is UTF-8) in one
    native pass over the block.

    A line is suspect when it is not an object (`null` as a first line crashes the reader) or is nested
    deeper than MAX_DEPTH (brackets inside strings count too: an upper bound). A blank line, or a lone CR
    (CRLF files), is not suspect; a CR followed by anything else is (Arrow skips the CR as whitespace, and a
    non-object after it, `\rnull`, crashes the process)."""
    suspect, objects, utf8 = _native.json_lines_scan(data, MAX_DEPTH)
    return np.frombuffer(suspect, np.int64), objects, utf8


def _suspect_lines(data: bytes) -> np.ndarray:
    """Indices of lines Arrow's reader must not get (see _scan_lines)."""
    return _scan_lines(data)[0]


def _object_lines(data: bytes | memoryview) -> int:
    """Lines that begin with `{`: in a block that passed _suspect_lines, the records Arrow must return."""
    return _scan_lines(data)[1]


def structural(arr: np.ndarray, chars: np.ndarray) -> np.ndarray:
    """Which of the byte positions `chars` of a JSON text lie outside strings. A quote is real unless an odd
    number of backslashes precedes it, and a string never spans a raw newline (JSON forbids one inside a
    string), so an unbalanced quote spoils its own line only. Vectorised over quote positions."""
    quotes = np.flatnonzero(arr == 34)
    if quotes.size:
        plain = np.flatnonzero(arr != 92)  # the last byte before each quote that is not a backslash
        before = np.searchsorted(plain, quotes) - 1
        last = np.where(before >= 0, plain[np.maximum(before, 0)], -1)
        quotes = quotes[(quotes - 1 - last) % 2 == 0]
    if not quotes.size:
        return np.ones(chars.size, bool)
    newlines = np.flatnonzero(arr == 10)
    line_start = np.zeros(chars.size, np.int64)
    if newlines.size:
        k = np.searchsorted(newlines, chars)
        line_start = np.where(k > 0, newlines[np.maximum(k - 1, 0)], 0)
    return (np.searchsorted(quotes, chars) - np.searchsorted(quotes, line_start)) % 2 == 0


def cut_deep(text: bytes, keep: int = 64) -> bytes:
    """`text` with every subtree nested deeper than `keep` levels replaced by a JSON string holding its text:
    the record keeps its shape down to `keep` levels and the rest is scanned as text, at any depth, with
    memory linear in the text (no parser ever recurses into it)."""
    arr = np.frombuffer(text, np.uint8)
    folded = arr | 32  # `{`/`[` and `}`/`]` differ only in bit 5
    brackets = np.flatnonzero((folded == 123) | (folded == 125))
    brackets = brackets[structural(arr, brackets)]
    if brackets.size <= keep:
        return text
    depth = np.cumsum(np.where(folded[brackets] == 123, 1, -1))
    if depth.max() <= keep:
        return text
    opens = brackets[(depth == keep + 1) & (folded[brackets] == 123)]
    closes = brackets[(depth == keep) & (folded[brackets] == 125)]
    pieces, prev = [], 0
    for start in opens.tolist():
        if start < prev:
            continue
        k = int(np.searchsorted(closes, start))
        end = int(closes[k]) + 1 if k < closes.size else len(text)  # unclosed: the rest, as text
        pieces += [text[prev:start], orjson.dumps(text[start:end].decode("utf-8", "replace"))]
        prev = end
    pieces.append(text[prev:])
    return b"".join(pieces)


def _number_text(text: str) -> float | str:
    value = float(text)
    return value if math.isfinite(value) else text


def _int_or_text(text: str) -> int | str:
    value = int(text)
    return value if -(1 << 63) <= value < (1 << 64) else text


def lenient_loads(data: bytes | str) -> Any:
    """Python's parser for the records orjson refuses that hold nothing worse than a number out of range
    (`1e400`, a 30-digit id): such a number is kept as its text, the rest of the record as usual.
    Raises ValueError when the text is not JSON."""
    return json.loads(data, parse_float=_number_text, parse_int=_int_or_text, parse_constant=str)


def leading_value(text: bytes) -> Any:
    """The JSON value at the start of `text` when something that is not JSON follows it, else None."""
    decoder = json.JSONDecoder(parse_float=_number_text, parse_int=_int_or_text, parse_constant=str)
    body = cut_deep(text, MAX_DEPTH).decode("utf-8", "replace")
    try:
        value, end = decoder.raw_decode(body, len(body) - len(body.lstrip()))
    except (ValueError, RecursionError):
        return None
    return value if body[end:].strip() else None


def parse_record(line: bytes) -> tuple[Any, str | None]:
    """(value, None) for one JSON text, nested any depth (deeper than MAX_DEPTH kept as text), or (None, why not).
    Bytes that are not UTF-8 make the record malformed."""
    if line.count(b"{") + line.count(b"[") > MAX_DEPTH:
        line = cut_deep(line, MAX_DEPTH)
    try:
        return orjson.loads(line), None
    except orjson.JSONDecodeError as exc:
        why = f"invalid JSON ({exc.msg})" if hasattr(exc, "msg") else "invalid JSON"
        try:
            line.decode("utf-8")
            return lenient_loads(line), None
        except (ValueError, RecursionError):
            return None, why


def _slow_lines(lines: list[bytes], first_line: int, dataset: str, malformed: MalformedSink) -> Iterator[pa.Table]:
    docs: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        doc, why = parse_record(line)
        if why is not None:
            malformed(dataset, first_line + i, why)
            continue
        if not isinstance(doc, dict):
            malformed(dataset, first_line + i, f"a JSON {'null' if doc is None else type(doc).__name__}, not an object")
            continue
        hits = doc.get("hits")
        if "_source" not in doc and isinstance(hits, dict) and isinstance(hits.get("hits"), list):
            # A search response whose hits Arrow could not type as one list of objects: each hit is a record.
            for j, hit in enumerate(hits["hits"], 1):
                if isinstance(hit, dict):
                    docs.append(hit)
                else:
                    malformed(dataset, first_line + i, f"search hit {j} is a {'null' if hit is None else type(hit).__name__}, not an object")
            continue
        docs.append(doc)
    if not docs:
        return
    try:
        yield _read_block(b"\n".join(orjson.dumps(d) for d in docs))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):
        yield _docs_to_table_slow(docs)


def count_newlines(data: bytes | bytearray | memoryview) -> int:
    """Newlines in a block, at memchr speed (bytes.count visits each byte in a plain loop: ~0.6 ms a MB, 7 % of a
    big JSON Lines scan's CPU counted twice, at planning and per block)."""
    return _native.count_byte(data, 10)


def valid_utf8(data: bytes | bytearray | memoryview) -> bool:
    """Whether `data` is UTF-8, checked by Arrow's vectorised validation without copying it."""
    offsets = pa.array([0, len(data)], pa.int64()).buffers()[1]
    try:
        pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(data)]).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def replace_not_utf8(data: bytes, first_line: int) -> tuple[bytes, list[int]]:
    """`data` with the bytes that are not UTF-8 (Latin-1 text, a damaged byte) replaced by U+FFFD, and the
    lines that had them: Arrow's JSON reader would pass such bytes on unchecked, to fail later."""
    lines = data.split(b"\n")
    bad = []
    for i, line in enumerate(lines):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(first_line + i)
            lines[i] = line.decode("utf-8", "replace").encode()
    return b"\n".join(lines), bad


def report_not_utf8(dataset: str, lines: list[int], malformed: MalformedSink) -> None:
    """One warning for the lines whose bytes that are not UTF-8 were replaced (nothing was lost)."""
    if lines:
        more = f" and {len(lines) - 1:,} more" if len(lines) > 1 else ""
        malformed(dataset, lines[0], f"line {lines[0]}{more}: bytes that are not UTF-8 were scanned as U+FFFD; if the file is Latin-1, convert it to UTF-8", "warning")


def _blank(data: bytes | memoryview) -> bool:
    """Empty or only whitespace (a buffer is copied only when its first bytes are all whitespace)."""
    return not data or (bytes(data[:64]).isspace() and bytes(data).isspace())


def json_lines_to_tables(data: bytes | bytearray | memoryview, first_line: int, dataset: str, malformed: MalformedSink) -> Iterator[pa.Table]:
    """Tables for a block of complete JSON lines (line numbers start at first_line); `data` may be any buffer."""
    if _blank(data):
        return
    suspect, objects, utf8 = _scan_lines(data)
    if not utf8:
        data, lines = replace_not_utf8(bytes(data), first_line)
        report_not_utf8(dataset, lines, malformed)
        suspect, objects, _ = _scan_lines(data)
    if suspect.size:
        lines = bytes(data).split(b"\n")
        if suspect.size > 64:
            for t in _slow_lines(lines, first_line, dataset, malformed):
                yield unwrap_search_hits(t)
            return
        # Clean runs between suspect lines keep the fast path; each suspect line is parsed alone.
        prev = 0
        for i in suspect.tolist():
            if i > prev:
                yield from _fast_lines(b"\n".join(lines[prev:i]), first_line + prev, dataset, malformed)
            for t in _slow_lines(lines[i : i + 1], first_line + i, dataset, malformed):
                yield unwrap_search_hits(t)
            prev = i + 1
        if prev < len(lines):
            yield from _fast_lines(b"\n".join(lines[prev:]), first_line + prev, dataset, malformed)
        return
    yield from _fast_lines(data, first_line, dataset, malformed, objects)


def json_lines_table(data: bytes | memoryview) -> pa.Table | None:
    """The table json_lines_to_tables gives for a block of valid UTF-8 JSON lines when that is one parse of
    the whole block by Arrow's reader (shallow objects only, every line one record), else None."""
    suspect, objects, _ = _scan_lines(data)
    if suspect.size:
        return None
    try:
        table = _read_block(data)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table if table.num_rows == objects else None


def _fast_lines(data: bytes | memoryview, first_line: int, dataset: str, malformed: MalformedSink, objects: int | None = None) -> Iterator[pa.Table]:
    """Arrow's reader on lines known to be shallow objects; a block it still rejects (a malformed line,
    a field whose type changes) is halved until the troublesome lines are parsed one by one."""
    if _blank(data):
        return
    try:
        table = _read_block(data)
        if table.num_rows != (_object_lines(data) if objects is None else objects):
            # A line holding a second value after its object (`{...} null`, `{...}{...}`) gives Arrow
            # two rows: the lines are parsed one by one, where such a line is malformed.
            raise pa.ArrowInvalid("a line holds more than one JSON value")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        lines = bytes(data).split(b"\n")
        if len(lines) <= _SLOW_LINES:
            for t in _slow_lines(lines, first_line, dataset, malformed):
                yield unwrap_search_hits(t)
            return
        half = len(lines) // 2
        yield from _fast_lines(b"\n".join(lines[:half]), first_line, dataset, malformed)
        yield from _fast_lines(b"\n".join(lines[half:]), first_line + half, dataset, malformed)
        return
    yield unwrap_search_hits(table)


def docs_to_tables(docs: Iterable[dict[str, Any]], dataset: str, malformed: MalformedSink, batch: int = 20_000) -> Iterator[pa.Table]:
    """Tables for Python documents (JSON arrays, database rows as dicts), `batch` records at a time."""
    buf: list[bytes] = []
    line = 1
    for doc in docs:
        try:
            buf.append(orjson.dumps(doc, default=str, option=orjson.OPT_NON_STR_KEYS))
        except TypeError as exc:
            malformed(dataset, line, f"cannot encode record ({exc})")
        line += 1
        if len(buf) >= batch:
            yield from json_lines_to_tables(b"\n".join(buf), line - len(buf), dataset, malformed)
            buf = []
    if buf:
        yield from json_lines_to_tables(b"\n".join(buf), line - len(buf), dataset, malformed)


def split_array(buf: bytes, at_end: bool) -> tuple[bytes, int, int, bool]:
    """The complete elements at the start of `buf` (which begins inside a JSON array, at an element) as JSON
    lines, one element per line: (lines, elements, bytes consumed, whether the array's `]` was reached).
    Elements are cut at the commas between them, found vectorised (outside strings, at depth 0), so a
    broken element costs itself only; raw newlines inside an element are whitespace and become spaces."""
    arr = np.frombuffer(buf, np.uint8)
    folded = arr | 32
    chars = np.flatnonzero((folded == 123) | (folded == 125) | (arr == 44))
    chars = chars[structural(arr, chars)]
    kind = folded[chars]
    depth = np.cumsum(np.where(kind == 123, 1, np.where(kind == 125, -1, 0)))
    commas = chars[(arr[chars] == 44) & (depth == 0)]
    ends = chars[(kind == 125) & (depth == -1)]
    closed = bool(ends.size)
    if closed:
        stop = int(ends[0])
        commas = commas[commas < stop]
    elif at_end:
        stop = len(buf)
    elif commas.size:
        stop = int(commas[-1])
        commas = commas[:-1]
    else:
        return b"", 0, 0, False
    out = arr[:stop].copy()
    out[(out == 10) | (out == 13)] = 32
    out[commas] = 10
    return out.tobytes(), int(commas.size) + 1, stop + 1, closed


# -- many small JSON Lines files as one buffer --------------------------------------------------
# One Arrow parse per file costs more than the file's records: a folder of one-line files is parsed as
# one buffer, and each file gets the rows of its lines back. A file takes part only when that is
# provably what reading it alone gives: every line a shallow object, valid UTF-8, one table alone, and
# in the shared table no type another file could have promoted (int -> double, timestamp -> string),
# no field it would not have had alone (a field all null in its rows), no name a path could confuse.
# Every other file is None: its reader reads it alone, damage and all, exactly as before.
_TOGETHER_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_int64, pa.types.is_boolean, pa.types.is_null)
_DATE_LIKE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"  # what Arrow's JSON reader may infer as a timestamp (a superset)
_MIN_GROUP = 2  # a group that fails is halved down to this many files, which are then read alone


def _one_table_alone(text: bytes) -> bool:
    """Whether reading the file alone gives one Arrow parse (not its complete lines, then a last line
    without a newline on its own), and it is not indented objects (`jq .`), which are read differently."""
    cut = text.rfind(b"\n")
    if cut >= 0 and not text[:cut].isspace() and text[:cut] and not (text[cut + 1 :].isspace() or not text[cut + 1 :]):
        return False
    first = text.lstrip()[:64].split(b"\n", 1)[0].strip()
    return first != b"{"


def _plain_names(t: pa.DataType) -> bool:
    """Allowed types only, and sibling names that neither quote nor normalise alike (their order is a
    file's own, so a collision could resolve differently alone)."""
    if pa.types.is_struct(t):
        seen: set[str] = set()
        for f in t:
            canonical = re.sub(r"[^0-9a-z]", "", f.name.lower())
            if canonical in seen or not _PLAIN_NAME.fullmatch(f.name) or not _plain_names(f.type):
                return False
            seen.add(canonical)
        return True
    if pa.types.is_list(t):
        return _plain_names(t.value_type)
    return any(is_type(t) for is_type in _TOGETHER_TYPES)


_PLAIN_NAME = re.compile(r'[^.\[\]{}"#]+')


def _field_arrays(arr: pa.Array, out: list[pa.Array]) -> None:
    """Every field reachable from the top through structs (not through lists): one value per record."""
    out.append(arr)
    if pa.types.is_struct(arr.type):
        for i in range(arr.type.num_fields):
            _field_arrays(pc.struct_field(arr, [i]), out)


def _strings_in_lists(arr: pa.Array) -> Iterator[pa.Array]:
    t = arr.type
    if pa.types.is_struct(t):
        for i in range(t.num_fields):
            yield from _strings_in_lists(pc.struct_field(arr, [i]))
    elif pa.types.is_list(t):
        flat = pc.list_flatten(arr)
        if pa.types.is_string(flat.type) or pa.types.is_large_string(flat.type):
            yield flat
        else:
            yield from _strings_in_lists(flat)


def small_json_lines(texts: list[bytes]) -> list[pa.Table | None]:
    """For each whole small JSON Lines file (no byte-order mark), the table reading it alone would give
    (0 rows for a blank file), parsed together with the others; None where it must be read alone."""
    out: list[pa.Table | None] = [None] * len(texts)
    todo = [i for i, text in enumerate(texts) if _one_table_alone(text)]
    for i in todo:
        if texts[i].isspace() or not texts[i]:
            out[i] = pa.table({})
    _together([i for i in todo if out[i] is None], texts, out, rounds=3)
    return out


def _halve(group: list[int], texts: list[bytes], out: list[pa.Table | None], rounds: int) -> None:
    """Parse the halves apart, down to a few files, which are then read alone: isolates the odd file."""
    if len(group) > _MIN_GROUP:
        half = len(group) // 2
        _together(group[:half], texts, out, rounds)
        _together(group[half:], texts, out, rounds)


def _together(group: list[int], texts: list[bytes], out: list[pa.Table | None], rounds: int) -> None:
    if len(group) < 2 or rounds == 0:
        return
    def joined(group: list[int]) -> bytes:
        return b"".join(texts[i] if texts[i].endswith(b"\n") else texts[i] + b"\n" for i in group)

    data = joined(group)
    suspect, _, utf8 = _scan_lines(data)
    if not utf8:
        group = [i for i in group if valid_utf8(texts[i])]
        if len(group) < 2:
            return
        data = joined(group)
        suspect = _scan_lines(data)[0]
    arr = np.frombuffer(data, np.uint8)
    newlines = np.flatnonzero(arr == 10)
    starts = np.concatenate(([0], newlines[:-1] + 1))  # every line ends with a newline here
    lines_per_file = np.array([count_newlines(texts[i]) + (not texts[i].endswith(b"\n")) for i in group], np.int64)
    file_of_line = np.repeat(np.arange(len(group)), lines_per_file)
    if suspect.size:
        bad = set(file_of_line[suspect].tolist())
        _together([i for k, i in enumerate(group) if k not in bad], texts, out, rounds)
        return
    objects = np.bincount(file_of_line[arr[starts] == 123], minlength=len(group))
    try:
        table = _read_block(data)
        if table.num_rows != int(objects.sum()):
            raise pa.ArrowInvalid("a line holds more than one JSON value")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        _halve(group, texts, out, rounds)  # a damaged file, or fields whose types differ between files
        return
    names = set(table.schema.names)
    if "hits" in names or "_source" in names or not _plain_names(pa.struct(list(table.schema))):
        _halve(group, texts, out, rounds)  # search-hit exports, unusual names or types: find the files
        return
    bounds = np.concatenate(([0], np.cumsum(objects)))
    whole = table.combine_chunks()
    fields: list[pa.Array] = []
    for column in whole.columns:
        _field_arrays(column.chunk(0) if column.num_chunks else pa.array([], column.type), fields)
        if any(pc.any(pc.match_substring_regex(s, _DATE_LIKE)).as_py() for s in _strings_in_lists(column.chunk(0) if column.num_chunks else pa.array([], column.type))):
            _halve(group, texts, out, rounds)  # a string in an array that a file alone might read as a timestamp
            return
    present = np.ones((len(group), 0), bool)  # per file: which fields it has a value in
    dated = np.zeros(len(group), bool)
    for values in fields:
        if pa.types.is_null(values.type):
            continue
        counts = np.add.reduceat(np.asarray(values.is_valid(), dtype=np.int64), bounds[:-1])
        present = np.column_stack((present, counts > 0))
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            like = np.asarray(pc.fill_null(pc.match_substring_regex(values, _DATE_LIKE), False), dtype=np.int64)
            dated |= (np.add.reduceat(like, bounds[:-1]) == counts) & (counts > 0)  # alone, maybe a timestamp
    # A file lacking a field the shared table has would not have had it alone: files are grouped by the
    # fields they have, and a group that lacks some is parsed again on its own (its own table's fields).
    shapes, shape_of = np.unique(np.packbits(present, axis=1), axis=0, return_inverse=True)
    full = np.packbits(np.ones((1, present.shape[1]), bool), axis=1)[0]
    for s, shape in enumerate(shapes):
        members = [k for k in np.flatnonzero(shape_of.reshape(-1) == s).tolist() if not dated[k]]
        if np.array_equal(shape, full):
            for k in members:
                out[group[k]] = whole.slice(int(bounds[k]), int(objects[k]))
        elif len(members) < len(group):
            _together([group[k] for k in members], texts, out, rounds - 1)
