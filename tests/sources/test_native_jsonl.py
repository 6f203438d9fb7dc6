"""The native JSON-lines reader (native/jsonl.c) against Arrow's JSON reader, which it stands in front of.

Whatever the native reader returns must be exactly the table Arrow's reader makes of the same block (schema,
values, nulls, nesting); whatever it cannot decide exactly it gives back, and Arrow's reader (and its errors)
decides. Blocks are generated: consistent columns of every JSON kind, nesting, escapes, dates in the shapes
Arrow does and does not take as timestamps, and blocks with the troubles Arrow rejects.
"""

from __future__ import annotations

import json
import random
import struct

import pyarrow as pa
import pytest

import spillguard._native as _native
from spillguard.demo import generate
from spillguard.sources.records import _arrow_read, _read_block

DATES = [
    "2024-01-01", "2024-01-01 10:00:00", "2024-01-01T10:00:00Z", "2024-01-01T10:00:00.123Z",
    "2024-01-01T10:00:00+02:00", "2024-01-01T10", "2024-02-30", "2024-13-01", "1991-06-15T00:00:00.000000Z",
    "2024-01-01T10:00:00+0200", "2024-01-01T24:00:00", "0000-01-01", "2024-01-01 ", "2024-01-01T10:00:00-02",
]


def _string(rng: random.Random) -> str:
    pick = rng.random()
    if pick < 0.2:
        return rng.choice(DATES)
    if pick < 0.3:
        return rng.choice(["", "a\"b", "back\\slash", "tab\there", "line\nfeed", "nul\u0000", "ü€😀", "\u2028", "/x"])
    if pick < 0.4:  # long: runs of plain bytes copied sixteen at a time, escapes anywhere in or between them
        return "".join(rng.choice("abcdefgh0123 -_@.") if rng.random() < 0.9 else rng.choice('"\\\n\t\u0001é€😀/') for _ in range(rng.randint(13, 90)))
    return "".join(rng.choice("abcXYZ019 -_@.") for _ in range(rng.randint(0, 12)))


def _scalar(kind: str, rng: random.Random) -> object:
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice([0, -1, 7, 2**53 + 1, 2**63 - 1, -(2**63), rng.randint(-10**6, 10**6)])
    if kind == "double":
        return rng.choice([0.5, -0.0, 1e-5, 1.5e300, 3.141592653589793, rng.uniform(-1e6, 1e6)])
    if kind == "number":  # ints and doubles in one column: Arrow promotes to double
        return _scalar(rng.choice(["int", "double"]), rng)
    if kind == "string":
        return _string(rng)
    if kind == "dates":
        return rng.choice(DATES[:2] + ["1999-12-31", "2024-01-01T10:00"])
    raise AssertionError(kind)


def _schema(rng: random.Random, depth: int = 0) -> object:
    """A random column type: a scalar kind, a list of one, or an object of several."""
    pick = rng.random()
    if depth < 3 and pick < 0.15:
        return ("list", _schema(rng, depth + 1))
    if depth < 3 and pick < 0.3:
        return ("object", {f"k{i}": _schema(rng, depth + 1) for i in range(rng.randint(0, 4))})
    return rng.choice(["bool", "int", "double", "number", "string", "dates", "null"])


def _value(schema: object, rng: random.Random) -> object:
    if rng.random() < 0.15 or schema == "null":
        return None
    if isinstance(schema, tuple) and schema[0] == "list":
        return [_value(schema[1], rng) for _ in range(rng.randint(0, 3))]
    if isinstance(schema, tuple):
        return {k: _value(s, rng) for k, s in schema[1].items() if rng.random() < 0.85}
    return _scalar(str(schema), rng)


def _dump(doc: object, rng: random.Random) -> bytes:
    text = json.dumps(doc, ensure_ascii=rng.random() < 0.5, separators=rng.choice([(",", ":"), (", ", ": ")]))
    return text.encode()


