"""The engine's fast paths agree exactly with the general ones they stand in for."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest

from spillguard.detect.checks import _CHAR_TESTS, _any_char, entropy_per_value
from spillguard.keys import Hasher
from spillguard.sources.records import _object_lines, _scan_lines, _suspect_lines
from tests.detect import former

# ASCII, Unicode letters, digits, marks and spaces (NBSP, em space, ideographic space, NEL, ZWSP).
_ALPHABET = [chr(c) for c in range(128)] + list("éß漢字٣\u0301\u00a0\u2003\u3000\u0085\u200b\u2028")


def _random_values(seed: int, count: int = 400, longest: int = 40) -> list[str | None]:
    rng = random.Random(seed)
    return [
        None if rng.random() < 0.1 else "".join(rng.choice(_ALPHABET) for _ in range(rng.randrange(longest)))
        for _ in range(count)
    ]


def _tokens(seed: int, count: int = 300) -> list[str]:
    rng = random.Random(seed)
    chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./$"
    return ["".join(rng.choice(chars) for _ in range(rng.choice((40, 60, 61)))) for _ in range(count)]


@pytest.mark.parametrize("seed", range(5))
def test_entropy_same_bits_whichever_path(seed: int) -> None:
    values = _tokens(seed) + ["", "aaaa", "ab" * 20]
    # Similar lengths take the per-row sort; one very long value sends the column to the global sort.
    rows, _ = entropy_per_value(pa.array(values))
    general, _ = entropy_per_value(pa.array([*values, "x" * 100_000]))
    assert rows.tobytes() == general[: len(values)].tobytes()
    mixed, _ = entropy_per_value(pa.array(_random_values(seed)))
    assert np.isfinite(mixed).all()


@pytest.mark.parametrize("seed", range(5))
def test_hash_same_bits_whichever_path(seed: int) -> None:
    hasher = Hasher(seed)
    values: list[str | None] = [*_tokens(seed), None, "", "é", *(v for v in _random_values(seed) if v)]
    padded = hasher.hash_strings(pa.array(values))
    per_byte = hasher.hash_strings(pa.array([*values, "y" * 100_000]))
    assert padded.tobytes() == per_byte[: len(values)].tobytes()
    assert hasher.hash_strings(pa.array(values).slice(5)).tobytes() == padded[5:].tobytes()


@pytest.mark.parametrize("seed", range(3))
def test_native_hash_is_the_numpy_hash(seed: int) -> None:
    """Subject and value hashes keep their bits across the move to the native core (state files, checkpoints
    and leaked-secret sets written before stay comparable)."""
    hasher = Hasher(seed)
    values: list[str | None] = [*_tokens(seed), None, "", "é", *_random_values(seed, longest=300)]
    for arr in (pa.array(values), pa.array(values).slice(9), pa.array(values, pa.large_string())):
        assert hasher.hash_strings(arr).tobytes() == former.keyed_hash64(hasher._keys, hasher._len_key, arr).tobytes()


@pytest.mark.parametrize("test", sorted(_CHAR_TESTS))
@pytest.mark.parametrize("seed", range(5))
def test_any_char_matches_the_test_itself(test: str, seed: int) -> None:
    text = pa.array(_random_values(seed, longest=6), pa.string())
    for arr in (text, text.slice(3)):
        assert (_any_char(arr, test) == _CHAR_TESTS[test](arr)).all()


def test_line_scan_counts_object_lines() -> None:
    block = b'{"a":1}\n\n{"b":[1]}\r\nnull\n{"c":' + b"[" * 70 + b"]" * 70 + b"}\n  {}\n{}"
    suspect, objects, utf8 = _scan_lines(block)
    assert objects == _object_lines(block) == 4 and utf8
    assert suspect.tolist() == _suspect_lines(block).tolist() == [3, 4, 5]


@pytest.mark.parametrize("tail", [[None], [""], ["", None, ""]])
def test_a_value_hashes_the_same_whatever_follows_it(tail: list[str | None]) -> None:
    hasher = Hasher(7)
    for values in (["ab", "abc"], ["ab", "y" * 70_000, "abc"]):  # the padded path and the per-byte path
        alone = hasher.hash_strings(pa.array(values))
        followed = hasher.hash_strings(pa.array([*values, *tail]))
        assert followed[: len(values)].tobytes() == alone.tobytes()
    # values differing only in their last byte must not collide at the end of a batch
    last = hasher.hash_strings(pa.array(["u10", "u11", None]))
    assert last[0] != last[1]


def test_large_string_columns_scan_like_string_columns(tmp_path) -> None:
    # Parquet written by polars and others holds large_string (64-bit offsets) columns
    import pyarrow.parquet as pq

    import spillguard

    rows = {
        "user_id": [f"u{i}" for i in range(300)],
        "email": [f"person{i}@example.com" if i % 3 else None for i in range(300)],
        "aliases": [[f"alt{i}@example.org"] if i % 2 else [] for i in range(300)],
        "api_token": ["ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8" for _ in range(300)],
    }
    small = pa.table(rows)
    large = small.cast(pa.schema([pa.field(f.name, _widen(f.type)) for f in small.schema]))
    assert pa.types.is_large_string(large.schema.field("email").type)
    pq.write_table(small, tmp_path / "small.parquet")
    pq.write_table(large, tmp_path / "large.parquet")
    a, b = spillguard.scan([tmp_path / "small.parquet"]), spillguard.scan([tmp_path / "large.parquet"])
    assert not b.errors
    assert {c: s.subjects for c, s in a.categories.items()} == {c: s.subjects for c, s in b.categories.items()}
    key = lambda r: {(f.field, f.rule, f.records_matched, f.values_matched, f.subjects_matched, f.values_distinct) for f in r.findings}  # noqa: E731
    assert key(a) == key(b) and key(a)
    assert b.categories["email"].subjects == 250


def _widen(t: pa.DataType) -> pa.DataType:
    if pa.types.is_string(t):
        return pa.large_string()
    if pa.types.is_list(t):
        return pa.list_(_widen(t.value_type))
    return t


def test_field_patterns_by_vectorscan_equal_pythons_re() -> None:
    """Planning matches every rule's `field` and `exclude_field` patterns with one Vectorscan database; on field
    paths built from the patterns' own words (with prefixes, suffixes, plurals, dots and digits) and random ones,
    every pattern must say what Python's re says."""
    import random
    import re

    from spillguard.detect.engine import FieldPatterns
    from spillguard.rules import select_rules

    rules = select_rules([], None, None)
    fields = FieldPatterns(rules)
    assert fields.db is not None and len(fields.python_only) <= 3  # nearly every pattern runs in Vectorscan
    words = sorted({w for r in rules for src in (r.field, r.exclude_field) if src for w in re.findall(r"[a-z][a-z_]{1,}", src)})
    rng = random.Random(8)
    paths = set(words)
    for _ in range(6000):
        parts = [rng.choice(words) for _ in range(rng.choice([1, 1, 2, 3]))]
        path = ".".join(parts)
        path = rng.choice(["", "user.", "devices.", "a.b.", "x_"]) + path + rng.choice(["", "_no", "_number", "s", "_2", ".value", "_id", "x"])
        paths.add(path)
    paths |= {"", ".", "_", "email", "e-mail", "card", "cc", "ip", "mac", "phone", "dob"}
    for path in sorted(paths):
        hits = fields.matching((path,))
        assert hits is not None
        for i, rule in enumerate(rules):
            assert fields.matches(i, "field", (path,), hits) == rule.field_matches(path), (rule.id, path)
            assert fields.matches(i, "exclude_field", (path,), hits) == rule.field_excluded(path), (rule.id, path)
    # a path Vectorscan would read otherwise goes to Python's re
    assert fields.matching(("e\u00e9mail",)) is None and fields.matching(("email\n",)) is None
