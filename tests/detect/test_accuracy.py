"""Field-level precision/recall and exact subject counts on the generated IoT dataset (ground truth)."""

from __future__ import annotations

from collections import defaultdict

from spillguard.model import CATEGORIES

REPORTED = ("high", "medium")


def test_field_level_precision_and_recall(demo_data, demo_result):
    _folder, truth = demo_data
    predicted = {(f.dataset, f.field, f.category) for f in demo_result.findings if f.confidence in REPORTED}
    expected = truth.expected_pairs()
    tp = predicted & expected
    precision = len(tp) / len(predicted)
    recall = len(tp) / len(expected)
    print(f"\nfield-level precision {precision:.4f} recall {recall:.4f} ({len(tp)} of {len(expected)} expected)")
    assert precision >= 0.99, f"false positives: {sorted(predicted - expected)}"
    assert recall >= 0.99, f"missed: {sorted(expected - predicted)}"


def test_no_decoy_field_above_low_confidence(demo_data, demo_result):
    _folder, truth = demo_data
    decoys = truth.decoys()
    loud = [(f.dataset, f.field, f.rule, f.confidence) for f in demo_result.findings if (f.dataset, f.field) in decoys and f.confidence != "low"]
    assert loud == []


def test_subject_counts_are_exact_per_field(demo_data, demo_result):
    _folder, truth = demo_data
    # One finding per (field, rule); a field can carry several rules of one category (ipv4 + ipv6).
    by_field: dict[tuple[str, str, str], list] = defaultdict(list)
    for f in demo_result.findings:
        if f.confidence in REPORTED:
            by_field[(f.dataset, f.field, f.category)].append(f)
    for key, ids in truth.subjects.items():
        findings = by_field[key]
        assert findings, f"nothing reported for {key}"
        if len(findings) == 1:
            assert findings[0].subjects_matched == len(ids), key
        else:
            assert max(f.subjects_matched for f in findings) <= len(ids) <= sum(f.subjects_matched for f in findings), key


def test_category_summary_counts_distinct_people(demo_data, demo_result):
    _folder, truth = demo_data
    cats = demo_result.to_json()["summary"]["categories"]
    for category in CATEGORIES:
        expected = truth.category_subjects(category)
        if not expected:
            assert category not in cats or cats[category]["subjects"] == 0, category
            continue
        assert cats[category]["subjects"] == len(expected), category
    assert demo_result.subjects_scanned == truth.users
    assert demo_result.records_scanned == sum(truth.records.values())


def test_records_matched_counts_records_not_values(demo_data, demo_result):
    _folder, truth = demo_data
    macs = [f for f in demo_result.findings if f.field == "devices[].mac"]
    # users have up to three devices: more MAC values than records
    assert sum(f.values_matched for f in macs) > max(f.records_matched for f in macs)
    users_with_devices = len(truth.subjects[("users.jsonl", "devices[].mac", "mac_address")])
    cat = demo_result.to_json()["summary"]["categories"]["mac_address"]
    assert cat["records"] == users_with_devices


def test_samples_are_masked_and_secrets_never_raw(demo_data, demo_result):
    folder, _truth = demo_data
    text = (folder / "users.jsonl").read_text()
    for f in demo_result.findings:
        assert len(f.samples) <= 3
        for s in f.samples:
            if f.category in ("secret", "password", "email", "phone", "credit_card", "iban"):
                assert s not in text, (f.rule, s)
    atza = [f for f in demo_result.findings if f.rule == "lwa_access_token"][0]
    assert all(s.startswith("Atza|IwEB…(") and s.endswith(" chars)") for s in atza.samples)
    secrets = {s["rule"]: s for s in demo_result.secrets}
    assert secrets["lwa_access_token"]["distinct"] == atza.values_distinct
    assert all(fp.startswith("hmac-sha256:") for fp in secrets["lwa_access_token"]["fingerprints"])


def test_people_and_records_affected_overall_are_exact(demo_data, demo_result):
    _folder, truth = demo_data
    everyone = set().union(*truth.subjects.values())
    doc = demo_result.to_json()["summary"]
    assert doc["subjects_affected"] == len(everyone)
    # every user record has an e-mail; every other dataset's records carry at least one finding except
    # support tickets whose note holds no personal data (a user has at most one ticket)
    tickets = truth.records["support_tickets.csv"]
    with_contact = len(set().union(*(ids for (d, f, _c), ids in truth.subjects.items() if (d, f) == ("support_tickets.csv", "note"))))
    assert doc["records_affected"] == sum(truth.records.values()) - tickets + with_contact
