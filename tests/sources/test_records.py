"""JSON Lines blocks before Arrow's reader: which lines must be parsed one by one (sources/records.py)."""

from __future__ import annotations

import random
import subprocess
import sys

from spillguard.sources.records import MAX_DEPTH, _suspect_lines

# Pieces that make the lines interesting: object and array openers, closers, non-objects, blanks,
# carriage returns, whitespace before an object, and runs of brackets around MAX_DEPTH.
PIECES = [b"{", b"}", b"[", b"]", b"\n", b"\r", b"\r\n", b" ", b"\t", b"null", b'"a"', b"1", b",", b":", b'{"k": 1}',
          b"[" * MAX_DEPTH, b"{" * (MAX_DEPTH - 1), b"]" * MAX_DEPTH, b"}" * 3, b'"{[{["']  # fmt: skip


def reference_suspects(data: bytes) -> list[int]:
    """Line by line: every line that is neither blank (empty, or a lone CR of a CRLF file) nor an
    object starting in the first byte whose brackets nest at most MAX_DEPTH deep."""
    lines = data.split(b"\n")
    if data.endswith(b"\n") or not data:
        lines.pop()
    out = []
    for i, line in enumerate(lines):
        if line in (b"", b"\r"):
            continue
        if not line.startswith(b"{"):
            out.append(i)
            continue
        depth = deepest = 0
        for byte in line:
            if byte in b"{[":
                depth += 1
                deepest = max(deepest, depth)
            elif byte in b"}]":
                depth -= 1
        if deepest > MAX_DEPTH:
            out.append(i)
    return out


def test_suspect_lines_match_a_line_by_line_reference():
    rng = random.Random(20191226)
    blocks = [b"", b"\n", b"\n\n\n", b"\r\n", b"\r", b"{}", b"{}\n", b"null", b"\rnull\n", b"{" * (MAX_DEPTH + 1)]
    for _ in range(3000):
        pieces = rng.choices(PIECES, k=rng.randint(1, 40))
        if rng.random() < 0.5:
            pieces.insert(0, b"{")
        blocks.append(b"".join(pieces))
    for block in blocks:
        assert _suspect_lines(block).tolist() == reference_suspects(block), block


def test_a_carriage_return_before_a_non_object_is_malformed_not_a_crash():
    # Arrow's reader skips a leading CR as whitespace and then crashes the process on `null`.
    code = (
        "from spillguard.sources.records import json_lines_to_tables\n"
        "bad = []\n"
        "data = b'\\rnull\\n{\"email\": \"a@example.com\"}\\r\\n\\r\\n\\r{\"email\": \"b@example.com\"}\\n\\r[1]\\n'\n"
        "rows = sum(t.num_rows for t in json_lines_to_tables(data, 1, 'd', lambda *a: bad.append(a[1])))\n"
        "print(rows, bad)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.split() == ["2", "[1,", "5]"]
