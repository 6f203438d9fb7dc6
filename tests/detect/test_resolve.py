"""Resolving a value that several rules hit: matches are taken most specific first and one overlapping a span
already kept is not validated; the spans kept must be those of validating every match first (former.py)."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from spillguard.detect.engine import RuleSet
from spillguard.detect.matcher import scan_text
from spillguard.rules import builtin_rules
from tests.detect.former import resolve_value_eager


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
