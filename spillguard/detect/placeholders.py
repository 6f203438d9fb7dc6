"""Placeholders are not credentials: `ghp_xxxx...`, `AKIAXXXXXXXXXXXXXXXX`, `xoxp-...-####`, `<your-token>`,
`${TOKEN}`, `changeme`, runs and sequences of characters, low entropy.

Decided as a class, in two steps, so that a column of real tokens pays nothing:
- `MARKERS` is one pattern compiled into the same Vectorscan database as the rules. It fires on what filler
  inside a token match is made of (a run of one character, an alphabet or digit sequence, blocks of one letter,
  words such as "EXAMPLE" or "your_" glued to token characters; template syntax and masks cannot be inside a
  token match). A value a token rule hit and the markers did not is final as matched; a value both hit goes to
  the exact check. `low_entropy_prefix` is the vectorised companion
  for typed fillers without a marker (`ghp_abababab...`): it looks at the first `WINDOW` bytes of the
  candidate values only.
- `is_placeholder(secret, mode)` is the exact decision on the credential's own text, run on those few
  candidates (and on every candidate of keyword rules, which always take the exact path).
"""

from __future__ import annotations

import re
import string
from functools import cache
from typing import Protocol

import numpy as np
import pyarrow as pa

from spillguard.detect.arrays import string_buffers, unique_sorted
from spillguard.detect.validators import shannon_entropy

WINDOW = 32  # bytes of a candidate whose entropy is judged
LOW_ENTROPY = 2.0  # bits per character: random tokens of 16+ characters sit above 3 (digits only: rarely below 2.5)
# Thresholds are set so that a real random token is almost never taken for filler (a dropped real token is an
# under-count): a run of 8 of one hex digit in a 64-digit token happens about once in 4 million tokens, a word
# of 5+ letters in one of three case forms about once in 10^5 to 10^10 of 400-character base64 tokens.
MIN_RUN = 8
MIN_SEQUENCE = 8
_FILL = "xX"  # letters people type for "some value here": a run of 6 is enough
_FILL_RUN = 6
_BLOCK_RUN = 4  # two runs of 4 of one letter (`xxxxYYYYzzzz...`): a typed pattern, not chance
_MASKS = "*#•"  # never part of a token alphabet: 4 of them mask a value
_WORDS = (
    "example", "sample", "dummy", "placeholder", "redacted", "changeme", "change_me", "replace", "insert",
    "your_", "your-", "fake_", "notreal", "not_real", "fixme", "secret_here", "token_here", "key_here",
    "goes_here", "masked", "removed", "lorem",
)
_SHORT_WORD = 5  # words this short count only in secrets of at most LONG characters (a 400-character token
LONG = 64  # holds a given 5-letter word in one of its case forms about once in 10^5 tokens)


def _case_forms(word: str) -> list[str]:
    return sorted({word, word.upper(), word.capitalize()})


_WORD_FORMS = [f for w in _WORDS for f in _case_forms(w)]
_TEMPLATE = (r"<[^<>\n]{1,40}>", r"\$\{", r"\$\(", r"\{\{", r"\{[A-Za-z_][A-Za-z0-9_]*\}", r"%\(", r"%s\b", r"\.\.\.", "…")
_TEMPLATE_RE = re.compile("|".join(_TEMPLATE))
_ALPHABETS = (string.ascii_lowercase, string.ascii_uppercase, string.digits, "9876543210")


def _run_starts(chars: str, length: int) -> list[str]:
    """Runs for the engine: each matches where a run begins only, so a run of 2,000 is one callback, not 2,000."""
    return [f"(?:^|[^{re.escape(c)}]){re.escape(c * length)}" for c in chars]


def _sequences(length: int) -> list[str]:
    return [a[i : i + length] for a in _ALPHABETS for i in range(len(a) - length + 1)]


