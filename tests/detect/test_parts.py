"""Every field's value rules scanned as parts: the common rules' one database (shared by all fields) plus the field's
own field-only rules, hits of common rules the field excludes dropped (engine.Split). The parts must find exactly
what one database of the field's set finds, and a first scan must compile the common database once, not once per
field."""

from __future__ import annotations

import collections
import random
import string
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from spillguard.detect import engine
from spillguard.detect.alphabet import EVERY_RUN
from spillguard.detect.engine import RuleSet, Split
from spillguard.detect.matcher import scan_text
from spillguard.rules import Example, Rule, builtin_rules
from tests.detect.readings import read_hits
from tests.detect.test_alphabet import _compiles

# Fields whose sets differ from the common rules: excluded common rules (firmware: ipv4/ipv6; tracking, invoice,
# serial: phones), own field-only rules (MAC, phone, card, AWS secret), both (ssn, order_phone), and neither.
_PATHS = [
    "devices[].firmware_version",
    "devices[].mac",
    "phone",
    "ssn",
    "national_id",
    "tracking_number",
    "invoice_number",
    "card_number",
    "aws_secret_access_key",
    "order_phone",
    "value",
]


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    return RuleSet(builtin_rules())


def _column(rng: random.Random, rules: list[Rule], n: int = 600) -> pa.Array:
    """Every rule's examples and negatives (field-only ones included), glued to each other and to noise."""
    pieces = [e.value for r in rules for e in r.examples] + [
        e.value if isinstance(e, Example) else str(e) for r in rules for e in r.negative_examples
    ]
    noise = string.ascii_letters + string.digits + " .:-_/+@|$#()"
    out = []
    for _ in range(n):
        parts = [rng.choice(pieces) if rng.random() < 0.7 else "".join(rng.choice(noise) for _ in range(rng.randrange(1, 30)))]
        while rng.random() < 0.3:
            parts.append(rng.choice(pieces))
        out.append(rng.choice(["", " ", "\n", "; "]).join(parts))
    return pa.array(out, pa.string())


def _pairs(ids: np.ndarray, at: np.ndarray) -> collections.Counter[tuple[int, int]]:
    return collections.Counter(zip(ids.tolist(), at.tolist(), strict=True))


@pytest.mark.parametrize("path", _PATHS)
def test_parts_find_what_one_database_of_the_fields_rules_finds(ruleset: RuleSet, path: str) -> None:
    plan = ruleset.plan(path)
    split = ruleset._split(plan.value_rules)
    assert split.parts[0] == ruleset._common  # every field here shares the common database
    rng = random.Random(path)
    column = _column(rng, ruleset.rules)
    one = _pairs(*scan_text(ruleset._compile(plan.value_rules), column))
    assert _pairs(*ruleset._raw_hits(column, plan.value_rules, plan)) == one
    plan.distinct_share = 0.0  # as if the field repeated: each distinct value once, spanning rules over every row
    repeated = pa.concat_arrays([column, column.slice(0, 200)])
    assert _pairs(*ruleset._raw_hits(repeated, plan.value_rules, plan)) == _pairs(*scan_text(ruleset._compile(plan.value_rules), repeated))
    if split.keep is not None:  # the excluded rules' hits are there to drop: the test sees them
        common = _pairs(*scan_text(ruleset._compile(ruleset._common), column))
        assert any(rid not in plan.value_rules for rid, _ in common - one)


