"""Linear patterns decided natively (alphabet.linear_program, _native.whole_linear): which values a rule's pattern
wholly matches, as its whole-line form finds them in the engine's UTF-8 pass and as Python's re.fullmatch reads them.

Held on values drawn from each built-in linear pattern's own positions (optional parts left out, repeats taken again),
then cut, padded and changed, with newlines, bytes above ASCII, empty values and nulls, in columns of 32- and 64-bit
offsets and slices; and the patterns the reading must refuse.
"""

from __future__ import annotations

import random
import re

import numpy as np
import pyarrow as pa
import pytest

import spillguard._native as _native
from spillguard.detect.alphabet import _positions, linear_program, sre_parse, whole_linear
from spillguard.detect.engine import RuleSet
from spillguard.detect.matcher import compile_patterns, rule_flags
from spillguard.rules import builtin_rules

_RULES = builtin_rules()


def _linear_rules() -> list[int]:
    return [k for k, r in enumerate(_RULES) if r.value is not None and linear_program(r.python_value(), re.IGNORECASE if r.ignore_case else 0)]


def _drawn(rng: random.Random, source: str, count: int) -> list[str]:
    """Values a linear pattern matches (each position's character drawn from its set; an optional one left out
    two times in five, a repeating one taken up to three more times), and changed copies of them."""
    positions = _positions(sre_parse.parse(source))
    assert positions is not None
    out = []
    for _ in range(count):
        chars = []
        for allowed, optional, repeats in positions:
            times = (0 if optional and rng.random() < 0.4 else 1) + (rng.randrange(4) if repeats else 0)
            choices = [chr(c) for c in range(128) if allowed >> c & 1]
            chars += [rng.choice(choices) for _ in range(times)]
        value = "".join(chars)
        out.append(value)
        for _ in range(rng.randrange(3)):
            at = rng.randrange(len(value) + 1)
            kind = rng.randrange(5)
            if kind == 0:
                value = value[:at] + value[at + 1 :]
            elif kind == 1:
                value = value[:at] + rng.choice("aZ09-_.$|:/+= \né€") + value[at:]
            elif kind == 2 and value:
                value = value[:at] + rng.choice("aZ09-_.$|\n€") + value[at + 1 :]
            elif kind == 3:
                value += value[: rng.randrange(4)]
        out.append(value)
    return out


def test_most_token_and_hash_patterns_are_linear() -> None:
    ids = {_RULES[k].id for k in _linear_rules()}
    assert {"bcrypt_hash", "lwa_access_token", "lwa_refresh_token", "github_token", "mac_bare"} <= ids
    assert not {"email", "ipv4", "credit_card", "phone_international"} & ids  # (alternations of sequences, {0,61})


@pytest.mark.parametrize("wide", [False, True])
def test_whole_values_of_every_linear_rule_are_those_of_its_whole_line_form_and_of_re(wide: bool) -> None:
    rng = random.Random(11 + wide)
    for k in _linear_rules():
        rule = _RULES[k]
        source = rule.python_value()
        values: list[str | None] = [*_drawn(rng, source, 150), "", "\n", None, *(e.value for e in rule.examples)]
        rng.shuffle(values)
        column = pa.array(values, pa.large_string() if wide else pa.string())
        program = linear_program(source)
        assert program is not None
        got = whole_linear(column, program)
        pattern = re.compile(source)
        expected = np.array([v is not None and "\n" not in v and pattern.fullmatch(v) is not None for v in values])
        assert expected.any() and not expected.all(), rule.id
        assert (got == expected).all(), (rule.id, [v for v, g, e in zip(values, got, expected, strict=True) if g != e][:3])
        # as the engine's UTF-8 pass of its whole-line form finds them (RuleSet._whole_lines)
        filled = pa.compute.fill_null(column, "")
        line = compile_patterns([rule.line_expression()], [rule_flags(rule.ignore_case, True)], [k])
        assert (RuleSet._whole_lines(line, k, filled, 1 << 10)[0] == got).all(), rule.id
        assert (whole_linear(column.slice(7), program) == expected[7:]).all(), rule.id


