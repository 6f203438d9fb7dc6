"""The native core (spillguard._native, native/matcher.c) against the engine it replaced.

The reference (tests/detect/former.py) is the former Python path: the values joined with "\\n" by Arrow, one scan
through the Python Vectorscan binding with a Python callback per match, value indices found by numpy. The two
must report identical (rule, value) matches on every rule's examples, the demo data and random records.
"""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pytest

from spillguard.demo import generate
from spillguard.detect.arrays import as_text
from spillguard.detect.engine import RuleSet
from spillguard.detect.flatten import flatten_table
from spillguard.detect.matcher import CompileError, compile_patterns, compile_rules, scan_text
from spillguard.detect.placeholders import MARKERS
from spillguard.rules import builtin_rules
from tests.detect import former

hyperscan = pytest.importorskip("hyperscan")


def _pairs(rule_idx: np.ndarray, value_idx: np.ndarray) -> list[tuple[int, int]]:
    return sorted(zip(rule_idx.tolist(), value_idx.tolist(), strict=True))


@pytest.fixture(scope="module")
def full_set() -> tuple[list[bytes], list[int], list[int]]:
    """Every value rule and the placeholder markers: the database an unnamed field runs."""
    rules = builtin_rules()
    value_ids = [i for i, r in enumerate(rules) if r.is_value_rule]
    exprs = [rules[i].hyperscan_expression() for i in value_ids] + [MARKERS.encode()]
    flags = [hyperscan.HS_FLAG_MULTILINE | (hyperscan.HS_FLAG_CASELESS if rules[i].ignore_case else 0) for i in value_ids]
    return exprs, [*flags, hyperscan.HS_FLAG_MULTILINE], [*value_ids, len(rules)]


def _same(full_set: tuple[list[bytes], list[int], list[int]], text: pa.Array) -> int:
    exprs, flags, ids = full_set
    native = scan_text(compile_patterns(exprs, flags, ids), pc.fill_null(text, "") if text.null_count else text)
    reference = former.matches(exprs, flags, ids, text)
    assert _pairs(*native) == _pairs(*reference)
    return len(native[0])


def test_every_rule_example(full_set) -> None:
    values = [e.value for r in builtin_rules() for e in (*r.examples, *r.negative_examples)]
    assert _same(full_set, pa.array(values)) > len(values) // 2  # most examples are positives: matches must show


def test_demo_data(tmp_path, full_set) -> None:
    generate(str(tmp_path), users=300, seed=7, compress=False)
    matched = 0
    for name in ("users.jsonl", "scale_measurements.jsonl"):
        for leaf in flatten_table(pj.read_json(tmp_path / name)):
            matched += _same(full_set, as_text(leaf.values))
    assert matched > 1000


_ALPHABET = [chr(c) for c in range(32, 127)] + list("\n\t éß漢字٣\u00a0\u2028@.:-_/+=|$")


@pytest.mark.parametrize("seed", range(4))
def test_random_records(seed: int, full_set) -> None:
    rng = random.Random(seed)
    rules = [r for r in builtin_rules() if r.examples and r.is_value_rule]
    values: list[str | None] = []
    for _ in range(3000):
        roll = rng.random()
        if roll < 0.05:
            values.append(None)
        elif roll < 0.4:  # a rule's example inside random text: matches at the edges of values and mid-text
            ex = rng.choice(rng.choice(rules).examples).value
            pad = "".join(rng.choice(_ALPHABET) for _ in range(rng.randrange(6)))
            values.append(rng.choice((ex, pad + ex, ex + pad, pad + " " + ex + " " + pad)))
        else:
            values.append("".join(rng.choice(_ALPHABET) for _ in range(rng.randrange(60))))
    text = pa.array(values, pa.string())
    _same(full_set, text)
    _same(full_set, text.slice(17, 2000))  # an array that starts inside its buffers
    _same(full_set, text.cast(pa.large_string()))  # 64-bit offsets


def test_engine_plans_use_the_native_core() -> None:
    """Per-field databases compile through the one matcher module and find what the examples say."""
    rs = RuleSet(builtin_rules())
    email = next(r for r in rs.rules if r.id == "email")
    hits = rs.scan_column(pa.array([email.examples[0].value, "nothing here", None]), rs.plan("contact"))
    assert hits.by_rule[rs.rules.index(email)].tolist() == [0]


def test_edges() -> None:
    m = compile_patterns([rb"(?:^|[^0-9])42[^0-9]"], [hyperscan.HS_FLAG_MULTILINE], [7])
    for text, want in ((pa.array([], pa.string()), []), (pa.array(["", "", ""]), []), (pa.array(["42", "x42", "420"]), [(7, 0), (7, 1)])):
        assert _pairs(*scan_text(m, text)) == want
    with pytest.raises(CompileError) as err:
        compile_patterns([rb"ok", rb"(?<=x)y"], [0, 0], [0, 1])
    assert err.value.index == 1


def test_compile_rules_names_the_rule() -> None:
    rules = builtin_rules()[:3]
    assert compile_rules(rules) is compile_rules(rules)  # compiled once per process
