"""Keyed hashing, in one place: what spillguard keeps instead of a value.

- `fingerprint_key()` / `fingerprint()` / `fingerprints()`: the install's key and the keyed fingerprint of a
  secret (HMAC-SHA-256, truncated), so a responder can revoke exactly the leaked tokens without keeping them.
- `Hasher`: the scan's keyed 64-bit hash of subjects and matched values, for counting people and distinct
  values without holding them (keyed by the scan's seed; never leaves the scan's state files).
- `sha256_hex()`: the plain SHA-256 that token stores keep (django-oauth-toolkit `token_checksum`, Laravel
  Sanctum `personal_access_tokens.token`), to look a leaked token up where the store keeps only its hash.
- `PseudonymKey` / `load_pseudonym_key()`: HMAC-SHA-256 pseudonyms for safe copies and response ledgers; a key
  of at least 128 bits from a file or an environment variable, never a default, identified by `key_id()`.
- `derive_key()` (one sub-key per purpose), `keyed_hex()` (one value), `subject_hasher()` (the install-wide
  subject hash the leaked-secret set and respond share).

Column functions take Arrow arrays (any leaf type, read as UTF-8 text) and keep nulls as nulls. The digests
of a whole column are one call of the native core (native/digests.c: OpenSSL's SHA-256 over the Arrow buffers,
the HMAC key's pad states computed once per column); hex is a numpy lookup.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import spillguard._native as _native
from spillguard.detect.arrays import native_column
from spillguard.errors import UserError

ENV_KEY = "SPILLGUARD_FINGERPRINT_KEY"
PSEUDONYM_ENV_KEY = "SPILLGUARD_PSEUDONYM_KEY"
MIN_KEY_BYTES = 16  # 128 bits: below that a keyed hash of an e-mail address is a dictionary lookup away
FINGERPRINT_PREFIX = "hmac-sha256:"
FINGERPRINT_HEX = 32  # hex characters of the HMAC kept in a fingerprint (128 bits)
# Fingerprints a scan keeps per secret rule (state files and the JSON): enough to revoke by, and to check a
# token store against, without turning the result into a list of every leaked token. A report shows fewer.
MAX_FINGERPRINTS = 20
_KEYGEN_HINT = "generate one with `python -c 'import secrets;print(secrets.token_hex(32))'`"

_TABLE_BITS = 16
# Two hex characters per byte value, as one 16-bit cell: a digest matrix becomes hex in one lookup.
_HEX_PAIRS = np.frombuffer(b"".join(b"%02x" % i for i in range(256)), np.uint16)


# ---------------------------------------------------------------- keys


def parse_hex_key(text: str, where: str) -> bytes:
    """A key written as hex (surrounding whitespace ignored); refused when empty, not hex or under 128 bits."""
    text = text.strip()
    if not text:
        raise UserError(f"{where}: the key is empty; it must be at least 128 bits of hex; {_KEYGEN_HINT}")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise UserError(f"{where}: must be hex; {_KEYGEN_HINT}") from None
    if len(key) < MIN_KEY_BYTES:
        # A short key would make keyed hashes reversible by dictionary: refuse, never fall back.
        raise UserError(
            f"{where}: the key has {len(key) * 8} bits; it must be at least 128 bits (32 hex characters); {_KEYGEN_HINT}"
        )
    return key


def derive_key(key: bytes, label: str) -> bytes:
    """A sub-key for one purpose (journal chain, notify ledger, FF1, subject hash): an HMAC of a fixed label,
    so an output of one purpose never equals an output of another under the same key."""
    return hmac.new(key, label.encode(), hashlib.sha256).digest()


def key_id(key: bytes) -> str:
    """A name for a key that can be logged and stored beside its outputs (leaked-secret sets, copies' metadata):
    an HMAC of a constant, not the key. `kid-` + 64 bits of hex."""
    return "kid-" + derive_key(key, "spillguard key id v1").hex()[:16]


def keyed_hex(key: bytes, text: str, chars: int = 64) -> str:
    """HMAC-SHA-256 of one text as hex (the first `chars` characters): the scalar form of the column functions."""
    return hmac.new(key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:chars]


def _key_file() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "spillguard" / "fingerprint.key"


def fingerprint_key() -> bytes:
    """The install's fingerprint key: from $SPILLGUARD_FINGERPRINT_KEY (hex) or a 0600 key file made once."""
    env = os.environ.get(ENV_KEY)
    if env:
        return parse_hex_key(env, f"${ENV_KEY}")
    path = _key_file()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return _new_key(path)
    except OSError as exc:
        raise UserError(
            f"{path}: cannot read the fingerprint key ({exc.strerror}); fix its permissions or set ${ENV_KEY}"
        ) from None
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) < MIN_KEY_BYTES:
        raise UserError(
            f"{path}: the fingerprint key must be at least 128 bits of hex; delete the file to make a new one "
            f"or set ${ENV_KEY}"
        )
    return key


