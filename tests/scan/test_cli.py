"""The `spillguard` command: output formats, exit codes, masked output, clear errors."""

from __future__ import annotations

import csv
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

EXE = shutil.which("spillguard") or str(Path(sys.executable).with_name("spillguard"))
SCHEMA_KEYS = {"version", "started_at", "finished_at", "targets", "datasets", "findings", "summary", "secrets", "errors"}
FINDING_KEYS = {"dataset", "field", "category", "rule", "confidence", "records_scanned", "records_matched",
                "values_matched", "subjects_matched", "samples", "target", "values_distinct"}


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, cwd=cwd, timeout=300, env={**os.environ, "COLUMNS": "200"})


def test_json_output_follows_the_documented_schema(demo_data):
    folder, truth = demo_data
    proc = run("scan", str(folder), "--format", "json", "--show-samples")
    assert proc.returncode == 1, proc.stderr  # findings at or above the default --fail-on medium
    doc = json.loads(proc.stdout)
    assert set(doc) == SCHEMA_KEYS and doc["version"] == 1
    assert all(set(f) == FINDING_KEYS for f in doc["findings"])
    assert {f["confidence"] for f in doc["findings"]} <= {"high", "medium", "low"}
    assert set(doc["summary"]) == {"records_scanned", "subjects_scanned", "subjects_affected", "records_affected", "subjects_exact", "malformed_records", "complete", "categories"}
    assert doc["summary"]["complete"] is True
    assert doc["summary"]["subjects_scanned"] == truth.users
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal


def test_no_raw_secret_or_personal_value_in_any_output(demo_data, tmp_path):
    folder, _truth = demo_data
    users = [json.loads(line) for line in (folder / "users.jsonl").read_text().splitlines()]
    raw = {u["email"] for u in users} | {u["api_token"] for u in users} | {u["password_hash"] for u in users}
    raw |= {u["alexa"]["access_token"] for u in users if "alexa" in u}
    for fmt in ("table", "json", "ndjson"):
        out = run("scan", str(folder), "--format", fmt, "--show-samples").stdout
        leaked = [r for r in raw if r in out]
        assert leaked == [], fmt


def test_ndjson_is_one_object_per_line(demo_data):
    folder, _truth = demo_data
    lines = run("scan", str(folder), "--format", "ndjson").stdout.splitlines()
    docs = [json.loads(line) for line in lines]
    assert docs[-1]["type"] == "summary"
    assert {d["type"] for d in docs[:-1]} <= {"finding", "error"}


def test_table_output_lists_findings_and_summary(demo_data):
    folder, _truth = demo_data
    out = run("scan", str(folder), "--show-samples").stdout
    assert "Findings" in out and "alexa.access_token" in out and "Atza|IwEB…(" in out
    assert "People and records affected per category" in out


def test_exit_codes(demo_data, tmp_path):
    folder, _truth = demo_data
    clean = tmp_path / "clean.jsonl"
    clean.write_text('{"id": 1, "colour": "blue"}\n')
    assert run("scan", str(clean)).returncode == 0
    assert run("scan", str(folder / "users.jsonl")).returncode == 1
    assert run("scan", str(folder / "users.jsonl"), "--fail-on", "never").returncode == 0
    notes_only = run("scan", str(folder / "support_tickets.csv"), "--only", "phone", "--fail-on", "high")
    assert notes_only.returncode == 0  # free-text phones are medium confidence


