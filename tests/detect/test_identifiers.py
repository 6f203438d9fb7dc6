"""Identifiers as people type them, class by class: generated positives and negatives with ground truth."""

from __future__ import annotations

import random
import string

import pytest
from stdnum import iban as std_iban
from stdnum import luhn

import spillguard
from spillguard.demo import people
from spillguard.detect import cards
from spillguard.detect.fieldnames import canonical_path

RNG = random.Random(14)


def _cats(value: str, field: str | None = None) -> set[str]:
    return {m.category for m in spillguard.scan_value(value, field)}


def _digits(n: int) -> str:
    return "".join(RNG.choice(string.digits) for _ in range(n))


# -- scan_value: every match, with positions ------------------------------------------------------------------

def test_scan_value_returns_every_match_of_one_rule_with_positions():
    text = "a@x.org b@y.org, then C@Z.example.COM"
    matches = [m for m in spillguard.scan_value(text) if m.category == "email"]
    assert [(m.start, m.end) for m in matches] == [(0, 7), (8, 15), (22, 37)]
    assert [text[m.start : m.end] for m in matches] == ["a@x.org", "b@y.org", "C@Z.example.COM"]


def test_labelled_rules_report_the_value_not_the_label():
    text = "Phone: 467 3395 and SSN: 078051121"
    spans = {m.category: text[m.start : m.end] for m in spillguard.scan_value(text)}
    assert spans == {"phone": "467 3395", "national_id": "078051121"}


@pytest.mark.parametrize("address", ["josé.núñez@correo.es", "müller@bücher.de", "用户@例子.广告", "info@xn--80ak6aa92e.com", "a@xn--d1acufc.xn--p1ai"])
def test_international_email_addresses(address):
    text = f"write to {address} today"
    [m] = [m for m in spillguard.scan_value(text) if m.category == "email"]
    assert text[m.start : m.end] == address


# -- field names as people spell them ------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "canonical"),
    [("fname", "first_name"), ("LNAME", "last_name"), ("ssn_no", "ssn_number"), ("CCNumber", "cc_number"),
     ("MothersMaiden", "maiden_name"), ("mother's maiden name", "maiden_name"), ("po_box", "postal_address"),
     ("customer.postal", "customer.postal_code"), ("TelephoneNumber", "phone_number"), ("DOB", "date_of_birth"),
     ("ip_addr", "ip_address"), ("bloodGroup", "blood_group"), ("devices[].mac", "devices.mac")],
)
def test_field_names_are_spelled_out(name, canonical):
    assert canonical_path(name) == canonical


@pytest.mark.parametrize(
    ("field", "value", "category"),
    [("fname", "Jane", "person_name"), ("lname", "Whitaker", "person_name"), ("MothersMaiden", "Kubíková", "person_name"),
     ("postal", "NW1 6XE", "postal_address"), ("po_box", "P.O. Box 255", "postal_address"), ("dob", "1991-06-15", "date_of_birth"),
     ("ssn_no", "078051121", "national_id"), ("ph", "+44 20 7946 0958", "phone")],
)
def test_abbreviated_columns_are_classified(field, value, category):
    assert category in _cats(value, field)


def test_look_alike_names_stay_silent():
    assert _cats("Jane", "fname_hash") == set()
    assert _cats("A+", "rating") == set()


# -- phones ------------------------------------------------------------------------------------------------------

def test_phone_fields_take_numbers_as_typed_even_unallocated():
    pool = people._phone_pool(RNG, 50)
    typed = [people._phone_typed(RNG, pool) for _ in range(300)]
    assert [v for v in typed if "phone" not in _cats(v, "TelephoneNumber")] == []
    # the same values under an unrelated name: only numbers the plan allocates (or North American shapes) count
    unallocated = [f"+52 {_digits(3)} {_digits(6)}" for _ in range(50)]
    assert sum("phone" in _cats(v, "order_ref") for v in unallocated) < 10


@pytest.mark.parametrize("text", ["(312)515-2239", "call 1-234-567-8900 today", "at 312.714.8142", "+1 (415) 555-2671 x123"])
def test_north_american_shapes_in_text(text):
    assert "phone" in _cats(text)


def test_tracking_numbers_and_mtcn_are_not_phones():
    for _ in range(200):
        tracking, mtcn = people._tracking(RNG), people._mtcn(RNG)
        for text in (f"Your parcel: tracking number {tracking}", f"UPS {tracking}", f"MTCN {mtcn}", f"Western Union control number {mtcn}"):
            assert "phone" not in _cats(text), text
        assert _cats(tracking, "tracking_number") == set()
        assert _cats(mtcn, "mtcn") == set()