def _new_key(path: Path) -> bytes:
    key = secrets.token_bytes(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return fingerprint_key()
    except OSError as exc:
        raise UserError(
            f"{path}: cannot create the fingerprint key ({exc.strerror}); set ${ENV_KEY} or XDG_STATE_HOME"
        ) from None
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex())
    return key


# ---------------------------------------------------------------- column digests


def _digest_matrix(digests: bytes, n: int, size: int = 32) -> np.ndarray:
    return np.frombuffer(digests, np.uint8).reshape(n, size)


def _sha256_column(arr: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    col, valid = native_column(arr)
    return _digest_matrix(_native.sha256(*col), col[3]), valid


def _hmac_column(key: bytes, arr: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    col, valid = native_column(arr)
    return _digest_matrix(_native.hmac_sha256(key, *col), col[3]), valid


def hex_array(digests: np.ndarray, valid: np.ndarray | None = None, chars: int | None = None) -> pa.Array:
    """Rows of digest bytes as an Arrow array of lower-case hex strings (the first `chars` characters)."""
    n, size = digests.shape
    chars = 2 * size if chars is None else chars
    pairs = _HEX_PAIRS[digests].view(np.uint8)
    body = pa.py_buffer(pairs if chars == 2 * size else np.ascontiguousarray(pairs[:, :chars]))
    offsets = pa.py_buffer(np.arange(n + 1, dtype=np.int32) * chars)
    if valid is None:
        return pa.Array.from_buffers(pa.string(), n, [None, offsets, body])
    validity = pa.array(valid, pa.bool_()).buffers()[1]
    return pa.Array.from_buffers(pa.string(), n, [validity, offsets, body], null_count=int(n - valid.sum()))


def sha256_digests(arr: pa.Array) -> np.ndarray:
    """SHA-256 of each value's UTF-8 bytes as an (n, 32) uint8 matrix (a null hashes as the empty value)."""
    return _sha256_column(arr)[0]


def sha256_hex(arr: pa.Array) -> pa.Array:
    """SHA-256 hex of each value, as token stores keep it (`token_checksum`, Sanctum `token`); null stays null."""
    return hex_array(*_sha256_column(arr))


def hmac_digests(key: bytes, arr: pa.Array) -> np.ndarray:
    """HMAC-SHA-256 of each value's UTF-8 bytes under `key`, as an (n, 32) uint8 matrix."""
    return _hmac_column(key, arr)[0]


def hmac_hex(key: bytes, arr: pa.Array) -> pa.Array:
    """HMAC-SHA-256 hex of each value under `key` (all 64 characters), as an app that stores HMAC(app secret,
    token) keeps it; null stays null."""
    return hex_array(*_hmac_column(key, arr))


def app_hmac_key(env: str) -> bytes:
    """An application's own HMAC key from the environment variable `env`: its text as UTF-8 bytes, or the bytes
    of the hex after `hex:`. Never printed or stored; `key_id()` names it."""
    value = os.environ.get(env)
    if value is None or not value:
        state = "is not set" if value is None else "is empty"
        raise UserError(f"${env} {state}; export the application's HMAC key in it (its text, or hex:<hex>)")
    if value.startswith("hex:"):
        try:
            key = bytes.fromhex(value[4:].strip())
        except ValueError:
            raise UserError(f"${env}: the text after hex: must be hex") from None
        if not key:
            raise UserError(f"${env}: the key after hex: is empty")
        return key
    return value.encode("utf-8", "surrogatepass")


def fingerprint(key: bytes, value: str) -> str:
    """The keyed fingerprint of one secret: what scan results and response ledgers keep instead of it."""
    return FINGERPRINT_PREFIX + keyed_hex(key, value, FINGERPRINT_HEX)


def fingerprints(key: bytes, arr: pa.Array) -> pa.Array:
    """`fingerprint()` of every value of a column (to find leaked tokens in a token store); null stays null."""
    hexes = hex_array(*_hmac_column(key, arr), FINGERPRINT_HEX)
    return pc.binary_join_element_wise(FINGERPRINT_PREFIX, hexes, "")


# ---------------------------------------------------------------- pseudonyms


@dataclass(frozen=True, slots=True)
class PseudonymKey:
    """An HMAC-SHA-256 key for pseudonyms: the same value always maps to the same pseudonym under one key,
    so joins survive a safe copy, and nobody without the key can reverse it by dictionary."""

    key: bytes = field(repr=False)
    source: str  # where it came from ("file /etc/…", "env SPILLGUARD_PSEUDONYM_KEY"), never what it is
    name: str = "main"  # its name in a copy policy ([keys.<name>])

    def __post_init__(self) -> None:
        if len(self.key) < MIN_KEY_BYTES:
            raise UserError(f"{self.source}: the pseudonym key must be at least 128 bits; {_KEYGEN_HINT}")

    @property
    def id(self) -> str:
        return key_id(self.key)

    def digests(self, arr: pa.Array) -> np.ndarray:
        return hmac_digests(self.key, arr)

    def pseudonyms(self, arr: pa.Array, chars: int = 64) -> pa.Array:
        """HMAC-SHA-256 hex of each value (the first `chars` hex characters, 32 to 64); null stays null."""
        if not 32 <= chars <= 64:
            raise ValueError("a pseudonym keeps 32 to 64 hex characters (128 to 256 bits)")
        return hex_array(*_hmac_column(self.key, arr), chars)

    def pseudonym(self, value: str, chars: int = 64) -> str:
        return keyed_hex(self.key, value, chars)


def load_pseudonym_key(
    path: str | Path | None = None, env: str = PSEUDONYM_ENV_KEY, *, name: str = "main", where: str = ""
) -> PseudonymKey:
    """The pseudonym key from a file (hex) or, without a file, from the environment variable `env` (hex).
    `where` prefixes messages (a copy policy names its file and key).

    There is no default and no generated fallback: a copy pseudonymised under a key nobody kept cannot be
    joined with the next one, and one under a known key can be reversed.
    """
    pre = f"{where}: " if where else ""
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text()
        except FileNotFoundError:
            raise UserError(f"{pre}pseudonym key file {p} does not exist; {_KEYGEN_HINT} into it (mode 0600)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{pre}pseudonym key file {p}: cannot read it ({exc}); fix the path or permissions") from None
        return PseudonymKey(parse_hex_key(text, f"{pre}pseudonym key file {p}"), f"file {p}", name)
    value = os.environ.get(env)
    if value is None or not value.strip():
        state = "is not set" if value is None else "is empty"
        raise UserError(
            f"{pre}no pseudonym key: ${env} {state}; set it to at least 32 hex characters or pass a key file; "
            f"{_KEYGEN_HINT}"
        )
    return PseudonymKey(parse_hex_key(value, f"{pre}${env}"), f"env {env}", name)


# ---------------------------------------------------------------- the scan's subject hash


class Hasher:
    """Vectorised keyed 64-bit hash of Arrow values, for counting subjects and distinct values.

    A multilinear hash with a random 64-bit key per byte position (keyed by the scan's seed), finished with
    the splitmix64 mixer; one native call per column (native/digests.c). 0 is reserved for "no value".
    """

    def __init__(self, seed: int) -> None:
        rng = np.random.Generator(np.random.PCG64(seed))
        self._keys = rng.integers(1, 2**63 - 1, size=1 << _TABLE_BITS, dtype=np.int64).astype(np.uint64) | np.uint64(1)
        self._len_key = np.uint64(int(rng.integers(1, 2**63 - 1)) | 1)
        self._key_bytes = self._keys.tobytes()

    def hash_strings(self, arr: pa.Array) -> np.ndarray:
        """uint64 hash per value; 0 for nulls."""
        col, valid = native_column(arr)
        if col[3] == 0:
            return np.zeros(0, np.uint64)
        h = np.frombuffer(_native.keyed_hash64(self._key_bytes, int(self._len_key), *col), np.uint64).copy()
        if valid is not None:
            h[~valid] = 0
        return h


def subject_hasher(key: bytes) -> Hasher:
    """The install-wide keyed subject hash: the same person hashes the same in every scan and response,
    and nobody without the fingerprint key can test a guess."""
    return Hasher(int.from_bytes(derive_key(key, "spillguard subject hash")[:8], "big") >> 1)