@pytest.mark.parametrize(
    "args,needle",
    [
        (["scan", "/nonexistent/file.jsonl"], "/nonexistent/file.jsonl: no such file or folder"),
        (["scan", "README.xlsx"], "unknown file type"),
        (["scan", "ftp://example/x"], "unknown scheme 'ftp'"),
        (["scan", "x.jsonl", "--only", "nonsense"], "--only nonsense"),
        (["scan", "x.jsonl", "--rules", "missing.toml"], "missing.toml: rule file not found"),
    ],
)
def test_user_errors_are_one_line_exit_2(tmp_path, args, needle):
    (tmp_path / "README.xlsx").write_text("x")
    (tmp_path / "x.jsonl").write_text('{"a": 1}\n')
    proc = run(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_subjects_out_is_owner_only_and_lists_categories_per_person(demo_data, tmp_path):
    folder, truth = demo_data
    out = tmp_path / "people.csv"
    proc = run("scan", str(folder), "--subjects-out", str(out), "--fail-on", "never")
    assert proc.returncode == 0
    assert "personal data" in proc.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    rows = list(csv.DictReader(out.open()))
    by_id = {r["subject"]: r for r in rows}
    assert len(by_id) == len(rows) == truth.users  # every user has an e-mail in the demo
    health = truth.category_subjects("health")
    assert {r["subject"] for r in rows if "health" in r["categories"].split(";")} == health
    some = next(iter(health))
    assert "@" in by_id[some]["email"]
    jsonl = tmp_path / "people.jsonl"
    run("scan", str(folder / "users.jsonl"), "--subjects-out", str(jsonl), "--fail-on", "never")
    first = json.loads(jsonl.read_text().splitlines()[0])
    assert set(first) == {"subject", "email", "categories", "datasets"}


def test_user_rules_only_and_except(tmp_path):
    rules = tmp_path / "acme.toml"
    rules.write_text(
        '[[rule]]\nid = "acme_device_key"\ncategory = "secret"\nvalue = \'\'\'acmedk_[0-9a-f]{24}\'\'\'\nspecific = true\n'
        'examples = ["acmedk_7f3a9c1e5b2d80467c1d9e3f"]\n'
    )
    data = tmp_path / "d.jsonl"
    data.write_text('{"uid": "1", "cfg": "key=acmedk_7f3a9c1e5b2d80467c1d9e3f", "mail": "x@y.org"}\n')
    doc = json.loads(run("scan", str(data), "--rules", str(rules), "--format", "json").stdout)
    assert {f["rule"] for f in doc["findings"]} == {"acme_device_key", "email"}
    doc = json.loads(run("scan", str(data), "--rules", str(rules), "--except", "email", "--format", "json").stdout)
    assert {f["rule"] for f in doc["findings"]} == {"acme_device_key"}
    doc = json.loads(run("scan", str(data), "--only", "email", "--format", "json").stdout)
    assert {f["rule"] for f in doc["findings"]} == {"email"}


def test_rules_command_lists_every_rule():
    proc = run("rules")
    assert proc.returncode == 0
    for rid in ("lwa_access_token", "opaque_token_field", "wifi_ssid", "us_ssn"):
        assert rid in proc.stdout


def test_demo_command_runs_without_a_server(tmp_path):
    proc = run("demo", "--dir", str(tmp_path / "demo"), "--users", "300")
    assert proc.returncode == 0, proc.stderr
    assert "alexa.access_token" in proc.stdout
    assert stat.S_IMODE((tmp_path / "demo" / "users.jsonl").stat().st_mode) == 0o600


def test_output_file_is_owner_only(demo_data, tmp_path):
    folder, _truth = demo_data
    out = tmp_path / "scan.json"
    run("scan", str(folder / "users.jsonl"), "--format", "json", "-o", str(out))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert json.loads(out.read_text())["version"] == 1


def test_progress_bar_only_on_a_terminal(demo_data):
    """On a terminal, stderr shows a progress bar; piped, it stays silent (checked in the schema test)."""
    import pty
    import select

    folder, _truth = demo_data
    leader, follower = pty.openpty()
    proc = subprocess.Popen([EXE, "scan", str(folder), "--format", "json"], stdout=subprocess.PIPE, stderr=follower,
                            env={**os.environ, "COLUMNS": "120", "TERM": "xterm"})
    os.close(follower)
    seen = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    out, _ = proc.communicate(timeout=120)
    os.close(leader)
    assert json.loads(out)["version"] == 1
    assert b"scanning" in seen


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or not shutil.which("taskset"), reason="needs CPU affinity and taskset")
def test_default_workers_follow_the_cores_the_process_may_use():
    code = "from spillguard.scan.executors import default_workers; print(default_workers())"
    pinned = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert pinned.stdout.strip() == "1"  # pinned to one core: one worker, however many cores the machine has
    free = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(free.stdout) == len(os.sched_getaffinity(0))


def test_rules_category_secret_lists_every_credential_format_by_provider():
    proc = run("rules", "--category", "secret", "--format", "tsv")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert all(len(r) == 5 and r[2] == "secret" for r in rows)
    assert len(rows) >= 150
    ids = {r[1] for r in rows}
    for rid in ("slack_app_token", "slack_webhook_url", "gitlab_glrt", "gitlab_runner_registration", "aws_access_key_id",
                "stripe_key", "google_api_key", "artifactory_api_key", "discord_bot_token", "npm_token", "pypi_token",
                "mailchimp_api_key", "telegram_bot_token", "azure_storage_account_key", "square_access_token",
                "anthropic_api_key", "age_secret_key", "secret_assignment", "bearer_token"):
        assert rid in ids, rid
    providers = [r[0] for r in rows]
    assert providers == sorted(providers, key=str.lower) and "-" not in providers  # every rule names its provider
    table = run("rules", "--category", "secret")
    assert table.returncode == 0 and "anthropic_api_key" in table.stdout
    bad = run("rules", "--category", "secrets")
    assert bad.returncode == 2 and "--category secrets" in bad.stderr and "Traceback" not in bad.stderr