def test_a_piece_of_a_longer_digit_run_is_not_a_phone():
    assert "phone" not in _cats("ref 9400 1000 0000 0000 0000 00 received")
    assert "phone" in _cats("ring me on 020 7946 0958 please")


# -- IP addresses -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "address"),
    [("my ip: ::1", "::1"), ("listen on :: now", "::"), ("src=:: dst=::1", "::"), ("::ffff:0.0.0.0", "::ffff:0.0.0.0"),
     ("IP: 192.168.1.1.", "192.168.1.1"), ("route 10.0.0.0/8 via", "10.0.0.0"), ("2001:db8::/32", "2001:db8::"),
     ("Server IP: 2400:c401::5054:ff:fe1b:b031.", "2400:c401::5054:ff:fe1b:b031"), ("::ffff:10.1.2.3", "::ffff:10.1.2.3")],
)
def test_ip_addresses_as_written(text, address):
    spans = [text[m.start : m.end] for m in spillguard.scan_value(text) if m.category == "ip_address"]
    assert address in spans


@pytest.mark.parametrize("text", ["firmware 4.9.6.218", "v4.9.6.218", "1.2.3.4.5", "Title :: Subtitle", "std::vector", "10:30:45"])
def test_versions_and_colons_are_not_addresses(text):
    assert "ip_address" not in _cats(text)


# -- cards and IBANs ----------------------------------------------------------------------------------------------

def test_every_issuer_range_and_length_of_the_table():
    for issuer in cards.issuers():
        for prefix in issuer["prefixes"]:  # type: ignore[attr-defined]
            lo, _, hi = str(prefix).partition("-")
            start = str(RNG.randrange(int(lo), int(hi or lo) + 1)).zfill(len(lo))
            for length in issuer["lengths"]:  # type: ignore[attr-defined]
                number = people._luhn_complete(start, int(length), RNG)
                if len(set(number)) == 1:
                    continue
                assert cards.is_card_number(number), (issuer["name"], number)
                assert "credit_card" in _cats(number, "card_number"), (issuer["name"], number)
                if not number.startswith("1"):  # bare 1... numbers count only under a card field or label
                    assert "credit_card" in _cats(f"paid with {number}"), (issuer["name"], number)
                bad = number[:-1] + str((int(number[-1]) + 1) % 10)
                assert not luhn.is_valid(bad) and "credit_card" not in _cats(bad, "card_number")


def test_numbers_outside_every_range_are_not_cards():
    for _ in range(300):
        number = people._luhn_complete(RNG.choice(["7", "0", "13", "19"]), RNG.choice([13, 14, 16]), RNG)
        assert not cards.is_card_number(number)


def test_a_thirteen_digit_national_id_is_not_a_card():
    from stdnum.ro import cnp

    lookalikes: list[str] = []
    while len(lookalikes) < 5:  # men born in 2002 (5 02 ...) have Maestro's 5020 prefix; one in ten passes Luhn too
        base = f"5020{RNG.randrange(1, 10)}{RNG.randrange(1, 29):02d}{RNG.randrange(1, 47):02d}{_digits(3)}"
        number = base + cnp.calc_check_digit(base)
        if cnp.is_valid(number) and cards.is_card_number(number):
            lookalikes.append(number)
    for c in lookalikes:
        assert "credit_card" not in _cats(f"national id {c}")
        assert "credit_card" not in _cats(f"CNP: {c}")
        assert _cats(c, "cnp") == {"national_id"}


def test_ibans_in_any_case_with_spaces_or_dashes():
    for _ in range(100):
        plain = people._iban(RNG).replace(" ", "").replace("-", "").upper()
        assert std_iban.is_valid(plain)
        for written in (plain, plain.lower(), " ".join(plain[i : i + 4] for i in range(0, len(plain), 4)),
                        "-".join(plain[i : i + 4] for i in range(0, len(plain), 4)).lower()):
            assert "iban" in _cats(f"pay to {written} by Friday"), written
        wrong = plain[:-1] + str((int(plain[-1]) + 1) % 10)
        assert "iban" not in _cats(wrong)
    assert "iban" not in _cats("LV80 bANK 0000 4351 9500 1")