def _marker_pattern() -> str:
    """What can sit inside a token match when it is filler. Words count only glued to token characters
    (`sk-proj-your-key`, `7EXAMPLE`), so prose ("for example, your ...") costs no engine callbacks, and
    zeros need a longer run (amounts and round timestamps are full of them)."""
    letters_digits = (string.ascii_letters + string.digits).replace("x", "").replace("X", "").replace("0", "")
    words = "|".join(re.escape(w) for w in _WORD_FORMS)
    upper = "|".join(re.escape(w) for w in _WORD_FORMS if w.isupper())
    parts = [
        *_run_starts(letters_digits, MIN_RUN), *_run_starts(_FILL, _FILL_RUN), *_run_starts("0", 10),
        *_sequences(MIN_SEQUENCE), *_run_starts(string.ascii_letters, _BLOCK_RUN),
        # after a dot only the upper-case forms: `mail.example.org` in an e-mail column is a domain
        f"[A-Za-z0-9_\\-|:/+=](?:{words})|\\.(?:{upper})",
    ]
    return "|".join(parts)


MARKERS = _marker_pattern()
# Filler inside a token: a run of one letter or digit, a run of x or X, an alphabet's sequence. Python's re tries
# a long alternation of literals at every position (~47 us a 400-character token); a back-reference for the runs
# and substring searches for the literals answer the same in a quarter of that.
_TOKEN_RUNS = re.compile(f"([A-Za-z0-9])\\1{{{MIN_RUN - 1}}}|([{_FILL}])\\2{{{_FILL_RUN - 1}}}")
_TOKEN_SEQUENCES = tuple(_sequences(MIN_SEQUENCE))
_WORDS_ALL = tuple(_WORD_FORMS)
_WORDS_LONG = tuple(w for w in _WORD_FORMS if len(w) > _SHORT_WORD)


def _token_filler(secret: str) -> bool:
    return _TOKEN_RUNS.search(secret) is not None or any(q in secret for q in _TOKEN_SEQUENCES)


_LETTER_BLOCK = re.compile(r"([A-Za-z])\1{" + str(_BLOCK_RUN - 1) + "}")
_MASKS_RE = re.compile(f"[{_MASKS}]{{4}}")
# What a password written in a config or a log line is when it is not one.
_NOT_A_PASSWORD = re.compile(
    r"(?i)^(?:null|none|nil|true|false|undefined|empty|string|password|passwd|secret|required|optional|invalid|"
    r"incorrect|wrong|expired|changed|reset|missing|mismatch|hidden|redacted|masked|protected|set|unset|is|was|"
    r"not|for|the|and|to|of|with|from|field|value|env|prompt|\*+|x+|#+|-+|\.+)$"
)
_ENV_REF = re.compile(r"^\$[A-Za-z_][A-Za-z0-9_]*$|^%[A-Za-z_][A-Za-z0-9_]*%$|^process\.env\.|^os\.environ|^env\(", re.I)
# A name where the value should be: a constant (`ACME_TOKEN_VALUE`) or a dotted reference (`settings.api_key`).
# Judged only for credentials a keyword introduced (an issuer's token may well be upper case and underscores):
# a constant's name, a config object's attribute, a name made of words (`my-app-secret-v2`: Kubernetes secret
# names, vault paths), or a number (`token_count=12345678901234567`: a count or an id, not a token).
_REFERENCE = (
    r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$|^(?:self|this|config|settings|env|process|os|secrets|vars|params|options|cfg|conf|ctx)"
    r"(?:\.[A-Za-z_][A-Za-z0-9_]*)+$"
)
_CONSTANT_OR_REFERENCE = re.compile(_REFERENCE)  # for passwords: `correct_horse_battery` may well be one
_IDENTIFIER = re.compile(_REFERENCE + r"|^[a-z]+(?:[-_.][a-z]+)+(?:[-_.][a-z0-9]{1,3})?$|^[0-9]+$")
# A filesystem path where a password should be: `PWD=/srv/app` in an environment dump is the working directory.
_PATH = re.compile(r"^(?:~|\.{1,2})?/[\w.\-/]*$")


