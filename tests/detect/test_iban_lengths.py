"""The IBAN rule takes a compact IBAN at its country's own length only (python-stdnum's iban.dat): the validator
accepts no other length, so the values it finds are those of the former pattern, which took 8 to 30 characters after
any country's check digits and left every look-alike id (de67901edf6fea8c) to the validator. Held here on generated
IBANs of every country, valid and not, compact, grouped by spaces or dashes, in either case and in text, and on ids
of every length that start like one."""

from __future__ import annotations

import dataclasses
import random
import re
import string

import pyarrow as pa
from stdnum import numdb
from stdnum.iban import calc_check_digits

from spillguard.detect.engine import RuleSet
from spillguard.rules import builtin_rules

IBAN = next(r for r in builtin_rules() if r.id == "iban")
_GROUPED = r"(?:(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?|(?:-[A-Z0-9]{4}){2,7}(?:-[A-Z0-9]{1,3})?)"
COUNTRIES = max(re.findall(r"\(\?:((?:[A-Z]{2}\|)+[A-Z]{2})\)", IBAN.value), key=len).split("|")
REGISTRY = numdb.get("iban")  # python-stdnum's iban.dat: each country's BBAN structure, "8!n10!n"
STRUCTURE = re.compile(r"([1-9][0-9]*)!([nac])")
FORMER = dataclasses.replace(IBAN, value=f"(?:{'|'.join(COUNTRIES)})[0-9]{{2}}(?:[A-Z0-9]{{8,30}}|{_GROUPED})")


def _bban(rng: random.Random, country: str) -> str:
    structure = REGISTRY.info(country + "00")[0][1]["bban"]
    chars = {"n": string.digits, "a": string.ascii_uppercase, "c": string.digits + string.ascii_uppercase}
    return "".join(rng.choice(chars[m.group(2)]) for m in STRUCTURE.finditer(structure) for _ in range(int(m.group(1))))


def _iban(country: str, bban: str) -> str:
    return country + calc_check_digits(country + "00" + bban) + bban


def _texts(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        country = rng.choice(COUNTRIES)
        bban = _bban(rng, country)
        kind = rng.randrange(6)
        if kind == 1:  # a length the country does not have, its check digits made to pass mod 97
            bban = bban[: rng.randrange(4, len(bban))] if rng.random() < 0.5 else bban + _bban(rng, country)[: rng.randrange(1, 5)]
        number = _iban(country, bban)
        if kind == 2:  # a wrong check digit
            number = number[:3] + str((int(number[3]) + 1) % 10) + number[4:]
        if kind == 3:  # an id that starts like one: hex or mixed, any length
            number = country.lower() + "".join(rng.choice("0123456789abcdef") for _ in range(rng.randrange(6, 34)))
        if rng.random() < 0.3:
            sep = rng.choice(" -")
            number = sep.join(number[i : i + 4] for i in range(0, len(number), 4))
        if rng.random() < 0.3:
            number = number.lower()
        before = rng.choice(["", "", "pay to ", "IBAN: ", "x", "id-"])
        after = rng.choice(["", "", " now", " ALL", ".", "7", "-x"])
        out.append(before + number + after)
    return out


def _found(rule, column: pa.Array) -> dict[int, list[tuple[int, int]]]:
    rs = RuleSet([rule])
    hits = rs.scan_column(column, rs._plan("notes"), want_spans=True)
    return {v: hits.all_spans[(0, v)] for v in hits.by_rule.get(0, []).tolist()}


def test_the_countries_are_the_registrys() -> None:
    assert len(COUNTRIES) >= 80 and "DE" in COUNTRIES and "RU" in COUNTRIES


def test_compact_ibans_only_at_their_countrys_length_find_the_same() -> None:
    rng = random.Random(3)
    texts = _texts(rng, 6000) + [e.value for e in IBAN.examples] + [e.value for e in IBAN.negative_examples]
    column = pa.array(texts, pa.string())
    now, before = _found(IBAN, column), _found(FORMER, column)
    assert len(now) >= 1200, "too few valid IBANs among the generated texts to tell anything"
    assert now == before
    # ... and the look-alikes the former pattern handed to the validator are no candidates now.
    hexes = [c.lower() + f"{rng.randrange(100):02d}" + "".join(rng.choice("0123456789abcdef") for _ in range(12)) for c in COUNTRIES]
    ids = pa.array(hexes, pa.string())
    rs_now, rs_before = RuleSet([IBAN]), RuleSet([FORMER])
    assert rs_before._raw_hits(ids, (0,))[0].size == len(COUNTRIES)
    assert rs_now._raw_hits(ids, (0,))[0].size < rs_before._raw_hits(ids, (0,))[0].size // 4
