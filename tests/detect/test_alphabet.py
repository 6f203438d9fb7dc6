"""A column scanned with only the rules its bytes let match (detect/alphabet.py) finds what the full database finds.

The requirement read from each pattern (its bytes, and the runs of one class it needs) must never drop a rule that
can match: held against Python's re on strings drawn from random alphabets and from the rules' own examples. The engine's narrowed databases are held against the
full ones column by column, and their compiling against its budget (paid back within the run, or far narrower
while no wider database exists yet).
"""

from __future__ import annotations

import random
import re
import string

import pyarrow as pa
import pytest

from spillguard.detect import engine, matcher
from spillguard.detect.alphabet import (
    ALWAYS,
    EVERY_RUN,
    HIGH,
    NEWLINE,
    NO_RUNS,
    RUN_CLASSES,
    Requirement,
    RequirementTable,
    Run,
    WholeForm,
    holds,
    present_bytes,
    requirement,
    requirements,
    value_bytes,
    value_runs,
    whole_form,
    whole_forms,
)
from spillguard.detect.arrays import as_text
from spillguard.detect.engine import RuleSet
from spillguard.detect.matcher import scan_text
from spillguard.rules import Example, Rule, builtin_rules
from tests.detect.readings import read_hits

_VALUE_RULES = [r for r in builtin_rules() if r.is_value_rule]


def _bytes_of(text: str) -> int:
    out = NEWLINE
    for b in text.encode():
        out |= 1 << b
    return out


def _runs_of(*texts: str) -> bytes:
    """The longest run of each of RUN_CLASSES in any of the texts, bytes above ASCII counting for every class."""
    best = [0] * len(RUN_CLASSES)
    for text in texts:
        for k, mask in enumerate(RUN_CLASSES):
            run = 0
            for b in text.encode():
                run = run + 1 if b >= 0x80 or mask >> b & 1 else 0
                best[k] = max(best[k], min(run, 255))
    return bytes(best)


def test_byte_set_is_every_byte_the_values_hold() -> None:
    rng = random.Random(5)
    for _ in range(200):
        values = ["".join(rng.choice("ab-é\x00Z9\n") for _ in range(rng.randrange(0, 6))) for _ in range(rng.randrange(1, 30))]
        array = pa.array(values, rng.choice([pa.string(), pa.large_string()]))
        start = rng.randrange(0, len(values))
        part = array.slice(start, rng.randrange(0, len(values) - start + 1))
        want = NEWLINE
        for v in values[start : start + len(part)]:
            want |= _bytes_of(v)
        assert present_bytes(part) == want
    for at in range(20):  # one byte alone at each place of the native pass's eight-byte steps, and in its tail
        for ch in ("Q", "\x7f", "\x01", "é"):
            for tail in (0, 3, 9):
                assert present_bytes(pa.array(["a" * at + ch + "b" * tail])) == NEWLINE | _bytes_of("a" * at + ch + "b" * tail)


def test_runs_are_the_longest_of_each_class_within_a_value() -> None:
    """value_runs (one native pass) against a reading in Python: runs end at value boundaries (values are not
    joined), bytes above ASCII count for every class, a run saturates at 255; sliced and large-string arrays."""
    rng = random.Random(12)
    pool = ["0", "7", "a", "F", "z", "Q", "_", "-", ".", "+", "/", "=", " ", ":", "(", ")", "é", "\u212a", "\n", "\x00"]
    for _ in range(300):
        values = [
            "".join(rng.choice(pool) * rng.choice([1, 1, 2, 5]) for _ in range(rng.randrange(0, 12))) for _ in range(rng.randrange(1, 20))
        ]
        array = pa.array(values, rng.choice([pa.string(), pa.large_string()]))
        start = rng.randrange(0, len(values))
        part = array.slice(start, rng.randrange(0, len(values) - start + 1))
        found, runs = value_runs(part)
        assert runs == _runs_of(*values[start : start + len(part)])
        assert found == (value_bytes(part) if len(part) else 0)
    assert value_runs(pa.array(["1" * 300, "x"]))[1][0] == 255
    assert value_runs(pa.array(["123", "456"]))[1][0] == 3  # (not 6: the values are not one text)
    assert value_runs(pa.array([], pa.string())) == (0, NO_RUNS)


