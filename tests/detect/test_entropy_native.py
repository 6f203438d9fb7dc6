"""The `secret` check's per-value entropy from the native core (native/entropy.c) against the numpy path it
replaced (tests/detect/former.py): random values of every shape, nulls, slices and 64-bit offsets, and the
credential columns of the demo data. The whole `secret` check in one native pass against the Arrow path it
replaced (checks._secret_arrow, still the path for values the native pass leaves undecided)."""

from __future__ import annotations

import random
import string

import numpy as np
import pyarrow as pa
import pyarrow.json as pj

from spillguard.demo import generate
from spillguard.detect.checks import _secret_arrow, entropy_per_value, run_check
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
    _same_secret(col)


def _same_secret(arr: pa.Array) -> None:
    new = run_check("secret", arr)
    old = _secret_arrow(arr)
    assert new.dtype == bool and new.shape == old.shape
    diff = np.flatnonzero(new != old)
    assert diff.size == 0, [arr[int(i)].as_py() for i in diff[:5]]


def _secret_like(rng: random.Random) -> str | None:
    kind = rng.random()
    if kind < 0.04:
        return None
    token_alphabets = [string.ascii_letters + string.digits, string.hexdigits, "ab", "äöü€😀", string.printable]
    body = "".join(rng.choice(rng.choice(token_alphabets)) for _ in range(rng.choice([0, 1, 15, 16, 17, 30, 64, 200])))
    if kind < 0.5:
        return body
    scheme = rng.choice(["bearer", "Bearer", "BASIC", "token", "ToKeN", "digest", "apikey", "apikeys", "bear", "baſic", "to\u212aen", "bearer\u00e9"])
    space = rng.choice(["", " ", "  ", "\t", "\n", "\x0b", "\x0c", "\r", " \x0b", "\u00a0", " \t "])
    return scheme + space + body


def test_secret_check_equals_the_arrow_path_on_random_values() -> None:
    rng = random.Random(11)
    values = [_secret_like(rng) for _ in range(6000)]
    values += ["x" * 16384, "ab" * 8192 + "c", "Bearer " + "0123456789abcdef", "bearer\t\t0123456789abcdef", "0123456789abcde"]
    long = "".join(rng.choice(string.ascii_letters) for _ in range(2000))  # past the native table's 1,024 bytes
    values += [long, long[:1500] + " " + long[1500:], long[:1020] + "\x0b" + long[1020:], long[:1023] + "\r"]
    # past the first bound's 256 bytes, below the table's end: with and without a space
    values += [long[:size] for size in (255, 256, 257, 600, 1023)] + [long[:400] + c + long[400:700] for c in " \t\n\x0b"]
    arr = pa.array(values, pa.string())
    _same_secret(arr)
    _same_secret(arr.slice(101, 2500))
    _same_secret(pa.array(values, pa.large_string()))
    _same_secret(pa.array([None, None], pa.string()))
    _same_secret(pa.array([], pa.string()))
    verdict = run_check("secret", arr)
    assert 0 < verdict.sum() < len(values)  # both outcomes occur: the comparison is not vacuous
    # the scheme word is stripped: a 16-character token after "Bearer " passes, 15 characters do not
    known = pa.array(["Bearer 0123456789abcdef", "Bearer 0123456789abcde", "bearer0123456789abcdef0", "has space 0123456789abcdef"])
    assert run_check("secret", known).tolist() == [True, False, True, False]
    # entropy exactly at the threshold (8 symbols equally often: 3.0 bits) passes, just below it fails
    at = pa.array(["aabbccddeeffgghh", "abcdefgh" * 4, "aabbccddeeffgghhh", "abcdefg" * 3])
    assert run_check("secret", at).tolist() == [True, True, False, False]
    near = pa.array(["".join(rng.choice("abcdefghi"[: rng.choice([7, 8, 9])]) for _ in range(rng.choice([16, 24, 32, 40]))) for _ in range(3000)])
    _same_secret(near)
    # The native pass's first bound (d distinct bytes in len: at least the entropy of one byte taking len - d + 1
    # places, the others one each) is exact on such values: every length and distinct count around 3.0 bits.
    corner = []
    for length in range(16, 81):
        for distinct in range(2, length + 1):
            chars = list(string.ascii_letters + string.digits + "+/")[:distinct]
            value = [chars[0]] * (length - distinct + 1) + chars[1:]
            rng.shuffle(value)
            corner.append("".join(value))
    _same_secret(pa.array(corner))
    assert 0 < run_check("secret", pa.array(corner)).sum() < len(corner)


def _mixed_text(rng: random.Random) -> str | None:
    if rng.random() < 0.05:
        return None
    pool = " \t\n\x0b\x0c\r\x1c\x1f\x85\u00a0\u2003\u3000" + "aZ09_-.!" + "äß€😀Ж\u0301"
    return "".join(rng.choice(pool) for _ in range(rng.choice([0, 1, 2, 3, 5, 12])))


def test_char_tests_from_bytes_equal_the_tests_themselves() -> None:
    """_any_char decides ASCII values from a byte table and hands the rest to the test: per value it must equal
    the character test (an Arrow kernel) run on the whole column, for every test, on text mixing ASCII and
    Unicode whitespace, letters, digits, marks and punctuation."""
    from spillguard.detect.checks import _CHAR_TESTS, _any_char

    rng = random.Random(5)
    values = [_mixed_text(rng) for _ in range(5000)] + ["", " ", "\u00a0", "a", "\x00"]
    arr = pa.array(values, pa.string())
    for test, direct in _CHAR_TESTS.items():
        for column in (arr, arr.slice(33, 2000), pa.array(values, pa.large_string())):
            want = direct(column.cast(pa.string())) & np.asarray(column.is_valid())
            got = _any_char(column, test)
            assert np.array_equal(got, want), (test, [column[int(i)].as_py() for i in np.flatnonzero(got != want)[:5]])
        assert 0 < _any_char(arr, test).sum() < len(values)
    assert run_check("nonempty", pa.array(["", " \t", "\u00a0\u2003", " x ", None])).tolist() == [False, False, False, True, False]
