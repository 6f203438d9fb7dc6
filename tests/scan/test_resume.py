"""Checkpoint and resume: a scan interrupted by Ctrl-C and then by SIGKILL, resumed, equals an uninterrupted run."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from tests import ROOT
from tests.servers import postgres_server
from tests.storedata import USERS, dataset_records, load_postgres

pytest.importorskip("psycopg")
CLI = [sys.executable, "-c", "from spillguard.cli import main; main()", "scan"]


def _finished(state: Path) -> int:
    if not state.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT count(*) FROM partition").fetchone()[0]
    except sqlite3.OperationalError:
        return 0  # tables not created yet


def _start(args: list[str], out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([*CLI, *args, "--format", "json", "-o", str(out), "--fail-on", "never"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(state: Path, at_least: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = _finished(state)
        if n >= at_least:
            return n
        if proc.poll() is not None:
            pytest.fail(f"scan ended before it could be interrupted: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.05)
    pytest.fail("no partition was checkpointed in time")


def _wait_gone(marker: str, timeout: float = 10) -> bool:
    """True once no process's command line mentions `marker` (forked workers share the parent's)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmdline = (entry / "cmdline").read_bytes()
                    status = (entry / "status").read_text()
                except OSError:
                    continue
                if marker.encode() in cmdline and "State:\tZ" not in status:
                    alive.append(entry.name)
        if not alive:
            return True
        time.sleep(0.1)
    return False


def _comparable(path: Path) -> dict:
    doc = orjson.loads(path.read_bytes())
    findings = sorted(
        (f["dataset"], f["field"], f["rule"], f["records_matched"], f["values_matched"], f.get("subjects_matched"), f.get("values_distinct"))
        for f in doc["findings"]
    )
    return {"summary": doc["summary"], "findings": findings, "datasets": sorted(orjson.dumps(d) for d in doc["datasets"])}


def test_interrupted_and_killed_scan_resumes_to_identical_counts(tmp_path):
    from spillguard.demo import generate

    generate(tmp_path / "data", users=USERS, seed=21)
    with postgres_server() as pg:
        load_postgres(pg.admin_url, dataset_records(tmp_path / "data"))
        # Small partitions and a request cap make the scan slow enough to interrupt midway.
        common = [pg.url, "--workers", "2", "--partition-rows", "100", "--no-progress"]
        state = tmp_path / "scan.state"

        proc = _start([*common, "--state", str(state), "--max-rps", "3"], tmp_path / "interrupted.json")
        _wait_for(state, 2, proc)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=60) == 130
        assert stat.S_IMODE(state.stat().st_mode) == 0o600
        first = _finished(state)

        proc = _start([*common, "--state", str(state), "--resume", "--max-rps", "3"], tmp_path / "killed.json")
        _wait_for(state, first + 2, proc)
        proc.kill()  # SIGKILL: no chance to clean up
        proc.wait(timeout=30)
        # Its worker processes must not outlive it (they would hold store connections forever).
        assert _wait_gone(str(tmp_path / "killed.json")), "worker processes survived their killed parent"
        killed_at = _finished(state)
        assert killed_at > first

        proc = _start([*common, "--state", str(state), "--resume"], tmp_path / "resumed.json")
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        total = _finished(state)
        assert total > killed_at

        proc = _start(common, tmp_path / "straight.json")
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()

    resumed, straight = _comparable(tmp_path / "resumed.json"), _comparable(tmp_path / "straight.json")
    assert resumed == straight
    assert resumed["summary"]["records_scanned"] == sum(len(v) for v in dataset_records(tmp_path / "data").values())
    assert resumed["summary"]["subjects_scanned"] == USERS


def test_state_file_guards(tmp_path):
    from spillguard.demo import generate
    from spillguard.errors import UserError
    from spillguard.scan.options import ScanOptions
    from spillguard.scan.run import run_scan

    generate(tmp_path / "d", users=200, seed=3)
    state = tmp_path / "s.state"
    a, _ = run_scan([str(tmp_path / "d")], ScanOptions(workers=1, state=state))
    with pytest.raises(UserError, match="--resume"):
        run_scan([str(tmp_path / "d")], ScanOptions(workers=1, state=state))
    with pytest.raises(UserError, match="other targets or options"):
        run_scan([str(tmp_path / "d")], ScanOptions(workers=1, state=state, resume=True, only=["email"]))
    with pytest.raises(UserError, match="personal data"):
        run_scan([str(tmp_path / "d")], ScanOptions(workers=1, state=tmp_path / "t.state", subjects_out=True))
    # resuming a finished scan reads everything from the state file and reports the same
    b, _ = run_scan([str(tmp_path / "d")], ScanOptions(workers=1, state=state, resume=True))
    assert a.to_json()["summary"]["categories"] == b.to_json()["summary"]["categories"]
    assert a.records_scanned == b.records_scanned > 200
    assert [f.subjects_matched for f in a.findings] == [f.subjects_matched for f in b.findings]