def test_a_rules_examples_always_meet_its_requirement() -> None:
    for rule in _VALUE_RULES:
        source = rule.value_source()
        assert rule.value_re is not None and source is not None
        req = requirement(*source)
        for example in rule.examples:
            if rule.value_re.search(example.value):
                assert holds(req, _bytes_of(example.value), _runs_of(example.value)), (rule.id, example.value)


def test_requirements_are_kept_in_the_cache_as_read(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    sources = [source for r in _VALUE_RULES if (source := r.value_source()) is not None]
    read = requirements(sources)
    assert read == [requirement(*s) for s in sources]
    monkeypatch.setattr("spillguard.detect.alphabet.requirement", lambda *a: pytest.fail("read again"))
    assert requirements(sources) == read  # loaded, not read again


def _strings(rng: random.Random, alphabet: str, n: int) -> list[str]:
    return ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 80))) for _ in range(n)]


def test_no_rule_is_dropped_where_pythons_re_finds_a_match() -> None:
    """Strings over random alphabets, and rule examples with characters taken out or swapped for others (what a
    too-eager requirement would get wrong: a class, a case, an optional part, a branch)."""
    rng = random.Random(23)
    pool = string.ascii_letters + string.digits + string.punctuation + " \t" + "éßКλ€"
    reqs = [(r, requirement(*source)) for r in _VALUE_RULES if (source := r.value_source()) is not None]
    texts: list[str] = []
    for _ in range(60):
        texts += _strings(rng, "".join(rng.sample(pool, rng.randrange(2, 16))), 15)
    examples = [e.value for r in _VALUE_RULES for e in r.examples]
    for example in rng.sample(examples, 400):
        chars = sorted(set(example))
        drop = rng.choice(chars)
        texts.append(example.replace(drop, ""))
        texts.append(example.replace(drop, rng.choice(pool)))
        texts.append(example.swapcase())
    for example in rng.sample(examples, 400):  # runs cut short: a character of a class swapped for another
        at = rng.randrange(len(example))
        texts.append(example[:at] + rng.choice("-. :_+/()é") + example[at + 1 :])
    dropped = []
    for text in texts:
        present, runs = _bytes_of(text), _runs_of(text)
        for rule, req in reqs:
            assert rule.value_re is not None
            if not holds(req, present, runs) and rule.value_re.search(text):
                dropped.append((rule.id, text))
    assert dropped == []