@pytest.mark.parametrize("path", ["devices[].mac", "phone", "ssn", "order_phone", "devices[].firmware_version"])
def test_narrowed_parts_find_what_the_fields_own_database_finds(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    monkeypatch.setattr(engine, "_COMPILE_SECONDS_PER_RULE", 0.0)  # every narrower database compiled at once
    monkeypatch.setattr(engine, "_NARROW_MIN_BYTES", 0)
    rng = random.Random(f"narrow {path}")
    rules = builtin_rules()
    hexes = [f"{rng.getrandbits(48):012x}" for _ in range(500)]
    columns = [
        pa.array([":".join(h[i : i + 2] for i in range(0, 12, 2)).upper() for h in hexes] + hexes, pa.string()),
        pa.array([f"+1 {rng.randrange(200, 999)} 555 {rng.randrange(1000, 9999)}" for _ in range(500)], pa.string()),
        pa.array([".".join(str(rng.randrange(256)) for _ in range(4)) for _ in range(500)], pa.string()),
        pa.array([str(rng.randrange(10**9)) for _ in range(500)], pa.string()),
        _column(rng, rules, 300),
    ]
    parts = RuleSet(rules)
    with monkeypatch.context() as m:
        m.setattr(RuleSet, "_split", lambda self, rule_ids: Split((rule_ids,), None))  # one database of the field's set
        m.setattr(RuleSet, "_holding", lambda self, present, runs=EVERY_RUN: b"\x01" * len(self.rules))
        whole = RuleSet(rules)
        expected = [whole.scan_column(c, whole.plan(path)) for c in columns]
    got = [parts.scan_column(c, parts.plan(path)) for c in columns]
    for column, want, have in zip(columns, expected, got, strict=True):
        assert read_hits(have, column, rules) == read_hits(want, column, rules)
    assert any(n.matcher is not None for n in parts._narrowed.values())


def test_a_set_lacking_many_common_rules_keeps_a_database_of_its_own() -> None:
    rules = [Rule(id=f"r{i}", category="secret", value=f"tok{i}_[a-z]{{8}}", examples=[Example(f"tok{i}_abcdefgh")]) for i in range(16)]
    rules.append(Rule(id="own", category="phone", value=r"[0-9]{9}", requires_field=True, field="phone", examples=[Example("123456789")]))
    ruleset = RuleSet(rules)
    assert ruleset._split(tuple(range(17))).parts == (tuple(range(16)), (16,))
    assert ruleset._split(tuple(range(15))).parts == (tuple(range(16)),)  # one of 16 missing: hits dropped
    assert ruleset._split(tuple(range(15))).keep is not None
    assert ruleset._split(tuple(range(13))).parts == (tuple(range(13)),)  # three missing: its own database


def _fresh_rules() -> list[Rule]:
    """Rules no other test compiles (a random label in each pattern): two fields exclude one, two have their own."""
    tag = "".join(random.choice(string.ascii_lowercase) for _ in range(12))
    common = [
        Rule(id=f"t{i}", category="secret", value=rf"(?:{tag})?t{i}k_[a-z0-9]{{12}}", examples=[Example(f"t{i}k_abcdefgh1234")])
        for i in range(14)
    ]
    return [
        *common,
        Rule(id="dash", category="national_id", value=rf"(?:{tag})?[0-9]{{3}}-[0-9]{{2}}-[0-9]{{4}}", exclude_field="(?:serial|version)",
             examples=[Example("123-45-6789")]),
        Rule(id="nine", category="national_id", value=rf"(?:{tag})?[0-9]{{9}}", requires_field=True, field="ssn", examples=[Example("123456789")]),
        Rule(id="twelve", category="device_id", value=rf"(?:{tag})?[0-9a-f]{{12}}", requires_field=True, field="mac", examples=[Example("00aabbccddee")]),
    ]


def test_a_first_scan_compiles_the_common_database_once_for_every_field(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    sizes = _compiles(monkeypatch, tmp_path)
    monkeypatch.setattr(engine, "_COMPILE_SECONDS_PER_RULE", 1e6)  # no narrower database: what fields alone compile
    ruleset = RuleSet(_fresh_rules())
    # The common rules and the field-only ones, compiled as the rule set is made (and the three field patterns).
    assert sizes == [15, 2, 3]
    column = pa.array([f"{i:03d}-45-6789 t3k_abcdefgh{i:04d} {i:09d} {i:012x}" for i in range(3000)], pa.string())
    found = {path: ruleset.scan_column(column, ruleset.plan(path)).by_rule for path in ("value", "serial", "ssn", "mac", "version")}
    assert sizes == [15, 2, 3, 1, 1]  # nothing more than each field's own rule: no database per field
    counts = {path: {rid: len(idx) for rid, idx in hits.items()} for path, hits in found.items()}
    # (a 4-digit group before "-45-6789" is no SSN shape: 1,000 of the 3,000 values hold one)
    assert counts == {
        "value": {3: 3000, 14: 1000},
        "serial": {3: 3000},
        "version": {3: 3000},
        "ssn": {3: 3000, 14: 1000, 15: 3000},
        "mac": {3: 3000, 14: 1000, 16: 3000},
    }


def test_a_short_scans_rent_is_kept_for_the_next_run(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """Rent is written in steps of a fifth of a compile; what a scan shorter than a step spent is written as its
    partitions end (flush_spent), so short nightly runs add up to a compile too."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(engine, "_NARROW_MIN_BYTES", 0)
    monkeypatch.setattr(engine, "_COMPILE_SECONDS_PER_RULE", 1e6)
    rules = _fresh_rules()
    digits = pa.array([f"{i:03d}-45-6789" for i in range(2000)], pa.string())  # one common rule can match
    first = RuleSet(rules)
    first.scan_column(digits, first.plan("value"))
    (rented,) = first._narrowed.values()
    assert rented.spent > 0 and rented.recorded == 0  # under a step: not written yet
    first.flush_spent()
    second = RuleSet(rules)
    second.scan_column(digits, second.plan("value"))
    (again,) = second._narrowed.values()
    assert again.spent > rented.spent  # the first run's seconds, read back, plus this run's


def test_a_scan_keeps_its_rent_as_each_partition_ends(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import spillguard

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    tag = "".join(random.choice(string.ascii_lowercase) for _ in range(12))
    (tmp_path / "rules.toml").write_text(
        "[[rule]]\nid = 'dashed'\ncategory = 'national_id'\ndescription = 'three, two and four digits'\n"
        f"value = '''(?:{tag})?[0-9]{{3}}-[0-9]{{2}}-[0-9]{{4}}'''\nexamples = ['123-45-6789']\n\n"
        "[[rule]]\nid = 'token'\ncategory = 'secret'\ndescription = 'a token'\n"
        f"value = '''(?:{tag})?tk_[a-z]{{12}}'''\nexamples = ['tk_abcdefghijkl']\n"
    )
    data = tmp_path / "data"
    data.mkdir()
    (data / "ids.jsonl").write_text("".join(f'{{"id": "{i % 900 + 100}-45-{i % 9000 + 1000}"}}\n' for i in range(8000)))
    result = spillguard.scan(data, rules=[tmp_path / "rules.toml"], only=["dashed", "token"])
    assert sum(f.values_matched for f in result.findings) == 8000
    # A column of digits and dashes: one of the two rules can match, its database rented for by this scan.
    spent = list((tmp_path / "cache").rglob("*.spent"))
    assert len(spent) == 1 and float(spent[0].read_text()) > 0
