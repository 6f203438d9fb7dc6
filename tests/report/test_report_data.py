"""Test inputs for the report: scan documents generated from a known population, and watch histories.

`make_store` builds a Wyze-like population (users, devices, integrations, scale readings), then derives
the scan JSON (schema version 1) from the records themselves, exactly as a scanner counts: records,
values and distinct people per field, distinct people per category over the store. The ground truth
(`Truth`) is computed independently from the people, so a report that reads the scan correctly must
reproduce it. `make_history` writes a real `spillguard watch --state` SQLite file.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from spillguard.report.inputs import validate_scan

HMAC_KEY = b"test-key-0123456789abcdef"


@dataclass
class Person:
    uid: str
    email: str
    name: str
    phone: str | None
    address: str | None
    devices: list[dict[str, Any]] = field(default_factory=list)
    alexa_token: str | None = None
    beta_tester: bool = False


@dataclass
class Truth:
    """Distinct people per category and raw secrets, computed from the people, not from the scan."""

    people: int
    subjects: dict[str, int]
    raw_secrets: list[str]
    raw_values: list[str]


def _mask_email(e: str) -> str:
    local, domain = e.split("@")
    return f"{local[0]}***@{domain[0]}***.{domain.rsplit('.', 1)[1]}"


def _mask(v: str) -> str:
    if v.startswith("Atza|"):
        return f"Atza|{v[5:9]}…({len(v)} chars)"
    return v[:2] + "***" + v[-1:]


def _fingerprint(v: str) -> str:
    return "hmac-sha256:" + hmac.new(HMAC_KEY, v.encode(), hashlib.sha256).hexdigest()[:16]


def make_people(n: int, seed: int) -> list[Person]:
    rng = random.Random(seed)
    people = []
    for i in range(n):
        uid = f"u{seed}-{i:06d}"
        p = Person(
            uid=uid,
            email=f"user{i}.{seed}@Example{rng.randint(1, 9)}.com",
            name=f"Name{i} Surname{rng.randint(1, 999)}",
            phone=f"+4915{rng.randint(10000000, 99999999)}" if rng.random() < 0.6 else None,
            address=f"{rng.randint(1, 200)} Main Street, Town {rng.randint(1, 50)}"
            if rng.random() < 0.3
            else None,
        )
        for d in range(rng.choice([0, 1, 1, 2, 3])):
            p.devices.append(
                {
                    "name": rng.choice(["Baby room", "Front door", "Garage", "Kitchen"]) + f" {d}",
                    "ssid": f"FRITZ!Box {rng.randint(1000, 9999)} {p.name.split()[1]}"
                    if rng.random() < 0.7
                    else None,
                    "mac": ":".join(f"{rng.randint(0, 255):02x}" for _ in range(6)),
                    "geo": f"{rng.uniform(47, 55):.5f},{rng.uniform(6, 15):.5f}"
                    if rng.random() < 0.5
                    else None,
                }
            )
        if rng.random() < 0.1:
            p.alexa_token = "Atza|IwEB" + "".join(
                rng.choice("ABCDEFGHabcdefgh0123456789-_") for _ in range(380)
            )
        p.beta_tester = rng.random() < 0.05
        people.append(p)
    return people


def _records(people: list[Person]) -> dict[str, list[dict[str, Any]]]:
    """The store's datasets, one record per row as the scanner would read them."""
    users = [
        {"user_id": p.uid, "email": p.email, "name": p.name, "phone": p.phone, "address": p.address}
        for p in people
    ]
    devices = [
        {"user_id": p.uid, "nickname": d["name"], "ssid": d["ssid"], "mac": d["mac"], "location": d["geo"]}
        for p in people
        for d in p.devices
    ]
    integrations = [{"user_id": p.uid, "alexa_token": p.alexa_token} for p in people if p.alexa_token]
    readings = [
        {"user_id": p.uid, "weight_kg": 60 + k, "body_fat": 20 + k, "contact": p.email}
        for p in people
        if p.beta_tester
        for k in range(3)
    ]
    return {"users": users, "devices": devices, "integrations": integrations, "scale_readings": readings}


