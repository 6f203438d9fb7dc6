"""Resolving a value that several rules hit: matches are taken most specific first and one overlapping a span
already kept is not validated; the spans kept must be those of validating every match first (former.py)."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest

from spillguard.detect.engine import RuleSet
from spillguard.detect.matcher import scan_text
from spillguard.rules import builtin_rules
from tests.detect.former import collapse_same_category_sorted, resolve_value_eager


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    return RuleSet(builtin_rules())


def _values(ruleset: RuleSet, seed: int, n: int) -> list[str]:
    """Texts of several rules' examples and negatives, glued with the separators values hold (or none)."""
    rng = random.Random(seed)
    pool = [e.value for r in ruleset.rules if r.is_value_rule for e in (*r.examples, *r.negative_examples)]
    glue = ["", " ", ":", "-", "/", ", ", "=", "\t"]
    return [rng.choice(glue).join(rng.sample(pool, rng.randint(2, 5))) for _ in range(n)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lazy_resolution_keeps_the_eager_spans_and_validates_less(ruleset: RuleSet, seed: int) -> None:
    values = _values(ruleset, seed, 1500)
    ids, at = scan_text(ruleset._compile(tuple(ruleset.value_rule_ids)), pa.array(values))
    hit: dict[int, list[int]] = {}
    for rid, vi in zip(ids.tolist(), at.tolist(), strict=True):
        if rid < len(ruleset.rules) and rid not in hit.setdefault(vi, []):
            hit[vi].append(rid)
    calls = {"lazy": 0, "eager": 0}
    validate = ruleset._validate
    counting = "lazy"

    def counted(*args: object) -> bool:
        calls[counting] += 1
        return validate(*args)  # type: ignore[arg-type]

    ruleset._validate = counted  # type: ignore[method-assign]
    try:
        multi = 0
        for vi, rids in hit.items():
            multi += len(rids) > 1
            counting = "lazy"
            lazy = ruleset.resolve_value(values[vi], rids)
            counting = "eager"
            assert lazy == resolve_value_eager(ruleset, values[vi], rids), values[vi]
    finally:
        del ruleset._validate
    assert multi > 500  # most values are hit by several rules
    assert calls["lazy"] < calls["eager"]


@pytest.mark.parametrize("seed", [4, 5])
def test_value_pairs_keep_the_former_pairs(ruleset: RuleSet, seed: int) -> None:
    """The native pass from matches to (value, rule) pairs (native/pairs.c): the distinct pairs ordered by value then
    rule, per value the most specific rule of one category (rules that span lines never collapsed), and the values
    left with several rules, as the former Python path (np.unique, the lexsort collapse, a bincount) had them; on a
    scan's matches of glued examples (in value order) and on random ones out of order (sorted first)."""
    values = _values(ruleset, seed, 3000)
    ids, at = scan_text(ruleset._compile(tuple(ruleset.value_rule_ids)), pa.array(values))
    n = len(ruleset.rules)
    rng = np.random.default_rng(seed)
    value_ids = np.array(ruleset.value_rule_ids)
    spanning = value_ids[ruleset._spans_lines[value_ids]]
    assert spanning.size  # the random pairs hold rules that span lines
    many = rng.choice(value_ids, 20000)  # many rules of one category a value, out of value order
    some = rng.random(20000) < 0.1
    many[some] = rng.choice(spanning, int(some.sum()))
    inputs = [(ids[ids < n], at[ids < n]), (many, rng.integers(0, 2000, 20000)), (many[:1], np.array([7]))]
    collapsed = 0
    for rule_idx, value_idx in inputs:
        assert bool((np.diff(value_idx) >= 0).all()) == (value_idx is not inputs[1][1])
        pairs = np.unique(value_idx * n + rule_idx)
        v, r = pairs // n, pairs % n
        for collapse in (True, False):
            got_v, got_r, got_multi = ruleset.value_pairs(rule_idx, value_idx, collapse=collapse)
            want_v, want_r = collapse_same_category_sorted(ruleset, v, r) if collapse else (v, r)
            want = sorted(zip(want_v.tolist(), want_r.tolist(), strict=True))
            assert list(zip(got_v.tolist(), got_r.tolist(), strict=True)) == want
            counts = np.bincount(got_v) if got_v.size else np.zeros(0, np.int64)
            assert got_multi.tolist() == (counts[got_v] > 1).tolist()
            collapsed += (v.size - got_v.size) if collapse else 0
    assert collapsed > 1000  # many pairs were collapsed
