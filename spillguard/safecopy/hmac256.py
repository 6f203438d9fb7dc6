"""HMAC-SHA-256 over a whole Arrow string column at once, in numpy.

Every value is padded into 64-byte SHA-256 blocks of one matrix; values that need the same number of
blocks are compressed together, word by word, starting from the key's precomputed inner and outer
states. No Python code runs per value, so pseudonymising a column of a million ids costs a few
dozen numpy passes, not a million `hmac.new` calls. `tests/safecopy/test_safecopy_transforms.py` checks it
against the standard library's `hmac` on values of every padding boundary.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spillguard.detect.arrays import as_text, string_buffers

_K = np.array([
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4, 0xAB1C5ED5,
    0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174,
    0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
    0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967,
    0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85,
    0xA2BFE8A1, 0xA81A664B, 0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
    0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
], dtype=np.uint32)  # fmt: skip
_H0 = np.array(
    [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19], dtype=np.uint32
)
# Values hashed per numpy pass: large enough to amortise, small enough to stay in cache.
_CHUNK = 1 << 15
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _rotr(x: np.ndarray, n: int) -> np.ndarray:
    return (x >> np.uint32(n)) | (x << np.uint32(32 - n))


def _compress(state: np.ndarray, words: np.ndarray) -> np.ndarray:
    """One SHA-256 compression per row: state (n, 8) uint32, words (n, 16) uint32 -> new state."""
    w = list(words.T.copy())
    for t in range(16, 64):
        s0 = _rotr(w[t - 15], 7) ^ _rotr(w[t - 15], 18) ^ (w[t - 15] >> np.uint32(3))
        s1 = _rotr(w[t - 2], 17) ^ _rotr(w[t - 2], 19) ^ (w[t - 2] >> np.uint32(10))
        w.append(w[t - 16] + s0 + w[t - 7] + s1)
    a, b, c, d, e, f, g, h = (state[:, i].copy() for i in range(8))
    for t in range(64):
        s1 = _rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)
        ch = (e & f) ^ (~e & g)
        t1 = h + s1 + ch + _K[t] + w[t]
        s0 = _rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)
        maj = (a & b) ^ (a & c) ^ (b & c)
        t2 = s0 + maj
        h, g, f, e, d, c, b, a = g, f, e, d + t1, c, b, a, t1 + t2
    return state + np.stack([a, b, c, d, e, f, g, h], axis=1)


def _midstate(block: bytes) -> np.ndarray:
    words = np.frombuffer(block, dtype=">u4").astype(np.uint32)[None, :]
    return _compress(_H0[None, :].copy(), words)[0]


class HmacSha256:
    """HMAC-SHA-256 with one key, over Arrow columns. `digest_column` returns (n, 32) uint8 digests."""

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = _midstate(bytes(b ^ 0x36 for b in key))
        self._outer = _midstate(bytes(b ^ 0x5C for b in key))

    def digest_column(self, values: pa.Array) -> np.ndarray:
        """Digests of every value (text form of numbers, UTF-8 bytes of strings); nulls hash as ""."""
        text = as_text(values)
        if text.null_count:
            text = pc.fill_null(text, "")
        if pa.types.is_large_string(text.type):
            text = text.cast(pa.string()) if text.nbytes < (1 << 31) else text
        out = np.empty((len(text), 32), np.uint8)
        for start in range(0, len(text), _CHUNK):
            part = text.slice(start, _CHUNK)
            out[start : start + len(part)] = self._digest_chunk(part)
        return out

    def _digest_chunk(self, text: pa.Array) -> np.ndarray:
        offsets, data = string_buffers(text)
        lengths = np.diff(offsets)
        n = lengths.size
        # The inner hash covers the 64-byte key block, the value, 0x80, zeros, and the 64-bit bit length.
        blocks = (lengths + 9 + 63) // 64
        digests = np.empty((n, 32), np.uint8)
        for nb in np.flatnonzero(np.bincount(blocks)).tolist():
            rows = np.flatnonzero(blocks == nb)
            lens = lengths[rows]
            mat = np.zeros((rows.size, nb * 64), np.uint8)
            total = int(lens.sum())
            if total:
                row_of_byte = np.repeat(np.arange(rows.size), lens)
                starts = offsets[rows]
                col = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
                mat[row_of_byte, col] = data[np.repeat(starts, lens) + col]
            mat[np.arange(rows.size), lens] = 0x80
            bits = ((lens + 64) * 8).astype(">u8").view(np.uint8).reshape(-1, 8)
            mat[:, -8:] = bits
            words = mat.view(">u4").astype(np.uint32)
            state = np.broadcast_to(self._inner, (rows.size, 8)).copy()
            for b in range(nb):
                state = _compress(state, words[:, b * 16 : (b + 1) * 16])
            outer_words = np.zeros((rows.size, 16), np.uint32)
            outer_words[:, :8] = state
            outer_words[:, 8] = 0x80000000
            outer_words[:, 15] = (64 + 32) * 8
            final = _compress(np.broadcast_to(self._outer, (rows.size, 8)).copy(), outer_words)
            digests[rows] = final.astype(">u4").view(np.uint8).reshape(-1, 32)
        return digests


def hex_column(digests: np.ndarray, nbytes: int, prefix: str = "") -> pa.Array:
    """The first `nbytes` of each digest as lower-case hex text (with an optional prefix), built in numpy."""
    head = digests[:, :nbytes]
    chars = np.empty((head.shape[0], nbytes * 2), np.uint8)
    chars[:, 0::2] = _HEX[head >> 4]
    chars[:, 1::2] = _HEX[head & 0x0F]
    if prefix:
        p = np.frombuffer(prefix.encode(), np.uint8)
        chars = np.concatenate([np.broadcast_to(p, (head.shape[0], p.size)), chars], axis=1)
    width = chars.shape[1]
    offsets = np.arange(head.shape[0] + 1, dtype=np.int32) * width
    return pa.Array.from_buffers(
        pa.string(), head.shape[0], [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(np.ascontiguousarray(chars).tobytes())]
    )
