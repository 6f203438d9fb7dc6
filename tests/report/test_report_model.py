"""The report model: numbers equal the scan's, honest ranges across stores, exposure windows, diff, errors."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from spillguard import categories as cq
from spillguard.errors import UserError
from spillguard.report import Count, build_report
from spillguard.report.exposure import exposure_windows
from spillguard.report.gdpr import CONTACT_PLACEHOLDER
from spillguard.report.inputs import load_audit, load_scan, read_history, target_key
from tests.report.test_report_data import T0, make_history, make_store

HOUR = timedelta(hours=1)
ES = "http://es.internal:9200"
PG = "postgresql://app@db.internal:5432/prod"


def test_single_store_counts_equal_the_scan_and_the_ground_truth() -> None:
    scan, truth = make_store(ES, 1200, seed=3, started=T0)
    r = build_report([scan])
    assert r.summary["people_affected"] == Count(truth.people, truth.people)  # everyone has an e-mail address
    assert r.summary["records_scanned"] == scan["summary"]["records_scanned"]
    by_cat = {c.category: c for c in r.categories}
    assert set(by_cat) == {c for c, n in truth.subjects.items() if n}
    for cat, n in truth.subjects.items():
        if n:
            assert by_cat[cat].subjects == Count(n, n), cat
            assert by_cat[cat].records.exact
            assert by_cat[cat].records.low == scan["summary"]["categories"][cat]["records"]
            assert by_cat[cat].values == scan["summary"]["categories"][cat]["values"]
    # Highest risk first, and the Art. 9 category is flagged.
    assert [c.risk for c in r.categories] == sorted(
        (c.risk for c in r.categories), key=lambda x: -cq.RISK_RANK[x]
    )
    assert r.summary["special_categories"] == ["health"]
    assert r.summary["secrets_distinct"] == len(truth.raw_secrets)
    assert r.fields and all(len(f["samples"]) <= 3 for f in r.fields)
    assert len(r.datasets) == 4
    # Without audit or watch data the drafts cover every store, and say the window is unknown.
    assert r.scope["basis"] == "unknown"
    assert r.art33["subjects_total"] == Count(truth.people, truth.people)
    assert r.summary["exposure"]["status"] == "unknown"
    assert "[Describe how the data was exposed" in r.art33["nature"]
    assert r.art33["contact"] == CONTACT_PLACEHOLDER and r.art33["contact_missing"]


def test_two_stores_give_honest_ranges_that_contain_the_truth() -> None:
    es, t1 = make_store(ES, 900, seed=11, started=T0)
    pg, t2 = make_store(PG, 500, seed=12, started=T0 + HOUR)
    r = build_report([es, pg])
    people = r.summary["people_affected"]
    assert people == Count(900, 1400)
    assert not people.exact and str(people) == "900–1,400" and people.approx == "between 900 and 1,400"
    # The two populations are disjoint, so the true count is the upper bound: it must be inside the range.
    for c in r.categories:
        true_n = t1.subjects.get(c.category, 0) + t2.subjects.get(c.category, 0)
        assert c.subjects.low <= true_n <= c.subjects.high, c.category
        assert c.records.exact  # records of different stores never overlap
    assert any("same person may appear in more than one store" in n for n in r.notes)
    per_store = {s["target"]: s["people_affected"] for s in r.stores}
    assert per_store == {ES: Count(900, 900), PG: Count(500, 500)}


def test_a_store_present_in_two_scans_is_refused() -> None:
    a, _ = make_store(ES, 50, seed=1, started=T0)
    b, _ = make_store(ES, 60, seed=2, started=T0 + HOUR)
    with pytest.raises(UserError, match="both cover .*--baseline"):
        build_report([a, b])


def test_target_keys_match_scan_audit_and_watch_spellings() -> None:
    # The report's key is the target registry's store key (tested in full in test_targets.py).
    assert target_key("http://elastic:secret@ES.internal:9200/") == "elasticsearch://es.internal:9200"
    assert target_key("http://***@es.internal:9200") == "elasticsearch://es.internal:9200"
    assert target_key("elasticsearch+https://es.internal") == "elasticsearch://es.internal:9200"
    assert target_key("postgresql://app@db.internal/prod") == "postgresql://db.internal:5432"
    assert target_key("https://kibana.example") == "elasticsearch://kibana.example:443"
    assert target_key("mongodb://[::1]:27017") == "mongodb://127.0.0.1:27017"
    assert target_key("./demo-data") == "./demo-data"


def test_exposure_windows_from_a_real_watch_history(tmp_path: Path) -> None:
    db = tmp_path / "watch.sqlite"
    open_at, closed_at = T0 + 3 * HOUR, T0 + 22 * 24 * HOUR + 74 * timedelta(minutes=1)
    make_history(
        db,
        {
            "http://***@es.internal:9200": [
                (T0 - 48 * HOUR, "protected"),
                (open_at, "open-read"),
                (closed_at, "protected"),
            ],
            # Already open when watching began, unreachable at the end: start unknown, not known closed.
            "mongodb://m.internal:27017": [
                (T0, "open-metadata"),
                (T0 + 5 * HOUR, "open-read"),
                (T0 + 7 * HOUR, "unreachable"),
            ],
            # Unreachable in between is not a closure (it may be the watcher's network): one window.
            "redis://cache.internal:6379": [
                (T0, "protected"),
                (T0 + 2 * HOUR, "weak-credentials"),
                (T0 + 4 * HOUR, "unreachable"),
                (T0 + 6 * HOUR, "weak-credentials"),
                (T0 + 8 * HOUR, "protected"),
            ],
        },
        every=timedelta(minutes=30),
    )
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    windows = {e.key: e for e in exposure_windows(read_history(db))}
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before, "the report must not write to the evidence"

    es = windows["elasticsearch://es.internal:9200"]
    assert len(es.windows) == 1
    w = es.windows[0]
    assert (w.start, w.end, w.verdict, w.start_known, w.closed_by) == (
        "2019-12-04T12:00:00Z",
        "2019-12-26T10:14:00Z",
        "open-read",
        True,
        "protected",
    )
    assert w.hours == round((closed_at - open_at).total_seconds() / 3600, 2)
    assert es.current_verdict == "protected"

    mongo = windows["mongodb://m.internal:27017"]
    assert len(mongo.windows) == 1 and mongo.windows[0].ongoing and not mongo.windows[0].start_known
    assert mongo.windows[0].verdict == "open-read"  # the worst verdict inside the window
    assert mongo.current_verdict == "unreachable"

    redis = windows["redis://cache.internal:6379"]
    assert [
        (x.start[11:16], x.end and x.end[11:16], x.closed_by, x.last_seen_exposed[11:16])
        for x in redis.windows
    ] == [
        ("11:00", "17:00", "protected", "16:30"),
    ]


def _history_and_audit(tmp_path: Path) -> tuple[Path, dict]:
    db = tmp_path / "watch.sqlite"
    make_history(
        db,
        {
            "http://***@es.internal:9200": [
                (T0 - 48 * HOUR, "protected"),
                (T0 + 3 * HOUR, "open-read"),
                (T0 + 500 * HOUR, "protected"),
            ]
        },
        every=timedelta(hours=1),
    )
    audit = {
        "version": 1,
        "checked_at": "2019-12-26T10:00:00Z",
        "targets": [
            {
                "target": "postgresql://***@db.internal",  # no port: the scheme's default matches :5432
                "name": "db",
                "protocol": "postgresql",
                "verdict": "protected",
                "evidence": {},
                "tls": True,
                "server_version": "16.2",
                "timings": {"total_ms": 4.0},
                "stakes": None,
            }
        ],
    }
    return db, audit


def test_notification_scope_is_the_exposed_store(tmp_path: Path) -> None:
    es, t_es = make_store(ES, 700, seed=21, started=T0 + 520 * HOUR)
    pg, _ = make_store(PG, 300, seed=22, started=T0 + 521 * HOUR)
    db, audit = _history_and_audit(tmp_path)
    r = build_report([es, pg], [audit], str(db), contact="Jane Roe, DPO, dpo@example.com")
    status = {s["target"]: s["exposure_status"] for s in r.stores}
    assert status == {ES: "exposed", PG: "not-exposed"}
    assert r.scope["basis"] == "exposed" and r.scope["stores"] == [ES]
    assert r.scope["excluded"] == {PG: "observed protected"}
    assert r.art33["subjects_total"] == Count(700, 700)
    health = next(c for c in r.scope["categories"] if c.category == "health")
    assert health.subjects == Count(t_es.subjects["health"], t_es.subjects["health"])
    assert r.summary["people_affected"] == Count(700, 1000)  # the inventory still shows both stores
    exp = r.summary["exposure"]
    assert (exp["status"], exp["start"], exp["end"], exp["hours"]) == (
        "closed",
        "2019-12-04T12:00:00Z",
        "2019-12-25T05:00:00Z",
        497.0,
    )
    # The watcher saw the exposure begin: the 72 h clock can have started then.
    assert r.art33["first_evidence"] == "2019-12-04T12:00:00Z"
    assert r.art33["deadline_if_aware_at_first_evidence"] == "2019-12-07T12:00:00Z"
    assert r.art33["contact"] == "Jane Roe, DPO, dpo@example.com"
    assert any("was closed" in m for m in r.art33["measures_taken"])
    # Every Art. 33(3) item is there.
    for key in ("nature", "subjects_total", "records_total", "categories_of_data", "contact", "consequences"):
        assert r.art33[key], key
    assert r.art33["measures"] and "Art. 33(4)" in r.art33["phases"]
    # One Art. 34 notice per risk group, each with every element the article asks for.
    groups = [n["group"] for n in r.art34]
    assert groups == sorted(groups, key=lambda g: cq.RISK_GROUPS[g].order)
    assert {"credentials", "health", "home", "contact"} <= set(groups)
    for n in r.art34:
        assert n["what_happened"] and n["what_data"] and n["consequences"] and n["measures"] and n["advice"]
        assert n["contact"] == "Jane Roe, DPO, dpo@example.com"
        assert n["people"].high <= 700
    assert next(n for n in r.art34 if n["group"] == "health")["required"]
    assert "4 December 2019 until 25 December 2019" in r.art34[0]["what_happened"]


def test_ssid_next_to_a_location_locates_a_home() -> None:
    scan, _ = make_store(ES, 300, seed=5, started=T0)
    r = build_report([scan])
    home = [c for c in r.combinations if "wifi_ssid" in c["categories"]]
    assert home and home[0]["risk"] == "high" and "geolocation" in home[0]["categories"]
    assert home[0]["datasets"] == [f"{ES} / devices"]
    assert "locates the home" in home[0]["consequence"]
    wifi_notice = next(n for n in r.art34 if n["group"] == "home")
    assert wifi_notice["required"]  # medium alone, high in combination


def test_ongoing_exposure_is_urgent_and_named(tmp_path: Path) -> None:
    scan, _ = make_store(ES, 100, seed=8, started=T0 + 10 * HOUR)
    db = tmp_path / "w.sqlite"
    make_history(db, {"http://es.internal:9200": [(T0, "protected"), (T0 + HOUR, "open-read")]}, HOUR)
    r = build_report([scan], history=str(db))
    assert r.summary["exposure"]["status"] == "ongoing"
    assert r.measures[0].startswith(f"URGENT: {ES} is still exposed (open-read)")
    assert "still exposed" in r.summary["exposure"]["text"]


def test_diff_against_a_baseline() -> None:
    old, _ = make_store(ES, 400, seed=30, started=T0)
    new, _ = make_store(
        ES, 500, seed=30, started=T0 + 24 * HOUR
    )  # same seed: the first 400 people are the same
    old["findings"] = [f for f in old["findings"] if f["dataset"] != "scale_readings"]
    del old["summary"]["categories"]["health"]
    new["findings"] = [f for f in new["findings"] if f["field"] != "mac"]
    del new["summary"]["categories"]["mac_address"]
    r = build_report([new], baseline=old)
    d = r.diff
    assert d is not None
    appeared = {(f["dataset"], f["field"]) for f in d["appeared"]}
    assert appeared == {
        ("scale_readings", "weight_kg"),
        ("scale_readings", "body_fat"),
        ("scale_readings", "contact"),
    }
    assert [(f["dataset"], f["field"]) for f in d["gone"]] == [("devices", "mac")]
    email = next(c for c in d["categories"] if c["category"] == "email")
    assert (
        email["subjects_before"],
        email["subjects_after"],
        email["subjects_change"],
        email["direction"],
    ) == (
        400,
        500,
        100,
        "up",
    )
    assert next(c for c in d["categories"] if c["category"] == "health")["direction"] == "new"
    assert next(c for c in d["categories"] if c["category"] == "mac_address")["direction"] == "gone"
    changed = {(f["dataset"], f["field"]): f for f in d["changed"]}
    assert changed[("users", "email")]["records_change"] == 100


def test_inputs_are_checked_with_one_line_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"scan file .*nope.json does not exist"):
        load_scan(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON \\(line 1"):
        load_scan(bad)
    scan, _ = make_store(ES, 10, seed=1, started=T0)
    v2 = tmp_path / "v2.json"
    v2.write_text(json.dumps({**scan, "version": 2}))
    with pytest.raises(UserError, match="schema version 2.*re-run the scan"):
        load_scan(v2)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"version": 1, "findings": []}))
    with pytest.raises(UserError, match="missing started_at"):
        load_scan(partial)
    audit = tmp_path / "audit.json"
    audit.write_text(
        json.dumps({"version": 1, "checked_at": "2019-12-26T10:00:00Z", "targets": [{"name": "x"}]})
    )
    with pytest.raises(UserError, match="target #1 lacks"):
        load_audit(audit)
    not_db = tmp_path / "state.sqlite"
    not_db.write_text("this is not sqlite " * 100)
    with pytest.raises(UserError, match="not a spillguard watch history"):
        read_history(not_db)
    empty_db = tmp_path / "empty.sqlite"
    sqlite3.connect(empty_db).close()
    with pytest.raises(UserError, match="not a spillguard watch history"):
        read_history(empty_db)
    with pytest.raises(UserError, match="does not exist"):
        read_history(tmp_path / "missing.sqlite")
    with pytest.raises(UserError, match="no scan result"):
        build_report([])
    for e in (UserError("x"),):
        assert "\n" not in str(e)


def test_every_category_of_the_vocabulary_has_consequences() -> None:
    from spillguard.model import CATEGORIES as vocabulary  # the findings model's own vocabulary

    assert set(cq.CATEGORIES) == set(vocabulary)
    for name, impact in cq.CATEGORIES.items():
        assert impact.risk in cq.RISK_RANK and impact.group in cq.RISK_GROUPS, name
        assert impact.consequences and impact.measures and impact.advice and impact.we_do, name
    assert [c for c, i in cq.CATEGORIES.items() if i.special_category] == ["health"]
    assert cq.risk_of({"wifi_ssid"}) == "medium" and cq.risk_of({"wifi_ssid", "geolocation"}) == "high"


def test_an_audit_alone_shows_an_open_store_as_ongoing_with_unknown_start() -> None:
    scan, truth = make_store(ES, 120, seed=9, started=T0)
    audit = {
        "version": 1,
        "checked_at": "2019-12-26T09:21:00+00:00",
        "targets": [
            {
                "target": "http://es.internal:9200/",
                "name": "es",
                "protocol": "elasticsearch",
                "verdict": "open-read",
                "evidence": {"status": 200},
                "tls": False,
                "server_version": "6.8.0",
                "timings": {"total_ms": 20.0},
                "stakes": None,
            }
        ],
    }
    r = build_report([scan], [audit])
    w = r.stores[0]["exposure"].windows[0]
    assert w.ongoing and not w.start_known and w.start == "2019-12-26T09:21:00Z"
    assert r.scope["basis"] == "exposed" and r.art33["subjects_total"] == Count(truth.people, truth.people)
    assert "since at least 26 Dec 2019 09:21 UTC" in r.summary["exposure"]["text"]
    assert r.measures[0].startswith("URGENT")
    assert "since at least 26 December 2019" in r.art34[0]["what_happened"]


def test_history_written_by_the_real_watcher(tmp_path: Path) -> None:
    """The watch's own writer (`spillguard.audit.history.History`) produces what the report reads."""
    from spillguard.audit.history import History
    from spillguard.audit.verdict import ExposureVerdict
    from spillguard.verdicts import Verdict

    db = tmp_path / "state.sqlite"
    target = "http://***@es.internal:9200"
    checks = [
        (T0, Verdict.PROTECTED),
        (T0 + HOUR, Verdict.OPEN_READ),
        (T0 + 2 * HOUR, Verdict.UNREACHABLE),  # the watcher's network: not a closure
        (T0 + 3 * HOUR, Verdict.OPEN_READ),
        (T0 + 30 * HOUR, Verdict.PROTECTED),
        (T0 + 31 * HOUR, Verdict.PROTECTED),
    ]
    with History(db) as h:
        for at, verdict in checks:
            stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # the watcher's own timestamp format
            h.record(
                ExposureVerdict(target=target, protocol="elasticsearch", verdict=verdict, total_ms=5.0), stamp
            )
    scan, truth = make_store(ES, 200, seed=14, started=T0 + 40 * HOUR)
    r = build_report([scan], history=str(db))
    e = r.stores[0]["exposure"]
    assert e is not None and e.sources == ["watch"]
    assert [(w.start, w.end, w.hours, w.start_known) for w in e.windows] == [
        ("2019-12-04T10:00:00Z", "2019-12-05T15:00:00Z", 29.0, True)
    ]
    assert r.summary["exposure"]["status"] == "closed"
    assert r.art33["subjects_total"] == Count(truth.people, truth.people)


