"""Which rules can match in a column, from the set of bytes the column holds.

A column of digits cannot hold an e-mail (no "@"), a bcrypt hash (no "$") or a dashed SSN (no "-"). Each rule's
pattern is read once into a requirement: the byte sets a match must draw from, combined as the pattern combines
them (a sequence needs all of its parts, an alternation one of its branches, an optional part nothing). A column's
bytes (`present_bytes`, one native pass) meet a requirement or not; a rule whose requirement they do not meet has
no match anywhere in the column, so the engine may leave it out of the database it scans the column with.

Leaving a rule out must never lose a match, so every step errs towards "can match": letters stand for both cases,
any character above ASCII for any byte above ASCII (and for a letter: Unicode case folding maps the Kelvin sign to
"k"), and a construct the reading does not know (look-arounds, anchors, back-references) requires nothing. The
scanned text also holds the "\n" the values are joined with, so it is always present.

A requirement may also ask for a run: so many consecutive bytes of one of a few classes (`RUN_CLASSES`: digits, hex
digits, letters and digits, ..., and numbers with their separators), read from a sequence of parts each wholly within
a class: characters, classes, and groups, alternations and repeats of these (`[0-9]{3}-[0-9]{4}` needs a run of four
digits, `AKIA[0-9A-Z]{16}` one of twenty letters and digits, `(?:[0-9]{1,3}[.]){3}[0-9]{1,3}` one of seven digits and
dots). A column's longest run of each class (`value_runs`, one native pass, runs ending at value boundaries) meets it
or not: a column of IPv4 addresses holds no run of four digits, so no dashed SSN, card number or IBAN, and a column
of e-mail addresses no run of digits and separators long enough for a phone number. Any byte above ASCII counts as a
byte of every class (a character above ASCII that a letter class matches, such as the Kelvin sign, is one or more
such bytes).

A column whose every character is one a rule's boundary class forbids beside a match (hex digests and UUIDs for the
card, IBAN and national-id rules, whose boundaries hold letters, digits and dashes) can hold that rule's match only
as a whole value: no character of a value can stand before or after it. `WholeForm` keeps what that takes, per
top-level branch of the pattern: its requirement and its fewest and most characters; a column whose value lengths
no branch it meets allows cannot hold the rule (a 40-character digest no IBAN, card number or AWS key id).

A linear pattern (a sequence of ASCII characters and classes, each optional or repeated: a bcrypt hash, most issuer
tokens) becomes a program of one bit per position (`linear_program`), which `_native.whole_linear` runs over a
column to tell the values it matches whole, without Vectorscan.
"""

from __future__ import annotations

import importlib
import re
import string
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa

import spillguard._native as _native
from spillguard.cache import readings
from spillguard.detect.arrays import native_column

# The parse tree of Python's own re: the same reading of a pattern as the engine's exact path (re's parser is not in
# the typed standard library: imported by name).
sre = importlib.import_module("re._constants")
sre_parse = importlib.import_module("re._parser")

BYTES = (1 << 256) - 1
ASCII = (1 << 128) - 1
HIGH = BYTES & ~ASCII  # every byte of a UTF-8 sequence
NEWLINE = 1 << 10


@dataclass(frozen=True)
class Run:
    """A requirement: `length` consecutive bytes of one value, all of RUN_CLASSES[klass]."""

    klass: int
    length: int


# A requirement: an int (some byte of this set must be present), a Run, or (any, parts): one of the parts (any=True)
# or all of them (any=False) must hold. (False, ()) holds always.
Requirement = int | Run | tuple[bool, tuple["Requirement", ...]]
ALWAYS: Requirement = (False, ())


def _ascii_set(test: Callable[[str], bool]) -> int:
    return sum(1 << c for c in range(128) if test(chr(c)))


def _both_cases(mask: int) -> int:
    """The set with every ASCII letter in both cases, and any letter also met by bytes above ASCII."""
    letters = 0
    for c in range(ord("A"), ord("Z") + 1):
        if mask >> c & 1 or mask >> (c + 32) & 1:
            letters |= 1 << c | 1 << (c + 32)
    return mask | letters | (HIGH if letters else 0)


