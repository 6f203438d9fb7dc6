"""The fingerprint key: made once owner-only, refused when weak, never a traceback."""

from __future__ import annotations

import stat

import pytest

from spillguard.detect.fingerprint import ENV_KEY, fingerprint, fingerprint_key
from spillguard.errors import UserError


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
