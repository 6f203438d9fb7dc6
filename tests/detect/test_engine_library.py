"""The engine library's own correctness on what spillguard asks of it.

Vectorscan 5.4.9 (Debian bookworm's package, which this build links) misses matches of some databases of few rules
in byte mode, depending on where in the buffer a match falls: the `ipv4` rule alone misses an address after 32 or
more short values; `blood_pressure` in the health category misses `120/80` after some values. 5.4.12 finds them all;
so does 5.4.9 in UTF-8 mode, which the engine therefore uses for every column of valid UTF-8 (byte mode is left for
bytes that are not). Held here against Python's re, value by value: every rule's database alone, every category's,
and the full set, over the rules' examples placed after fillers of many kinds and lengths; and the byte-mode defect
itself, allowed on 5.4.9 only (where it shows on some CPUs and not on others);
and the narrower sets a column's bytes leave (detect/alphabet.py).
BENCHMARKS.md, "Native core, ninth steps".
"""

from __future__ import annotations

import random
import string

import pyarrow as pa
import pytest

import spillguard._native as _native
from spillguard.categories import CATEGORIES
from spillguard.detect.alphabet import NEWLINE, holds, requirement
from spillguard.detect.engine import RuleSet
from spillguard.detect.matcher import scan_text
from spillguard.rules import builtin_rules, select_rules

_KNOWN_BAD = _native.vectorscan_version().startswith("5.4.9")


def _addresses_after_fillers(ruleset: RuleSet, utf8: bool) -> tuple[list[list[int]], list[list[int]]]:
    database = ruleset._compile(tuple(ruleset.value_rule_ids), utf8)
    found, expected = [], []
    for filler in ("x1", "abc", "1234567", "1" * 101):
        for count in range(1, 120, 7):
            _, values = scan_text(database, pa.array([filler] * count + ["4.9.6.218"]))
            expected.append([count])
            found.append(values.tolist())
    return found, expected


def test_the_engine_finds_every_address_whatever_comes_before() -> None:
    found, expected = _addresses_after_fillers(RuleSet(select_rules(only=["ipv4"])), utf8=True)
    assert found == expected


def test_byte_mode_finds_every_address_whatever_comes_before() -> None:
    """The byte-mode defect: only Vectorscan 5.4.9 may miss these, and whether it does depends on the CPU the
    database is compiled for (it missed them on the machines these tests first ran on, not on an AMD EPYC with
    AVX2, `vectorscan_platform()` "tune0-features4"); any other version must find them all."""
    found, expected = _addresses_after_fillers(RuleSet(select_rules(only=["ipv4"])), utf8=False)
    assert found == expected or _KNOWN_BAD


def _fillers(rng: random.Random) -> list[str]:
    return [
        f"x{rng.randrange(1000)}",
        "a" * rng.randrange(1, 300),
        "1" * rng.randrange(1, 300),
        " ".join(["word"] * rng.randrange(1, 40)),
        "".join(rng.choice("abcdef0123456789") for _ in range(rng.randrange(8, 70))),
        "é" * rng.randrange(1, 40),
    ]


def _lost(ruleset: RuleSet, rng: random.Random, rounds: int) -> list[tuple[str, str]]:
    """(rule, value) pairs Python's re finds in a value and the engine's database of the rule set does not."""
    rule_ids = [i for i in ruleset.value_rule_ids if not ruleset.rules[i].spans_lines()]
    examples = [e.value for i in rule_ids for e in ruleset.rules[i].examples]
    database = ruleset._compile(tuple(ruleset.value_rule_ids))
    lost: list[tuple[str, str]] = []
    for _ in range(rounds):
        values: list[str] = []
        for _ in range(30):
            values += [rng.choice(_fillers(rng)) for _ in range(rng.randrange(0, 50))]
            values.append(rng.choice(examples))
        ids, at = scan_text(database, pa.array(values, pa.string()))
        got = set(zip(ids.tolist(), at.tolist(), strict=True))
        for i in rule_ids:
            rule = ruleset.rules[i]
            assert rule.value_re is not None
            lost += [(rule.id, v) for k, v in enumerate(values) if (i, k) not in got and rule.value_re.search(v)]
    return lost


def test_every_rule_alone_finds_what_pythons_re_finds() -> None:
    rng = random.Random(11)
    rules = [r for r in builtin_rules() if r.is_value_rule and not r.spans_lines()]
    lost = [pair for rule in rules for pair in _lost(RuleSet([rule]), rng, 1)]
    assert lost == []


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_category_finds_what_pythons_re_finds(category: str) -> None:
    rules = select_rules(only=[category])
    if not any(r.is_value_rule for r in rules):
        pytest.skip(f"{category}: free-text or field rules only")
    assert _lost(RuleSet(rules), random.Random(category), 6) == []


def test_the_full_rule_set_finds_what_pythons_re_finds() -> None:
    assert _lost(RuleSet(builtin_rules()), random.Random(3), 4) == []


@pytest.mark.parametrize(
    "alphabet",
    ["0123456789", "0123456789abcdef-", "0123456789ABCDEFabcdef:", string.ascii_letters + string.digits + "_-|", string.digits + " +-()"],
)
def test_narrowed_rule_sets_find_what_pythons_re_finds(alphabet: str) -> None:
    """The databases a column's bytes narrow the rules to (detect/alphabet.py) are more small sets of rules: held to
    Python's re like the sets above."""
    present = NEWLINE
    for b in alphabet.encode():
        present |= 1 << b
    rules = [r for r in builtin_rules() if r.is_value_rule and holds(requirement(*r.value_source() or ("", 0)), present)]
    assert 0 < len(rules) < len([r for r in builtin_rules() if r.is_value_rule])
    assert _lost(RuleSet(rules), random.Random(alphabet), 3) == []