_DIGIT, _WORD, _SPACE = _ascii_set(str.isdigit), _ascii_set(lambda ch: ch.isalnum() or ch == "_"), _ascii_set(str.isspace)
# Categories as Python's re reads them in a str pattern (Unicode: non-ASCII digits, letters and spaces count too).
_CATEGORY = {
    sre.CATEGORY_DIGIT: _DIGIT | HIGH,
    sre.CATEGORY_NOT_DIGIT: (ASCII & ~_DIGIT) | HIGH,
    sre.CATEGORY_WORD: _WORD | HIGH,
    sre.CATEGORY_NOT_WORD: (ASCII & ~_WORD) | HIGH,
    sre.CATEGORY_SPACE: _SPACE | HIGH,
    sre.CATEGORY_NOT_SPACE: (ASCII & ~_SPACE) | HIGH,
}


def _chars_of(text: str) -> int:
    return sum(1 << ord(ch) for ch in text)


_ALNUM = _chars_of(string.ascii_letters + string.digits)
_DIGITS = _chars_of(string.digits)
# The classes whose runs a requirement may ask for (ASCII bytes; at most 16, one lane each in _native.byte_runs). A
# run is read against the narrowest class holding its characters. The first six are the characters of ids, tokens and
# numbers; the others those of numbers as people write them, separators and all (a card in groups, an SSN, a phone
# number, an IPv4 or MAC address, a spaced IBAN or NINO), whose patterns lead with a class and have no literal for
# the engine's literal matcher to find: they cost the most per byte scanned, and a column of e-mail addresses holds
# none of these runs.
RUN_CLASSES = (
    _DIGITS,
    _chars_of(string.hexdigits),
    _ALNUM,
    _ALNUM | _chars_of("_-"),
    _ALNUM | _chars_of("._-"),
    _ALNUM | _chars_of("+/=_-"),
    _DIGITS | _chars_of(" -"),
    _DIGITS | _chars_of(" .-"),
    _DIGITS | _chars_of(" ().+-"),
    _DIGITS | _chars_of("."),
    _chars_of(string.hexdigits + ":.-"),
    _ALNUM | _chars_of(" "),
    _ALNUM | _chars_of(" -"),
)
_LANES = 16  # (_native.byte_runs's)
NO_RUNS = bytes(len(RUN_CLASSES))  # (runs of a column that holds none)
EVERY_RUN = bytes([255] * len(RUN_CLASSES))  # (runs as long as any: every Run holds)
_MIN_RUN = 3  # shorter runs are not asked for: a column holding the bytes nearly always holds them


@cache
def _run_table() -> bytes:
    """_native.byte_runs's table: 16 bytes a byte value, 0xFF in lane k when the byte is of RUN_CLASSES[k]; bytes above
    ASCII are of every class."""
    lanes = [*RUN_CLASSES, *[0] * (_LANES - len(RUN_CLASSES))]  # (a class too many: a table byte_runs refuses)
    return bytes(0xFF if mask and (b >= 0x80 or mask >> b & 1) else 0 for b in range(256) for mask in lanes)


def _char(code: int) -> int:
    return HIGH if code >= 0x80 else _both_cases(1 << code)


def _class(items: Any) -> int:
    """The bytes a character class can match. Its items are read exactly (`raw`: the ASCII bytes listed, `high`:
    whether it lists characters above ASCII); a class matches their letters in both cases, a negated class any
    ASCII byte not listed as written (fewer under IGNORECASE, never more) and, conservatively, any byte above."""
    negate, raw, high = False, 0, False
    for op, arg in items:
        if op is sre.NEGATE:
            negate = True
        elif op is sre.LITERAL:
            if arg >= 0x80:
                high = True
            else:
                raw |= 1 << arg
        elif op is sre.RANGE:
            lo, hi = arg
            raw |= sum(1 << c for c in range(lo, min(hi, 0x7F) + 1))
            high = high or hi >= 0x80
        elif op is sre.CATEGORY and arg in _CATEGORY:
            raw |= _CATEGORY[arg] & ASCII
            high = True
        else:
            return BYTES
    if negate:
        return (ASCII & ~raw) | HIGH
    return _both_cases(raw) | (HIGH if high else 0)


