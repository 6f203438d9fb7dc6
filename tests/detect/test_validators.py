"""Vectorised whole-value validators decide exactly as the Python validators they stand in for."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest

from spillguard.demo.generator import _ip, _luhn_complete, _mac, _phone_pool
from spillguard.detect.validators import VALIDATORS, VECTOR_VALIDATORS


def _samples(name: str, rng: random.Random) -> list[str]:
    if name == "phone":
        good = _phone_pool(rng, 400)
        junk = [f"+{rng.randrange(1, 999)} {rng.randrange(10**5, 10**11)}" for _ in range(600)]
        return good + junk + ["+1 000 000", "+99 12345", "0044 20 7946 0958", "4155552671"]
    if name == "phone_as_typed":
        good = _phone_pool(rng, 300)
        typed = [f"+{rng.choice(['1', '44', '52', '353', '999', '0'])} {rng.randrange(10**3, 10**11)}" for _ in range(300)]
        return good + typed + ["+52 171557118", "+44 7636 777150", "0044 7636 777150", "+1 000", "4155552671", "345-899-3560x4587"]
    if name == "card":
        good = [_luhn_complete(rng.choice(["4", "51", "37", "6011", "2221", "35"]), rng.choice([15, 16]), rng) for _ in range(300)]
        bad = [str(rng.randrange(10**12, 10**19)) for _ in range(300)] + ["4111 1111 1111 1111", "1700000000123", "0000000000000000"]
        return good + bad
    if name == "mac":
        return [_mac(rng) for _ in range(300)] + ["00:00:00:00:00:00", "FF-FF-FF-FF-FF-FF", "000000000000"]
    if name == "ipv4":
        return [ip for ip in (_ip(rng) for _ in range(300)) if "." in ip] + ["0.0.0.0", "10.0.0.1"]
    if name == "ipv6":
        return [f"2a02:{rng.randrange(1, 65535):x}::{rng.randrange(1, 65535):x}" for _ in range(200)] + ["::", "::1", "fe80::1"]
    if name == "email":
        return ["a@b.co", "john..doe@example.com", ".x@example.com", "x" * 70 + "@example.com", "Jane@Example.COM"]
    raise AssertionError(name)


@pytest.mark.parametrize("name", sorted(VECTOR_VALIDATORS))
def test_vector_validator_agrees_with_python(name):
    values = _samples(name, random.Random(11))
    verdict = VECTOR_VALIDATORS[name](pa.array(values))
    ok, decided = verdict if isinstance(verdict, tuple) else (verdict, np.ones(len(values), bool))
    python = np.array([VALIDATORS[name](v, v, 0) for v in values])
    disagree = [(v, bool(a), bool(b)) for v, a, b, d in zip(values, ok, python, decided, strict=True) if d and a != b]
    assert disagree == []
    assert decided.sum() >= len(values) * 0.5  # the fast path really decides most candidates


def test_column_fast_paths_match_the_per_value_python_path(demo_data):
    """The vectorised paths (whole values, first match in text) find exactly what span-by-span Python finds."""
    import csv

    import spillguard

    folder, _truth = demo_data
    with open(folder / "support_tickets.csv", encoding="utf-8") as fh:
        notes = [row["note"] for row in csv.DictReader(fh)]
    rng = random.Random(5)
    pool = _phone_pool(rng, 50)
    tricky = [
        "call +1 000 000 or else +44 20 7946 0958",  # first phone invalid, second valid
        "ids usr_0010488-1 and usr_0020488-2",  # digits after an underscore are not phones
        "fw 4.9.6.218 and client 10.1.2.3",  # version first, real address second
        "cards 4111111111111112 then 4111 1111 1111 1111",
    ] + [f"text {p} more" for p in pool]
    values = notes + tricky
    # The free-text rules have one path only (the model reads the column once): left out, as they would be read
    # value by value below.
    from spillguard.detect.engine import RuleSet
    from spillguard.rules import builtin_rules

    ruleset = RuleSet([r for r in builtin_rules() if r.text is None])
    plan = ruleset.plan("note")
    hits = ruleset.scan_column(pa.array(values), plan)
    fast = {(ruleset.rules[r].id, int(v)) for r, idx in hits.by_rule.items() for v in idx}
    slow = {(m.rule, i) for i, v in enumerate(values) for m in spillguard.scan_value(v, "note", rules=ruleset)}
    assert fast == slow
    assert {r for r, _ in fast} >= {"email", "phone_international", "ipv4", "credit_card_formatted"}


def test_native_card_check_equals_the_arrow_path() -> None:
    """validators._vec_card (one native pass) against its former Arrow and numpy form on Luhn-complete numbers of every
    issuer prefix and length, near misses, repeated digits, separators, non-ASCII digits and nulls."""
    import numpy as np

    from spillguard.detect import cards
    from spillguard.detect.validators import _vec_card
    from tests.detect import former

    rng = random.Random(23)
    values: list[str | None] = []
    for issuer in cards.issuers():
        for prefix in issuer["prefixes"]:
            lo, _, hi = str(prefix).partition("-")
            hi = hi or lo
            for length in [*issuer["lengths"], 12, 20]:
                for _ in range(6):
                    head = str(rng.randint(int(lo) - 1, int(hi) + 1)).zfill(len(lo))
                    values.append(_luhn_complete(head, int(length), rng) if len(head) < int(length) else head)
    values += [str(rng.randrange(10**11, 10**19)) for _ in range(2000)]
    values += ["4111 1111 1111 1111", "4111-1111-1111-1111", "0000000000000000", "4444444444444448", "", None, "4111١111111111111", "x"]
    arr = pa.array(values, pa.string())
    for column in (arr, arr.slice(9, 1500), pa.array(values, pa.large_string())):
        new = _vec_card(column)
        old = former.vec_card(column) & np.asarray(column.is_valid())
        diff = np.flatnonzero(new != old)
        assert diff.size == 0, [column[int(i)].as_py() for i in diff[:5]]
    assert 0 < _vec_card(arr).sum() < len(values)


def test_native_shapes_equal_the_re2_checks_they_replaced() -> None:
    """The e-mail, MAC and IPv6 shape checks (one native pass each) against the RE2 patterns they stand in for, on
    random strings of the bytes the patterns look at (dots, "@", colons, zeros, f's, hex digits, newlines, letters
    beyond ASCII) of every length around the 65-character limit, nulls, and sliced and large-string arrays."""
    from spillguard.detect.validators import _vec_email, _vec_ipv6, _vec_mac
    from tests.detect import former

    rng = random.Random(41)
    alphabet = ["a", ".", "@", ":", "0", "f", "F", "-", "9", "c", "\n", "é", "😀", " ", "x"]
    values: list[str | None] = ["".join(rng.choices(alphabet, k=rng.randrange(0, 9))) for _ in range(4000)]
    values += ["".join(rng.choices(alphabet[:3] + ["é"], weights=[30, 1, 1, 3], k=k)) + "@x.io" for k in range(55, 75) for _ in range(5)]
    values += ["é" * 64 + "@x.io", "é" * 65 + "@x.io", "a" * 65 + "@b@c", "::1", "fe80::1::2", "::\n::", "::a\n1::", ":::", "::::",
               "00:00:00:00:00:00", "ff-FF-ff", "0", "", None, "2a02:9c19:3ce0::ccbe:31cf", "abc", "ab\nc"]  # fmt: skip
    arr = pa.array(values, pa.string())
    for column in (arr, arr.slice(7, 3000), pa.array(values, pa.large_string())):
        for new, old in ((_vec_email, former.vec_email), (_vec_mac, former.vec_mac), (_vec_ipv6, former.vec_ipv6)):
            got, want = new(column), old(column)
            diff = np.flatnonzero(got != want)
            assert diff.size == 0, (new.__name__, [column[int(i)].as_py() for i in diff[:5]])
    assert 0 < _vec_email(arr).sum() < len(values) and 0 < _vec_ipv6(arr).sum() < len(values)
