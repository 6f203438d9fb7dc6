"""Rules the engine's UTF-8 pass runs with a looser `engine_value` (a bounded repeat left open, which Vectorscan runs
faster): the hits the engine hands on are those of the rule's own `value`, value by value, and the built-in rules'
`engine_exact_below` claims hold (in shorter values the two patterns flag the same).

Each rule is held to a database of its exact pattern over random values built around it: prefixes, long runs of the
repeated characters, separators, letters, newlines and text beyond ASCII. The values are made so that the looser
pattern alone flags some the exact one does not (the confirmation has work to do), and the test fails without it.
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pyarrow as pa
import pytest

import spillguard._native as _native
from spillguard.detect.engine import RuleSet
from spillguard.detect.matcher import rule_flags, scan_text
from spillguard.errors import UserError
from spillguard.rules import _rules_from_doc, builtin_rules

LOOSE = [r for r in builtin_rules() if r.engine_value is not None]
PIECES = ["+", "00", "0", "+1", "+44 ", "(", ")", ".", "-", " ", "x", "_", "a", "Tel ", "\n", "é", "ext "]


def _values(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        head = "".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 4)))
        run = "".join(rng.choice("0123456789" * 6 + " ().-") for _ in range(rng.choice((3, 6, 12, 21, 22, 23, 24, 25, 30, 40))))
        tail = rng.choice(["", " ", "a", "+", "_", "\n", "é", "5", ")", " x"])
        out.append(head + run + tail)
    return out


def _pairs(ids: np.ndarray, values: np.ndarray) -> set[tuple[int, int]]:
    return set(zip(ids.tolist(), values.tolist(), strict=True))


def _exact(rule, rid: int, column: pa.Array) -> set[tuple[int, int]]:
    """The rule's hits with its own `value` in the engine's UTF-8 mode."""
    own = dataclasses.replace(rule, engine_value=None)
    matcher = _native.Matcher([own.hyperscan_expression(utf8=True)], [rule_flags(rule.ignore_case, utf8=True)], [rid])
    return _pairs(*scan_text(matcher, column))


def test_some_builtin_rule_runs_looser() -> None:
    assert LOOSE, "no built-in rule has an engine_value: this file tests nothing"


@pytest.mark.parametrize("rule", LOOSE, ids=lambda r: r.id)
def test_engine_hits_are_the_exact_patterns_hits(rule) -> None:
    ruleset = RuleSet([rule])
    rid = 0
    rng = random.Random(7)
    texts = _values(rng, 4000) + [ex.value for ex in rule.examples] + [ex.value for ex in rule.negative_examples]
    column = pa.array(texts, pa.string())
    exact = _exact(rule, rid, column)
    loose_matcher = _native.Matcher([rule.hyperscan_expression(utf8=True)], [rule_flags(rule.ignore_case, utf8=True)], [rid])
    loose = _pairs(*scan_text(loose_matcher, column))
    assert exact <= loose, "engine_value must match wherever value does"
    extra = loose - exact
    assert len(extra) >= 20, "the random values never told the two patterns apart: the test would pass without confirming"
    # The claim: in values shorter than engine_exact_below bytes the two flag the same.
    assert all(len(texts[v].encode()) >= rule.engine_exact_below for _, v in extra)
    assert len(exact) >= 200
    assert _pairs(*ruleset._raw_hits(column, (rid,))) == exact
    # Split into columns as a scan makes them, and as the field's distinct values: the same.
    for cut in (1, 17, 1000):
        found: set[tuple[int, int]] = set()
        for start in range(0, len(texts), cut * 37):
            part = column.slice(start, cut * 37)
            found |= {(r, v + start) for r, v in _pairs(*ruleset._raw_hits(part, (rid,)))}
        assert found == exact
    # Without the confirmation the engine would hand on the looser hits: what this test exists to catch.
    ruleset._confirm = {}
    ruleset._loose[:] = False
    assert _pairs(*ruleset._raw_hits(column, (rid,))) == loose != exact


def test_long_values_are_confirmed_with_re2_and_short_ones_are_not_checked(monkeypatch) -> None:
    (rule,) = [r for r in LOOSE if r.id == "phone_international"]
    ruleset = RuleSet([rule])
    checked: list[int] = []
    import pyarrow.compute as pc

    real = pc.match_substring_regex

    def counting(values, pattern):
        checked.append(len(values))
        return real(values, pattern)

    monkeypatch.setattr(pc, "match_substring_regex", counting)
    short = ["+44 20 7946 0958", "call +1 (415) 555-2671", "0044 20 7946 0958"]
    hits = _pairs(*ruleset._raw_hits(pa.array(short)))
    assert {v for _, v in hits} == {0, 1, 2} and checked == []
    long = "+1" + "2" * 30  # one run of 31 digits: the looser pattern flags it, the exact one does not
    hits = _pairs(*ruleset._raw_hits(pa.array([*short, long, long + " tail"])))
    assert {v for _, v in hits} == {0, 1, 2} and checked == [2]  # the two long values, once each


def _doc(**extra) -> dict:
    rule = {"id": "acme_phone", "category": "phone", "value": "[0-9]{5,9}", "engine_value": "[0-9]{5,}", "examples": ["123456"]}
    return {"rule": [{**rule, **extra}]}


def test_rule_files_may_give_an_engine_value_but_not_an_exactness_claim() -> None:
    (rule,) = _rules_from_doc(_doc(), "mine.toml")
    assert rule.engine_value == "[0-9]{5,}" and rule.engine_exact_below == 0
    ruleset = RuleSet([rule])
    column = pa.array(["12345678901", "x 1234567 y", "1234"])
    assert {v for _, v in _pairs(*ruleset._raw_hits(column))} == {1}  # 11 digits: past {5,9}, confirmed away
    with pytest.raises(UserError, match="built-in"):
        _rules_from_doc(_doc(engine_exact_below=12), "mine.toml")
    with pytest.raises(UserError, match="before/after"):
        _rules_from_doc(_doc(before="tel: "), "mine.toml")
    with pytest.raises(UserError, match="newline"):
        _rules_from_doc(_doc(engine_value="[^a-z]{5,}"), "mine.toml")
    with pytest.raises(UserError, match="suit RE2"):
        _rules_from_doc(_doc(value="[0-9]{5,9}(?=x)?", engine_value="[0-9]{5,}", examples=["123456"]), "mine.toml")
    with pytest.raises(UserError, match="does not match the example '123456'"):
        _rules_from_doc(_doc(engine_value="[0-9]{7,}"), "mine.toml")  # narrower than value: would lose matches