def test_requirements_read_patterns_exactly_where_they_can() -> None:
    def rule(value: str) -> Requirement:
        source = Rule(id="t", category="email", value=value).value_source()
        assert source is not None
        return requirement(*source)

    digits = _bytes_of("0123456789")
    assert holds(rule(r"\d{3}-\d{2}-\d{4}"), _bytes_of("123-"))
    assert not holds(rule(r"\d{3}-\d{2}-\d{4}"), digits)  # the dashes are not optional
    assert holds(rule(r"\d{3}-?\d{2}"), digits)  # ... here they are
    assert not holds(rule(r"[a-f]+@x"), _bytes_of("ABCDEF@"))  # no "x" in either case
    assert holds(rule(r"[a-f]+@x"), _bytes_of("ABCDEF@X"))  # letters stand for both cases
    assert holds(rule(r"(?:AKIA|ASIA)[A-Z0-9]{4}"), _bytes_of("ASI0"))  # one branch is enough
    assert not holds(rule(r"(?:AKIA|ASIA)[A-Z0-9]{4}"), _bytes_of("ASK0"))
    # A negated class as written (not under IGNORECASE); the scanned "\n" would meet it anyway, so left out here.
    assert holds(rule(r"[^a-z]{3}"), _bytes_of("ABC") & ~NEWLINE)
    assert not holds(rule(r"[^a-z]{3}"), _bytes_of("abc") & ~NEWLINE)
    assert holds(rule(r"x[_\u0080-\U0010FFFF]"), _bytes_of("xé"))
    assert not holds(rule(r"x[_\u0080-\U0010FFFF]"), _bytes_of("xe"))
    assert holds(rule(r"k9"), _bytes_of("\u212a9"))  # Unicode case folding: the Kelvin sign may stand for k
    assert rule(r"(?=a)") == ALWAYS and HIGH & _bytes_of("é")

    def runs_hold(value: str, text: str) -> bool:
        return holds(rule(value), _bytes_of(text), _runs_of(text))

    ssn = r"[0-9]{3}-[0-9]{2}-[0-9]{4}"
    assert not runs_hold(ssn, "192.168.100.1-20")  # every byte, but no run of four digits
    assert runs_hold(ssn, "10.0.0.1 2024-01-0101")
    assert not runs_hold(ssn, "1234-aaa")  # four digits, but not eleven of digits and dashes
    assert runs_hold(r"[0-9]{3}-?[0-9]{2}", "123-45") and runs_hold(r"[0-9]{3}-?[0-9]{2}", "12345")
    assert not runs_hold(r"[0-9]{3}-?[0-9]{2}", "12 345")  # an optional dash does not end a run of digits and dashes
    assert not runs_hold(r"[0-9]{3}[0-9]{2}?", "12 34")
    assert not runs_hold(r"AKIA[0-9A-Z]{16}", "AKIA" + "Z" * 15 + "-A")  # twenty letters and digits
    assert runs_hold(r"AKIA[0-9A-Z]{16}", "AKIA" + "Z" * 16)
    assert runs_hold(r"(?:ab|[0-9]{6})", "ab")  # one branch is enough
    assert not runs_hold(r"(?:ab|cd)[0-9]{6}", "ab12345 cd")
    assert runs_hold(r"(?i)[a-z]{5}", "ab\u212acd")  # the Kelvin sign's bytes count for a letter
    assert runs_hold(r"(?:[a-f]|[^\x00-\x7f]){4}", "abcé")
    assert not runs_hold(r"(?:[a-f]|[^\x00-\x7f]){4}", "ab cé")
    assert not runs_hold(r"^[0-9]{5}$", "1234")  # anchors consume nothing
    assert rule(r"[0-9]{3}") == (False, (Run(0, 3), _bytes_of("0123456789") & ~NEWLINE))
    # Groups, alternations and optional parts whose every character lies in a class add to its run: numbers written
    # with their separators (a card in groups, a phone number, an IPv4 or MAC address).
    card = r"(?:[0-9]{4}[ \-]){3}[0-9]{4}"
    assert runs_hold(card, "1234 5678-9012 3456") and not runs_hold(card, "1234 5678 9012 345x1234")
    phone = r"\(?[2-9][0-9]{2}\)?[ .\-]?[0-9]{3}[ .\-][0-9]{4}"
    assert runs_hold(phone, "(555) 123-4567") and runs_hold(phone, "5551234567") is False  # no separator: no match
    assert not runs_hold(phone, "(555) 123x4567 (555) 1-2")  # every byte, but no eleven of digits and separators in a row
    ipv4 = r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}"
    assert runs_hold(ipv4, "1.2.3.4") and not runs_hold(ipv4, "1.2.3 4.5.6")  # seven digits and dots
    assert not runs_hold(r"(?:12|345)[0-9]{2}", "12 99") and runs_hold(r"(?:12|345)[0-9]{2}", "1299")
    mac = r"[0-9A-F]{2}(?::[0-9A-F]{2}){5}"
    assert runs_hold(mac, "0a:1b:2c:3d:4e:5f") and not runs_hold(mac, "0a:1b:2c:3d:4e 5f:0a:1b")
    assert not runs_hold(r"[0-9]{3}(?:x|[ .])?[0-9]{4}", "123x456")  # a part out of the class ends the run
    assert rule(r"[0-9]{3}[ .][0-9]{4}") == (False, (Run(0, 4), Run(RUN_CLASSES.index(_bytes_of("0123456789 .-") & ~NEWLINE), 8), _bytes_of("0123456789") & ~NEWLINE, _bytes_of(" .") & ~NEWLINE, _bytes_of("0123456789") & ~NEWLINE))
    assert isinstance(rule(r"[0-9a-z]{2}"), int)  # a run too short to ask for: the bytes alone


def _columns(rng: random.Random) -> list[pa.Array]:
    """Columns of narrow alphabets (ids, timestamps, hex digests, UUIDs, MACs, addresses, tokens) and of examples."""
    n = 400
    examples = [e.value for r in _VALUE_RULES for e in r.examples]
    hexes = [f"{rng.getrandbits(160):040x}" for _ in range(n)]
    cols = [
        [str(rng.randrange(10**15)) for _ in range(n)],
        hexes,
        [f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}" for h in hexes],
        [":".join(h[i : i + 2] for i in range(0, 12, 2)).upper() for h in hexes],
        [".".join(str(rng.randrange(256)) for _ in range(4)) for _ in range(n)],
        ["Atza|" + "".join(rng.choice(string.ascii_letters + string.digits + "_-") for _ in range(60)) for _ in range(n)],
        [rng.choice(examples) if rng.random() < 0.3 else rng.choice(hexes)[: rng.randrange(1, 40)] for _ in range(n)],
        [rng.choice(examples) for _ in range(n)],
        [str(rng.randrange(10**12)) if rng.random() < 0.9 else rng.choice(examples) for _ in range(n)],
        [_email(rng) if rng.random() < 0.95 else rng.choice(examples) for _ in range(n)],
    ]
    return [pa.array(c, pa.string()) for c in cols]