_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", None))


def _within(op: Any, arg: Any) -> tuple[int, int] | None:
    """(the bytes it can match, its fewest characters) of a part of a pattern made of characters, classes, groups,
    alternations and repeats of these only (an anchor: none and none); else None."""
    if op is sre.AT:
        return 0, 0
    if op is sre.LITERAL:
        return _char(arg), 1
    if op is sre.IN:
        return _class(arg), 1
    if op in _REPEATS:
        inner = _within_all(arg[2])
        return None if inner is None else (inner[0], arg[0] * inner[1])
    if op is sre.SUBPATTERN:
        return _within_all(arg[-1])
    if op is sre.BRANCH:
        each = [_within_all(b) for b in arg[1]]
        known = [e for e in each if e is not None]
        if len(known) < len(each):
            return None
        return _union(mask for mask, _ in known), min(width for _, width in known)
    return None


def _within_all(items: Any) -> tuple[int, int] | None:
    """_within of a sequence: the union of its parts' bytes and the sum of their fewest characters."""
    mask = width = 0
    for op, arg in items:
        part = _within(op, arg)
        if part is None:
            return None
        mask, width = mask | part[0], width + part[1]
    return mask, width


def _union(sets: Iterable[int]) -> int:
    """The union of byte sets."""
    out = 0
    for mask in sets:
        out |= mask
    return out


def _runs(items: Any) -> list[Requirement]:
    """The longest run of each class every match of a sequence holds: each part whose every character lies in a class
    (bytes above ASCII aside; a character, a class, or a group, alternation or repeat of these, _within) adds its
    fewest characters to that class's run; anything else ends it (an anchor, which consumes nothing, does not; an
    optional part of the class adds nothing and ends nothing). A run is asked for only in the narrowest class that has
    it at that length or longer, and from _MIN_RUN characters."""
    best = [0] * len(RUN_CLASSES)
    run = [0] * len(RUN_CLASSES)
    for op, arg in items:
        one = _within(op, arg)
        for k, mask in enumerate(RUN_CLASSES):
            if one is not None and one[0] & ~(mask | HIGH) == 0:
                run[k] += one[1]
                best[k] = max(best[k], run[k])
            else:
                run[k] = 0
    out: list[Requirement] = []
    for k, length in enumerate(best):
        # (a run of a class is one of every wider class too: a wider class's run no longer than it adds nothing)
        covered = any(best[j] >= length and j != k and RUN_CLASSES[j] & ~RUN_CLASSES[k] == 0 for j in range(len(best)))
        if length >= _MIN_RUN and not covered:
            out.append(Run(k, length))
    return out


def _sequence(items: Any) -> Requirement:  # a parsed pattern: (opcode, argument) pairs
    parts: list[Requirement] = list(_runs(items))
    for op, arg in items:
        part: Requirement | None
        if op is sre.LITERAL:
            part = _char(arg)
        elif op is sre.NOT_LITERAL or op is sre.ANY:
            part = None  # any other character: present in every column that holds a value
        elif op is sre.IN:
            part = _class(arg)
        elif op in _REPEATS:
            lo, _hi, sub = arg
            part = _sequence(sub) if lo > 0 else None
        elif op is sre.BRANCH:
            _, branches = arg
            part = (True, tuple(_sequence(b) for b in branches))
        elif op is sre.SUBPATTERN:
            part = _sequence(arg[-1])
        elif op is getattr(sre, "ATOMIC_GROUP", None):
            part = _sequence(arg)
        else:  # anchors, look-arounds, back-references: no requirement
            part = None
        if part is not None and part != ALWAYS:
            parts.append(part)
    return parts[0] if len(parts) == 1 else (False, tuple(parts))


def requirement(source: str, flags: int = 0) -> Requirement:
    """What any match of a pattern (as Python's re reads a rule, `Rule.value_source`) needs of a column's bytes."""
    try:
        return _sequence(sre_parse.parse(source, flags))
    except Exception:  # noqa: BLE001 (a pattern this reading does not follow can match anywhere)
        return ALWAYS


