"""A tabular people dataset with ground truth: 50 columns of mixed personal data and look-alike decoys.

Column names are spelled the many ways exports spell them (`fname`, `LNAME`, `MothersMaiden`, `TelephoneNumber`,
`po_box`, `ssn_no`, `dob`); values are typed the many ways people type them (phone numbers with extensions or in
unallocated ranges, IBANs in lower case or with dashes, cards of every issuer, IPv6 loopback, SSNs with spaces,
UK National Insurance numbers, Brazilian CPFs, Romanian CNPs). Decoys look like personal data and are not: parcel
tracking numbers, money-transfer control numbers (MTCN), order and invoice numbers, millisecond timestamps,
firmware versions, ratings that look like blood groups, lot numbers, SKUs.

`generate_people(folder, rows)` writes `people.csv` and returns the ground truth: the category of every column
(None for decoys), so a scan can be scored field by field (`bench/accuracy.py`).
"""

from __future__ import annotations

import csv
import random
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from stdnum import luhn
from stdnum.br import cpf
from stdnum.ro import cnp

from spillguard.demo.generator import (
    CITIES,
    DOMAINS,
    FIRST,
    LAST,
    STREETS,
    _ip,
    _luhn_complete,
    _mac,
    _phone_pool,
    _private,
)

DATASET = "people.csv"
_CARD_PREFIXES = [("4", 16), ("51", 16), ("2221", 16), ("37", 15), ("6011", 16), ("3530", 16), ("5019", 16),
                  ("6759", 16), ("5018", 12), ("122", 15), ("62", 17), ("2200", 16), ("36", 14), ("9792", 16)]
_NANP = ["({a}){e}-{n}", "{a}-{e}-{n}", "{a}.{e}.{n}", "1-{a}-{e}-{n}", "+1 {a} {e} {n}", "({a}) {e}-{n} x{x}"]
_MEDS = ["Metformin 500 mg", "Lisinopril", "Atorvastatin 20mg", "Levothyroxine", "Salbutamol inhaler", "Sertraline 50 mg"]
_ICD = ["E11.9", "I10", "J45.909", "F32.A", "M54.5", "K21.9", "E78.5", "G43.909"]
_BLOOD = ["A+", "A-", "B+", "B-", "AB+", "AB-", "O+", "O-", "O positive", "AB negative"]
_SSIDS = ["HomeNet-5G", "FRITZ!Box 7590 QX", "NETGEAR42", "Casa García", "TP-Link_5G_A1B2"]
_IDN_EMAILS = ["josé.núñez@correo.es", "müller@bücher.de", "用户@例子.广告", "info@xn--80ak6aa92e.com"]


@dataclass(slots=True)
class PeopleTruth:
    columns: dict[str, str | None] = field(default_factory=dict)  # column -> category (None: decoy)
    rows: int = 0

    def expected_pairs(self) -> set[tuple[str, str, str]]:
        return {(DATASET, c, cat) for c, cat in self.columns.items() if cat is not None}

    def decoys(self) -> set[str]:
        return {c for c, cat in self.columns.items() if cat is None}


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _phone_typed(rng: random.Random, pool: list[str]) -> str:
    """As entered in a phone field: valid international, unallocated +CC numbers, North American shapes."""
    kind = rng.random()
    if kind < 0.4:
        return rng.choice(pool)
    if kind < 0.6:  # a real calling code, a number the plan does not allocate
        cc = rng.choice(["52", "44", "49", "33", "91", "351"])
        return f"+{cc} {_digits(rng, 3)} {_digits(rng, 6)}"
    a, e = f"{rng.randrange(2, 10)}{_digits(rng, 2)}", f"{rng.randrange(2, 10)}{_digits(rng, 2)}"
    return rng.choice(_NANP).format(a=a, e=e, n=_digits(rng, 4), x=_digits(rng, 3))


def _ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    sep = rng.choice(["-", " ", ".", ""])
    return f"{area:03d}{sep}{rng.randrange(1, 100):02d}{sep}{rng.randrange(1, 10000):04d}"