def test_audit_json_written_by_the_real_audit_model(tmp_path: Path) -> None:
    from spillguard.audit.verdict import AuditResult, ExposureVerdict
    from spillguard.verdicts import Verdict

    result = AuditResult(
        checked_at="2019-12-26T09:21:00.000000Z",
        targets=[
            ExposureVerdict(
                target="postgresql://***@db.internal:5432",
                protocol="postgresql",
                verdict=Verdict.WEAK_CREDENTIALS,
                evidence={"user": "postgres"},
            ),
            ExposureVerdict(
                target="http://es.internal:9200", protocol="elasticsearch", verdict=Verdict.PROTECTED
            ),
        ],
    )
    path = tmp_path / "audit.json"
    path.write_text(json.dumps(result.to_json()))
    pg, t_pg = make_store(PG, 150, seed=15, started=T0)
    es, _ = make_store(ES, 250, seed=16, started=T0)
    r = build_report([pg, es], [load_audit(path)])
    assert {s["target"]: s["exposure_status"] for s in r.stores} == {PG: "exposed", ES: "not-exposed"}
    assert r.scope["stores"] == [PG] and r.art33["subjects_total"] == Count(t_pg.people, t_pg.people)
    assert "default or easily guessed password" in r.art34[0]["what_happened"]