def _encode(req: Requirement) -> object:
    if isinstance(req, Run):
        return {"run": [req.klass, req.length]}
    return format(req, "x") if isinstance(req, int) else [req[0], [_encode(p) for p in req[1]]]


def _decode(data: Any) -> Requirement:
    if isinstance(data, str):
        return int(data, 16)
    if isinstance(data, dict):
        klass, length = data["run"]
        return Run(int(klass), int(length))
    any_of, parts = data
    return (bool(any_of), tuple(_decode(p) for p in parts))


def requirements(patterns: Sequence[tuple[str, int]]) -> list[Requirement]:
    """requirement() of each pattern, from the cache when this Python read the same patterns before (reading ~300
    patterns costs ~0.1 s, a quarter of a small scan's start-up; loading them ~2 ms)."""
    key = ("runs", RUN_CLASSES, _MIN_RUN, sys.version_info[:2], list(patterns))  # (what the reading asks)
    return readings("requirements", key, patterns, lambda p: requirement(*p), _encode, _decode)


_UNBOUNDED = 1 << 62  # (re's reading gives 2**64 for an open repeat)


@dataclass(frozen=True)
class WholeForm:
    """A rule's match in a value whose every character its boundary class holds is the whole value (see above):
    `boundary`, the printable ASCII characters that class holds, exactly as Python's re reads it; `branches`, per
    top-level branch of the value pattern, (requirement, fewest characters, most characters)."""

    boundary: int
    branches: tuple[tuple[Requirement, int, int], ...]

    def allows(self, present: int, runs: bytes, shortest: int, longest: int) -> bool:
        """Whether a column of values holding the bytes `present` and the runs `runs`, each value of `shortest` to
        `longest` characters, can wholly match a branch."""
        return any(lo <= longest and hi >= shortest and holds(req, present, runs) for req, lo, hi in self.branches)


def whole_form(value: str, boundary: str, flags: int = 0) -> WholeForm | None:
    """The WholeForm of a value pattern and its boundary class as Python's re reads them (`Rule.python_value`,
    `Rule.python_boundary`), or None where the reading does not follow the pattern or a branch can match nothing."""
    try:
        parsed = sre_parse.parse(value, flags)
        items = list(parsed)
        while len(items) == 1 and items[0][0] is sre.SUBPATTERN:  # (?:...) around the whole pattern
            items = list(items[0][1][-1])
        alternatives = items[0][1][1] if len(items) == 1 and items[0][0] is sre.BRANCH else [items]
        branches = []
        for branch in alternatives:
            lo, hi = sre_parse.SubPattern(parsed.state, list(branch)).getwidth()
            if lo < 1:
                return None
            branches.append((_sequence(branch), int(lo), min(int(hi), _UNBOUNDED)))
        # Printable ASCII only: there Python's re and the engine read a class alike (Python's \s also holds
        # \x1c-\x1f, the engine's does not); a column holding a control character is simply not read this way.
        mask = class_chars(boundary, flags) & _PRINTABLE
    except Exception:  # noqa: BLE001 (a pattern this reading does not follow: no claim about it)
        return None
    return WholeForm(mask, tuple(branches))


_PRINTABLE = sum(1 << c for c in range(0x20, 0x7F))


def class_chars(pattern: str, flags: int = 0) -> int:
    """The ASCII characters a one-character pattern (a rule's boundary class, `Rule.python_boundary`) matches, as
    Python's re reads it, as a 128-bit set."""
    one = re.compile(pattern, flags)
    return sum(1 << c for c in range(128) if one.fullmatch(chr(c)))


def whole_forms(patterns: Sequence[tuple[str, str, int] | None]) -> list[WholeForm | None]:
    """whole_form() of each (value, boundary, flags), None for None; kept in the cache as requirements() are."""
    key = ("whole", 2, RUN_CLASSES, _MIN_RUN, sys.version_info[:2], list(patterns))  # (2: printable boundaries)

    def encode(f: WholeForm | None) -> object:
        return None if f is None else [format(f.boundary, "x"), [[_encode(r), lo, hi] for r, lo, hi in f.branches]]

    def decode(d: Any) -> WholeForm | None:
        return None if d is None else WholeForm(int(d[0], 16), tuple((_decode(r), int(lo), int(hi)) for r, lo, hi in d[1]))

    return readings("requirements", key, patterns, lambda p: None if p is None else whole_form(*p), encode, decode)


