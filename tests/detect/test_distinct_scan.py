"""Scanning each distinct value once (engine: fields whose values repeat) against scanning every row.

A value's matches depend on the value alone, so the (rule, row) match ends must be the same multiset either way,
but for matches that run from one value into the next (which only rules decided value by value in Python allow):
on every rule's examples and negatives repeated in random order, random text with repeats and newlines, and the demo
data; and whole columns through the engine must give identical hits with the shortcut on or off.
"""

from __future__ import annotations

import collections
import random

import numpy as np
import pyarrow as pa
import pyarrow.json as pj
import pytest

from spillguard.demo import generate
from spillguard.detect import engine
from spillguard.detect.arrays import as_text
from spillguard.detect.engine import RuleSet
from spillguard.detect.flatten import flatten_table
from spillguard.detect.matcher import scan_distinct, scan_text
from spillguard.rules import builtin_rules
from tests.detect.readings import read_hits


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    return RuleSet(builtin_rules())


def _multiset(ids: np.ndarray, rows: np.ndarray) -> collections.Counter[tuple[int, int]]:
    return collections.Counter(zip(ids.tolist(), rows.tolist(), strict=True))


def _same(ruleset: RuleSet, text: pa.Array) -> int:
    """The engine's raw pass with the shortcut (distinct values once; the rules whose matches can run across a
    value's end over every row) gives exactly the match ends of one pass over every row."""
    rule_ids = tuple(ruleset.value_rule_ids)
    whole = scan_text(ruleset._compile(rule_ids), text)
    plan = ruleset._plan("notes")
    plan.distinct_share = 0.0  # as if learnt: the field repeats (the shortcut is taken whatever the column)
    shortcut = ruleset._raw_hits(text, rule_ids, plan)
    every_byte = sum(len(v.encode()) for v in text.to_pylist())
    assert plan.distinct_share == sum(len(v.encode()) for v in set(text.to_pylist())) / max(every_byte, 1)
    assert _multiset(*shortcut) == _multiset(*whole)
    # Distinct values alone miss exactly the matches that run from one value into the next (a label at the end of a
    # value, "\n", a number in the next: phone_labelled allows a newline between them), which only rules that span
    # lines make.
    ids, rows, _ = scan_distinct(ruleset._compile(rule_ids), text)
    once, every = _multiset(ids, rows), _multiset(*whole)
    assert not once - every
    assert all(ruleset._spans_lines[rule] for rule, _ in every - once)
    return len(whole[0])


_ALPHABET = [chr(c) for c in range(32, 127)] + list("\n\t éß漢字٣\u00a0\u2028@.:-_/+=|$")


@pytest.mark.parametrize("seed", range(3))
def test_rule_examples_and_random_text_repeated(ruleset: RuleSet, seed: int) -> None:
    rng = random.Random(seed)
    examples = [e.value for r in builtin_rules() for e in (*r.examples, *r.negative_examples)]
    pool = examples + ["".join(rng.choice(_ALPHABET) for _ in range(rng.randrange(40))) for _ in range(300)]
    pool += [rng.choice(examples) + "\n" + rng.choice(examples) for _ in range(100)]  # values holding a newline
    values = [rng.choice(pool) for _ in range(6000)]
    text = pa.array(values, pa.string())
    assert _same(ruleset, text) > 1000
    assert _same(ruleset, text.slice(33, 4000)) > 500  # an array that starts inside its buffers
    _same(ruleset, text.cast(pa.large_string()))
    assert _same(ruleset, pa.array(examples, pa.string())) > len(examples) // 2  # all distinct: the same too


def test_demo_columns(tmp_path, ruleset: RuleSet) -> None:
    generate(str(tmp_path), users=2000, seed=11, compress=False)
    matched = 0
    for leaf in flatten_table(pj.read_json(tmp_path / "users.jsonl")):
        text = as_text(leaf.values)
        matched += _same(ruleset, text.fill_null("") if text.null_count else text)
    assert matched > 10_000