# dataset -> field -> (category, rule, confidence)
FIELD_RULES: dict[str, dict[str, tuple[str, str, str]]] = {
    "users": {
        "email": ("email", "email", "high"),
        "name": ("person_name", "person_name_field", "medium"),
        "phone": ("phone", "phone_e164", "high"),
        "address": ("postal_address", "postal_address", "medium"),
    },
    "devices": {
        "nickname": ("device_name", "device_name_field", "medium"),
        "ssid": ("wifi_ssid", "wifi_ssid_field", "high"),
        "mac": ("mac_address", "mac_colon", "high"),
        "location": ("geolocation", "lat_lon", "high"),
    },
    "integrations": {"alexa_token": ("secret", "amazon_lwa_access_token", "high")},
    "scale_readings": {
        "weight_kg": ("health", "health_field", "medium"),
        "body_fat": ("health", "health_field", "medium"),
        "contact": ("email", "email", "high"),
    },
}


def scan_document(
    target: str, people: list[Person], started: datetime, *, malformed: int = 0
) -> dict[str, Any]:
    """Scan JSON derived from the store's records, counted the way the scanner counts."""
    data = _records(people)
    findings = []
    cat_subjects: dict[str, set[str]] = defaultdict(set)
    cat_records: dict[str, set[tuple[str, int]]] = defaultdict(set)
    cat_values: dict[str, int] = defaultdict(int)
    secret_values: dict[str, set[str]] = defaultdict(set)
    datasets = []
    for ds, rows in data.items():
        datasets.append(
            {
                "target": target,
                "dataset": ds,
                "records_scanned": len(rows),
                "subject_field": "user_id",
                "subjects_scanned": len({r["user_id"] for r in rows}),
            }
        )
        for fname, (cat, rule, conf) in FIELD_RULES[ds].items():
            hits = [(i, r) for i, r in enumerate(rows) if r.get(fname) is not None]
            if not hits:
                continue
            values = [str(r[fname]) for _, r in hits]
            findings.append(
                {
                    "target": target,
                    "dataset": ds,
                    "field": fname,
                    "category": cat,
                    "rule": rule,
                    "confidence": conf,
                    "records_scanned": len(rows),
                    "records_matched": len(hits),
                    "values_matched": len(values),
                    "subjects_matched": len({r["user_id"] for _, r in hits}),
                    "values_distinct": len(set(values)),
                    "samples": [_mask_email(v) if cat == "email" else _mask(v) for v in values[:3]],
                }
            )
            for i, r in hits:
                cat_subjects[cat].add(r["user_id"])
                cat_records[cat].add((ds, i))
                cat_values[cat] += 1
                if cat == "secret":
                    secret_values[rule].add(str(r[fname]))
    doc = {
        "version": 1,
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "finished_at": (started + timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "targets": [target],
        "datasets": datasets,
        "findings": findings,
        "summary": {
            "records_scanned": sum(len(r) for r in data.values()),
            "subjects_scanned": len({r["user_id"] for rows in data.values() for r in rows}),
            "malformed_records": malformed,
            "categories": {
                c: {"subjects": len(cat_subjects[c]), "records": len(cat_records[c]), "values": cat_values[c]}
                for c in sorted(cat_subjects)
            },
        },
        "secrets": [
            {
                "rule": rule,
                "category": "secret",
                "distinct": len(vals),
                "fingerprints": [_fingerprint(v) for v in sorted(vals)][:20],
            }
            for rule, vals in secret_values.items()
        ],
        "errors": [
            {
                "target": target,
                "dataset": "users",
                "line": 1000 + k,
                "message": "invalid JSON",
                "kind": "malformed",
            }
            for k in range(malformed)
        ],
    }
    return validate_scan(doc)


def truth_of(people: list[Person]) -> Truth:
    """Distinct people per category straight from the population (independent of scan_document)."""
    subjects = {
        "email": len(people),
        "person_name": len(people),
        "phone": sum(1 for p in people if p.phone),
        "postal_address": sum(1 for p in people if p.address),
        "device_name": sum(1 for p in people if p.devices),
        "mac_address": sum(1 for p in people if p.devices),
        "wifi_ssid": sum(1 for p in people if any(d["ssid"] for d in p.devices)),
        "geolocation": sum(1 for p in people if any(d["geo"] for d in p.devices)),
        "secret": sum(1 for p in people if p.alexa_token),
        "health": sum(1 for p in people if p.beta_tester),
    }
    raw_values = [p.email for p in people] + [p.phone for p in people if p.phone]
    raw_values += [d["ssid"] for p in people for d in p.devices if d["ssid"]]
    return Truth(len(people), subjects, [p.alexa_token for p in people if p.alexa_token], raw_values)


def make_store(target: str, n: int, seed: int, started: datetime, **kw: Any) -> tuple[dict[str, Any], Truth]:
    people = make_people(n, seed)
    return scan_document(target, people, started, **kw), truth_of(people)


WATCH_SCHEMA = """
CREATE TABLE observations(id INTEGER PRIMARY KEY, target TEXT, checked_at TEXT, verdict TEXT, evidence TEXT,
                          duration_ms REAL);
CREATE TABLE transitions(id INTEGER PRIMARY KEY, target TEXT, at TEXT, old_verdict TEXT, new_verdict TEXT,
                         evidence TEXT);
"""


def _z(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_history(path: Path, timelines: dict[str, list[tuple[datetime, str]]], every: timedelta) -> None:
    """Write a watch database: an observation every `every` and a transition at each verdict change.

    `timelines` maps a target to its verdict changes [(time, verdict), ...]; the last one lasts until
    the last change of any target plus two intervals.
    """
    con = sqlite3.connect(path)
    con.executescript(WATCH_SCHEMA)
    end = max(t for tl in timelines.values() for t, _ in tl) + 2 * every
    for target, changes in timelines.items():
        prev = None
        for k, (at, verdict) in enumerate(changes):
            until = changes[k + 1][0] if k + 1 < len(changes) else end
            if prev is not None:
                con.execute(
                    "INSERT INTO transitions(target, at, old_verdict, new_verdict, evidence) VALUES (?,?,?,?,?)",
                    (target, _z(at), prev, verdict, '{"status": 200}'),
                )
            t = at
            while t < until:
                con.execute(
                    "INSERT INTO observations(target, checked_at, verdict, evidence, duration_ms) VALUES (?,?,?,?,?)",
                    (target, _z(t), verdict, "{}", 12.5),
                )
                t += every
            prev = verdict
    con.commit()
    con.close()


# ------------------------------------------------------------------ the generator checks itself


T0 = datetime(2019, 12, 4, 9, 0, tzinfo=UTC)


def test_scan_document_counts_match_population() -> None:
    doc, truth = make_store("http://es.internal:9200", 400, seed=7, started=T0)
    cats = doc["summary"]["categories"]
    assert {c: v["subjects"] for c, v in cats.items()} == {c: v for c, v in truth.subjects.items() if v}
    assert doc["summary"]["subjects_scanned"] == truth.people == 400
    assert doc["secrets"][0]["distinct"] == len(set(truth.raw_secrets)) > 0
    text = repr(doc)
    assert not any(tok in text for tok in truth.raw_secrets), "raw tokens must never be in scan JSON"
    assert not any(v in text for v in truth.raw_values[:50])


def test_history_file_has_watch_schema(tmp_path: Path) -> None:
    db = tmp_path / "watch.sqlite"
    make_history(
        db, {"es:9200": [(T0, "protected"), (T0 + timedelta(hours=2), "open-read")]}, timedelta(minutes=30)
    )
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM transitions").fetchone() == (1,)
    assert con.execute("SELECT count(*) FROM observations WHERE verdict='open-read'").fetchone() == (2,)
    con.close()
