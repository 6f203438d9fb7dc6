"""Source options apply to every kind of target (issue 9, "Fix 3"): include, exclude, per-dataset subject
fields and the scan-wide subject field, for folders of files and for a store (SQLite); an unknown option
is an error, never silently dropped."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

import spillguard
from spillguard.errors import UserError
from spillguard.scan.options import ScanOptions
from spillguard.scan.run import run_scan

USERS = [{"uid": f"u{i}", "email": f"user{i}@example.com"} for i in range(30)]
ORDERS = [{"customer": f"c{i % 10}", "email": f"buyer{i}@example.com"} for i in range(40)]
TMP = [{"email": f"tmp{i}@example.com"} for i in range(5)]


@pytest.fixture(params=["folder", "sqlite"])
def target(request, tmp_path) -> tuple[str, dict[str, str]]:
    """A target holding three datasets, and the names it gives them."""
    if request.param == "folder":
        (tmp_path / "sales").mkdir()
        (tmp_path / "users.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in USERS))
        (tmp_path / "sales" / "orders.csv").write_text("customer,email\n" + "".join(f"{r['customer']},{r['email']}\n" for r in ORDERS))
        (tmp_path / "tmp.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in TMP))
        return str(tmp_path), {"users": "users.jsonl", "orders": "sales/orders.csv", "tmp": "tmp.jsonl"}
    path = tmp_path / "app.db"
    db = sqlite3.connect(path)
    for table, rows in (("users", USERS), ("orders", ORDERS), ("tmp", TMP)):
        cols = list(rows[0])
        db.execute(f"CREATE TABLE {table} ({', '.join(cols)})")
        db.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(cols))})", [[r[c] for c in cols] for r in rows])
    db.commit()
    db.close()
    return f"sqlite:///{path}", {"users": "users", "orders": "orders", "tmp": "tmp"}


def _datasets(result) -> set[str]:
    return {d["dataset"] for d in result.to_json()["datasets"]}


def test_include_selects_datasets(target):
    url, names = target
    result = spillguard.scan(url, include=["users*", "*orders*"])
    assert _datasets(result) == {names["users"], names["orders"]}
    assert result.records_scanned == 70


def test_exclude_drops_datasets(target):
    url, names = target
    result = spillguard.scan(url, exclude_datasets=["tmp*"])
    assert _datasets(result) == {names["users"], names["orders"]}


def test_include_and_exclude_together(target):
    url, names = target
    result = spillguard.scan(url, include=["*"], exclude_datasets=["*orders*", "tmp*"])
    assert _datasets(result) == {names["users"]}


def test_per_dataset_subject_fields(target):
    url, names = target
    result = spillguard.scan(url, include=["*orders*"], subject_fields={"*orders*": "customer"})
    (ds,) = result.to_json()["datasets"]
    assert ds["subject_field"] == "customer"
    assert result.subjects_scanned == 10  # ten customers behind forty orders


def test_per_target_options_from_the_config_file(target, tmp_path):
    """The per-target options of spillguard.toml reach the target (through ScanOptions.target_options)."""
    url, names = target
    options = ScanOptions(target_options={url: {"include": ["*orders*"], "subject_fields": {"*orders*": "customer"}}})
    result, _ = run_scan([url], options)
    assert _datasets(result) == {names["orders"]} and result.subjects_scanned == 10


def test_scan_wide_subject_field(target):
    url, _ = target
    result = spillguard.scan(url, include=["*users*"], subject_field="uid")
    assert result.subjects_scanned == 30


def test_an_unknown_option_is_an_error(target):
    url, _ = target
    with pytest.raises(UserError, match="unknown source option 'inclde'"):
        spillguard.scan(url, inclde=["users*"])


def test_include_on_the_command_line_and_in_the_config_file(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "users.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in USERS))
    (folder / "tmp.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in TMP))
    config = tmp_path / "spillguard.toml"
    config.write_text(f'[[target]]\nurl = "{folder}"\nexclude = ["tmp*"]\nsubject_fields = {{ "users*" = "uid" }}\n')
    exe = shutil.which("spillguard") or str(Path(sys.executable).with_name("spillguard"))
    proc = subprocess.run([exe, "scan", "--config", str(config), "--format", "json", "--no-progress"], capture_output=True, text=True,
                          timeout=120, env={**os.environ})
    doc = orjson.loads(proc.stdout)
    assert {d["dataset"] for d in doc["datasets"]} == {"users.jsonl"}
    assert doc["summary"]["subjects_scanned"] == 30