def _email(rng: random.Random) -> str:
    name = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randrange(2, 12)))
    return f"{name}{rng.choice(['.', '_', '-', ''])}{rng.randrange(10 ** rng.randrange(0, 5))}@{rng.choice(['example.org', 'mail-1.de'])}"


def test_an_email_column_leaves_out_the_rules_of_numbers_written_with_separators() -> None:
    """A column of e-mail addresses holds every byte a phone number, card, SSN, IPv4 or MAC address is written with,
    and runs of digits, but never a long run of digits and their separators: those rules (which lead with a class and
    cost the most a byte) leave its scan; one phone number among the addresses brings the phone rules back."""
    rng = random.Random(8)
    ruleset = RuleSet(builtin_rules())
    plan = ruleset.plan("email")
    out = {"phone_nanp", "phone_national", "us_ssn", "credit_card_formatted", "ipv4", "mac_separated", "uk_nino", "es_dni"}
    values = [_email(rng) for _ in range(2000)] + ["ops-team.42@example.org", "a.1.2.3@x.io", "x-12-3@y.io"]

    def possible(column: list[str]) -> set[str]:
        found, runs = value_runs(pa.array(column, pa.string()))
        return {ruleset.rules[r].id for r in ruleset._possible_rules(plan.value_rules, found | NEWLINE, runs)}

    kept = possible(values)
    assert "email" in kept and not kept & out
    assert {"phone_nanp", "phone_national"} <= possible([*values, "call +1 (555) 123-4567"])


def _hits(ruleset: RuleSet, column: pa.Array, path: str) -> tuple[dict[int, list[int]], dict[tuple[int, int], tuple[int, int] | None]]:
    return read_hits(ruleset.scan_column(column, ruleset.plan(path)), as_text(column), ruleset.rules)


