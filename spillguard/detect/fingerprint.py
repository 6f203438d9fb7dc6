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
        return bytes.fromhex(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex())
    return key


def fingerprint(key: bytes, value: str) -> str:
    digest = hmac.new(key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return "hmac-sha256:" + digest[:32]