def holds(req: Requirement, present: int, runs: bytes = EVERY_RUN) -> bool:
    """Whether a column holding the bytes `present` and the longest runs `runs` (value_runs) meets a requirement."""
    if isinstance(req, Run):
        return runs[req.klass] >= req.length
    if isinstance(req, int):
        return req & present != 0
    any_of, parts = req
    if any_of:
        return any(holds(p, present, runs) for p in parts)
    return all(holds(p, present, runs) for p in parts)


def _words(mask: int) -> list[int]:
    """A 256-bit set as four 64-bit words, lowest first."""
    return [(mask >> (64 * w)) & 0xFFFFFFFFFFFFFFFF for w in range(4)]


class RequirementTable:
    """Many requirements decided together for a column's bytes (what `holds` decides one at a time): the byte sets
    tested at once, then each level of "any"/"all" nodes from the deepest up, a few numpy calls in all."""

    def __init__(self, reqs: Sequence[Requirement]) -> None:
        masks: list[int] = []
        runs: list[tuple[int, int]] = []
        # (any, child node ids, depth); a leaf has depth 0 and is the next mask (any=True) or the next run (any=False)
        nodes: list[tuple[bool, list[int], int]] = []
        memo: dict[Requirement, int] = {}

        def node(req: Requirement) -> int:
            got = memo.get(req)
            if got is not None:
                return got
            entry: tuple[bool, list[int], int]
            if isinstance(req, Run):
                runs.append((req.klass, req.length))
                entry = (False, [], 0)
            elif isinstance(req, int):
                masks.append(req)
                entry = (True, [], 0)
            else:
                kids = [node(p) for p in req[1]]
                entry = (req[0], kids, 1 + max((nodes[k][2] for k in kids), default=0))
            nodes.append(entry)
            memo[req] = len(nodes) - 1
            return memo[req]

        self._roots = np.array([node(r) for r in reqs], np.int64)
        self._masks = np.array([_words(m) for m in masks], np.uint64).reshape(len(masks), 4)
        self._leaf_nodes = np.array([i for i, n in enumerate(nodes) if n[2] == 0 and n[0]], np.int64)  # (masks' order)
        self._run_nodes = np.array([i for i, n in enumerate(nodes) if n[2] == 0 and not n[0]], np.int64)  # (runs' order)
        self._run_class = np.array([k for k, _ in runs], np.int64)
        self._run_length = np.array([length for _, length in runs], np.int64)
        self._size = len(nodes)
        # Per depth: (node ids, children concatenated, where each node's children start, any?) for the nodes with
        # children, and the childless ones (an empty "all" holds, an empty "any" does not).
        self._levels: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._empty: list[tuple[int, bool]] = [(i, not n[0]) for i, n in enumerate(nodes) if n[2] == 1 and not n[1]]
        for depth in range(1, max((n[2] for n in nodes), default=0) + 1):
            ids = [i for i, n in enumerate(nodes) if n[2] == depth and n[1]]
            if not ids:
                continue
            kids = [k for i in ids for k in nodes[i][1]]
            starts = np.cumsum([0] + [len(nodes[i][1]) for i in ids[:-1]])
            self._levels.append((np.array(ids, np.int64), np.array(kids, np.int64), starts.astype(np.int64), np.array([nodes[i][0] for i in ids])))

    def holding(self, present: int, runs: bytes = EVERY_RUN) -> np.ndarray:
        """Per requirement, whether a column holding the bytes `present` and the longest runs `runs` meets it."""
        value = np.zeros(self._size, bool)
        if self._leaf_nodes.size:
            value[self._leaf_nodes] = (self._masks & np.array(_words(present), np.uint64)).any(axis=1)
        if self._run_nodes.size:
            value[self._run_nodes] = np.frombuffer(runs, np.uint8)[self._run_class] >= self._run_length
        for i, holds_empty in self._empty:
            value[i] = holds_empty
        for ids, kids, starts, any_of in self._levels:
            got = value[kids]
            value[ids] = np.where(any_of, np.logical_or.reduceat(got, starts), np.logical_and.reduceat(got, starts))
        return value[self._roots]


