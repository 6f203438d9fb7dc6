"""The on-disk cache of work derived from the rules (spillguard/cache.py): entries whole or absent, owner-only, and a
cache that cannot be written costs only the work again (a scan still runs, with the same findings)."""

from __future__ import annotations

import stat

import pytest

import spillguard
from spillguard.cache import cache_file, read_cached, write_cached


def test_entries_are_written_whole_and_owner_only(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    write_cached("kind", "entry.bin", b"first")
    write_cached("kind", "entry.bin", b"second")  # replaced, never appended
    path = cache_file("kind", "entry.bin")
    assert path == tmp_path / "spillguard" / "kind" / "entry.bin"
    assert read_cached("kind", "entry.bin") == b"second"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["entry.bin"]  # nothing left aside
    assert read_cached("kind", "missing.bin") is None


def test_a_cache_that_cannot_be_written_only_costs_the_work(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker / "cache"))  # no directory can be made under a file (even as root)
    write_cached("kind", "entry.bin", b"data")
    assert read_cached("kind", "entry.bin") is None
    from spillguard.rules import builtin_rules

    assert len(builtin_rules()) > 300  # parsed from the TOML files again
    found = {m.rule for m in spillguard.scan_value("alice@example.com", "email")}
    assert "email" in found


def test_compiled_databases_are_kept_per_cpu(tmp_path, monkeypatch):
    """A database compiled for one CPU's instruction sets does not load on another: the entry names the platform the
    library compiles for, so a cache shared by two kinds of machine keeps one of each instead of each kind compiling
    again and overwriting the other's on every run."""
    import spillguard._native as native
    from spillguard.detect import matcher

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(matcher, "_COMPILED", {})
    exprs, flags, ids = [b"spill[0-9]+guard"], [matcher.rule_flags(False)], [7]
    matcher.compile_patterns(exprs, flags, ids)
    entries = sorted(p.name for p in (tmp_path / "spillguard" / "vectorscan").iterdir())
    assert len(entries) == 1
    here = native.vectorscan_platform()
    monkeypatch.setattr(native, "vectorscan_platform", lambda: here + "-another-cpu")
    monkeypatch.setattr(matcher, "_COMPILED", {})
    key = (tuple(exprs), tuple(flags), tuple(ids))
    assert matcher._load(key) is None  # the other CPU's entry is not offered to this one
    matcher.compile_patterns(exprs, flags, ids)
    assert len(list((tmp_path / "spillguard" / "vectorscan").iterdir())) == 2  # each kept
    monkeypatch.setattr(native, "vectorscan_platform", lambda: here)
    assert matcher._load(key) is not None  # and this CPU's entry is still there


def test_the_seconds_beside_a_database_are_written_without_a_sync(tmp_path, monkeypatch):
    """A scan records the seconds it spent without a narrowed database a few times (a file each): those are not
    synced, a number lost in a crash only delays a compile, and a damaged one reads as none; entries that cost work to
    make (databases, parsed rules) still are."""
    import os

    from spillguard.detect import matcher

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    patterns = ([b"abc"], [0], (0,))
    matcher.record_spent(*patterns, 1.25)
    assert synced == []
    assert matcher.spent_before(*patterns) == 1.25
    write_cached("kind", "entry.bin", b"data")
    assert len(synced) == 1
    cache_file("vectorscan", matcher._spent_name(*patterns)).write_bytes(b"\x00garbage")
    assert matcher.spent_before(*patterns) == 0.0


def _image_entry(tmp_path):
    return next((tmp_path / "spillguard" / "vectorscan").glob("*.image"))


def test_a_database_is_mapped_from_its_image_and_a_damaged_image_is_compiled_again(tmp_path, monkeypatch):
    """The cache keeps a database as the library lays it out in memory (native/matcher.c, Matcher.image), and a
    later run maps that file and scans from it: the same matches as the database compiled now. An entry cut short,
    one bit flipped anywhere, a trailer or a library header that is not ours: refused, compiled again, rewritten."""
    import numpy as np
    import pyarrow as pa

    import spillguard._native as native
    from spillguard.detect import matcher

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(matcher, "_COMPILED", {})
    rules = [b"spill[0-9]+guard", b"\\b[a-f0-9]{12}\\b", b"(?:ab|cd)+e"]
    exprs, flags, ids = rules, [matcher.rule_flags(False)] * 3, [4, 7, 9]
    compiled = matcher.compile_patterns(exprs, flags, ids)
    entry = _image_entry(tmp_path)
    image = entry.read_bytes()
    assert image == compiled.image() and stat.S_IMODE(entry.stat().st_mode) == 0o600
    key = (tuple(exprs), tuple(flags), tuple(ids))
    mapped = matcher._load(key)
    assert mapped is not None and mapped.image() == image
    values = pa.array(["spill42guard and 0123456789ab", "abcde", "nothing here", "", "cdabcde spill1guard"] * 50)
    assert all(np.array_equal(a, b) for a, b in zip(matcher.scan_text(mapped, values), matcher.scan_text(compiled, values), strict=True))
    assert len(matcher.scan_text(mapped, values)[0]) == 250

    rng = np.random.default_rng(5)
    damaged = [image[:-1], image[: len(image) // 2], image + b"\x00", b"", b"x" * 200]
    for at in [0, 8, 100, len(image) // 3, len(image) - 40, len(image) - 9, len(image) - 1, *rng.integers(0, len(image), 6).tolist()]:
        flipped = bytearray(image)
        flipped[at] ^= 1 << int(rng.integers(8))
        damaged.append(bytes(flipped))
    for bad in damaged:
        entry.write_bytes(bad)
        monkeypatch.setattr(matcher, "_COMPILED", {})
        assert matcher._load(key) is None
        again = matcher.compile_patterns(exprs, flags, ids)  # compiled again, and the entry rewritten whole
        assert entry.read_bytes() == image and again.image() == image
    entry.unlink()
    assert matcher._load(key) is None
    with pytest.raises((OSError, native.NativeError)):
        native.Matcher.map(str(tmp_path / "spillguard" / "vectorscan"))  # a directory


def test_databases_of_the_former_form_are_removed_when_a_database_is_stored(tmp_path, monkeypatch):
    """Serialized databases (`.db`, before images) are never read again: the first database a process stores removes
    them, and nothing else of the cache (images, the seconds beside them, other kinds' entries)."""
    from spillguard.detect import matcher

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(matcher, "_COMPILED", {})
    matcher._drop_former_entries.cache_clear()
    folder = tmp_path / "spillguard" / "vectorscan"
    folder.mkdir(parents=True)
    for name in ("0123.db", "4567.db"):
        (folder / name).write_bytes(b"old")
    (folder / "89ab.spent").write_bytes(b"1.5")
    write_cached("rules", "entry.json", b"{}")
    matcher.compile_patterns([b"spill[0-9]+guard"], [matcher.rule_flags(False)], [1])
    kept = sorted(p.suffix for p in folder.iterdir())
    assert kept == [".image", ".spent"] and read_cached("rules", "entry.json") == b"{}"
    (folder / "cdef.db").write_bytes(b"old")  # (once a process: a later store leaves what appeared since)
    matcher.compile_patterns([b"other[0-9]+"], [matcher.rule_flags(False)], [2])
    assert (folder / "cdef.db").exists()
    matcher._drop_former_entries.cache_clear()
