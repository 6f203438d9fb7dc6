"""The state file (no pickle, no raw names), resume refusing changed inputs, and Ctrl-C."""

from __future__ import annotations

import io
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import psutil
import pytest

from tests import ROOT

EXE = shutil.which("spillguard") or str(Path(sys.executable).with_name("spillguard"))
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120, env=ENV)


def _comparable(text: str) -> dict:
    doc = orjson.loads(text)
    for key in ("started_at", "finished_at"):
        doc.pop(key)
    return doc


def test_state_file_keeps_no_raw_names_and_no_pickle(tmp_path):
    data = tmp_path / "exports"
    data.mkdir()
    # A file named after a customer, an object keyed by another customer's e-mail address.
    (data / "customer-jane.doe@example.com.jsonl").write_text(
        "".join(orjson.dumps({"user_id": i, "email": f"p{i}@example.com", "contacts": {"john.smith@example.org": f"+44 20 7946 0{i:03d}"}}).decode() + "\n" for i in range(50))
    )
    (data / "plain.jsonl").write_text("".join(f'{{"user_id": {i}, "token": "Atza|{"x" * 360}{i}"}}\n' for i in range(20)))
    state = tmp_path / "scan.state"
    first = run("scan", str(data), "--format", "json", "--state", str(state), "--workers", "1", "--show-samples")
    assert first.returncode == 1, first.stderr
    straight = run("scan", str(data), "--format", "json", "--workers", "1", "--show-samples")
    assert _comparable(first.stdout) == _comparable(straight.stdout)

    raw = b"".join(p.read_bytes() for p in tmp_path.glob("scan.state*"))
    for name in (b"jane.doe", b"john.smith", str(data).encode(), b"customer-jane"):
        assert name not in raw, name
    with sqlite3.connect(state) as db:
        rows = db.execute("SELECT doc, arrays FROM partition").fetchall()
    assert len(rows) == 2
    for doc, arrays in rows:
        orjson.loads(doc)
        with np.load(io.BytesIO(arrays), allow_pickle=False) as npz:  # refuses object arrays: nothing to unpickle
            assert all(npz[name].dtype != object for name in npz.files)

    resumed = run("scan", str(data), "--format", "json", "--state", str(state), "--resume", "--workers", "1", "--show-samples")
    assert resumed.returncode == 1, resumed.stderr
    assert _comparable(resumed.stdout) == _comparable(straight.stdout)  # names shown masked, exactly as before


def test_resume_refuses_an_input_changed_in_place(tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    for n in range(3):
        (data / f"part{n}.jsonl").write_text("".join(f'{{"user_id": {i}, "email": "u{i}@example.com"}}\n' for i in range(10)))
    state = tmp_path / "s.state"
    assert run("scan", str(data), "--state", str(state), "--fail-on", "never").returncode == 0
    changed = data / "part1.jsonl"
    before = changed.read_bytes()
    after = before.replace(b"u3@example.com", b"XXXXXXXXXXXXXX")  # same size: only content and mtime differ
    assert len(after) == len(before)
    changed.write_bytes(after)
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    proc = run("scan", str(data), "--state", str(state), "--resume")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "part1.jsonl changed" in proc.stderr and "new --state" in proc.stderr


def _slow_sqlite(path: Path, rows: int) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, note TEXT)")
    db.executemany("INSERT INTO users VALUES (?, ?, ?)", [(i, f"u{i}@example.com", "hello " * 20) for i in range(rows)])
    db.commit()
    db.close()


def _finished(state: Path) -> int:
    try:
        with sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT count(*) FROM partition").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("with_state", [True, False])
def test_ctrl_c_with_two_workers_stops_within_a_second_and_says_what_was_saved(tmp_path, with_state):
    db = tmp_path / "slow.sqlite"
    _slow_sqlite(db, 40_000)
    state = tmp_path / "scan.state"
    args = [EXE, "scan", f"sqlite:///{db}", "--workers", "2", "--partition-rows", "200", "--max-rps", "4", "--no-progress",
            "--format", "json", "-o", str(tmp_path / "out.json")]
    if with_state:
        args += ["--state", str(state)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (_finished(state) < 2 if with_state else False):
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.05)
    while not with_state and time.monotonic() < deadline and len(psutil.Process(proc.pid).children()) < 2:
        time.sleep(0.05)  # until the two workers run
    if not with_state:
        time.sleep(1)  # ...and are busy with their partitions
    assert proc.poll() is None
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=30)
    took = time.monotonic() - sent
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert code == 130, err
    assert took < 2.0, f"Ctrl-C took {took:.1f} s"
    assert "Traceback" not in err and err.count("\n") == 1, err
    if with_state:
        saved = _finished(state)
        assert saved >= 2 and f"{saved:,} finished partitions saved in {state}" in err and "--resume" in err, err
    else:
        assert "nothing was saved" in err and "--state" in err, err
    assert not (tmp_path / "out.json").exists()
