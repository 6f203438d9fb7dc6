"""Keyed hashing: the fingerprint key (made once, owner-only, refused when weak), column digests checked
against hashlib/hmac and published vectors, and the pseudonym key (refused when missing, short or empty)."""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import stat
import string
import time
from collections.abc import Callable

import pyarrow as pa
import pytest

from spillguard.errors import UserError
from spillguard.keys import (
    ENV_KEY,
    PSEUDONYM_ENV_KEY,
    PseudonymKey,
    derive_key,
    fingerprint,
    fingerprint_key,
    fingerprints,
    hmac_digests,
    key_id,
    keyed_hex,
    load_pseudonym_key,
    sha256_digests,
    sha256_hex,
    subject_hasher,
)


def test_key_file_is_created_once_and_owner_only(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.delenv(ENV_KEY, raising=False)
    key = fingerprint_key()
    path = tmp_path / "spillguard" / "fingerprint.key"
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert fingerprint_key() == key
    assert fingerprint(key, "Atza|x") == fingerprint(key, "Atza|x") != fingerprint(b"\0" * 32, "Atza|x")


@pytest.mark.parametrize("content", ["", "ab", "not hex at all", "00" * 15])
def test_weak_or_broken_key_files_are_refused(tmp_path, monkeypatch, content):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.delenv(ENV_KEY, raising=False)
    path = tmp_path / "spillguard" / "fingerprint.key"
    path.parent.mkdir()
    path.write_text(content)
    with pytest.raises(UserError, match="at least 128 bits"):
        fingerprint_key()


def test_environment_key_must_be_long_hex(monkeypatch):
    monkeypatch.setenv(ENV_KEY, "abcd")
    with pytest.raises(UserError, match="128 bits"):
        fingerprint_key()
    monkeypatch.setenv(ENV_KEY, "zz" * 16)
    with pytest.raises(UserError, match="must be hex"):
        fingerprint_key()


def test_unwritable_state_folder_is_a_user_error(monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", "/proc/spillguard-cannot-be-here")
    monkeypatch.delenv(ENV_KEY, raising=False)
    with pytest.raises(UserError, match="cannot create the fingerprint key"):
        fingerprint_key()


# ---------------------------------------------------------------- column digests: known answers

def _values(n: int = 3000, seed: int = 7) -> list[str | None]:
    """Empty, ASCII, multi-byte, exactly-one-block and multi-block values, and nulls, in random order."""
    rng = random.Random(seed)
    alphabet = "abcXYZ019|/+=_-.@ éü€😀\n"
    out: list[str | None] = ["", "abc", "a" * 55, "a" * 56, "a" * 64, "a" * 119, "x" * 5000, None]
    for _ in range(n):
        length = rng.choice([0, 1, 5, 31, 40, 55, 56, 63, 64, 65, 200, 2048])
        out.append("".join(rng.choice(alphabet) for _ in range(length)) if rng.random() > 0.05 else None)
    rng.shuffle(out)
    return out


def test_sha256_matches_hashlib_including_published_vectors() -> None:
    vals = _values()
    got = sha256_hex(pa.array(vals)).to_pylist()
    assert got == [None if v is None else hashlib.sha256(v.encode()).hexdigest() for v in vals]
    # FIPS 180-2 examples, independent of hashlib.
    assert sha256_hex(pa.array(["abc", ""])).to_pylist() == [
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ]
    # Sliced arrays and other leaf types read as the text the engine scans.
    sliced = pa.array(vals)[17:1017]
    assert sha256_hex(sliced).to_pylist() == got[17:1017]
    assert sha256_hex(pa.array([42, None])).to_pylist() == [hashlib.sha256(b"42").hexdigest(), None]
    assert sha256_digests(pa.array(["abc"]))[0].tobytes() == hashlib.sha256(b"abc").digest()


def test_hmac_matches_hmac_module_and_rfc4231() -> None:
    # RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
    assert hmac_digests(b"Jefe", pa.array(["what do ya want for nothing?"]))[0].tobytes().hex() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    # RFC 4231 test case 6: a key longer than a block is hashed first.
    big = hmac_digests(b"\xaa" * 131, pa.array(["Test Using Larger Than Block-Size Key - Hash Key First"]))
    assert big[0].tobytes().hex() == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    key = bytes(range(32))
    vals = _values(seed=11)
    pk = PseudonymKey(key, "test")
    expect = [None if v is None else hmac.new(key, v.encode(), hashlib.sha256).hexdigest() for v in vals]
    assert pk.pseudonyms(pa.array(vals)).to_pylist() == expect
    assert pk.pseudonyms(pa.array(vals), chars=32).to_pylist() == [None if e is None else e[:32] for e in expect]
    assert pk.pseudonym("alice@example.com") == hmac.new(key, b"alice@example.com", hashlib.sha256).hexdigest()
    # A different key gives unrelated pseudonyms: nothing of the value survives.
    other = PseudonymKey(bytes(32), "test").pseudonyms(pa.array(["alice@example.com"])).to_pylist()[0]
    assert other != pk.pseudonym("alice@example.com")


def test_column_hmac_equals_the_standard_library_at_every_padding_boundary() -> None:
    # SHA-256 pads to 64-byte blocks after 0x80 and an 8-byte length: 55/56 and 119/120 bytes flip the block count.
    rng = random.Random(5)
    key = bytes(range(7, 39))
    lengths = [0, 1, 2, 54, 55, 56, 57, 63, 64, 65, 118, 119, 120, 128, 500, 4096]
    values = ["".join(rng.choice(string.printable + "éß€") for _ in range(n)) for n in lengths]
    values += [f"user{i}@example.com" for i in range(2000)]
    for k in (key, b"k" * 64, b"k" * 65, b"k" * 100):  # a key longer than a block is hashed first (RFC 2104)
        digests = hmac_digests(k, pa.array(values))
        assert [bytes(d) for d in digests] == [hmac.new(k, v.encode(), hashlib.sha256).digest() for v in values]
    # Text of other leaf types and sliced arrays hash as the text the engine scans.
    assert bytes(hmac_digests(key, pa.array([12, 7]))[1]) == hmac.new(key, b"7", hashlib.sha256).digest()
    sliced = hmac_digests(key, pa.array(values)[3:9])
    assert [bytes(d) for d in sliced] == [hmac.new(key, v.encode(), hashlib.sha256).digest() for v in values[3:9]]


def test_derived_keys_and_key_ids_are_distinct_and_stable() -> None:
    key = bytes(range(32))
    assert derive_key(key, "a") == hmac.new(key, b"a", hashlib.sha256).digest() != derive_key(key, "b")
    assert key_id(key) == key_id(bytes(range(32))) != key_id(bytes(32))
    assert key_id(key).startswith("kid-") and len(key_id(key)) == 20 and key.hex()[:16] not in key_id(key)
    assert keyed_hex(key, "x", 24) == hmac.new(key, b"x", hashlib.sha256).hexdigest()[:24]
    a, b = subject_hasher(key), subject_hasher(bytes(32))
    vals = pa.array(["alice", "bob"])
    assert (a.hash_strings(vals) == subject_hasher(key).hash_strings(vals)).all()
    assert (a.hash_strings(vals) != b.hash_strings(vals)).all()


def test_column_fingerprints_equal_the_scalar_fingerprint() -> None:
    key = os.urandom(32)
    vals = ["Atza|IwEBIabc", "", "ghp_" + "a" * 36, None, "é" * 70]
    got = fingerprints(key, pa.array(vals)).to_pylist()
    assert got == [None if v is None else fingerprint(key, v) for v in vals]
    assert all(g is None or (g.startswith("hmac-sha256:") and len(g) == 12 + 32) for g in got)


def test_pseudonym_key_is_refused_when_missing_short_empty_or_not_hex(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(PSEUDONYM_ENV_KEY, raising=False)
    with pytest.raises(UserError, match="no pseudonym key"):
        load_pseudonym_key()
    monkeypatch.setenv(PSEUDONYM_ENV_KEY, "")
    with pytest.raises(UserError, match="no pseudonym key"):
        load_pseudonym_key()
    monkeypatch.setenv(PSEUDONYM_ENV_KEY, "ab" * 15)
    with pytest.raises(UserError, match="at least 128 bits"):
        load_pseudonym_key()
    with pytest.raises(UserError, match="does not exist"):
        load_pseudonym_key(tmp_path / "nope.key")
    for content, why in [("", "at least 128 bits"), ("00" * 15, "at least 128 bits"), ("xyz" * 20, "must be hex")]:
        p = tmp_path / "k"
        p.write_text(content)
        with pytest.raises(UserError, match=why):
            load_pseudonym_key(p)
    with pytest.raises(UserError, match="at least 128 bits"):
        PseudonymKey(b"short", "test")


def test_pseudonym_key_from_file_or_env_with_a_key_id_that_is_not_the_key(tmp_path, monkeypatch) -> None:
    hexkey = "a1" * 32
    p = tmp_path / "pseudonym.key"
    p.write_text(hexkey + "\n")
    monkeypatch.setenv(PSEUDONYM_ENV_KEY, "b2" * 16)
    from_file = load_pseudonym_key(p)  # a file wins over the environment
    assert from_file.key == bytes.fromhex(hexkey) and from_file.source == f"file {p}"
    from_env = load_pseudonym_key()
    assert from_env.key == bytes.fromhex("b2" * 16)
    assert from_file.id != from_env.id and from_file.id.startswith("kid-") and len(from_file.id) == 20
    assert from_file.id == key_id(bytes.fromhex(hexkey)) == load_pseudonym_key(p).id  # stable
    assert hexkey not in repr(from_file) and hexkey[:16] not in from_file.id


def _best_of(runs: int, work: Callable[[], object]) -> float:
    """The fastest of `runs` timings: what the code costs, without what other processes on the machine took."""
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - t)
    return best


def test_column_hashing_has_no_per_value_python_cost_beyond_the_digest() -> None:
    """Measured, not asserted tightly: the column path costs about what one hashlib call per value costs."""
    vals = pa.array([f"token-{i:08d}-" + "x" * 30 for i in range(50_000)])
    column = _best_of(3, lambda: sha256_hex(vals))
    loop = _best_of(3, lambda: [hashlib.sha256(v.encode()).hexdigest() for v in vals.to_pylist()])
    assert column < 2 * loop, (column, loop)
    column = _best_of(3, lambda: PseudonymKey(bytes(range(32)), "test").pseudonyms(vals))
    loop = _best_of(3, lambda: [hmac.new(b"k" * 32, v.encode(), hashlib.sha256).hexdigest() for v in vals.to_pylist()])
    assert column < 2 * loop, (column, loop)


def test_hmac_hex_equals_the_stdlib_and_app_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from spillguard.keys import app_hmac_key, hmac_hex

    values = ["", "Atza|" + "x" * 400, "ünï\u20ac", None, "a" * 64, "b" * 65]
    for key in (b"k", b"app-secret", bytes(range(100))):  # short, typical, longer than a SHA-256 block
        got = hmac_hex(key, pa.array(values, pa.string())).to_pylist()
        assert got == [None if v is None else hmac.new(key, v.encode(), hashlib.sha256).hexdigest() for v in values]
    monkeypatch.setenv("APP_K", "plain text key")
    assert app_hmac_key("APP_K") == b"plain text key"
    monkeypatch.setenv("APP_K", "hex:00ff10")
    assert app_hmac_key("APP_K") == b"\x00\xff\x10"
    for bad, msg in (("", "is empty"), ("hex:zz", "must be hex"), ("hex:", "is empty")):
        monkeypatch.setenv("APP_K", bad)
        with pytest.raises(UserError, match=msg):
            app_hmac_key("APP_K")
    monkeypatch.delenv("APP_K")
    with pytest.raises(UserError, match=r"\$APP_K is not set"):
        app_hmac_key("APP_K")


@pytest.mark.parametrize("seed", range(3))
def test_column_digests_are_hashlib_and_hmac(seed: int) -> None:
    """The native core's column digests equal the standard library's, value by value: nulls hash as the empty
    value and stay null in hex, sliced and 64-bit-offset arrays read the right bytes, long keys are hashed first."""
    import hashlib
    import hmac
    import random

    from spillguard.keys import hmac_digests, hmac_hex, sha256_digests, sha256_hex
    from tests.detect import former

    rng = random.Random(seed)
    alphabet = "abcXYZ019 -_@.é漢\n\x00"
    values = [None if rng.random() < 0.1 else "".join(rng.choice(alphabet) for _ in range(rng.randrange(90))) for _ in range(500)]
    for key in (b"k" * 16, bytes(range(64)), b"long key " * 20):
        for arr in (pa.array(values), pa.array(values).slice(7, 300), pa.array(values, pa.large_string())):
            raw = [(v or "").encode() for v in arr.to_pylist()]
            assert sha256_digests(arr).tobytes() == b"".join(hashlib.sha256(v).digest() for v in raw)
            assert hmac_digests(key, arr).tobytes() == b"".join(hmac.new(key, v, hashlib.sha256).digest() for v in raw)
            assert hmac_digests(key, arr).tobytes() == former.hmac_digests(key, arr)
            want = [None if v is None else hmac.new(key, v.encode(), hashlib.sha256).hexdigest() for v in arr.to_pylist()]
            assert hmac_hex(key, arr).to_pylist() == want
            assert sha256_hex(arr).to_pylist() == [None if v is None else hashlib.sha256(v.encode()).hexdigest() for v in arr.to_pylist()]
