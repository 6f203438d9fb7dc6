"""A synthetic smart-camera company's data, shaped like the copy Wyze loaded into Elasticsearch.

Users with devices (MACs, nicknames, SSIDs, IPs, locations), linked voice-assistant tokens, the
company's own API tokens, smart-scale measurements for a few users, support tickets whose free text
holds contact details, payments, an Elasticsearch export of login events, and decoy fields that
peer tools mistake for personal data (uuids, sha1s, firmware versions, epoch seconds and
milliseconds, 5-digit plan codes, 10-digit store ids, random trace ids).

`generate()` returns the ground truth: which category every field holds, and exactly which
subjects (user ids) have a value of each category in each field.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
import random
import string
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import phonenumbers

FIRST = ["Anna", "Ben", "Chloé", "David", "Emma", "Farid", "Grace", "Hiro", "Inés", "Jonas", "Kofi", "Lena", "Marta",
         "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera", "Wei", "Xenia", "Yusuf", "Zoë"]
LAST = ["Smith", "Müller", "García", "Rossi", "Dubois", "Nowak", "Kim", "Silva", "O'Neil", "Jensen", "Kowalski",
        "Novak", "Tanaka", "Okafor", "Larsen", "Haddad", "Costa", "Meyer", "Fischer", "Brown"]
DOMAINS = ["gmail.com", "yahoo.com", "Outlook.com", "example.org", "mail.example.co.uk", "GMX.DE", "proton.me"]
CITIES = [("Berlin", "10115", "DE"), ("Seattle", "98101", "US"), ("London", "SW1A 1AA", "GB"), ("Paris", "75001", "FR"),
          ("Madrid", "28001", "ES"), ("Austin", "73301", "US"), ("Kraków", "30-001", "PL")]
STREETS = ["Main Street", "Oak Avenue", "Hauptstraße", "Rue de Rivoli", "Calle Mayor", "High Street", "Elm Road"]
NICKNAMES = ["Front door", "Baby room", "Garage", "Backyard", "Kitchen cam", "Living room", "Dog watch", "Porch",
             "Mom's room", "Driveway", "Nursery", "Basement"]
SSID_BASES = ["HomeNet", "FRITZ!Box 7590", "NETGEAR42", "Linksys00417", "TP-Link_5G", "Casa García", "SKY3F9A2",
              "MyWifi", "xfinitywifi", "Vodafone-8C21"]
PHONE_REGIONS = ["US", "GB", "DE", "FR", "ES", "IT", "NL", "PL", "IN", "BR", "AU", "CA"]
NOTES_PLAIN = [
    "Camera offline after firmware 4.9.6.218 update, rebooted twice.",
    "Customer asks how to share live view with family.",
    "Night vision too dark; suggested moving the camera.",
    "Refund for duplicate subscription charge processed.",
    "Motion alerts delayed by several minutes since firmware v4.9.7.104.",
]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November",
          "December"]
# Support notes that hold a name, a postal address or a date of birth inside a sentence, and what each holds.
# {name}: the customer's full name, {address}: street, postcode and town as the country writes them, {dob_words} /
# {dob_numbers}: the customer's date of birth. Each template is one way agents really write such a note.
NOTES_PERSONAL: list[tuple[str, frozenset[str]]] = [
    ("Customer {name} called about a double charge on the last invoice.", frozenset({"person_name"})),
    ("Hi, my name is {name} and my doorbell camera keeps dropping off the WiFi.", frozenset({"person_name"})),
    ("Spoke with {name} today; the refund was approved and will arrive in five days.", frozenset({"person_name"})),
    ("Please ship the replacement camera to {address} as soon as possible.", frozenset({"postal_address"})),
    ("Customer moved, new delivery address is {address} from next week.", frozenset({"postal_address"})),
    ("Verified the caller {name} with the date of birth {dob_numbers} before resetting the account.",
     frozenset({"person_name", "date_of_birth"})),
    ("Identity check passed: the customer was born {dob_words} and confirmed the last payment.", frozenset({"date_of_birth"})),
    ("Send the warranty letter for {name} to {address}, signed copy needed.", frozenset({"person_name", "postal_address"})),
]
B64URL = string.ascii_letters + string.digits + "-_"
B62 = string.ascii_letters + string.digits


@dataclass(slots=True)
class GroundTruth:
    """fields[dataset][field] = category or None for decoys; subjects[(dataset, field, category)] = user ids."""

    fields: dict[str, dict[str, str | None]] = field(default_factory=dict)
    subjects: dict[tuple[str, str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    records: dict[str, int] = field(default_factory=dict)
    users: int = 0
    # fields holding two categories (free text): dataset -> field -> categories
    multi: dict[str, dict[str, set[str]]] = field(default_factory=dict)

    def expected_pairs(self) -> set[tuple[str, str, str]]:
        pairs = {(d, f, c) for d, fields in self.fields.items() for f, c in fields.items() if c is not None}
        pairs |= {(d, f, c) for d, fields in self.multi.items() for f, cats in fields.items() for c in cats}
        return pairs

    def decoys(self) -> set[tuple[str, str]]:
        return {(d, f) for d, fields in self.fields.items() for f, c in fields.items() if c is None and f not in self.multi.get(d, {})}

    def category_subjects(self, category: str) -> set[str]:
        out: set[str] = set()
        for (_d, _f, c), ids in self.subjects.items():
            if c == category:
                out |= ids
        return out


def _phone_pool(rng: random.Random, size: int = 3000) -> list[str]:
    pool: list[str] = []
    fmts = [phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.INTERNATIONAL]
    while len(pool) < size:
        region = rng.choice(PHONE_REGIONS)
        example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
        national = str(example.national_number)
        digits = national[:-4] + "".join(rng.choice(string.digits) for _ in range(4))
        num = phonenumbers.parse("+" + str(example.country_code) + digits)
        if phonenumbers.is_valid_number(num):
            pool.append(phonenumbers.format_number(num, rng.choice(fmts)))
    return pool


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


def _iban(rng: random.Random) -> str:
    bank = "".join(rng.choice(string.digits) for _ in range(18))
    rearranged = bank + "131400"  # DE = 13 14, check digits 00
    check = 98 - int(rearranged) % 97
    return f"DE{check:02d}{bank}"


def _mac(rng: random.Random) -> str:
    octets = [rng.randrange(256) for _ in range(6)]
    octets[0] = (octets[0] | 0x02) & 0xFE
    style = rng.random()
    if style < 0.6:
        return ":".join(f"{o:02X}" for o in octets)
    if style < 0.8:
        return "-".join(f"{o:02x}" for o in octets)
    return "".join(f"{o:02X}" for o in octets)


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.8:
        return f"{rng.choice([73, 81, 92, 109, 176, 203])}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    return f"2a02:{rng.randrange(1, 0xFFFF):x}:{rng.randrange(0x100, 0xFFFF):x}::{rng.randrange(0x100, 0xFFFF):x}:{rng.randrange(1, 0xFFFF):x}"


def _token(rng: random.Random, n: int, alphabet: str = B64URL) -> str:
    return "".join(rng.choices(alphabet, k=n))


def _private(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    return path


def _written_address(address: dict[str, str]) -> str:
    """Street, postcode and town the way the country writes them on an envelope, on one line."""
    if address["country"] in ("GB", "US"):
        return f"{address['street']}, {address['city']} {address['postal_code']}"
    return f"{address['street']}, {address['postal_code']} {address['city']}"


def _dob_words(iso: str, rng: random.Random) -> str:
    year, month, day = (int(p) for p in iso.split("-"))
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    if rng.random() < 0.5:
        return f"{day}{suffix} {MONTHS[month - 1]} {year}"
    return f"on {MONTHS[month - 1]} {day}, {year}"


def _dob_numbers(iso: str, rng: random.Random) -> str:
    year, month, day = iso.split("-")
    return f"{day}/{month}/{year}" if rng.random() < 0.5 else iso


def generate(folder: str | Path, users: int = 2000, seed: int = 2019, compress: bool = True) -> GroundTruth:
    """Write the synthetic dataset into `folder` (files created owner-only) and return its ground truth."""
    rng = random.Random(seed)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    truth = GroundTruth(users=users)
    subj = truth.subjects
    phones = _phone_pool(rng, min(3000, max(200, users)))
    epoch = 1575417600  # 2019-12-04

    users_name = "users.jsonl"
    truth.fields[users_name] = {
        "user_id": None, "email": "email", "full_name": "person_name", "phone": "phone", "date_of_birth": "date_of_birth",
        "address.street": "postal_address", "address.city": "postal_address", "address.postal_code": "postal_address",
        "address.country": "postal_address", "password_hash": "password", "api_token": "secret",
        "alexa.access_token": "secret", "alexa.refresh_token": "secret", "alexa.linked_at": None,
        "google.refresh_token": "secret", "created_at": None, "last_login_ms": None, "plan_code": None, "store_id": None,
        "request_uuid": None, "avatar_sha1": None, "trace_id": None, "username": None,
        "devices[].device_id": None, "devices[].mac": "mac_address", "devices[].nickname": "device_name",
        "devices[].firmware_version": None, "devices[].ssid": "wifi_ssid", "devices[].last_ip": "ip_address",
        "devices[].location.lat": "geolocation", "devices[].location.lon": "geolocation", "devices[].model": None,
    }
    scale_name = "scale_measurements.jsonl"
    truth.fields[scale_name] = {
        "user_id": None, "measured_at": None, "weight_kg": "health", "bmi": "health", "body_fat_pct": "health",
        "bone_mass": "health", "heart_rate": "health", "scale_serial": None,
    }
    tickets_name = "support_tickets.csv"
    truth.fields[tickets_name] = {"ticket_id": None, "user_id": None, "created_at": None, "channel": None, "note": None}
    truth.multi[tickets_name] = {"note": {"email", "phone", "person_name", "postal_address", "date_of_birth"}}
    text_rng = random.Random(seed + 1)  # the personal notes draw from their own stream: the rest stays as it was
    payments_name = "payments.parquet"
    truth.fields[payments_name] = {"payment_id": None, "user_id": None, "card_number": "credit_card", "iban": "iban",
                                   "amount_cents": None, "paid_at_ms": None}
    events_name = "es_export/login-events.ndjson" + (".gz" if compress else "")
    truth.fields[events_name] = {"user_id": None, "event": None, "client_ip": "ip_address", "session_id": "secret",
                                 "ts": None, "user_agent": None}

    user_rows: list[bytes] = []
    scale_rows: list[bytes] = []
    tickets: list[list[str]] = []
    payments: dict[str, list] = defaultdict(list)
    events: list[bytes] = []
    for i in range(users):
        uid = f"usr_{i:07d}"
        first, last = rng.choice(FIRST), rng.choice(LAST)
        local = f"{first}.{last}".lower().replace("'", "").replace("é", "e").replace("ü", "u").replace("ë", "e").replace("í", "i").replace("ö", "o")
        if rng.random() < 0.2:
            local += f"+{rng.choice(['alexa', 'cam', 'shop'])}"
        local += str(i)
        email = f"{local}@{rng.choice(DOMAINS)}"
        if rng.random() < 0.1:
            email = email[0].upper() + email[1:].replace(".com", ".COM")
        city, postal, country = rng.choice(CITIES)
        doc: dict = {
            "user_id": uid,
            "email": email,
            "full_name": f"{first} {last}",
            "username": f"{first.lower()}{rng.randrange(100, 999)}",
            "date_of_birth": f"{rng.randrange(1940, 2006)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
            "address": {"street": f"{rng.randrange(1, 300)} {rng.choice(STREETS)}", "city": city, "postal_code": postal, "country": country},
            "password_hash": "$2b$12$" + _token(rng, 53, string.ascii_letters + string.digits + "./"),
            "api_token": _token(rng, 40, B62),
            "created_at": epoch - rng.randrange(0, 86400 * 900),
            "last_login_ms": (epoch + rng.randrange(0, 86400 * 20)) * 1000 + rng.randrange(1000),
            "plan_code": rng.randrange(10000, 99999),
            "store_id": str(rng.randrange(1_000_000_000, 9_999_999_999)),
            "request_uuid": str(uuid.UUID(int=rng.getrandbits(128))),
            "avatar_sha1": hashlib.sha1(uid.encode()).hexdigest(),
            "trace_id": f"{rng.getrandbits(64):016x}",
        }
        for f in ("email", "full_name", "date_of_birth", "address.street", "address.city", "address.postal_code",
                  "address.country", "password_hash", "api_token"):
            subj[(users_name, f, truth.fields[users_name][f])].add(uid)
        if rng.random() < 0.7:
            doc["phone"] = rng.choice(phones)
            subj[(users_name, "phone", "phone")].add(uid)
        if rng.random() < 0.12:
            doc["alexa"] = {
                "access_token": "Atza|IwEB" + _token(rng, rng.randrange(380, 420)),
                "refresh_token": "Atzr|IwEB" + _token(rng, rng.randrange(380, 420)),
                "linked_at": epoch - rng.randrange(0, 86400 * 300),
            }
            subj[(users_name, "alexa.access_token", "secret")].add(uid)
            subj[(users_name, "alexa.refresh_token", "secret")].add(uid)
        if rng.random() < 0.05:
            doc["google"] = {"refresh_token": "1//0" + _token(rng, 100)}
            subj[(users_name, "google.refresh_token", "secret")].add(uid)
        devices = []
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            devices.append(
                {
                    "device_id": "dev-" + f"{rng.getrandbits(48):012x}",
                    "model": rng.choice(["WYZEC2", "WYZEC3", "WYZECP1", "WYZEDB3"]),
                    "mac": _mac(rng),
                    "nickname": rng.choice(NICKNAMES),
                    "firmware_version": f"4.{rng.randrange(9, 37)}.{rng.randrange(0, 10)}.{rng.randrange(100, 300)}",
                    "ssid": f"{rng.choice(SSID_BASES)}-{rng.randrange(100)}",
                    "last_ip": _ip(rng),
                    "location": {"lat": round(rng.uniform(-60, 70), 5), "lon": round(rng.uniform(-170, 170), 5)},
                }
            )
        if devices:
            doc["devices"] = devices
            for f, c in (("devices[].mac", "mac_address"), ("devices[].nickname", "device_name"), ("devices[].ssid", "wifi_ssid"),
                         ("devices[].last_ip", "ip_address"), ("devices[].location.lat", "geolocation"), ("devices[].location.lon", "geolocation")):
                subj[(users_name, f, c)].add(uid)
        user_rows.append(orjson.dumps(doc))

        if rng.random() < 0.03:
            for _ in range(rng.randrange(1, 4)):
                scale_rows.append(orjson.dumps({
                    "user_id": uid, "measured_at": epoch - rng.randrange(0, 86400 * 60),
                    "weight_kg": round(rng.uniform(45, 130), 1), "bmi": round(rng.uniform(17, 38), 1),
                    "body_fat_pct": round(rng.uniform(8, 45), 1), "bone_mass": round(rng.uniform(1.8, 4.2), 2),
                    "heart_rate": rng.randrange(48, 110), "scale_serial": f"{rng.getrandbits(80):020x}",
                }))
            for f in ("weight_kg", "bmi", "body_fat_pct", "bone_mass", "heart_rate"):
                subj[(scale_name, f, "health")].add(uid)

        if rng.random() < 0.25:
            roll = rng.random()
            if roll < 0.4:
                note = f"User asked us to reply to {email.upper() if rng.random() < 0.3 else email} instead of the app."
                subj[(tickets_name, "note", "email")].add(uid)
            elif roll < 0.7:
                note = f"Please call back on {rng.choice(phones)} after 5pm."
                subj[(tickets_name, "note", "phone")].add(uid)
            else:
                note = rng.choice(NOTES_PLAIN)
                if text_rng.random() < 0.7:
                    template, holds = text_rng.choice(NOTES_PERSONAL)
                    note = template.format(name=doc["full_name"], address=_written_address(doc["address"]),
                                           dob_words=_dob_words(doc["date_of_birth"], text_rng),
                                           dob_numbers=_dob_numbers(doc["date_of_birth"], text_rng))
                    for category in holds:
                        subj[(tickets_name, "note", category)].add(uid)
            tickets.append([str(len(tickets) + 100000), uid, str(epoch + rng.randrange(0, 86400 * 20)), rng.choice(["email", "phone", "chat"]), note])

        if rng.random() < 0.3:
            payments["payment_id"].append(len(payments["payment_id"]) + 1)
            payments["user_id"].append(uid)
            card = _luhn_complete(rng.choice(["4", "51", "55", "2221"]), 16, rng)
            payments["card_number"].append(card if rng.random() < 0.7 else " ".join(card[k:k + 4] for k in range(0, 16, 4)))
            payments["iban"].append(_iban(rng))
            payments["amount_cents"].append(rng.randrange(99, 29999))
            payments["paid_at_ms"].append((epoch - rng.randrange(0, 86400 * 365)) * 1000)
            subj[(payments_name, "card_number", "credit_card")].add(uid)
            subj[(payments_name, "iban", "iban")].add(uid)

        if rng.random() < 0.4:
            events.append(orjson.dumps({
                "_index": "login-events-2019.12", "_id": uuid.UUID(int=rng.getrandbits(128)).hex, "_score": 1.0,
                "_source": {"user_id": uid, "event": "login", "client_ip": _ip(rng), "session_id": _token(rng, 32, B62),
                            "ts": (epoch + rng.randrange(0, 86400 * 22)) * 1000,
                            "user_agent": rng.choice(["WyzeApp/2.8 (iOS 13.2)", "WyzeApp/2.7 (Android 10)"])},
            }))
            subj[(events_name, "client_ip", "ip_address")].add(uid)
            subj[(events_name, "session_id", "secret")].add(uid)

    with open(_private(out / users_name), "wb") as fh:
        fh.write(b"\n".join(user_rows) + b"\n")
    with open(_private(out / scale_name), "wb") as fh:
        fh.write(b"\n".join(scale_rows) + b"\n")
    with open(_private(out / tickets_name), "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["ticket_id", "user_id", "created_at", "channel", "note"])
        w.writerows(tickets)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(dict(payments)), _private(out / payments_name))
    events_path = _private(out / events_name)
    opener = gzip.open if compress else open
    with opener(events_path, "wb") as fh:
        fh.write(b"\n".join(events) + b"\n")
    truth.records = {users_name: users, scale_name: len(scale_rows), tickets_name: len(tickets),
                     payments_name: len(payments["payment_id"]), events_name: len(events)}
    return truth
