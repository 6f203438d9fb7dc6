"""Session values decoded without running code: every format against a reference decoding of generated
sessions (ground truth), and pickles that would import or call anything refused."""

from __future__ import annotations

import copyreg
import io
import json
import os
import pickle
import random

import msgpack
import pytest

from spillguard.respond.session_values import REFUSED, SessionDecoder, classify, safe_unpickle


def sessions(n: int, seed: int) -> tuple[list[dict | list | str | None], list[str | None]]:
    """Session dicts in the shapes stores hold, and the user id each one names (the ground truth)."""
    rng = random.Random(seed)
    docs: list[dict | list | str | None] = []
    truth: list[str | None] = []
    for i in range(n):
        kind = rng.randrange(8)
        if kind <= 2:
            docs.append({"cookie": {"path": "/"}, "passport": {"user": i}})
            truth.append(str(i))
        elif kind == 3:
            docs.append({"passport": {"user": f"u-{i}"}, "flash": ["hi"]})
            truth.append(f"u-{i}")
        elif kind == 4:
            docs.append({"cookie": {"path": "/"}})  # a guest
            truth.append(None)
        elif kind == 5:
            docs.append({"passport": "not an object", "x": i})
            truth.append(None)
        elif kind == 6:
            docs.append({"passport": {"user": None}})
            truth.append(None)
        else:
            docs.append({"passport": {"user": {"id": i}}})  # an object is not an id
            truth.append(None)
    return docs, truth


@pytest.mark.parametrize("fmt, encode", [
    ("json", lambda d: json.dumps(d).encode()),
    ("msgpack", lambda d: msgpack.packb(d)),
    ("pickle", lambda d: pickle.dumps(d, 2)),
    ("pickle", lambda d: pickle.dumps(d, 0)),
    ("pickle", lambda d: pickle.dumps(d, pickle.HIGHEST_PROTOCOL)),
])
def test_each_format_against_ground_truth(fmt, encode):
    docs, truth = sessions(3000, seed=len(fmt))
    values = [encode(d) for d in docs]
    for chosen in (fmt, "auto"):
        got = SessionDecoder(chosen, "passport.user").users(values)
        assert got.users.to_pylist() == truth, chosen
        assert got.refused == 0 and got.unattributed == truth.count(None)


def test_uniform_batches_take_the_fast_path_and_keep_it_right():
    """Uniform express-session JSON (Arrow's reader, then the learned schema), then a batch whose ids change type."""
    dec = SessionDecoder("json", "passport.user")
    ints = [json.dumps({"cookie": {"a": 1}, "passport": {"user": i}}).encode() for i in range(500)]
    assert dec.users(ints).users.to_pylist() == [str(i) for i in range(500)]
    mixed = [json.dumps({"passport": {"user": f"id{i}" if i % 2 else i}}).encode() for i in range(500)]
    assert dec.users(mixed).users.to_pylist() == [f"id{i}" if i % 2 else str(i) for i in range(500)]
    # A value spanning lines, a vanished key (None), broken JSON and a non-object: each only costs itself.
    odd = [b'{"passport":\n {"user": 7}}', None, b"{not json", b"[1, 2]", b'{"passport": {"user": 8}}']
    assert dec.users(odd).users.to_pylist() == ["7", None, None, None, "8"]


def test_mixed_store_auto_and_wrong_format_counts_unattributed():
    docs, truth = sessions(900, seed=3)
    encoders = [lambda d: json.dumps(d).encode(), msgpack.packb, lambda d: pickle.dumps(d, 4)]
    values = [encoders[i % 3](d) for i, d in enumerate(docs)]
    assert classify(values).tolist() == ["json", "msgpack", "pickle"] * 300
    got = SessionDecoder("auto", "passport.user").users(values)
    assert got.users.to_pylist() == truth
    # Told the wrong format, nothing is guessed: the other formats' sessions are unattributed (and reported).
    only_json = SessionDecoder("json", "passport.user").users(values)
    assert only_json.users.to_pylist() == [t if i % 3 == 0 else None for i, t in enumerate(truth)]


class Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_pickles_that_name_code_are_refused_and_never_run(tmp_path):
    marker = tmp_path / "ran"
    planted = [
        *(pickle.dumps({"_user_id": "7", "x": Exploit(str(marker))}, p) for p in range(pickle.HIGHEST_PROTOCOL + 1)),
        b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.",  # GLOBAL + REDUCE, protocol 0 by hand
        b"(ios\nsystem\nS'touch " + str(marker).encode() + b"'\no.",  # INST
        pickle.dumps({"_user_id": "7", "when": __import__("datetime").datetime(2019, 12, 26)}),  # any global, even datetime
    ]

    class Persistent(pickle.Pickler):
        def persistent_id(self, obj: object) -> str | None:
            return "ref" if obj == "x" else None

    buf = io.BytesIO()
    Persistent(buf).dump({"_user_id": "7", "v": "x"})
    planted.append(buf.getvalue())
    for value in planted:
        assert safe_unpickle(value) is REFUSED, value[:40]
    # EXT4 (the copyreg extension registry) also resolves through find_class: refused while registered.
    code = 0x7FFF_FFF0
    copyreg.add_extension(os.system.__module__, "system", code)
    try:
        assert safe_unpickle(b"\x80\x02\x84" + code.to_bytes(4, "little") + b")R.") is REFUSED
    finally:
        copyreg.remove_extension(os.system.__module__, "system", code)
    got = SessionDecoder("pickle", "_user_id").users([*planted, pickle.dumps({"_user_id": "8"})])
    assert got.refused == len(planted) and got.users.to_pylist() == [None] * len(planted) + ["8"]
    assert not marker.exists()
    # Not a pickle at all: unreadable (no user), not refused.
    assert safe_unpickle(b"\x80\x04garbage") is None and safe_unpickle(b"") is None