def test_engine_hits_are_identical_with_and_without_the_shortcut(tmp_path, monkeypatch) -> None:
    """Whole columns through scan_column, fields that repeat and fields that do not: the shortcut is taken where the
    values repeat, never where they do not after the first measure, and every hit and span is the same."""
    generate(str(tmp_path), users=3000, seed=12, compress=False)
    table = pj.read_json(tmp_path / "users.jsonl")
    leaves = flatten_table(table)

    def run(share_limit: float) -> tuple[dict, dict]:
        monkeypatch.setattr(engine, "_DISTINCT_SHARE", share_limit)
        rs = RuleSet(builtin_rules())
        out: dict = {}
        taken: dict = {}
        for block in range(3):  # three "blocks" of the same field: measured, then following what was learnt
            for leaf in leaves:
                plan = rs.plan(leaf.path)
                calls = []
                real = engine.scan_distinct

                def spy(*args, _calls=calls, _real=real):
                    _calls.append(1)
                    return _real(*args)

                monkeypatch.setattr(engine, "scan_distinct", spy)
                hits = rs.scan_column(leaf.values, plan)
                monkeypatch.setattr(engine, "scan_distinct", real)
                out[(block, leaf.path)] = read_hits(hits, as_text(leaf.values), rs.rules)
                taken[(block, leaf.path)] = bool(calls)
        return out, taken

    with_shortcut, taken = run(0.25)
    without, never = run(-1.0)  # no share is below -1: every column after the first measure scans whole
    assert with_shortcut == without
    repeating = {path for (block, path), t in taken.items() if block == 2 and t}
    assert {"full_name", "address.city", "devices[].nickname"} <= repeating
    # (devices[].model's small columns add up to a measured field by the third block: its bytes and runs let no rule
    # match, so it is not scanned at all)
    assert not taken[(2, "devices[].model")] and taken[(0, "devices[].model")]
    assert "email" not in repeating and "api_token" not in repeating
    assert not any(t for (block, _), t in never.items() if block > 0)


def test_engine_hits_on_repeated_examples_and_text_running_across_values(monkeypatch) -> None:
    """Values ending in a label ("... Fax") before a value that is a number: the engine's hits are those of each
    value on its own, with or without the shortcut."""
    rng = random.Random(21)
    examples = [e.value for r in builtin_rules() for e in (*r.examples, *r.negative_examples)]
    pool = rng.sample(examples, 150) + [f"{rng.choice(examples)} Fax" for _ in range(40)] + ["".join(rng.choice(_ALPHABET) for _ in range(30)) for _ in range(20)]
    column = pa.array([rng.choice(pool) for _ in range(20_000)], pa.string())
    results = []
    for share in (0.25, -1.0):
        monkeypatch.setattr(engine, "_DISTINCT_SHARE", share)
        rs = RuleSet(builtin_rules())
        plan = rs.plan("notes")
        rs.scan_column(column, plan)  # the first column measures
        assert (plan.distinct_share or 1.0) < engine._DISTINCT_SHARE or share < 0
        hits = rs.scan_column(column, plan)
        results.append(read_hits(hits, column, rs.rules))
    assert results[0] == results[1]
    assert sum(len(v) for v in results[0][0].values()) > 5000


def test_a_label_ending_the_value_before_does_not_hide_a_phone_number() -> None:
    """`... Fax` then, in the next value, a NANP number: phone_labelled's match runs across the two values (it allows
    a newline after its label); the number is still found in its own value, as it is scanned alone."""
    rs = RuleSet(builtin_rules())
    plan = rs.plan("notes")
    alone = rs.scan_column(pa.array(["(312)515-2239"]), plan).by_rule
    after_label = rs.scan_column(pa.array(["see 5e3ce25fe57b5dff Fax", "(312)515-2239"]), plan).by_rule
    assert alone and {r: v.tolist() for r, v in after_label.items()} == {r: [1] for r in alone}


def test_which_rules_can_span_lines() -> None:
    """Read off each rule's pattern: labels followed by whitespace that may be a newline span lines, plain formats
    do not; and every rule that spans lines is decided value by value in Python."""
    rs = RuleSet(builtin_rules())
    spanning = {r.id for r in rs.rules if r.spans_lines()}
    assert {"phone_labelled", "password_assignment", "bearer_token"} <= spanning
    assert not {"email", "credit_card", "ipv4", "iban", "mac_separated", "aws_access_key_id"} & spanning
    assert all(rs._needs_python[i] for i, r in enumerate(rs.rules) if r.id in spanning)