def present_bytes(text: pa.Array) -> int:
    """The bytes a string array's values hold, as a 256-bit set, with the "\n" they are scanned between."""
    return value_bytes(text) | NEWLINE


def value_bytes(text: pa.Array) -> int:
    """The bytes a string array's values hold, as a 256-bit set."""
    if len(text) == 0:
        return 0
    wide = pa.types.is_large_string(text.type) or pa.types.is_large_binary(text.type)
    bufs = text.buffers()
    return int.from_bytes(_native.byte_set(bufs[1], bufs[2], text.offset, len(text), wide), "little")


def value_runs(text: pa.Array) -> tuple[int, bytes]:
    """(value_bytes, and the longest run of each of RUN_CLASSES, a byte each, at most 255) of a string array's
    values, in one native pass (about twice value_bytes's). Nulls must be filled with ""."""
    if len(text) == 0:
        return 0, NO_RUNS
    wide = pa.types.is_large_string(text.type) or pa.types.is_large_binary(text.type)
    bufs = text.buffers()
    out = _native.byte_runs(bufs[1], bufs[2], text.offset, len(text), wide, _run_table())
    return int.from_bytes(out[:32], "little"), out[32 : 32 + len(RUN_CLASSES)]


_LETTERS = _ascii_set(str.isalpha)


def _ascii_class(items: Any) -> int | None:
    """The ASCII characters a class lists as written, or None (negated, a category, a character above ASCII)."""
    out = 0
    for op, arg in items:
        if op is sre.LITERAL and arg < 0x80:
            out |= 1 << arg
        elif op is sre.RANGE and arg[1] < 0x80:
            out |= sum(1 << c for c in range(arg[0], arg[1] + 1))
        else:
            return None
    return out


def _chars(items: Any) -> int | None:
    """The ASCII characters a parsed pattern can consume, as a 128-bit set; None when it may consume one above ASCII
    or one this reading cannot list (any character, a negated class, a Unicode category)."""
    out = 0
    for op, arg in items:
        if op is sre.LITERAL:
            if arg >= 0x80:
                return None
            out |= 1 << arg
        elif op is sre.IN:
            listed = _ascii_class(arg)
            if listed is None:
                return None
            out |= listed
        elif op in _REPEATS:
            sub = _chars(arg[2])
            if sub is None:
                return None
            out |= sub
        elif op is sre.BRANCH:
            for branch in arg[1]:
                sub = _chars(branch)
                if sub is None:
                    return None
                out |= sub
        elif op is sre.SUBPATTERN or op is getattr(sre, "ATOMIC_GROUP", None):
            sub = _chars(arg[-1] if op is sre.SUBPATTERN else arg)
            if sub is None or (op is sre.SUBPATTERN and arg[1] & re.IGNORECASE and sub & _LETTERS):
                return None  # (a group's own (?i:...): see match_chars)
            out |= sub
        elif op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT, sre.GROUPREF):
            continue  # zero-width, or the text of a group already counted
        else:
            return None
    return out


def match_chars(source: str, flags: int = 0) -> int | None:
    """The ASCII characters any match of a pattern (as Python's re reads it) can hold, as a 128-bit set, or None when
    a match may hold a character above ASCII or one not listed (`.`, `[^...]`, `\\d`: Unicode digits). Under
    IGNORECASE a pattern with letters is None too: Unicode case folding takes "k" to the Kelvin sign."""
    try:
        parsed = sre_parse.parse(source, flags)
        out = _chars(parsed)
    except Exception:  # noqa: BLE001 (a pattern this reading does not follow: no claim about its characters)
        return None
    if out is not None and (flags | parsed.state.flags) & re.IGNORECASE and out & _LETTERS:
        return None
    return out


