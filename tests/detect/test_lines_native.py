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
        new_suspect, new_objects = _scan_lines(data)
        old_suspect, old_objects = former._scan_lines(data)
        assert np.array_equal(new_suspect, old_suspect), data[:200]
        assert new_objects == old_objects


def test_edges() -> None:
    assert _scan_lines(b"")[1] == 0 and _scan_lines(b"")[0].size == 0
    suspect, objects = _scan_lines(b'{"a":1}\nnull\n\n\r\n\r{}\n[1]')
    assert suspect.tolist() == [1, 4, 5] and objects == 1


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