def test_lanes_take_values_of_every_length_in_any_order() -> None:
    """The native pass runs several values side by side, each taking the next value when it ends: columns shorter
    than the lanes, single characters, empty values between long ones, and one value much longer than the rest."""
    program = linear_program(r"ab[0-9]{2,5}c*d?e+")
    assert program is not None
    pattern = re.compile(r"ab[0-9]{2,5}c*d?e+")
    rng = random.Random(5)
    pieces = ["ab12e", "ab12345cccde", "ab1e", "", "a", "ab123456e", "ab99de", "abe", "ab00" + "c" * 5000 + "e", "x"]
    for size in (0, 1, 3, 7, 8, 9, 100, 2000):
        values = [rng.choice(pieces) for _ in range(size)]
        got = whole_linear(pa.array(values, pa.string()), program)
        assert got.tolist() == [pattern.fullmatch(v) is not None for v in values]


@pytest.mark.parametrize(
    ("source", "flags"),
    [
        ("(?:ab|cd)", 0),  # an alternation of sequences
        ("(?:ab)?c", 0),  # an optional group of more than one position
        ("(?:ab){1,3}", 0),  # a group repeated a varying number of times
        ("[^a]b", 0),  # a negated class: characters above ASCII
        (".b", 0),
        (r"\db", 0),  # Unicode digits
        ("é+", 0),
        ("[a-zé]+", 0),
        ("ab", re.IGNORECASE),  # Unicode case folding (the Kelvin sign for k)
        ("a(?i:b)", 0),
        ("^ab", 0),
        (r"a\b", 0),
        ("a(?=b)", 0),
        (r"(a)\1", 0),
        ("a*", 0),  # matches the empty value
        ("[0-9]{65}", 0),  # more positions than a 64-bit word
        ("a{30}b{30}c{5}", 0),
        ("a*+b", 0),  # possessive
    ],
)
def test_patterns_that_are_not_linear_get_no_program(source: str, flags: int) -> None:
    assert linear_program(source, flags) is None


def test_a_program_reads_repeats_options_and_groups_exactly() -> None:
    cases = {
        r"\$2[abxy]?\$[0-9]{2}\$": ["$2$12$", "$2a$12$", "$2ab$12$", "$2a$1$", "$2a$123$"],
        r"(?:[0-9a-f]{2}:){2}[0-9a-f]{2}": ["0a:1b:2c", "0a:1b:2c:", "0a1b:2c", "0A:1b:2c"],
        r"x?y?z": ["z", "xz", "yz", "xyz", "xxz", "zz", ""],
        r"a{2,}b": ["ab", "aab", "aaaaab", "aaa"],
        r"(?P<v>k[0-9]+)": ["k1", "k", "k12x"],
        r"(?:a|b|[cd])e": ["ae", "de", "ee", "abe"],
    }
    for source, values in cases.items():
        program = linear_program(source)
        assert program is not None, source
        got = whole_linear(pa.array(values, pa.string()), program).tolist()
        assert got == [re.fullmatch(source, v) is not None for v in values], source


def test_a_program_of_the_wrong_size_is_refused() -> None:
    program = linear_program("ab+")
    assert program is not None
    column = pa.array(["ab"], pa.string())
    bufs = column.buffers()
    with pytest.raises(ValueError, match="program"):
        _native.whole_linear(bufs[1], bufs[2], 0, 1, False, program[:-8])
    assert _native.whole_linear(bufs[1], bufs[2], 0, 1, False, program) == b"\x01"


def test_an_owner_with_a_linear_pattern_has_a_database_of_its_rivals_and_markers_only() -> None:
    """Its whole values decided natively, an owner's database holds no whole-line form: the rivals' patterns and, for a
    token, the placeholder markers; none at all for an owner with neither."""
    rs = RuleSet(_RULES)
    index = {r.id: k for k, r in enumerate(_RULES)}
    bcrypt, lwa, mac = index["bcrypt_hash"], index["lwa_access_token"], index["mac_bare"]
    assert all(rs._linear_program(k) is not None for k in (bcrypt, lwa, mac)) and rs._linear_program(index["email"]) is None
    rivals = (index["github_token"], index["jwt"])
    _, entry = rs._owner_database(bcrypt, rivals, linear=True)
    assert entry is not None and bcrypt not in entry.patterns[2] and set(rivals) <= set(entry.patterns[2])
    _, full = rs._owner_database(index["email"], rivals)
    assert full is not None and full.patterns[2][-1] == index["email"] and full.patterns[0][-1].endswith(b"\\n")
    _, markers = rs._owner_database(lwa, (), linear=True)
    assert rs._token_rule[lwa] and markers is not None and markers.patterns[2] == (rs._marker_id,)
    assert not rs._token_rule[mac] and rs._owner_database(mac, (), linear=True) == (None, None)
