"""SQLite source on a database file loaded with the generated IoT dataset."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import orjson
import pytest

from spillguard.errors import UserError
from spillguard.scan.options import ScanOptions
from spillguard.scan.run import run_scan
from tests import ROOT, storedata
from tests.storedata import USERS, column_types, dataset_records

SQL_TYPES = {"json": "TEXT", "int": "INTEGER", "float": "REAL", "text": "TEXT"}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    folder, truth, file_result = storedata.generated_dataset(tmp_path_factory, "sqlitedemo", seed=15)
    path = folder / "iot.sqlite"
    db = sqlite3.connect(path)
    for table, recs in dataset_records(folder).items():
        cols = column_types(recs)
        db.execute(f'CREATE TABLE "{table}" ({", ".join(f"{c!r} {SQL_TYPES[t]}" for c, t in cols.items())})'.replace("'", '"'))
        db.executemany(
            f'INSERT INTO "{table}" VALUES ({", ".join("?" * len(cols))})',
            [[orjson.dumps(r[c]).decode() if t == "json" and r.get(c) is not None else r.get(c) for c, t in cols.items()] for r in recs],
        )
    db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body BLOB) ")
    db.executemany("INSERT INTO notes VALUES (?, ?)", [(i, f"reach me at blob{i}@example.com".encode()) for i in range(10)])
    db.commit()
    db.close()
    os.chmod(path, 0o400)  # read-only file: the scan must not need write access
    return path, truth, file_result


def test_exhaustive_scan_matches_file_scan(loaded):
    path, _truth, _ = loaded
    storedata.assert_scan_matches_file_scan(f"sqlite:///{path}", loaded, partition_rows=400, exclude=["notes"])


def test_rowid_partitions_blobs_and_sample(loaded):
    from spillguard.sources import open_target

    path, _truth, _ = loaded
    source = open_target(f"sqlite:///{path}", partition_rows=300)
    try:
        users = source.dataset("users")
        parts = users.partitions()
        assert len(parts) >= 4
        assert storedata.records_read(users, parts) == USERS
    finally:
        source.close()
    notes, _ = run_scan([f"sqlite:///{path}"], ScanOptions(seed=1, workers=1, source_options={"include": ["notes"]}))
    assert notes.categories["email"].values == 10
    a, _ = run_scan([f"sqlite:///{path}"], ScanOptions(seed=2, workers=1, source_options={"include": ["users"], "sample": 70}))
    assert [d["records_scanned"] for d in a.datasets] == [70]


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(UserError, match="no such SQLite file"):
        run_scan([f"sqlite:///{tmp_path}/nope.db"], ScanOptions(workers=1))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", "from spillguard.cli import main; main()", "scan", *args],
                          capture_output=True, text=True, timeout=120, env=env)


def test_config_file_targets_patterns_and_subject_fields(loaded, tmp_path):
    path, truth, _ = loaded
    cfg = tmp_path / "spillguard.toml"
    cfg.write_text(
        f'[[target]]\nname = "iot"\nurl = "sqlite:///{path}"\ninclude = ["users", "payments"]\n'
        'subject_fields = { "payments" = "card_number" }\nsample = 100\n'
    )
    proc = _cli("--config", str(cfg), "--format", "json", "--fail-on", "never", "--workers", "1", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    datasets = {d["dataset"]: d for d in doc["datasets"]}
    assert set(datasets) == {"users", "payments"}
    assert datasets["payments"]["subject_field"] == "card_number"
    assert datasets["users"]["records_scanned"] == 100  # the target's own `sample`


def test_cli_rejects_bad_mode_and_config_in_one_line(tmp_path):
    both = _cli(str(tmp_path), "--sample", "10", "--full")
    assert both.returncode == 2 and len(both.stderr.strip().splitlines()) == 1 and "--full" in both.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[[target]]\nurl = "sqlite:///x.db"\nsampel = 3\n')
    proc = _cli("--config", str(bad))
    assert proc.returncode == 2 and "unknown key 'sampel'" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
