"""The `secret` check's per-value entropy from the native core (native/entropy.c) against the numpy path it
replaced (tests/detect/former.py): random values of every shape, nulls, slices and 64-bit offsets, and the
credential columns of the demo data."""

from __future__ import annotations

import random
import string

import numpy as np
import pyarrow as pa
import pyarrow.json as pj

from spillguard.demo import generate
from spillguard.detect.checks import entropy_per_value, run_check
from tests.detect import former


def _same(arr: pa.Array) -> None:
    new_ent, new_len = entropy_per_value(arr)
    old_ent, old_len = former.entropy_per_value(arr)
    assert np.array_equal(new_len, old_len)
    # Equal to the last bit but for libm's and numpy's log2 differing by an ulp; no threshold can fall between.
    np.testing.assert_allclose(new_ent, old_ent, rtol=1e-14, atol=0)


def _random_values(rng: random.Random, n: int) -> list[str | None]:
    alphabets = [string.hexdigits, string.ascii_letters + string.digits + "-_", "ab", "x", "äöü€😀 ", string.printable]
    out: list[str | None] = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.05:
            out.append(None)
        elif kind < 0.1:
            out.append("")
        else:
            alphabet = rng.choice(alphabets)
            out.append("".join(rng.choice(alphabet) for _ in range(rng.choice([1, 2, 7, 16, 40, 64, 300]))))
    return out


def test_entropy_equals_the_former_path_on_random_values() -> None:
    rng = random.Random(7)
    values = _random_values(rng, 3000)
    arr = pa.array(values, pa.string())
    _same(arr)
    _same(arr.slice(17, 1000))  # an offset into the buffers
    _same(pa.array(values, pa.large_string()))
    _same(pa.array([None, None], pa.string()))
    _same(pa.array([], pa.string()))


def test_known_entropies() -> None:
    ent, lengths = entropy_per_value(pa.array(["aaaa", "abcd", "abcdefgh", "", None, "aabb"]))
    assert ent.tolist() == [0.0, 2.0, 3.0, 0.0, 0.0, 1.0]
    assert lengths.tolist() == [4, 4, 8, 0, 0, 4]


def test_secret_check_unchanged_on_demo_credentials(tmp_path) -> None:
    generate(str(tmp_path), users=2000, seed=3, compress=False)
    table = pj.read_json(tmp_path / "users.jsonl")
    for name in ("api_token", "password_hash"):
        col = table.column(name).combine_chunks()
        _same(col)
        assert run_check("secret", col).sum() > 0
