"""A field's owner (engine: columns mostly of one rule's whole matches) takes its values without a scan.

The values the owner takes must be exactly those a scan of every value gives the owner alone, and every other value
must get what the scan gives it: columns of bcrypt hashes, Alexa tokens and MAC addresses mixed with the cases that
must not be taken (a rival's match inside an owner-shaped value, placeholders, a value the validator refuses, text
around a match, newlines, nulls, empty values), whole demo tables, and a field whose values change under its owner,
all compared hit for hit and span for span with owners off.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401 (pa.compute)
import pyarrow.json as pj
import pytest

from spillguard.demo import generate
from spillguard.detect import engine
from spillguard.detect.alphabet import match_chars
from spillguard.detect.arrays import as_text
from spillguard.detect.engine import RuleSet
from spillguard.detect.flatten import flatten_table
from spillguard.rules import builtin_rules
from tests.detect.readings import read_hits

_BCRYPT = "./" + string.ascii_letters + string.digits
_TOKEN = string.ascii_letters + string.digits + "_-"


class _Clock:
    """A CPU clock that never moves: owners are kept or dropped by what they cost, which the tests must not race."""

    @staticmethod
    def thread_time() -> float:
        return 0.0

    perf_counter = thread_time


@pytest.fixture
def owners_on(monkeypatch) -> Iterator[list[int]]:
    """Owner databases compiled at once (no rent), costs out of the decision; yields the count of owned columns."""
    monkeypatch.setattr(engine.Narrowed, "compile_estimate", property(lambda self: 0.0))
    monkeypatch.setattr(engine, "time", _Clock)
    taken: list[int] = []
    real = RuleSet._owned

    def spy(self, text, plan, owner):
        owned, entry = real(self, text, plan, owner)
        if owned is not None:
            taken.append(int(owned.sum()))
        return owned, entry

    monkeypatch.setattr(RuleSet, "_owned", spy)
    yield taken


_RULES = builtin_rules()


def _run(columns: list[tuple[str, pa.Array]], monkeypatch, owners: bool) -> list[tuple[dict, dict]]:
    monkeypatch.setattr(engine, "_OWNED_MIN", 64 if owners else 1 << 62)
    rs = RuleSet(_RULES)
    return [read_hits(rs.scan_column(values, rs.plan(path)), as_text(values), _RULES) for path, values in columns]


def _rule_index(rule_id: str) -> int:
    return next(i for i, r in enumerate(_RULES) if r.id == rule_id)


def _bcrypt(rng: random.Random, inner: str = "") -> str:
    body = inner + "".join(rng.choice(_BCRYPT) for _ in range(53 - len(inner)))
    return f"$2{rng.choice('abxy')}${rng.randrange(4, 32):02d}${body}"


def _rival_examples(owner: str, alphabet: str) -> list[str]:
    """The examples of the rules that outrank `owner`, written only in its alphabet: inside an owner-shaped value
    they are matches that win it over."""
    rules = _RULES
    o = _rule_index(owner)
    out = []
    for i, r in enumerate(rules):
        if r.is_value_rule and (r.priority > rules[o].priority or (r.priority == rules[o].priority and i < o)):
            out += [e.value for e in r.examples if e.value and set(e.value) <= set(alphabet)]
    return out


def _bcrypt_column(rng: random.Random, n: int) -> list[str | None]:
    rivals = [e for e in _rival_examples("bcrypt_hash", _BCRYPT) if len(e) <= 49]
    assert len(rivals) >= 5
    values: list[str | None] = []
    for _ in range(n):
        k = rng.random()
        if k < 0.70:
            values.append(_bcrypt(rng))
        elif k < 0.80:  # a rival's match inside: between separators the bcrypt alphabet holds (".", "/")
            values.append(_bcrypt(rng, rng.choice("./") + rng.choice(rivals) + rng.choice("./")))
        elif k < 0.84:
            values.append(None)
        elif k < 0.86:
            values.append("")
        elif k < 0.90:  # text around a hash, a hash cut short or too long, a hash and a newline
            h = _bcrypt(rng)
            values.append(rng.choice([f"hash {h}", h[:-1], h + "x", h + "\n" + _bcrypt(rng), f"{h} {h}"]))
        else:
            values.append("".join(rng.choice(string.printable) for _ in range(rng.randrange(1, 70))))
    return values


def _token_column(rng: random.Random, n: int, prefix: str) -> list[str | None]:
    filler = ["x" * 60, "0" * 48, "EXAMPLE" * 8, "abcdefghijklmnopqrstuvwxyz0123456789ABCD", "your_token_here_" * 4]
    values: list[str | None] = []
    for _ in range(n):
        k = rng.random()
        if k < 0.35:
            values.append(prefix + "".join(rng.choice(_TOKEN) for _ in range(rng.randrange(40, 200))))
        elif k < 0.45:  # placeholders: markers, low entropy at the start, a run of one character
            values.append(prefix + rng.choice(filler) + "".join(rng.choice(_TOKEN) for _ in range(rng.randrange(0, 40))))
        elif k < 0.90:
            values.append(None)  # most users never linked the integration
        else:
            values.append(prefix + "short" if rng.random() < 0.5 else "see " + prefix + "Z" * 50)
    return values


def _mac_column(rng: random.Random, n: int) -> list[str | None]:
    values: list[str | None] = []
    for _ in range(n):
        octets = [rng.randrange(256) for _ in range(6)]
        k = rng.random()
        if k < 0.75:
            sep = rng.choice(":-")
            values.append(sep.join(f"{o:02x}" if rng.random() < 0.5 else f"{o:02X}" for o in octets))
        elif k < 0.85:  # refused or ambiguous: all zeros, broadcast, a fourth of an address repeated
            values.append(rng.choice(["00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff", "12:12:12:12:12:12", "01:23:45:67:89:ab"]))
        elif k < 0.9:
            values.append(".".join(f"{octets[i]:02x}{octets[i + 1]:02x}" for i in (0, 2, 4)))
        else:
            values.append(rng.choice([None, "", "fe80::1", "10:20:30:40:50", "12:34:56:78:9a:bc:de"]))
    return values


@pytest.mark.parametrize(("seed", "linear"), [(0, True), (1, True), (2, False)])
def test_owned_columns_match_a_scan_of_every_value(seed: int, linear: bool, monkeypatch, owners_on: list[int]) -> None:
    """Owners with linear patterns (all three here) decide their whole values natively; with that turned off, by the
    Vectorscan pass of their whole-line form."""
    if not linear:
        monkeypatch.setattr(RuleSet, "_linear_program", lambda self, rid: None)
    rng = random.Random(seed)
    columns: list[tuple[str, pa.Array]] = []
    for _ in range(4):  # four blocks of each field: the first learns the owner, the others use it
        columns.append(("password_hash", pa.array(_bcrypt_column(rng, 3000), pa.string())))
        columns.append(("alexa.refresh_token", pa.array(_token_column(rng, 3000, "Atzr|"), pa.string())))
        columns.append(("devices[].mac", pa.array(_mac_column(rng, 3000), pa.string())))
    owned = _run(columns, monkeypatch, owners=True)
    assert len(owners_on) >= 9 and sum(owners_on) > 12_000
    full = _run(columns, monkeypatch, owners=False)
    assert owned == full
    # The cases were there: bcrypt-shaped values a rival wins, tokens a placeholder keeps out, MACs refused.
    bcrypt, lwa, mac = (_rule_index(r) for r in ("bcrypt_hash", "lwa_refresh_token", "mac_separated"))
    by_rule, _ = full[3]  # (the second block: password_hash, alexa.refresh_token, devices[].mac)
    assert set(by_rule) - {bcrypt}, "no rival won a bcrypt-shaped value"
    shaped = sum(1 for v in columns[3][1].to_pylist() if v is not None and re.fullmatch(r"\$2[abxy]\$\d\d\$[./A-Za-z0-9]{53}", v))
    assert 0 < len(by_rule[bcrypt]) < shaped
    tokens = sum(1 for v in columns[4][1].to_pylist() if v is not None and re.fullmatch(r"Atzr\|[A-Za-z0-9_\-]{40,}", v))
    assert 0 < len(full[4][0][lwa]) < tokens
    assert 0 < len(full[5][0][mac]) < sum(1 for v in columns[5][1].to_pylist() if v is not None and len(v) == 17)


def test_demo_tables_with_and_without_owners(tmp_path, monkeypatch, owners_on: list[int]) -> None:
    generate(str(tmp_path), users=4000, seed=5, compress=False)
    table = pj.read_json(tmp_path / "users.jsonl")
    columns = [(leaf.path, leaf.values) for k in range(3) for part in (table.slice(k * 1300, 1300),) for leaf in flatten_table(part)]
    owned = _run(columns, monkeypatch, owners=True)
    assert sum(owners_on) > 2000
    assert owned == _run(columns, monkeypatch, owners=False)
    monkeypatch.setattr(engine, "_OWNED_MIN", 64)
    rs = RuleSet(builtin_rules())
    for path, values in columns:
        rs.scan_column(values, rs.plan(path))
    assert rs.rules[rs.plan("password_hash").owner].id == "bcrypt_hash"
    assert rs.plan("email").owner < 0  # an e-mail's "@" and "." may stand beside a match: it owns nothing


def test_an_owner_is_forgotten_when_the_field_changes(monkeypatch, owners_on: list[int]) -> None:
    rng = random.Random(9)
    words = ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randrange(3, 12))) for _ in range(500)]
    columns = [("secret_hash", pa.array([_bcrypt(rng) for _ in range(2000)], pa.string())) for _ in range(2)]
    columns += [("secret_hash", pa.array([" ".join(rng.choices(words, k=4)) if rng.random() < 0.7 else _bcrypt(rng) for _ in range(2000)])) for _ in range(3)]
    monkeypatch.setattr(engine, "_OWNED_MIN", 64)
    rs = RuleSet(builtin_rules())
    plan = rs.plan("secret_hash")
    results = []
    for k, (path, values) in enumerate(columns):
        results.append(read_hits(rs.scan_column(values, rs.plan(path)), values, _RULES))
        if k == 0:
            assert plan.owner == _rule_index("bcrypt_hash")
    assert plan.owner == -1 and plan.owner_wait > 0
    assert owners_on == [2000]
    assert results == _run(columns, monkeypatch, owners=False)


def test_which_rules_can_own_values() -> None:
    rs = RuleSet(builtin_rules())
    can = {r.id for i, r in enumerate(rs.rules) if r.is_value_rule and rs._can_own(i)}
    assert {"bcrypt_hash", "lwa_refresh_token", "lwa_access_token", "mac_separated", "aws_access_key_id"} <= can
    # "@" and "." beside a match, a validator reading the context, a label, a secret group, any character:
    assert not {"email", "ipv4", "phone_international", "us_ssn_labelled", "password_assignment", "bearer_token"} & can
    for r in rs.rules:
        if r.id in can:
            assert r.value_re is not None and r.value_re.search("") is None and not r.labelled and not r.secret_group


def _set(chars: str) -> int:
    return sum(1 << ord(c) for c in set(chars))


def test_match_chars() -> None:
    assert match_chars(r"\$2[ab]\$[0-9]{2}") == _set("$2ab0123456789")
    assert match_chars(r"(?<![A-Z])x(?:y|z)+(?!q)") == _set("xyz")  # look-arounds hold no character
    for pattern in (r"a.b", r"[^a]", r"\d", r"\w", "é", r"[a-\u00ff]"):
        assert match_chars(pattern) is None, pattern
    assert match_chars("(?i)ab") is None and match_chars("(?i)12") == _set("12") and match_chars("x(?i:a)") is None
    assert match_chars("ab", re.IGNORECASE) is None and match_chars("x(?i:1)") == _set("x1")
    assert match_chars(r"(a)\1") == 1 << ord("a")
    rng = random.Random(3)
    for rule in builtin_rules():  # every character of a match of a rule's own examples is one the reading lists
        if rule.value_re is None:
            continue
        chars = match_chars(*rule.value_source())
        if chars is None:
            continue
        for example in rule.examples + rule.negative_examples:
            for m in rule.value_re.finditer(example.value):
                assert all(chars >> ord(c) & 1 for c in m.group()), (rule.id, example.value)
        sample = "".join(chr(c) for c in range(128) if chars >> c & 1)
        for _ in range(20):
            text = "".join(rng.choice(sample) for _ in range(80))
            for m in rule.value_re.finditer(text):
                assert all(chars >> ord(c) & 1 for c in m.group())
    assert np.any([match_chars(*r.value_source()) is not None for r in builtin_rules() if r.is_value_rule])


def test_whole_line_checks_match_re2(monkeypatch) -> None:
    """The vectorised validators' "is the candidate the whole value" by one Vectorscan pass of each rule's whole-line
    form (the field's cheaper way once both are measured), or natively for a linear pattern, gives RE2's answer: on every such rule's examples and negatives, cut, padded, with newlines inside and after,
    with text that is not ASCII, and nulls."""
    monkeypatch.setattr(engine.Narrowed, "compile_estimate", property(lambda self: 0.0))
    rs = RuleSet(_RULES)
    rng = random.Random(4)
    assert len(rs._whole) >= 6
    linear: list[str] = []
    for rid, pattern in rs._whole.items():
        rule = rs.rules[rid]
        base = [e.value for r in (rule, *rng.sample(_RULES, 5)) for e in (*r.examples, *r.negative_examples)]
        base += [m.group() for v in base if rule.value_re is not None for m in rule.value_re.finditer(v)]  # (whole)
        values: list[str | None] = []
        for v in base * 3:
            k = rng.randrange(8)
            values.append([v, v[1:], v[:-1], " " + v, v + "\n", "x\n" + v, v + "é", None][k])
        column = pa.array(values, pa.string())
        expected = np.asarray(pa.compute.fill_null(pa.compute.match_substring_regex(column, pattern), False), bool)
        assert expected.any() and not expected.all(), rule.id
        plan = rs._plan("notes")
        assert (rs._whole_values(column, rid, pattern, plan) == expected).all(), rule.id
        if rs._linear_program(rid) is not None:  # decided natively (whole_linear), neither pass made or weighed
            linear.append(rule.id)
            assert rid not in rs._line_dbs and rid not in plan.whole_costs
            assert (rs._whole_values(column.slice(5), rid, pattern, plan) == expected[5:]).all(), rule.id
            continue
        assert rs._line_dbs[rid].matcher is not None and plan.whole_costs[rid][1] is not None  # (by the line pass)
        sliced = column.slice(5)
        assert (rs._whole_values(sliced, rid, pattern, plan) == expected[5:]).all(), rule.id
        assert plan.whole_costs[rid][0] is not None  # (then by RE2, to weigh the two)
        assert (rs._whole_values(sliced, rid, pattern, rs._plan("notes")) == expected[5:]).all(), rule.id
    assert 0 < len(linear) < len(rs._whole), linear  # (both ways met)


@pytest.mark.parametrize("claimed_share", [0.2, 0.8, 1.0])
def test_field_checks_run_on_the_values_no_value_rule_took(claimed_share: float) -> None:
    """A field check (`secret` under a token field) counts the values no value rule of its category took; where most
    were taken it runs on the others only: the same values either way, as the check over every value gives them."""
    from spillguard.detect.checks import run_check

    rng = random.Random(int(claimed_share * 10))
    values = []
    for _ in range(4000):
        if rng.random() < claimed_share:
            values.append("Atza|" + "".join(rng.choice(_TOKEN) for _ in range(60)))
        else:
            values.append(rng.choice([None, "", "n/a", "".join(rng.choice(_TOKEN) for _ in range(rng.randrange(8, 60)))]))
    column = pa.array(values, pa.string())
    rs = RuleSet(_RULES)
    plan = rs.plan("alexa.access_token")
    hits = rs.scan_column(column, plan)
    checks = [rid for rid in plan.check_rules if rs.rules[rid].check == "secret"]
    assert checks
    for rid in checks:
        rule = rs.rules[rid]
        claimed = np.zeros(len(column), bool)
        for other, idx in hits.by_rule.items():
            if other != rid and rs.rules[other].category == rule.category:
                claimed[idx] = True
        expected = np.flatnonzero(run_check("secret", column, rule.check_min, rule.check_max) & ~claimed)
        assert hits.by_rule.get(rid, np.zeros(0, np.int64)).tolist() == expected.tolist()
        assert claimed_share == 1.0 or expected.size > 100