def is_placeholder(secret: str, mode: str = "token", keyword: bool = False) -> bool:
    """True when `secret` is filler text rather than a credential. `mode` "password" judges only templates,
    masks and words (a real password may well be `root` or `123456`); "token" adds runs, sequences and
    low entropy; "off" never rejects. `keyword`: the secret followed a keyword (`api_key = ...`), where a
    constant's or a config object's name stands for the value."""
    if mode == "off" or not secret:
        return mode != "off"
    if keyword and mode == "token" and _IDENTIFIER.match(secret):
        return True
    if keyword and mode == "password" and (_CONSTANT_OR_REFERENCE.match(secret) or _PATH.match(secret)):
        return True
    if _ENV_REF.search(secret) or _TEMPLATE_RE.search(secret) or _MASKS_RE.search(secret) or any(
        w in secret for w in (_WORDS_ALL if len(secret) <= LONG else _WORDS_LONG)
    ):
        return True
    if mode == "password":
        return bool(_NOT_A_PASSWORD.match(secret))
    if _token_filler(secret) or len(_LETTER_BLOCK.findall(secret)) >= 2:
        return True
    # Low entropy is judged on typed-length secrets only: nobody types a 400-character filler without a run
    # in it, and the column path then need not read the windows of long tokens at all.
    return 16 <= len(secret) <= LONG and shannon_entropy(secret[:WINDOW]) < LOW_ENTROPY


# k*log2(k) - (k-1)*log2(k-1): what the k-th occurrence of a byte adds to sum(count*log2(count)) of a window.
_STEP = np.array([0.0] + [k * np.log2(k) - ((k - 1) * np.log2(k - 1) if k > 1 else 0.0) for k in range(1, WINDOW + 1)])


def low_entropy_prefix(values: pa.Array, idx: np.ndarray) -> np.ndarray:
    """Per value of `idx` (never null): a value of 16 to LONG bytes whose first WINDOW bytes have fewer than
    LOW_ENTROPY bits per byte. Reads the bytes in place (no copy of long values); one small sort per window
    length present, then the entropy from each byte's rank in its run of equal bytes (no logs per value)."""
    out = np.zeros(idx.size, bool)
    if idx.size == 0:
        return out
    offsets, data = string_buffers(values)
    starts = offsets[idx]
    lengths = offsets[idx + 1] - starts
    sel = np.flatnonzero((lengths >= 16) & (lengths <= LONG))
    if sel.size == 0:
        return out
    width = np.minimum(lengths[sel], WINDOW)
    for w in unique_sorted(width).tolist():
        rows = sel[width == w]
        grid = data[starts[rows][:, None] + np.arange(w)]
        # Enough distinct bytes rule low entropy out without counting: a lower bound of the distinct bytes from
        # a 64-bit mask of (byte mod 64), all rows at once; only the few rows below the bound are counted.
        seen = np.bitwise_or.reduce(np.left_shift(np.uint64(1), (grid & 63).astype(np.uint64)), axis=1)
        low = np.bitwise_count(seen) < _enough_distinct(w)
        if not low.any():
            continue
        rows, grid = rows[low], grid[low]
        grid.sort(axis=1)
        pos = np.arange(w)
        run_start = np.where(np.concatenate([np.ones((rows.size, 1), bool), grid[:, 1:] != grid[:, :-1]], axis=1), pos, 0)
        np.maximum.accumulate(run_start, axis=1, out=run_start)
        bits = np.log2(w) - _STEP[pos - run_start + 1].sum(axis=1) / w
        out[rows] = bits < LOW_ENTROPY
    return out


@cache
def _enough_distinct(w: int) -> int:
    """The fewest distinct bytes that guarantee LOW_ENTROPY bits or more in a window of w bytes: the lowest
    entropy with d distinct bytes has one byte w-d+1 times and the others once."""
    for d in range(1, w + 1):
        top = (w - d + 1) / w
        if -top * np.log2(top) + (d - 1) / w * np.log2(w) >= LOW_ENTROPY:
            return d
    return w + 1


class _SecretRule(Protocol):
    @property
    def secret_group(self) -> bool: ...

    @property
    def allow_re(self) -> re.Pattern[str] | None: ...

    placeholder: str
    min_entropy: float | None
    stopwords: list[str]


def accept_secret(rule: _SecretRule, secret: str) -> bool:
    """A candidate credential of `rule` is reported: not a placeholder, entropy at least the rule's minimum,
    not allowed by the rule's allowlist, free of its stopwords (gitleaks' per-rule filters)."""
    if rule.placeholder != "off" and is_placeholder(secret, rule.placeholder, keyword=rule.secret_group):
        return False
    if rule.min_entropy is not None and shannon_entropy(secret) < rule.min_entropy:
        return False
    if rule.allow_re is not None and rule.allow_re.search(secret):
        return False
    if rule.stopwords:
        lowered = secret.lower()
        return not any(w in lowered for w in rule.stopwords)
    return True