def _nino(rng: random.Random) -> str:
    first, second = rng.choice("ABCEGHJKLMNPRSTWXYZ"), rng.choice("ABCEGHJKLMNPRSTWXYZ")
    while first + second in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ"):
        second = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    digits = _digits(rng, 6)
    suffix = rng.choice("ABCD")
    return rng.choice([f"{first}{second} {digits[:2]} {digits[2:4]} {digits[4:]} {suffix}", f"{first}{second}{digits}{suffix}"])


def _cpf(rng: random.Random) -> str:
    digits = [int(c) for c in _digits(rng, 9)]
    for _ in range(2):  # the CPF's two mod-11 check digits
        total = sum(d * w for d, w in zip(digits, range(len(digits) + 1, 1, -1), strict=True))
        digits.append(total * 10 % 11 % 10)
    number = "".join(map(str, digits))
    assert cpf.is_valid(number)
    return cpf.format(number) if rng.random() < 0.7 else number


def _cnp(rng: random.Random) -> str:
    """A Romanian personal numerical code: 13 digits that often look like a Visa or Maestro number."""
    base = f"{rng.choice('1256')}{rng.randrange(50, 100):02d}{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}{rng.randrange(1, 47):02d}{_digits(rng, 3)}"
    return base + cnp.calc_check_digit(base)


def _iban(rng: random.Random) -> str:
    bank = _digits(rng, 18)
    check = 98 - int(bank + "131400") % 97
    plain = f"DE{check:02d}{bank}"
    style = rng.random()
    if style < 0.3:
        return " ".join(plain[i : i + 4] for i in range(0, len(plain), 4))
    if style < 0.5:
        return "-".join(plain[i : i + 4] for i in range(0, len(plain), 4))
    return plain.lower() if style < 0.7 else plain


def _card(rng: random.Random) -> str:
    prefix, length = rng.choice(_CARD_PREFIXES)
    number = _luhn_complete(prefix, length, rng)
    assert luhn.is_valid(number)
    return " ".join(number[i : i + 4] for i in range(0, len(number), 4)) if rng.random() < 0.3 and length == 16 else number


def _ip_any(rng: random.Random) -> str:
    return rng.choice(["::1", f"::ffff:10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}", _ip(rng), _ip(rng)])


