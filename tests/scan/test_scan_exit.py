"""`spillguard scan` exit codes, the `complete` flag, outputs checked before scanning, help and version."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXE = shutil.which("spillguard") or str(Path(sys.executable).with_name("spillguard"))
GOOD = '{"user_id": %d, "email": "person%d@example.com"}\n'


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})


@pytest.fixture()
def broken_jsonl(tmp_path: Path) -> Path:
    """Three good records and one malformed line: findings, and one record not scanned."""
    path = tmp_path / "users.jsonl"
    path.write_text(GOOD % (1, 1) + GOOD % (2, 2) + '{"user_id": 3, "email": \n' + GOOD % (4, 4))
    return path


@pytest.mark.parametrize("fmt", ["json", "ndjson", "table"])
def test_a_malformed_record_makes_the_scan_incomplete_exit_3_in_every_format(broken_jsonl, fmt):
    proc = run("scan", str(broken_jsonl), "--format", fmt)
    assert proc.returncode == 3, proc.stderr  # 3 (incomplete) wins over 1 (findings)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "incomplete" in lines[0] and "1 malformed record" in lines[0], proc.stderr
    if fmt == "json":
        summary = json.loads(proc.stdout)["summary"]
        assert summary["complete"] is False and summary["records_scanned"] == 3 and summary["malformed_records"] == 1
    elif fmt == "ndjson":
        summary = [json.loads(line) for line in proc.stdout.splitlines()][-1]
        assert summary["type"] == "summary" and summary["complete"] is False


def test_a_complete_scan_exits_1_with_findings_and_0_without(tmp_path):
    path = tmp_path / "users.jsonl"
    path.write_text(GOOD % (1, 1) + GOOD % (2, 2))
    found = run("scan", str(path), "--format", "json")
    assert found.returncode == 1 and json.loads(found.stdout)["summary"]["complete"] is True and found.stderr == ""
    assert run("scan", str(path), "--format", "json", "--fail-on", "never").returncode == 0
    clean = tmp_path / "clean.jsonl"
    clean.write_text('{"n": 1}\n')
    proc = run("scan", str(clean))
    assert proc.returncode == 0 and "in 1 record" in proc.stdout and "in 1 dataset." in proc.stdout, proc.stdout


def test_a_failed_dataset_beside_a_good_one_is_incomplete_not_findings(tmp_path):
    (tmp_path / "good.jsonl").write_text(GOOD % (1, 1))
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    proc = run("scan", str(tmp_path), "--format", "json")
    assert proc.returncode == 3, proc.stderr
    assert "1 failed dataset" in proc.stderr and json.loads(proc.stdout)["summary"]["complete"] is False


def test_nothing_scanned_is_exit_2(tmp_path):
    path = tmp_path / "all-broken.jsonl"
    path.write_text("{not json\n[1, 2\n")
    proc = run("scan", str(path), "--format", "json")
    assert proc.returncode == 2 and "nothing could be scanned" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("option", "where", "says"),
    [
        ("-o", "folder", "is a folder"),
        ("-o", "missing/out.json", "does not exist"),
        ("-o", "/proc/version/out.json", "does not exist"),
        ("--subjects-out", "folder", "is a folder"),
        ("--subjects-out", "/proc/spillguard.csv", "cannot write there"),
    ],
)
def test_unwritable_outputs_are_refused_before_scanning(tmp_path, option, where, says):
    (tmp_path / "folder").mkdir()
    data = tmp_path / "users.jsonl"
    data.write_text(GOOD % (1, 1))
    target = where if where.startswith("/") else str(tmp_path / where)
    progress = tmp_path / "never-created.log"  # --state would be created by the scan: it must not exist after
    args = ["scan", str(data), option, target]
    if option == "-o":
        args += ["--state", str(progress)]
    proc = run(*args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not progress.exists(), "the scan started although its output cannot be written"


def test_state_in_a_missing_folder_is_one_line(tmp_path):
    data = tmp_path / "users.jsonl"
    data.write_text(GOOD % (1, 1))
    proc = run("scan", str(data), "--state", str(tmp_path / "no" / "such" / "scan.state"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "does not exist" in proc.stderr, proc.stderr


def test_version_and_help_without_bool_placeholders():
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("spillguard ")
    for command in ("scan", "audit", "watch", "report"):
        help_text = run(command, "--help").stdout
        assert "--help" in help_text and "<bool>" not in help_text, command