def test_the_iban_checksum_shortcut_rejects_only_what_the_library_rejects():
    """The fast mod 97 test in front of python-stdnum: on real IBANs (any case, grouped), their one-digit
    corruptions, hex look-alikes and odd characters it never rejects what the library accepts, and where it passes
    a candidate the library's own checksum passes too."""
    from stdnum.iso7064 import mod_97_10

    from spillguard.detect import validators

    rng = random.Random(15)
    candidates = []
    for _ in range(400):
        plain = people._iban(rng).replace(" ", "").replace("-", "").upper()
        grouped = " ".join(plain[i : i + 4] for i in range(0, len(plain), 4))
        k = rng.randrange(4, len(plain))
        candidates += [plain, plain.lower(), grouped, grouped.replace(" ", "-"), plain[:k] + rng.choice(string.digits) + plain[k + 1 :]]
        candidates.append(rng.choice(["de", "AE", "be", "ba"]) + "".join(rng.choice("0123456789abcdef") for _ in range(rng.randrange(12, 30))))
    candidates += ["DE89 3704 0044 0532 0130 0²", "DE89370400440532013000\u0663", "DE89.3704.0044.0532.0130.00", " DE8937040044053201300 0 "]
    for c in candidates:
        library = std_iban.is_valid(c.replace(" ", "").replace("-", "").upper(), check_country=False)
        ok = validators._iban_checksum_ok(c)
        assert ok or not library, c
        compact = std_iban.compact(c.replace(" ", "").replace("-", ""))
        assert ok == mod_97_10.is_valid(compact[4:] + compact[:4]), c
    assert sum(validators._iban_checksum_ok(c) for c in candidates) > 1000  # the real ones (and their case forms) pass


# -- national identifiers -------------------------------------------------------------------------------------------

def test_uk_national_insurance_numbers_with_prefix_rules():
    for _ in range(200):
        nino = people._nino(RNG)
        assert "national_id" in _cats(f"NI number {nino}"), nino
    for bad in ("BG 12 34 56 A", "GB123456A", "DA 12 34 56 A", "AO 12 34 56 A", "AB 12 34 56 E", "QQ123456C"):
        assert "national_id" not in _cats(bad), bad


def test_us_ssns_with_dashes_spaces_or_dots():
    for _ in range(200):
        ssn = people._ssn(RNG)
        if ssn.isdigit():
            assert "national_id" in _cats(ssn, "ssn_no")
        else:
            assert "national_id" in _cats(f"ssn on file {ssn}"), ssn
    for bad in ("000-12-3456", "666 12 3456", "123.00.4567", "693-09.4444"):
        assert "national_id" not in _cats(bad)


@pytest.mark.parametrize(
    ("field", "make"),
    [("cpf", people._cpf), ("brazil_tax_id", people._cpf), ("cnp", people._cnp), ("romanian_national_id", people._cnp)],
)
def test_stdnum_types_named_by_field(field, make):
    for _ in range(50):
        number = make(RNG)
        assert _cats(number, field) == {"national_id"}, number
        assert "national_id" not in _cats(number, "order_ref")


# -- health ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [("blood_type", "AB-", True), ("bloodGroup", "O positive", True), ("blood_type", "C+", False),
     ("icd10", "E11.9", True), ("dx_code", "J45.909", True), ("icd10", "hello", False), ("sku", "E11.9", False),
     ("meds", "Metformin 500 mg", True), ("medications[].name", "Atorvastatin", True), ("product_name", "Metformin", False)],
)
def test_health_fields(field, value, expected):
    assert ("health" in _cats(value, field)) is expected


# -- Portugal's citizen card after its label ------------------------------------------------------------------------

def test_a_cc_inside_hex_is_no_citizen_card_candidate():
    """`CC` is also a hex byte: after it the rule takes the card's own shape (8 digits, a check digit, two version
    characters, a check digit, spaced as printed), so MAC addresses, UUIDs and IPv6 give its validator nothing."""
    import pyarrow as pa

    from spillguard.detect.engine import RuleSet
    from spillguard.rules import select_rules

    [rule] = [r for r in select_rules([], None, None) if r.id == "nid_pt_cc_labelled"]
    ruleset = RuleSet([rule])
    hexes = ["76:01:CC:B0:42:61", "cc-4d-0a-11-22-33", "ccc91d57-01c7-773e-1915-e533f237c8f3", "2a02:315f:e21e::c91a:ccac",
             "CC:12:34:56:78:90"]
    assert ruleset._raw_hits(pa.array(hexes, pa.string()), (0,))[0].size == 0
    cards = ["CC: 04521224 4 ZZ 7", "my CC is 000000000ZZ4, thanks", "cartão de cidadão 00000000 0 ZZ4", "cc#054546796ZY7"]
    assert sorted(ruleset._raw_hits(pa.array(cards, pa.string()), (0,))[1].tolist()) == [0, 1, 2, 3]
    for text in cards:
        assert "national_id" in _cats(text), text
