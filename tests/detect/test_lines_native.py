"""The native pre-check of JSON-lines blocks (native/lines.c) against the numpy version it replaced
(tests/detect/former.py): random blocks of objects, non-objects, blank and CR lines, deep nesting around
MAX_DEPTH, brackets inside strings, a last line with and without its newline."""

from __future__ import annotations

import random

import numpy as np

from spillguard.sources.records import MAX_DEPTH, _scan_lines
from tests.detect import former


def _line(rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.5:
        return b'{"a": "x", "b": [1, 2, {"c": "[[{"}]}'
    if kind < 0.6:
        return b""
    if kind < 0.65:
        return b"\r"
    if kind < 0.7:
        return rng.choice([b"\rnull", b"\r{}", b"null", b"[1,2]", b" {}", b"42", b"}"])
    depth = rng.choice([MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, MAX_DEPTH + 5, 2 * MAX_DEPTH])
    opener = rng.choice([b"[", b'{"k":'])
    closer = b"]" if opener == b"[" else b"}"
    deep = opener * depth + b"1" + closer * depth
    if rng.random() < 0.5:
        return b'{"d": ' + deep + b"}"
    return b'{"s": "' + b"[" * depth + b'", "t": ' + b"]" * rng.randint(0, 3) + b"1}"  # brackets in strings


def test_line_scan_equals_the_former_path() -> None:
    rng = random.Random(11)
    for _ in range(300):
        lines = [_line(rng) for _ in range(rng.randint(1, 40))]
        data = b"\n".join(lines) + rng.choice([b"", b"\n"])
        new_suspect, new_objects, utf8 = _scan_lines(data)
        old_suspect, old_objects = former._scan_lines(data)
        assert np.array_equal(new_suspect, old_suspect), data[:200]
        assert new_objects == old_objects and utf8


def test_edges() -> None:
    assert _scan_lines(b"")[1] == 0 and _scan_lines(b"")[0].size == 0
    suspect, objects, utf8 = _scan_lines(b'{"a":1}\nnull\n\n\r\n\r{}\n[1]')
    assert suspect.tolist() == [1, 4, 5] and objects == 1 and utf8


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# Sequences at the edges of UTF-8 (RFC 3629): the last overlong and first valid of each length, the surrogates,
# U+10FFFF and one past it, bytes that never occur, continuations alone and sequences cut short.
_EDGES = [
    b"\xc1\xbf", b"\xc2\x80", b"\xdf\xbf", b"\xe0\x9f\xbf", b"\xe0\xa0\x80", b"\xed\x9f\xbf", b"\xed\xa0\x80", b"\xed\xbf\xbf",
    b"\xee\x80\x80", b"\xef\xbf\xbf", b"\xf0\x8f\xbf\xbf", b"\xf0\x90\x80\x80", b"\xf4\x8f\xbf\xbf", b"\xf4\x90\x80\x80",
    b"\xf5\x80\x80\x80", b"\xff", b"\xfe", b"\x80", b"\xbf", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xc3\xa9", b"\xe2\x82\xac",
    b"\xf0\x9f\x98\x80", b"\xc0\x80", b"\xe0\x80\x80",
]  # fmt: skip


def test_the_utf8_answer_of_the_line_scan_is_pythons() -> None:
    """The scan's UTF-8 check (the block is given to the native JSON reader unchecked when it says yes) against
    Python's decoder: every edge sequence alone, at each offset around the eight-byte steps, in suspect and plain
    lines, and random lines of mostly ASCII with random bytes in them."""
    for edge in _EDGES:
        for at in range(18):
            for line in (b'{"a": "' + b"x" * at + edge + b'yz"}', b"x" * at + edge, b'{"k' + b"x" * at + edge + b'": 1}'):
                for data in (line, b'{"a": 1}\n' + line + b"\n{}\n", line + b"\n" + b"q" * 30):
                    assert _scan_lines(data)[2] == _utf8(data), data
    rng = random.Random(17)
    for _ in range(3000):
        lines = []
        for _ in range(rng.randint(1, 6)):
            body = bytearray(rng.choice(b'abc {}":,019') for _ in range(rng.randint(0, 40)))
            for _ in range(rng.randint(0, 3)):
                piece = rng.choice(_EDGES) if rng.random() < 0.5 else bytes(rng.randrange(128, 256) for _ in range(rng.randint(1, 4)))
                at = rng.randint(0, len(body))
                body[at:at] = piece
            lines.append(bytes(body))
        data = b"\n".join(lines)
        assert _scan_lines(data)[2] == _utf8(data), data


def test_count_newlines_equals_bytes_count() -> None:
    """The native newline count (memchr) against bytes.count on random blocks, views and buffers."""
    import random

    from spillguard.sources.records import count_newlines

    rng = random.Random(3)
    for size in (0, 1, 2, 15, 16, 17, 63, 64, 65, 4096, 100_003):
        data = bytes(rng.choice(b"\n\nab{}\x00\xff") for _ in range(size))
        assert count_newlines(data) == data.count(b"\n")
        assert count_newlines(bytearray(data)) == data.count(b"\n")
        assert count_newlines(memoryview(data)[size // 3 :]) == data[size // 3 :].count(b"\n")
    assert count_newlines(b"\n" * 1_000_000) == 1_000_000