def _tracking(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.35:  # UPS: 1Z, 6 shipper characters, 2 service digits, 8 digits
        return "1Z" + "".join(rng.choices(string.ascii_uppercase + string.digits, k=6)) + _digits(rng, 10)
    if kind < 0.7:  # FedEx: 12 digits, often in groups of four
        d = _digits(rng, 12)
        return f"{d[:4]} {d[4:8]} {d[8:]}" if rng.random() < 0.5 else d
    d = "9400" + _digits(rng, 18)  # USPS: 22 digits in groups of four
    return " ".join(d[i : i + 4] for i in range(0, 22, 4))


def _mtcn(rng: random.Random) -> str:
    d = _digits(rng, 10)
    return rng.choice([d, f"{d[:3]}-{d[3:6]}-{d[6:]}", f"{d[:3]} {d[3:6]} {d[6:]}"])


def generate_people(folder: str | Path, rows: int = 2000, seed: int = 5) -> PeopleTruth:
    rng = random.Random(seed)
    pool = _phone_pool(rng, 300)
    columns: dict[str, tuple[str | None, Callable[[int], object]]] = {
        "user_id": (None, lambda i: f"u{i:07d}"),
        "fname": ("person_name", lambda i: rng.choice(FIRST)),
        "LNAME": ("person_name", lambda i: rng.choice(LAST)),
        "full_name": ("person_name", lambda i: f"{rng.choice(FIRST)} {rng.choice(LAST)}"),
        "MothersMaiden": ("person_name", lambda i: rng.choice(LAST)),
        "email": ("email", lambda i: f"{rng.choice(FIRST).lower()}.{i}@{rng.choice(DOMAINS)}"),
        "alt_email": ("email", lambda i: rng.choice(_IDN_EMAILS) if i % 3 == 0 else f"p{i}@{rng.choice(DOMAINS)}"),
        "TelephoneNumber": ("phone", lambda i: _phone_typed(rng, pool)),
        "mobile_no": ("phone", lambda i: _phone_typed(rng, pool)),
        "emergencyContactPhone": ("phone", lambda i: rng.choice(pool)),
        "street_address": ("postal_address", lambda i: f"{rng.randrange(1, 300)} {rng.choice(STREETS)}"),
        "city": ("postal_address", lambda i: rng.choice(CITIES)[0]),
        "postal": ("postal_address", lambda i: rng.choice(CITIES)[1]),
        "po_box": ("postal_address", lambda i: f"P.O. Box {rng.randrange(1, 9999)}"),
        "dob": ("date_of_birth", lambda i: f"{rng.randrange(1940, 2006)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"),
        "ssn_no": ("national_id", lambda i: _ssn(rng)),
        "nino": ("national_id", lambda i: _nino(rng)),
        "cpf": ("national_id", lambda i: _cpf(rng)),
        "cnp": ("national_id", lambda i: _cnp(rng)),
        "iban": ("iban", lambda i: _iban(rng)),
        "card_no": ("credit_card", lambda i: _card(rng)),
        "ip_addr": ("ip_address", lambda i: _ip_any(rng)),
        "last_login_ip": ("ip_address", lambda i: _ip(rng)),
        "mac": ("mac_address", lambda i: _mac(rng)),
        "wifi_ssid": ("wifi_ssid", lambda i: rng.choice(_SSIDS)),
        "device_nickname": ("device_name", lambda i: rng.choice(["Front door", "Nursery", "Garage cam"])),
        "lat": ("geolocation", lambda i: round(rng.uniform(-60, 70), 5)),
        "lon": ("geolocation", lambda i: round(rng.uniform(-170, 170), 5)),
        "blood_type": ("health", lambda i: rng.choice(_BLOOD)),
        "dx_code": ("health", lambda i: rng.choice(_ICD)),
        "meds": ("health", lambda i: rng.choice(_MEDS)),
        "weight_kg": ("health", lambda i: round(rng.uniform(45, 130), 1)),
        "bmi": ("health", lambda i: round(rng.uniform(17, 40), 1)),
        # decoys
        "order_no": (None, lambda i: _digits(rng, 10)),
        "tracking_no": (None, lambda i: _tracking(rng)),
        "mtcn": (None, lambda i: _mtcn(rng)),
        "created_at_ms": (None, lambda i: 1_600_000_000_000 + rng.randrange(10**11)),
        "updated": (None, lambda i: f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T10:{rng.randrange(60):02d}:00Z"),
        "fw_version": (None, lambda i: f"4.{rng.randrange(10)}.{rng.randrange(10)}.{rng.randrange(100, 300)}"),
        "plan_code": (None, lambda i: f"{rng.randrange(10000, 99999)}"),
        "invoice_no": (None, lambda i: f"INV-2026-{rng.randrange(10**6):06d}"),
        "session_uuid": (None, lambda i: str(uuid.UUID(int=rng.getrandbits(128)))),
        "checksum": (None, lambda i: f"{rng.getrandbits(160):040x}"),
        "amount": (None, lambda i: round(rng.uniform(1, 999), 2)),
        "store_id": (None, lambda i: _digits(rng, 10)),
        "username": (None, lambda i: f"{rng.choice(FIRST).lower()}{rng.randrange(100)}"),
        "rating": (None, lambda i: rng.choice(["A+", "A", "B+", "B", "C"])),
        "lot_number": (None, lambda i: f"{_digits(rng, 2)}-{_digits(rng, 7)}"),
        "sku": (None, lambda i: f"{rng.choice('EJKM')}{_digits(rng, 2)}.{_digits(rng, 1)}"),
        "quantity": (None, lambda i: rng.randrange(1, 20)),
    }
    path = _private(Path(folder) / DATASET)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(columns))
        for i in range(rows):
            writer.writerow([make(i) for _cat, make in columns.values()])
    return PeopleTruth({name: cat for name, (cat, _make) in columns.items()}, rows)
