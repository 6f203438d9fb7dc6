"""Keyed fingerprints of secrets: lets a responder revoke exactly the leaked tokens without keeping them."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from spillguard.errors import UserError

ENV_KEY = "SPILLGUARD_FINGERPRINT_KEY"


def _key_file() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "spillguard" / "fingerprint.key"


def fingerprint_key() -> bytes:
    """The install's fingerprint key: from $SPILLGUARD_FINGERPRINT_KEY (hex) or a 0600 key file made once."""
    env = os.environ.get(ENV_KEY)
    if env:
        try:
            key = bytes.fromhex(env)
        except ValueError:
            raise UserError(f"${ENV_KEY}: must be hex; generate one with `python -c 'import secrets;print(secrets.token_hex(32))'`") from None
        if len(key) < 16:
            raise UserError(f"${ENV_KEY}: must be at least 128 bits (32 hex characters)")
        return key
    path = _key_file()
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return _new_key(path)
    except OSError as exc:
        raise UserError(f"{path}: cannot read the fingerprint key ({exc.strerror}); fix its permissions or set ${ENV_KEY}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        # A short or empty key would make fingerprints reversible by dictionary: refuse, never fall back.
        raise UserError(f"{path}: the fingerprint key must be at least 128 bits of hex; delete the file to make a new one or set ${ENV_KEY}")
    return key


def _new_key(path: Path) -> bytes:
    key = secrets.token_bytes(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return fingerprint_key()
    except OSError as exc:
        raise UserError(f"{path}: cannot create the fingerprint key ({exc.strerror}); set ${ENV_KEY} or XDG_STATE_HOME") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex())
    return key


def fingerprint(key: bytes, value: str) -> str:
    digest = hmac.new(key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return "hmac-sha256:" + digest[:32]