@pytest.mark.parametrize("path", ["value", "device_mac", "phone_number"])
def test_narrowed_databases_find_what_the_full_database_finds(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    rng = random.Random(path)
    columns = _columns(rng)
    monkeypatch.setattr(engine, "_COMPILE_SECONDS_PER_RULE", 0.0)  # every narrower database compiled at once
    monkeypatch.setattr(engine, "_RUNS_KEEP", 1.0)  # runs measured on every column
    narrowed = RuleSet(builtin_rules())
    with monkeypatch.context() as m:
        m.setattr(RuleSet, "_holding", lambda self, present, runs=EVERY_RUN: b"\x01" * len(self.rules))  # every rule, one database
        full = RuleSet(builtin_rules())
        expected = [_hits(full, c, path) for c in columns]
    got = [_hits(narrowed, c, path) for c in columns]
    assert got == expected
    assert narrowed._narrowed and all(n.matcher is not None for n in narrowed._narrowed.values())


def _form_of(rule: Rule) -> WholeForm | None:
    return whole_form(rule.python_value(), rule.python_boundary(), re.IGNORECASE if rule.ignore_case else 0)


def test_whole_forms_read_each_branchs_lengths_and_the_boundary_exactly(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    card = whole_form(r"[1-6][0-9]{11,18}|(?:8600|9792)[0-9]{12}", r"[A-Za-z0-9+\-]")
    assert card is not None and [(lo, hi) for _, lo, hi in card.branches] == [(12, 19), (16, 16)]
    assert card.boundary == _bytes_of(string.ascii_letters + string.digits + "+-") & ~NEWLINE
    assert not card.allows(_bytes_of("0123456789"), _runs_of("0" * 40), 40, 40)  # a digest is longer than any card
    assert card.allows(_bytes_of("0123456789"), _runs_of("4" * 16), 10, 16)
    assert not card.allows(_bytes_of("abcdef"), EVERY_RUN, 16, 16)  # lengths fit, but no digits
    assert whole_form(r"(?:ab|c*)", r"[a-c]") is None  # a branch that matches nothing: no claim
    assert whole_form(r"(?i:[a-f]{4})", r"[a-f]", re.IGNORECASE).boundary == _bytes_of("abcdefABCDEF") & ~NEWLINE  # type: ignore[union-attr]
    spaced = whole_form(r"[0-9]{4}", r"[\s\w]")  # (Python's \s holds \x1c-\x1f, the engine's does not: no control character)
    assert spaced is not None and spaced.boundary == _bytes_of(string.ascii_letters + string.digits + "_ ") & ~NEWLINE
    open_ended = whole_form(r"x[0-9]+", r"[0-9x]")
    assert open_ended is not None and open_ended.branches[0][1:] == (2, 1 << 62)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    patterns = [None, *[(r.python_value(), r.python_boundary(), re.IGNORECASE if r.ignore_case else 0) for r in _VALUE_RULES[:60]]]
    read = whole_forms(patterns)
    monkeypatch.setattr("spillguard.detect.alphabet.whole_form", lambda *a: pytest.fail("read again"))
    assert whole_forms(patterns) == read and read[0] is None  # loaded from the cache as read


def test_a_match_in_a_value_of_boundary_characters_is_the_whole_value_and_fits_a_branch() -> None:
    """What WholeForm rests on, against Python's re for every built-in rule it reads: in a text whose every character
    the rule's boundary class holds, a match is the whole text, and its bytes, runs and length meet a branch. Texts
    from the boundary's own characters, and the rules' examples kept to them, cut and joined."""
    rng = random.Random(41)
    examples = [e.value for r in _VALUE_RULES for e in r.examples]
    checked = matched = 0
    for rule in _VALUE_RULES:
        form = _form_of(rule)
        if form is None or rule.labelled or rule.engine_value is not None or rule.spans_lines() or rule.value_re is None:
            continue
        chars = "".join(chr(c) for c in range(128) if form.boundary >> c & 1)
        if not chars:
            continue
        own = ["".join(ch for ch in e.value if ord(ch) < 128 and form.boundary >> ord(ch) & 1) for e in rule.examples]
        texts = [t for t in own if t]
        texts += ["".join(ch for ch in e if ord(ch) < 128 and form.boundary >> ord(ch) & 1) for e in rng.sample(examples, 20)]
        texts += ["".join(rng.choice(chars) for _ in range(rng.randrange(1, 50))) for _ in range(20)]
        texts += [t[: rng.randrange(len(t) + 1)] + rng.choice(texts) for t in list(texts[:10]) if t]
        for text in filter(None, texts):
            checked += 1
            m = rule.value_re.search(text)
            if m is None:
                continue
            matched += 1
            assert m.span() == (0, len(text)), (rule.id, text)
            assert form.allows(_bytes_of(text), _runs_of(text), len(text), len(text)), (rule.id, text)
    assert checked > 5000 and matched > 100


def _boundary_columns(rng: random.Random) -> list[pa.Array]:
    """Columns whose characters many rules' boundaries hold: hex digests, UUIDs, ids of digits, tokens; with real
    matches of fitting length among them (cards, IBANs, SSNs, AWS key ids), nulls and empty values."""
    n = 300
    hexes = [f"{rng.getrandbits(160):040x}" for _ in range(n)]
    token = string.ascii_letters + string.digits
    cols = [
        hexes,
        [h[:16] for h in hexes],
        [f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}" for h in hexes],
        [str(rng.randrange(10**12, 10**13)) for _ in range(n)],
        ["".join(rng.choice(token) for _ in range(40)) for _ in range(n)],
    ]
    plants = ["4111111111111111", "DE89370400440532013000", "123-45-6789", "AKIAIOSFODNN7EXAMPLE", "12345678Z", "078-05-1120"]
    out = []
    for col in cols:
        col = [rng.choice(plants) if rng.random() < 0.02 else v for v in col]
        col = [None if rng.random() < 0.05 else ("" if rng.random() < 0.03 else v) for v in col]
        out.append(pa.array(col, pa.string()))
    # Matches inside longer values, where a character outside the rule's boundary stands beside them (a space, "#"):
    # no value is a card's or an SSN's length, and these must still be found.
    cards = ["4111111111111111", "5500005555555559", "4012888888881881"]
    out.append(pa.array([f"ref {rng.choice(cards)} ok" if rng.random() < 0.3 else f"ref {rng.randrange(10**15, 10**16)} ok" for _ in range(n)]))
    out.append(pa.array([f"#{rng.choice(['123-45-6789', '078-05-1120'])}#0000" if rng.random() < 0.3 else f"#{rng.randrange(10**15)}" for _ in range(n)]))
    return out


@pytest.mark.parametrize("path", ["value", "request_id", "card_number"])
def test_columns_of_boundary_characters_find_what_the_full_database_finds(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    monkeypatch.setattr(engine, "_COMPILE_SECONDS_PER_RULE", 0.0)
    narrowed = RuleSet(builtin_rules())
    with monkeypatch.context() as m:
        m.setattr(RuleSet, "_holding", lambda self, present, runs=EVERY_RUN: b"\x01" * len(self.rules))
        m.setattr(RuleSet, "_whole_lengths", lambda self, *a: None)
        full = RuleSet(builtin_rules())
    columns = _boundary_columns(random.Random(path))
    for k, column in enumerate(columns):  # each its own field: its bytes and lengths alone
        assert _hits(narrowed, column, f"{path}_{k}") == _hits(full, column, f"{path}_{k}")
    for column in columns + columns[::-1]:  # one field: its bytes and lengths grown column by column
        assert _hits(narrowed, column, path) == _hits(full, column, path)
    dropped = [k for k, v in list(narrowed._possible.items()) if k[3] is not None and len(v) < len(narrowed._possible_rules(k[0], k[1], k[2]))]
    assert dropped  # (lengths left rules out somewhere)


def test_a_field_narrowed_by_its_runs_finds_a_longer_run_in_a_later_column(monkeypatch: pytest.MonkeyPatch) -> None:
    """IPv4 addresses hold no run of four digits, so the field's scan leaves out the dashed SSN; a later column of the
    field with one SSN among the addresses is measured anew and scanned with the rule."""
    monkeypatch.setattr(engine, "_COMPILE_SECONDS_PER_RULE", 0.0)
    monkeypatch.setattr(engine, "_RUNS_KEEP", 1.0)
    rng = random.Random(3)
    ruleset = RuleSet(builtin_rules())
    with monkeypatch.context() as m:
        m.setattr(RuleSet, "_holding", lambda self, present, runs=EVERY_RUN: b"\x01" * len(self.rules))
        full = RuleSet(builtin_rules())
    ssn = next(i for i, r in enumerate(ruleset.rules) if r.id == "us_ssn")
    plan = ruleset.plan("remote_host")
    columns = [[".".join(str(rng.randrange(256)) for _ in range(4)) for _ in range(300)] for _ in range(3)]
    columns[2][150] = "123-45-6789"
    for k, values in enumerate(columns):
        column = pa.array(values, pa.string())
        if k == 2:  # the field so far: no run of four digits, so no SSN in its scan ...
            assert plan.runs[0] == 3 and ssn in plan.value_rules
            parts = ruleset._split(plan.value_rules).parts
            assert all(ssn not in ruleset._possible_rules(part, plan.present | NEWLINE, plan.runs) for part in parts)
        got = _hits(ruleset, column, "remote_host")
        assert got == _hits(full, column, "remote_host")
    assert got[0][ssn] == [150]  # ... but this column has one, and its SSN is found
    assert plan.runs[0] == 4


@pytest.fixture(autouse=True)
def _narrow_every_column(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "_NARROW_MIN_BYTES", 0)  # the columns here are small


def _fresh_rules() -> list[Rule]:
    """Rules no other test compiles (a random label in each pattern), so nothing is in any cache."""
    tag = "".join(random.choice(string.ascii_lowercase) for _ in range(12))
    return [
        Rule(id="num", category="phone", value=rf"(?:{tag})?[0-9]{{9,12}}", examples=[Example("123456789")]),
        Rule(id="mail", category="email", value=rf"(?:{tag})?[a-z]+@[a-z]+\.[a-z]{{2,}}", examples=[Example("a@b.cd")]),
        Rule(id="hash", category="password", value=rf"(?:{tag})?\$2b\$[0-9]{{2}}\$[a-z]{{8}}", examples=[Example("$2b$10$abcdefgh")]),
        Rule(id="dash", category="national_id", value=rf"(?:{tag})?[0-9]{{3}}-[0-9]{{2}}-[0-9]{{4}}", examples=[Example("123-45-6789")]),
        Rule(id="ip", category="ip_address", value=rf"(?:{tag})?[0-9]{{1,3}}(?:\.[0-9]{{1,3}}){{3}}", examples=[Example("10.0.0.1")]),
        Rule(id="tok", category="secret", value=rf"(?:{tag})?tok_[a-z0-9]{{16}}", examples=[Example("tok_abcdefgh12345678")]),
        Rule(id="mac", category="device_id", value=rf"(?:{tag})?[0-9a-f]{{2}}(?::[0-9a-f]{{2}}){{5}}", examples=[Example("aa:bb:cc:dd:ee:ff")]),
        Rule(id="word", category="username", value=rf"(?:{tag})?user:[a-z]{{3,}}", examples=[Example("user:bob")]),
    ]


def _compiles(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> list[int]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    sizes: list[int] = []
    real = matcher._native.Matcher

    def counting(exprs: list[bytes], flags: list[int], ids: list[int]) -> object:
        sizes.append(len(exprs))
        return real(exprs, flags, ids)

    counting.map = real.map  # type: ignore[attr-defined]  # (the cache's entries are loaded as before)
    monkeypatch.setattr(matcher._native, "Matcher", counting)
    return sizes


def test_a_narrower_database_is_compiled_once_scanning_without_it_cost_as_much(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    sizes = _compiles(monkeypatch, tmp_path)
    ruleset = RuleSet(_fresh_rules())
    assert sizes == [8]  # the full set, compiled as the rule set is made
    digits = pa.array([str(i * 7919) for i in range(20_000)] + ["123456789012"], pa.string())
    monkeypatch.setattr(engine, "_COMPILE_SECONDS_PER_RULE", 1e6)  # never worth it: the full database scans
    first = _hits(ruleset, digits, "value")
    assert sizes == [8] and first[0] and set(first[0]) == {0}
    monkeypatch.setattr(engine, "_COMPILE_SECONDS_PER_RULE", 1e-9)  # the scanning so far paid for it
    assert _hits(ruleset, digits, "value") == first  # compiled now and used from then on
    assert _hits(ruleset, digits, "value") == first
    assert sizes == [8, 1]
    assert [n.matcher is not None for n in ruleset._narrowed.values()] == [True]


def test_a_far_narrower_database_is_compiled_at_once_while_no_wider_one_exists(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    sizes = _compiles(monkeypatch, tmp_path)
    rules = _fresh_rules()
    ruleset = RuleSet(rules)
    monkeypatch.setattr(engine, "_COMPILE_SECONDS_PER_RULE", 1e6)
    ruleset._dbs.clear()
    monkeypatch.setattr(matcher, "_COMPILED", {})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path) + "/empty")  # the full set's database is nowhere now
    digits = pa.array([str(i) * 3 for i in range(1000)], pa.string())
    _hits(ruleset, digits, "value")
    assert sizes == [8, 1]  # the one rule digits can match, not the eight


def test_a_column_no_rule_can_match_is_not_scanned(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # (fresh rules: their databases are of no later use)
    ruleset = RuleSet(_fresh_rules())
    scans: list[int] = []
    real = engine.scan_text
    monkeypatch.setattr(engine, "scan_text", lambda db, text: (scans.append(len(text)), real(db, text))[1])
    assert _hits(ruleset, pa.array(["XYZ", "QQ", "WV"] * 10, pa.string()), "value") == ({}, {})
    assert scans == []
    assert _hits(ruleset, pa.array(["123456789"], pa.string()), "value")[0] == {0: [0]}
    assert scans == [1]


def test_small_columns_are_scanned_with_the_plans_database_until_their_field_is_measured(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(engine, "_NARROW_MIN_BYTES", 10_000)
    ruleset = RuleSet(_fresh_rules())
    small = pa.array([str(i) for i in range(1000)], pa.string())  # 2,890 bytes
    assert _hits(ruleset, small, "value") == ({}, {})
    assert not ruleset._narrowed
    big = pa.array([str(i) for i in range(3000)] + ["123456789"], pa.string())
    assert _hits(ruleset, big, "value")[0] == {0: [3000]}
    assert list(ruleset._narrowed) == [(0,)]
    # Once the field is measured, a small column of it takes the field's narrower database (a range's tail block);
    # one of a field not measured yet still the plan's.
    monkeypatch.setattr(engine.Narrowed, "compile_estimate", property(lambda self: 0.0))
    ruleset._narrowed[(0,)].due()
    scanned: list[tuple[int, ...]] = []
    real = ruleset._compile
    monkeypatch.setattr(ruleset, "_compile", lambda ids, utf8=True: scanned.append(ids) or real(ids, utf8))
    tail = pa.array(["7", "1234567890", "42"], pa.string())
    assert _hits(ruleset, tail, "value")[0] == {0: [1]}
    assert scanned[-1] == (0,)
    assert _hits(ruleset, tail, "other")[0] == {0: [1]}
    assert len(scanned[-1]) == len(ruleset.value_rule_ids)
    # A field whose columns are all small is measured once they add up to the threshold.
    for k in range(4):
        before = len(scanned)
        assert _hits(ruleset, small, "few") == ({}, {})
        if k < 3:
            assert len(scanned) == before + 1 and len(scanned[-1]) == len(ruleset.value_rule_ids)
        else:  # (11,560 bytes: measured; numbers of at most three digits hold no rule's match, so no scan at all)
            assert len(scanned) == before and ruleset.plan("few").present


def test_bytes_that_are_not_utf8_keep_the_full_byte_mode_database() -> None:
    ruleset = RuleSet(builtin_rules())
    raw = pa.array([b"\xff\xfe 4111 1111 1111 1111", b"\xc3"], pa.binary())
    blob = pa.Array.from_buffers(pa.string(), len(raw), raw.buffers())  # a view of bytea as text: not valid UTF-8
    plan = ruleset.plan("value")
    ids, values = ruleset._raw_hits(blob, plan.value_rules, plan)
    assert not ruleset._narrowed  # never narrowed: a small byte-mode database is where 5.4.9 loses matches
    want_ids, want_values = scan_text(ruleset._compile(plan.value_rules, utf8=False), blob)
    assert ids.size and ids.tolist() == want_ids.tolist() and values.tolist() == want_values.tolist()


def test_scanning_in_earlier_runs_counts_towards_a_narrower_database(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    sizes = _compiles(monkeypatch, tmp_path)
    rules = _fresh_rules()
    digits = pa.array([str(i * 7919) for i in range(20_000)], pa.string())
    monkeypatch.setattr(engine, "_COMPILE_SECONDS_PER_RULE", 1e6)
    monkeypatch.setattr(engine, "_RECORD_SHARE", 0.0)
    first_run = RuleSet(rules)
    for _ in range(3):
        _hits(first_run, digits, "value")
    (spent,) = [n.spent for n in first_run._narrowed.values()]
    assert spent > 0 and sizes == [8]
    monkeypatch.setattr(engine, "_COMPILE_SECONDS_PER_RULE", spent * 0.99)  # one rule: the estimate is just below
    second_run = RuleSet(rules)  # (a new process would read the same cache)
    _hits(second_run, digits, "value")
    assert sizes == [8, 1]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path) + "/other")  # a machine that never scanned this field
    monkeypatch.setattr(matcher, "_COMPILED", {})
    third = RuleSet(rules)
    _hits(third, digits, "value")
    assert sizes == [8, 1, 8]  # its own full database, and no narrower one yet


def test_the_requirement_table_decides_as_holds() -> None:
    """RequirementTable (every rule's requirement for a column at once, RuleSet._holding) against `holds`, one
    requirement at a time: the built-in rules' and random trees (empty "all" and "any" nodes, shared parts, deep
    nesting), on random sets of bytes."""
    rng = random.Random(8)

    def tree(depth: int) -> Requirement:
        if depth == 0 or rng.random() < 0.3:
            if rng.random() < 0.3:
                return Run(rng.randrange(len(RUN_CLASSES)), rng.randrange(1, 40))
            return sum(1 << rng.randrange(256) for _ in range(rng.randrange(1, 4)))
        return (rng.random() < 0.5, tuple(tree(depth - 1) for _ in range(rng.randrange(0, 4))))

    builtin = requirements([r.value_source() or ("", 0) for r in _VALUE_RULES])
    shared = tree(3)
    random_trees = [tree(rng.randrange(5)) for _ in range(300)] + [ALWAYS, (True, ()), (False, (shared, shared)), shared]
    for reqs in (builtin, random_trees, [7]):
        table = RequirementTable(reqs)
        for _ in range(200):
            present = NEWLINE | sum(1 << rng.randrange(256) for _ in range(rng.randrange(0, 40)))
            runs = bytes(rng.randrange(0, 45) for _ in RUN_CLASSES)
            assert table.holding(present, runs).tolist() == [holds(r, present, runs) for r in reqs]
            assert table.holding(present).tolist() == [holds(r, present, EVERY_RUN) for r in reqs]
    assert RequirementTable([]).holding(NEWLINE).size == 0