def _block(rng: random.Random) -> bytes:
    columns = {f"c{i}": _schema(rng) for i in range(rng.randint(1, 6))}
    lines = []
    for _ in range(rng.randint(1, 30)):
        doc = {k: _value(s, rng) for k, s in columns.items() if rng.random() < 0.9}
        line = _dump(doc, rng)
        if rng.random() < 0.05:
            line += b"\r"
        lines.append(line)
        if rng.random() < 0.03:
            lines.append(b"")
    return b"\n".join(lines) + rng.choice([b"", b"\n"])


_arrow_invalid: list[bytes] = []


def _arrow_or_error(block: bytes) -> pa.Table | str:
    try:
        return _arrow_read(block)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        return f"error: {exc}"


def _assert_same(block: bytes) -> bool:
    """The native reader's table equals Arrow's; True when the native reader took the block."""
    expected = _arrow_or_error(block)
    taken = _native.json_lines_columns(block) is not None
    if isinstance(expected, str):
        assert not taken, f"the native reader took a block Arrow rejects ({expected}): {block[:300]!r}"
        with pytest.raises((pa.ArrowInvalid, pa.ArrowNotImplementedError)):
            _read_block(block)
        return False
    got = _read_block(block)
    assert got.schema == expected.schema, (got.schema, expected.schema, block[:300])
    assert got.num_rows == expected.num_rows
    for name in expected.column_names:
        a, b = got.column(name), expected.column(name)  # chunked: Arrow cannot always concatenate its own chunks
        if taken:
            a.validate(full=True)
        try:
            b.validate(full=True)
        except pa.ArrowInvalid:  # Arrow's reader makes invalid nested lists when inner lists are null
            _arrow_invalid.append(block)
            continue
        same = a.equals(b) or repr(a.to_pylist()) == repr(b.to_pylist())  # NaN is not equal to itself
        assert same, (name, a.to_pylist()[:5], b.to_pylist()[:5], block[:300])
    return taken


def test_generated_blocks_read_exactly_as_arrow_reads_them() -> None:
    rng = random.Random(2024)
    taken = sum(_assert_same(_block(rng)) for _ in range(1500))
    assert taken > 1000  # the native reader takes most ordinary blocks


@pytest.mark.parametrize(
    "block",
    [
        b'{"a":1}\n{"a":"x"}',  # a type that changes
        b'{"a":1, "a":2}',  # a key given twice
        b'{"a":NaN}', b'{"a":Infinity}', b'{"a":99999999999999999999}', b'{"a":1E400}', b'{"a":01}',
        b'{"a":"\\ud800"}', b'{"a":"\\udc00x"}', b'{"a":"x\ty"}', b'{"a":"\\q"}',
        b'{"a":1} null', b'{"a":1}{"b":2}', b'{"a":1,}', b'{"a":[1,]}', b'{"a":tru}', b'{"a"}',
        b'{"a\\u0041":1}',  # an escape in a key
        b'{"a":[1,"x"]}', b'{"a":{"b":1}}\n{"a":[1]}', b'{"a":true}\n{"a":1}',
        b"\n".join(b'{"id%d":1}' % i for i in range(1100)),  # wider than the native reader's field search
    ],
)
def test_unusual_blocks_go_to_arrow(block: bytes) -> None:
    assert _native.json_lines_columns(block) is None
    _assert_same(block)


def test_promotions_nulls_and_nesting() -> None:
    _assert_same(b"{}\n{}")  # rows without fields: Arrow's reader counts them
    for block in [
        b'{"a":1}\n{"a":2.5}\n{"a":null}\n{}',
        b'{"a":null}\n{"b":1}\n{"a":{"c":1}}',
        b'{"a":[]}\n{"a":[1]}\n{"a":null}',
        b'{"a":[]}',
        b'{"a":{}}\n{"a":null}',
        b'{"a":[{"x":1},{"y":"2024-01-01"},null]}\n{"a":[{"x":2.5}]}',
        b'{"d":"2024-01-01"}\n{"d":null}\n{"d":"2024-01-01T10:00:00Z"}',
        b'{"d":"2024-01-01"}\n{"d":"2024-01-01T10:00:00.5"}',
        b'{"d":"2024-02-29"}\n{"d":null}\n{"d":"0000-01-01"}\n{"d":"9999-12-31"}\n{"d":"1970-01-01"}',  # days alone
        b'{"d":"2024-02-29"}\n{"d":"2023-02-29"}',  # a day that does not exist: text
        b'{"d":["2024-01-31","1900-03-01"]}\n{"d":[]}',
        b'{"s":"\\u00e9\\ud83d\\ude00\\n\\"\\/"}\n\r\n{"s":"plain"}\r',
        b'{ "a" : 1 , "b" : [ 1 , 2 ] }',
    ]:
        assert _assert_same(block), block