# A linear pattern: a sequence of positions, each consuming one ASCII character of a set, optional or repeating
# (`\$2[abxy]?\$[0-9]{2}\$[./A-Za-z0-9]{53}`, `Atza\|[A-Za-z0-9_\-]{40,}`, a UUID); `_native.whole_linear` decides
# whether it matches a whole value in a few instructions a byte. Position: (ASCII set, optional, repeats).
_LINEAR_MAX = 64  # positions: one bit each in a 64-bit word
Position = tuple[int, bool, bool]


def _positions(items: Any) -> list[Position] | None:
    """A parsed pattern as linear positions, or None when it is not linear (an alternation of sequences, a group
    that is optional or repeats a varying number of times, an anchor, a look-around, any character, a class that is
    negated or reaches above ASCII) or grows past _LINEAR_MAX positions."""
    out: list[Position] = []
    for op, arg in items:
        if op is sre.LITERAL:
            if arg >= 0x80:
                return None
            out.append((1 << arg, False, False))
        elif op is sre.IN:
            chars = _ascii_class(arg)
            if not chars:
                return None
            out.append((chars, False, False))
        elif op is sre.MAX_REPEAT or op is sre.MIN_REPEAT:  # (greedy or lazy: the same whole matches; not possessive)
            lo, hi, sub = arg
            inner = _positions(sub)
            if inner is None or lo > _LINEAR_MAX or (hi is not sre.MAXREPEAT and hi > _LINEAR_MAX):
                return None
            if len(inner) == 1 and inner[0][1:] == (False, False):
                chars = inner[0][0]
                if hi is sre.MAXREPEAT:
                    out += [(chars, False, False)] * (lo - 1) + [(chars, False, True)] if lo else [(chars, True, True)]
                else:
                    out += [(chars, False, False)] * lo + [(chars, True, False)] * (hi - lo)
            elif lo == hi:
                out += inner * lo
            else:
                return None
        elif op is sre.SUBPATTERN:
            _group, add_flags, del_flags, sub = arg
            inner = _positions(sub)
            if inner is None or (add_flags | del_flags) & re.IGNORECASE:
                return None
            out += inner
        elif op is sre.BRANCH:  # of single characters only (re's parser mostly makes those a class already)
            chars = 0
            for branch in arg[1]:
                inner = _positions(branch)
                if inner is None or len(inner) != 1 or inner[0][1:] != (False, False):
                    return None
                chars |= inner[0][0]
            out.append((chars, False, False))
        else:
            return None
        if len(out) > _LINEAR_MAX:
            return None
    return out


@cache
def linear_program(source: str, flags: int = 0) -> bytes | None:
    """The program of `_native.whole_linear` for a pattern as Python's re reads it, when the pattern is linear (see
    _positions) and case-sensitive (under IGNORECASE, Unicode folding takes "k" to the Kelvin sign) and cannot match
    the empty value; else None. A whole value it matches is one the pattern's whole-line form matches in the engine's
    UTF-8 pass: every position consumes one ASCII character, so a byte above ASCII or a newline ends the match."""
    try:
        parsed = sre_parse.parse(source, flags)
        positions = _positions(parsed)
    except Exception:  # noqa: BLE001 (a pattern this reading does not follow: not linear)
        return None
    if not positions or all(opt for _, opt, _ in positions) or (flags | parsed.state.flags) & re.IGNORECASE:
        return None
    masks = np.zeros(256, np.uint64)
    optional = repeat = last = 0
    skips = run = 0
    for k, (chars, opt, rep) in enumerate(positions):
        for c in range(128):
            if chars >> c & 1 and c != 0x0A:
                masks[c] |= np.uint64(1 << k)
        optional |= opt << k
        repeat |= rep << k
        run = run + 1 if opt else 0
        skips = max(skips, run)
    for k in range(len(positions)):
        if all(opt for _, opt, _ in positions[k + 1 :]):
            last |= 1 << k
    first = 1
    for _ in range(skips):
        first |= (first & optional) << 1
    words = np.array([first, optional, repeat, last, skips], np.uint64)
    return masks.tobytes() + words.tobytes()


def whole_linear(text: pa.Array, program: bytes) -> np.ndarray:
    """Per value of a string column (nulls as empty), whether the linear program matches all of it."""
    column, _valid = native_column(text)
    return np.frombuffer(_native.whole_linear(*column, program), np.uint8).astype(bool)
