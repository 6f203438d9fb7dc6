"""End to end: a real scan of generated demo data, through its JSON file, into the report.

The report must say exactly what the scan says, in the model and in every rendered format.
"""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import spillguard
from spillguard.demo import generate
from spillguard.report import Count, build_report, render
from spillguard.report.inputs import load_scan
from tests import ROOT
from tests.report.test_report_data import make_history


@pytest.fixture(scope="module")
def real_scan(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("demo") / "wyze-copy"
    truth = generate(folder, users=400, seed=2019)
    result = spillguard.scan([str(folder)], subject_field="user_id")
    path = folder.parent / "scan.json"
    path.write_text(json.dumps(result.to_json()))  # as `spillguard scan --format json -o` writes it
    return {"doc": load_scan(path), "truth": truth, "folder": folder, "tmp": folder.parent}


def test_report_numbers_equal_the_real_scan(real_scan: dict) -> None:
    doc = real_scan["doc"]
    r = build_report([doc])
    summary = doc["summary"]
    assert r.summary["records_scanned"] == summary["records_scanned"]
    assert r.summary["subjects_scanned"] == summary["subjects_scanned"]
    scanned = {c: v for c, v in summary["categories"].items() if v["records"] or v["values"]}
    assert {c.category for c in r.categories} == set(scanned)
    for c in r.categories:
        v = scanned[c.category]
        assert c.subjects == Count(v["subjects"], v["subjects"]), c.category
        assert c.records == Count(v["records"], v["records"]), c.category
        assert c.values == v["values"], c.category
    # Everyone with any personal data is at least the largest category and at most everyone scanned.
    people = r.summary["people_affected"]
    assert people.low == max(v["subjects"] for v in scanned.values())
    assert people.high == summary["subjects_scanned"]
    assert len(r.fields) == len(doc["findings"])
    assert {(d["dataset"], d["records_scanned"]) for d in r.datasets} == {
        (d["dataset"], d["records_scanned"]) for d in doc["datasets"]
    }
    assert r.summary["secrets_distinct"] == sum(s["distinct"] for s in doc.get("secrets", []))
    # The demo holds what the Wyze copy held; the report must name the consequences the issue lists.
    present = {c.category for c in r.categories}
    assert {"email", "secret", "wifi_ssid", "geolocation", "health"} <= present
    assert any("wifi_ssid" in c["categories"] for c in r.combinations)
    assert r.summary["special_categories"] == ["health"]
    assert r.summary["risk"] == "high"


def test_real_scan_renders_with_the_same_numbers_everywhere(real_scan: dict) -> None:
    doc = real_scan["doc"]
    target = doc["targets"][0]
    # The watcher reported this store open for two days (a folder target matches by identical string).
    t0 = datetime(2019, 12, 4, 9, 0, tzinfo=UTC)
    db = real_scan["tmp"] / "watch.sqlite"
    timeline = [
        (t0, "protected"),
        (t0 + timedelta(hours=5), "open-read"),
        (t0 + timedelta(hours=53), "protected"),
    ]
    make_history(db, {target: timeline}, timedelta(minutes=30))
    r = build_report([doc], history=str(db), contact="privacy@example.com")
    assert r.scope["basis"] == "exposed" and r.summary["exposure"]["hours"] == 48.0
    html, md = render(r, "html"), render(r, "md")
    out = json.loads(render(r, "json"))
    health = doc["summary"]["categories"]["health"]["subjects"]
    email = doc["summary"]["categories"]["email"]["subjects"]
    assert next(c for c in out["categories"] if c["category"] == "health")["subjects"]["low"] == health
    for text in (html, md):
        assert f"Health data: {health:,} people" in text
        assert f"E-mail addresses: {email:,} people" in text
        assert "48.0" in text
    # What the scanner masked stays masked: no finding sample is longer than what the scan gave.
    samples = {s for f in doc["findings"] for s in f.get("samples") or []}
    assert all(s in samples for f in out["fields"] for s in f["samples"])


def test_raw_demo_values_never_reach_the_report(real_scan: dict) -> None:
    """Read the generated files themselves and make sure none of their secret values appears."""
    folder: Path = real_scan["folder"]
    users = folder / "users.jsonl"
    if not users.exists():
        users = next(folder.glob("users.jsonl*"))
    tokens = []
    with (
        gzip.open(users, "rt", encoding="utf-8") if users.suffix == ".gz" else users.open(encoding="utf-8")
    ) as fh:
        for line in fh:
            rec = json.loads(line)
            tokens += [rec.get("api_token"), (rec.get("alexa") or {}).get("access_token"), rec.get("email")]
    tokens = [t for t in tokens if isinstance(t, str) and len(t) > 8]
    assert len(tokens) > 400
    text = "".join(render(build_report([real_scan["doc"]]), f) for f in ("html", "md", "json"))
    assert not [t for t in tokens if t in text]


def test_cli_scan_then_report_as_the_docs_show(real_scan: dict) -> None:
    """`spillguard scan ... --format json -o` then `spillguard report ... -o`, through the real entry point."""
    import os
    import stat
    import subprocess
    import sys

    tmp: Path = real_scan["tmp"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = [sys.executable, "-c", "from spillguard.cli import main; main()"]
    scan_json = tmp / "cli-scan.json"
    proc = subprocess.run(
        [
            *run,
            "scan",
            str(real_scan["folder"]),
            "--subject-field",
            "user_id",
            "--show-samples",
            "--no-progress",
            "--format",
            "json",
            "-o",
            str(scan_json),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode in (0, 1), proc.stderr  # 1: findings at or above --fail-on
    out = tmp / "impact.html"
    proc = subprocess.run(
        [
            *run,
            "report",
            str(scan_json),
            "--organisation",
            "Example Cams Ltd",
            "--contact",
            "dpo@example.com",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    html = out.read_text()
    doc = json.loads(scan_json.read_text())
    people = doc["summary"]["categories"]["email"]["subjects"]
    assert f"E-mail addresses: {people:,} people" in html
    samples = [s for f in doc["findings"] for s in f["samples"]]
    assert samples and any(
        s in html for s in samples[:20]
    )  # masked samples are shown as the scanner masked them


def _documented(section: str) -> dict[str, str]:
    """The rows of the JSON table in docs/report.md: key -> content."""
    text = (ROOT / "docs" / "report.md").read_text()
    table = text[text.index(section) :]
    rows = {}
    for line in table.splitlines()[1:]:
        if line.startswith("| `"):
            cells = line.split(" | ")
            for key in re.findall(r"`(\w+)`", cells[0]):
                rows[key] = cells[1]
        elif rows and not line.startswith("|"):
            break
    return rows


def test_docs_describe_every_key_of_the_json_report(real_scan: dict) -> None:
    old = json.loads(json.dumps(real_scan["doc"]))
    r = build_report([real_scan["doc"]], baseline=old).to_json()
    rows = _documented("## JSON format")
    assert set(rows) == set(r), set(rows) ^ set(r)
    nested = {
        "summary": r["summary"],
        "scope": r["scope"],
        "stores": r["stores"][0],
        "datasets": r["datasets"][0],
        "fields": r["fields"][0],
        "secrets": r["secrets"][0],
        "categories": r["categories"][0],
        "art33": r["art33"],
        "art34": r["art34"][0],
        "diff": r["diff"],
        "consequences": r["consequences"][0],
    }
    for key, obj in nested.items():
        missing = [k for k in obj if f"`{k}`" not in rows[key]]
        assert not missing, (key, missing)