def _decimal(rng: random.Random) -> str:
    """A JSON number with a fraction or an exponent: short and long digit runs, leading zeros, exponents near and
    past the range where a double's conversion is a single exact step, halfway cases."""
    digits = "".join(rng.choice("0123456789") for _ in range(rng.choice((1, 2, 5, 9, 15, 16, 17, 19, 20, 25))))
    whole, frac = digits[: rng.randrange(len(digits) + 1)] or "0", digits[len(digits) // 2 :] or "0"
    whole = whole.lstrip("0") or "0"
    text = rng.choice(("-", "")) + whole
    if rng.random() < 0.8:
        text += "." + frac
    if rng.random() < 0.4 or "." not in text:
        text += rng.choice("eE") + rng.choice(("", "+", "-")) + str(rng.choice((0, 1, 5, 15, 21, 22, 23, 30, 250)))
    return text


def test_decimals_read_as_arrow_and_python_read_them() -> None:
    """Every double the native reader makes is the one Arrow's reader and Python's float() make, bit for bit."""
    rng = random.Random(53)
    values = [_decimal(rng) for _ in range(20000)]
    values += ["9007199254740993.0", "9007199254740992.0", "0.1", "-0.0", "1e22", "1e23", "4.35", "2.5e-22", "123456789012345678.9"]
    block = "\n".join(f'{{"x":{v}}}' for v in values).encode()
    assert _native.json_lines_columns(block) is not None
    assert _assert_same(block)
    got = _read_block(block).column("x").to_pylist()
    assert [struct.pack("<d", g) for g in got] == [struct.pack("<d", float(v)) for v in values]


def test_demo_data_reads_exactly_as_arrow_reads_it(tmp_path) -> None:
    generate(str(tmp_path), users=3000, seed=5, compress=False)
    for name in ("users.jsonl", "scale_measurements.jsonl"):
        data = (tmp_path / name).read_bytes()
        assert _assert_same(data), name


def test_damaged_blocks_are_never_taken_where_arrow_rejects_them() -> None:
    """Blocks with one byte changed, dropped or doubled: the native reader takes one only if Arrow's reader reads
    it, and then to the same table."""
    rng = random.Random(99)
    alphabet = b'{}[]",:0123456789.eE+-\\ntfu \tabc\x01'
    for _ in range(2500):
        block = bytearray(_block(rng))
        if not block:
            continue
        at = rng.randrange(len(block))
        action = rng.random()
        if action < 0.5:
            block[at] = rng.choice(alphabet)
        elif action < 0.75:
            del block[at]
        else:
            block.insert(at, block[at])
        data = bytes(block)
        if any(b > 127 for b in data):
            try:
                data.decode()
            except UnicodeDecodeError:
                continue  # the caller makes blocks UTF-8 before any reader sees them
        if b"\n" in data and any(not line.startswith(b"{") and line.strip(b"\r") for line in data.split(b"\n")):
            continue  # lines that are not objects are set aside by the line check before either reader
        _assert_same(data)


@pytest.mark.parametrize("block", [b'{"a":[null,[1.5]]}\n{"a":[[2]]}', b'{"a":[[null,null],[null]]}\n{"a":[[1.5]]}'])
def test_nested_lists_arrow_makes_invalid_are_read_valid(block: bytes) -> None:
    """Arrow's reader (pyarrow 26) builds list<list<double>> arrays whose offsets overrun their values when an
    inner list was null or all-null before the numbers turned double; the native reader reads them right."""
    assert _native.json_lines_columns(block) is not None
    table = _read_block(block)
    table.validate(full=True)
    assert table.column("a").to_pylist() == [json.loads(line)["a"] for line in block.split(b"\n")]
