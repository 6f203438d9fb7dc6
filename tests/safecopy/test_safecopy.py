"""`spillguard copy` and `spillguard policy init` end to end on files and SQLite (no server needed)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.copydata import KEY_HEX, OTHER_KEY_HEX, generate, policy_text, write_jsonl

EXE = shutil.which("spillguard") or str(Path(sys.executable).with_name("spillguard"))


def run(*args: str, key: str | None = KEY_HEX, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("SG_COPY_KEY", None)
    if key is not None:
        env["SG_COPY_KEY"] = key
    return subprocess.run([EXE, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.fixture(scope="module")
def data():
    return generate(200, seed=3)


@pytest.fixture
def src(tmp_path, data):
    return write_jsonl(tmp_path / "src", data)


def _policy(tmp_path: Path, **kw) -> Path:
    p = tmp_path / "policy.toml"
    p.write_text(policy_text(**kw))
    return p


def _no_raw_values(blob: bytes, data) -> None:
    for u in data.users:
        assert u["email"].encode() not in blob
        assert u["api_token"].encode() not in blob
        assert u["user_id"].encode() not in blob
        assert u["full_name"].encode() not in blob
    for d in data.devices:
        assert d["mac"].encode() not in blob


def test_jsonl_to_sqlite_pseudonymises_joins_and_records_the_key_id(tmp_path, src, data):
    db = tmp_path / "out" / "copy.db"
    db.parent.mkdir()
    proc = run("copy", str(src), f"sqlite:///{db}", "--policy", str(_policy(tmp_path)), "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["verification"]["ok"] is True
    assert {d["destination"]: d["rows"] for d in doc["datasets"]} == {"users": 200, "devices": len(data.devices)}
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    con = sqlite3.connect(db)
    # The pseudonymised user_id still joins: every device finds its owner, with the source's counts.
    joined = dict(con.execute("SELECT u.user_id, count(d.device_id) FROM users u JOIN devices d ON d.user_id = u.user_id GROUP BY 1"))
    assert sorted(joined.values()) == sorted(data.devices_per_user().values())
    assert con.execute("SELECT count(*) FROM users WHERE length(user_id) = 32").fetchone()[0] == 200
    row = con.execute("SELECT signup_at, last_ip, phone FROM users LIMIT 1").fetchone()
    u0 = data.users[0]
    assert row[0].startswith(u0["signup_at"][:7]) and row[0][8:10] == "01"
    assert row[1] == u0["last_ip"].rsplit(".", 1)[0] + ".0"
    assert row[2].endswith(u0["phone"][-2:]) and set(row[2][:-2]) == {"*"}
    cols = [r[1] for r in con.execute("PRAGMA table_info(users)")]
    assert "full_name" not in cols and "api_token" not in cols
    metas = [json.loads(m) for (m,) in con.execute("SELECT meta FROM spillguard_copies")]
    assert {m["dataset"] for m in metas} == {"users.jsonl", "devices.jsonl"}
    assert all(m["keys"]["main"]["key_id"].startswith("kid-") for m in metas)
    con.close()
    blob = db.read_bytes()
    assert KEY_HEX.encode() not in blob and KEY_HEX not in proc.stdout + proc.stderr
    _no_raw_values(blob, data)
    _no_raw_values((proc.stdout + proc.stderr).encode(), data)  # nor in the summary or any log line


def test_same_key_same_pseudonyms_other_key_others(tmp_path, src):
    pol = _policy(tmp_path)
    outs = {}
    for label, key in (("a", KEY_HEX), ("b", KEY_HEX), ("c", OTHER_KEY_HEX)):
        dest = tmp_path / label
        proc = run("copy", str(src), str(dest), "--policy", str(pol), "--file-format", "parquet", key=key)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outs[label] = pq.read_table(dest / "users.parquet").column("email").to_pylist()
        meta = json.loads(pq.read_metadata(dest / "users.parquet").metadata[b"spillguard.copy"])
        assert meta["keys"]["main"]["key_id"].startswith("kid-")
        assert stat.S_IMODE((dest / "users.parquet").stat().st_mode) == 0o600
    assert outs["a"] == outs["b"]
    assert set(outs["a"]).isdisjoint(outs["c"])


def test_new_column_halts_before_anything_is_written(tmp_path, src, data):
    rows = [dict(u) for u in data.users]
    rows[150]["ssn"] = "078-05-1120"  # one record, far from the start
    (src / "users.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    db = tmp_path / "copy.db"
    proc = run("copy", str(src), f"sqlite:///{db}", "--policy", str(_policy(tmp_path)))
    assert proc.returncode == 2
    assert "new field 'ssn'" in proc.stderr and "Traceback" not in proc.stderr
    assert "078-05-1120" not in proc.stderr + proc.stdout
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    con.close()
    proc = run("copy", str(src), f"sqlite:///{db}", "--policy", str(_policy(tmp_path)), "--on-new", "drop", "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    users = next(d for d in doc["datasets"] if d["destination"] == "users")
    assert users["fields"]["ssn"] == "drop (on-new)"
    con = sqlite3.connect(db)
    assert "ssn" not in [r[1] for r in con.execute("PRAGMA table_info(users)")]


def test_type_change_halts(tmp_path, src):
    pol = tmp_path / "policy.toml"
    pol.write_text(policy_text().replace('[datasets."devices.jsonl"]', '[datasets."users.jsonl".types]\nplan = "integer"\n\n[datasets."devices.jsonl"]'))
    proc = run("copy", str(src), str(tmp_path / "out"), "--policy", str(pol), "--file-format", "jsonl")
    assert proc.returncode == 2 and "'plan' is text, the policy says integer" in proc.stderr
    assert not (tmp_path / "out" / "users.jsonl").exists()


def test_verification_catches_emails_in_a_kept_free_text_column(tmp_path, src, data):
    rows = [dict(u) for u in data.users]
    for r in rows[:40]:
        r["notes"] = f"customer wrote from {r['email'].lower()} about the camera"
    (src / "users.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = run("copy", str(src), str(tmp_path / "out"), "--policy", str(_policy(tmp_path, notes='"keep"')), "--file-format", "jsonl")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "verification: FAILED" in proc.stdout and "email in keep field users.jsonl notes" in proc.stdout
    assert "@" not in proc.stdout.split("verification")[1]  # the report names fields, never values
    # Redacting the column instead passes, and the e-mails are gone.
    proc = run("copy", str(src), str(tmp_path / "out2"), "--policy", str(_policy(tmp_path)), "--file-format", "jsonl")
    assert proc.returncode == 0, proc.stdout
    text = (tmp_path / "out2" / "users.jsonl").read_text()
    assert "[email]" in text and "@" not in text


def test_verification_catches_a_surviving_secret_and_a_raw_identifier(tmp_path, src):
    proc = run("copy", str(src), str(tmp_path / "o1"), "--policy", str(_policy(tmp_path, api_token='"keep"')), "--file-format", "jsonl")
    assert proc.returncode == 1 and "secret survived: users.jsonl api_token" in proc.stdout
    proc = run("copy", str(src), str(tmp_path / "o2"), "--policy", str(_policy(tmp_path, device_user='"keep"')),
               "--file-format", "jsonl", "--format", "json")
    assert proc.returncode == 1
    found = json.loads(proc.stdout)["verification"]["source_identifiers_found"]
    assert found and found[0]["dataset"] == "devices.jsonl" and found[0]["field"] == "user_id"


def test_existing_destination_needs_replace_or_append(tmp_path, src, data):
    db = tmp_path / "copy.db"
    pol = str(_policy(tmp_path))
    assert run("copy", str(src), f"sqlite:///{db}", "--policy", pol).returncode == 0
    proc = run("copy", str(src), f"sqlite:///{db}", "--policy", pol)
    assert proc.returncode == 2 and "already holds users, devices; use --replace or --append" in proc.stderr
    assert run("copy", str(src), f"sqlite:///{db}", "--policy", pol, "--append").returncode == 0
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM users").fetchone()[0] == 400
    con.close()
    assert run("copy", str(src), f"sqlite:///{db}", "--policy", pol, "--replace").returncode == 0
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM users").fetchone()[0] == 200


@pytest.mark.parametrize(
    ("edit", "key", "message"),
    [
        (lambda t: t.replace('plan = "keep"', 'plan = "shuffle"'), KEY_HEX, "unknown transform 'shuffle'"),
        (lambda t: t.replace('plan = "keep"', 'plan = "keep"\nloyalty = "keep"'), KEY_HEX, "policy field 'loyalty' does not exist"),
        (lambda t: t, None, "SG_COPY_KEY is not set"),
        (lambda t: t, "abcd", "has 16 bits; it must be at least 128 bits"),
        (lambda t: t.replace('[datasets."devices.jsonl"]', '[datasets."orders.jsonl"]\n[datasets."orders.jsonl".fields]\nid = "keep"\n[datasets."devices.jsonl"]'),
         KEY_HEX, "orders.jsonl not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, src, data, edit, key, message):
    pol = tmp_path / "policy.toml"
    pol.write_text(edit(policy_text()))
    out = tmp_path / "out"
    proc = run("copy", str(src), str(out), "--policy", str(pol), "--file-format", "jsonl", key=key)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (out / "users.jsonl").exists()
    assert data.users[0]["email"] not in proc.stderr


def test_policy_init_proposes_a_policy_that_copies_cleanly(tmp_path, src, data):
    pol = tmp_path / "proposed.toml"
    proc = run("policy", "init", str(src), "-o", str(pol), "--key-env", "SG_COPY_KEY")
    assert proc.returncode == 0, proc.stderr
    text = pol.read_text()
    assert stat.S_IMODE(pol.stat().st_mode) == 0o600
    doc = tomllib.loads(text)
    users, devices = doc["datasets"]["users.jsonl"]["fields"], doc["datasets"]["devices.jsonl"]["fields"]
    assert users["api_token"] == "drop" and any(line.startswith('"api_token" = "drop"   # a credential') for line in text.splitlines())
    assert users["email"] == users["user_id"] == devices["user_id"] == devices["mac"] == "hmac"
    assert users["last_ip"] == {"transform": "generalise", "to": "network"}
    assert users["notes"] == "redact" and users["plan"] == "keep" and users["full_name"] == "drop"
    assert doc["datasets"]["users.jsonl"]["types"]["signup_at"] == "timestamp"
    proc = run("copy", str(src), str(tmp_path / "out"), "--policy", str(pol), "--file-format", "parquet", "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _no_raw_values(b"".join(p.read_bytes() for p in (tmp_path / "out").iterdir()), data)
    assert run("policy", "init", str(src), "-o", str(pol)).returncode == 2  # exists: --force needed


def _watermarks(state: Path) -> dict[str, dict]:
    con = sqlite3.connect(state)
    try:
        return {d: {"field": f, "last": json.loads(v)} for d, f, v in con.execute("SELECT dataset, field, last FROM watermark")}
    finally:
        con.close()


def test_since_watermark_copies_only_new_records_and_keeps_state(tmp_path, src, data, monkeypatch):
    from spillguard.errors import UserError
    from spillguard.safecopy import copy

    monkeypatch.setenv("SG_COPY_KEY", KEY_HEX)
    pol = tmp_path / "users.toml"
    text = policy_text()
    pol.write_text(text[: text.index('[datasets."devices.jsonl"]')].replace('to = "users"', 'to = "users"\nwatermark = "signup_at"'))
    db, state = tmp_path / "copy.db", tmp_path / "copy-state.json"
    first = copy(str(src / "users.jsonl"), f"sqlite:///{db}", policy=pol, state=state)
    assert first.exit_code == 0 and first.datasets[0].rows == 200 and first.datasets[0].mode == "create"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    saved = _watermarks(state)["users.jsonl"]
    assert saved["field"] == "signup_at" and saved["last"] == max(u["signup_at"] for u in data.users)
    late = [dict(u, user_id=f"usr_late{i}", signup_at=f"2030-01-0{i + 1}T00:00:00") for i, u in enumerate(data.users[:5])]
    with open(src / "users.jsonl", "a") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in late))
    second = copy(str(src / "users.jsonl"), f"sqlite:///{db}", policy=pol, state=state)
    assert second.datasets[0].rows == 5 and second.datasets[0].mode == "append"
    assert second.datasets[0].watermark["after"] == saved["last"]
    no_mark = tmp_path / "no-mark.toml"
    no_mark.write_text(pol.read_text().replace('watermark = "signup_at"', ""))
    with pytest.raises(UserError, match="watermark field 'updated' is not a top-level field"):
        copy(str(src / "users.jsonl"), f"sqlite:///{tmp_path / 'other.db'}", policy=no_mark, state=tmp_path / "other.state", since="updated")
    third = copy(str(src / "users.jsonl"), f"sqlite:///{db}", policy=pol, state=state)
    assert third.datasets[0].rows == 0
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*), count(DISTINCT user_id) FROM users").fetchone() == (205, 205)
    assert _watermarks(state)["users.jsonl"]["last"] == "2030-01-05T00:00:00"


def test_kill_9_mid_copy_leaves_nothing_and_a_rerun_equals_an_uninterrupted_copy(tmp_path):
    import signal
    import time

    big = generate(20000, seed=8)
    src = write_jsonl(tmp_path / "src", big)
    pol = str(_policy(tmp_path))
    whole, killed = tmp_path / "whole.db", tmp_path / "killed.db"
    assert run("copy", str(src), f"sqlite:///{whole}", "--policy", pol, "--no-verify").returncode == 0
    env = {**os.environ, "SG_COPY_KEY": KEY_HEX}
    proc = subprocess.Popen([EXE, "copy", str(src), f"sqlite:///{killed}", "--policy", pol, "--no-verify"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = Path(str(killed) + "-journal")
    deadline = time.monotonic() + 120
    while not journal.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "the copy finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    con = sqlite3.connect(killed)  # the hot journal rolls the half-written transaction back
    assert con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    con.close()
    assert run("copy", str(src), f"sqlite:///{killed}", "--policy", pol, "--no-verify").returncode == 0

    def rows(db: Path) -> dict[str, list[tuple]]:
        c = sqlite3.connect(db)
        try:
            return {t: sorted(c.execute(f"SELECT * FROM {t}").fetchall()) for t in ("users", "devices")}
        finally:
            c.close()

    assert rows(killed) == rows(whole)


def test_workers_give_the_same_copy_and_the_same_proof(tmp_path, src, data):
    from spillguard.safecopy import copy

    os.environ["SG_COPY_KEY"] = KEY_HEX
    try:
        pol = _policy(tmp_path)
        one = copy(str(src), f"sqlite:///{tmp_path / 'one.db'}", policy=pol)
        two = copy(str(src), f"sqlite:///{tmp_path / 'two.db'}", policy=pol, workers=2)
        assert one.exit_code == two.exit_code == 0
        assert [d.to_json()["notes"] for d in one.datasets] == [d.to_json()["notes"] for d in two.datasets]

        def rows(db: Path) -> list[tuple]:
            c = sqlite3.connect(db)
            try:
                return sorted(c.execute("SELECT * FROM users").fetchall()) + sorted(c.execute("SELECT * FROM devices").fetchall())
            finally:
                c.close()

        assert rows(tmp_path / "one.db") == rows(tmp_path / "two.db")
        leaky = _policy(tmp_path, device_user='"keep"')
        bad = copy(str(src), f"sqlite:///{tmp_path / 'three.db'}", policy=leaky, workers=2)
        assert bad.exit_code == 1 and bad.verification.identifiers[0]["field"] == "user_id"
    finally:
        del os.environ["SG_COPY_KEY"]


def test_policy_init_from_a_saved_scan_equals_scanning_now(tmp_path, src):
    import spillguard
    from spillguard.safecopy import propose_policy

    saved = spillguard.scan([str(src)]).to_json()
    assert propose_policy(str(src), saved) == propose_policy(str(src))
    # A scan that found nothing proposes keeping everything, field by field: still every field named.
    empty = {"findings": [], "datasets": []}
    text = propose_policy(str(src), empty)
    fields = tomllib.loads(text)["datasets"]["users.jsonl"]["fields"]
    assert set(fields.values()) == {"keep"} and "email" in fields


def _write_parquet(folder: Path, data, rows_per_group: int) -> Path:
    import pyarrow as pa

    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("users.parquet", data.users), ("devices.parquet", data.devices)):
        pq.write_table(pa.Table.from_pylist(rows), folder / name, row_group_size=rows_per_group)
    return folder


def _parts_saved(state: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=1)
        try:
            return int(con.execute("SELECT count(*) FROM part").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def kill_when_checkpointed(argv: list[str], state: Path, parts: int = 2) -> None:
    """Start a copy, SIGKILL it once `parts` partitions are checkpointed in its state file."""
    import signal
    import time

    proc = subprocess.Popen(argv, env={**os.environ, "SG_COPY_KEY": KEY_HEX}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _parts_saved(state) < parts and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the copy finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_kill_9_then_resume_gives_the_uninterrupted_copy(tmp_path, monkeypatch):
    from spillguard.errors import UserError
    from spillguard.safecopy import copy

    big = generate(4000, seed=21)
    src = _write_parquet(tmp_path / "src", big, rows_per_group=400)
    pol = tmp_path / "policy.toml"
    pol.write_text(policy_text("users.parquet", "devices.parquet"))
    whole, killed, state = tmp_path / "whole.db", tmp_path / "killed.db", tmp_path / "copy.state"
    proc = run("copy", str(src), f"sqlite:///{whole}", "--policy", str(pol), "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    uninterrupted = json.loads(proc.stdout)

    kill_when_checkpointed([EXE, "copy", str(src), f"sqlite:///{killed}", "--policy", str(pol), "--state", str(state)], state)
    con = sqlite3.connect(killed)  # nothing visible yet: the finished partitions wait in the stage table
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "users" not in tables and "_sg_stage_users" in tables
    con.close()
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    wal = Path(str(state) + "-wal")
    _no_raw_values(state.read_bytes() + (wal.read_bytes() if wal.exists() else b""), big)

    # The state file refuses a fresh copy (one line, exit 2), a changed policy and another key.
    again = run("copy", str(src), f"sqlite:///{killed}", "--policy", str(pol), "--state", str(state))
    assert again.returncode == 2 and "holds an interrupted copy" in again.stderr and "--resume" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and "Traceback" not in again.stderr
    other = tmp_path / "other.toml"
    other.write_text(policy_text("users.parquet", "devices.parquet", notes='"drop"'))
    monkeypatch.setenv("SG_COPY_KEY", KEY_HEX)
    with pytest.raises(UserError, match="--resume needs --state FILE"):
        copy(str(src), f"sqlite:///{killed}", policy=pol, resume=True)
    with pytest.raises(UserError, match=r"the policy \(its digest\) changed since the interrupted copy"):
        copy(str(src), f"sqlite:///{killed}", policy=other, state=state, resume=True)
    monkeypatch.setenv("SG_COPY_KEY", OTHER_KEY_HEX)
    with pytest.raises(UserError, match=r"a key \(its key id\) changed since the interrupted copy"):
        copy(str(src), f"sqlite:///{killed}", policy=pol, state=state, resume=True)

    resumed = run("copy", str(src), f"sqlite:///{killed}", "--policy", str(pol), "--state", str(state), "--resume",
                  "--workers", "2", "--format", "json")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    doc = json.loads(resumed.stdout)
    assert doc["verification"]["ok"] is True
    assert doc["checkpoint"]["resumed"] is True and 1 <= doc["checkpoint"]["partitions_done_before"] < doc["checkpoint"]["partitions"]
    assert [(d["destination"], d["rows"], d["notes"]) for d in doc["datasets"]] == [
        (d["destination"], d["rows"], d["notes"]) for d in uninterrupted["datasets"]]

    def rows(db: Path) -> dict[str, list[tuple]]:
        c = sqlite3.connect(db)
        try:
            return {t: sorted(c.execute(f"SELECT * FROM {t}").fetchall()) for t in ("users", "devices")}
        finally:
            c.close()

    assert rows(killed) == rows(whole)
    assert sum(len(v) for v in rows(killed).values()) == 4000 + len(big.devices)
    con = sqlite3.connect(killed)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert not any(t.startswith("_sg_stage_") for t in tables)
    assert con.execute("SELECT count(*) FROM _sg_copy_parts").fetchone()[0] == 0
    runs = {json.loads(m)["run"] for (m,) in con.execute("SELECT meta FROM spillguard_copies")}
    assert len(runs) == 1  # both datasets published by the one (resumed) copy
    con.close()
    assert _parts_saved(state) == 0  # the copy finished: its partitions are forgotten


def interrupt_after(monkeypatch, partitions: int) -> None:
    """Ctrl-C right after the `partitions`-th partition is checkpointed (an in-process stand-in for kill -9:
    only the uncommitted partition is rolled back)."""
    import spillguard.safecopy.run as run_module

    real = run_module._finished
    calls = {"n": 0}

    def finished(*args, **kwargs):
        real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == partitions:
            raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "_finished", finished)


def rows_of_files(folder: Path) -> dict[str, list]:
    out = {}
    for p in sorted(folder.iterdir()):
        if p.suffix == ".jsonl":
            out[p.name] = sorted(json.dumps(json.loads(line), sort_keys=True) for line in p.read_text().splitlines())
        elif p.suffix == ".parquet":
            out[p.name] = sorted(json.dumps(r, sort_keys=True, default=str) for r in pq.read_table(p).to_pylist())
    return out


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_resume_into_a_file_folder_equals_an_uninterrupted_copy(tmp_path, monkeypatch, fmt):
    from spillguard.safecopy import copy
    from spillguard.safecopy.run import CopyInterrupted

    monkeypatch.setenv("SG_COPY_KEY", KEY_HEX)
    data = generate(600, seed=5)
    src = _write_parquet(tmp_path / "src", data, rows_per_group=100)
    pol = tmp_path / "policy.toml"
    pol.write_text(policy_text("users.parquet", "devices.parquet"))
    whole = copy(str(src), str(tmp_path / "whole"), policy=pol, fmt=fmt)
    out, state = tmp_path / "out", tmp_path / "copy.state"
    with monkeypatch.context() as m:
        interrupt_after(m, 3)
        with pytest.raises(CopyInterrupted) as stopped:
            copy(str(src), str(out), policy=pol, fmt=fmt, state=state)
    assert stopped.value.saved == 3 and "--resume" in stopped.value.advice()
    assert not (out / f"users.{fmt}").exists() and len(list((out / f"users.{fmt}.parts").glob(f"*.{fmt}"))) == 3
    # A source file that changed since the interruption is refused; restored (same size and time), it resumes.
    from spillguard.errors import UserError

    shutil.copytree(src, tmp_path / "src.orig")  # copy2 inside: sizes and times kept
    _write_parquet(src, generate(601, seed=5), rows_per_group=100)
    with pytest.raises(UserError, match="the source's content changed since the interrupted copy"):
        copy(str(src), str(out), policy=pol, fmt=fmt, state=state, resume=True)
    for name in ("users.parquet", "devices.parquet"):
        shutil.copy2(tmp_path / "src.orig" / name, src / name)
    resumed = copy(str(src), str(out), policy=pol, fmt=fmt, state=state, resume=True)
    assert resumed.exit_code == 0
    assert [d.rows for d in resumed.datasets] == [d.rows for d in whole.datasets] == [600, len(data.devices)]
    assert rows_of_files(out) == rows_of_files(tmp_path / "whole")
    assert not list(out.glob("*.parts")) and not list(out.glob(".*tmp*"))


@pytest.mark.parametrize("dest_kind", ["sqlite", "jsonl"])
def test_a_copy_stopped_after_publishing_is_not_appended_twice_on_resume(tmp_path, monkeypatch, dest_kind):
    from spillguard.safecopy import copy
    from spillguard.safecopy.checkpoint import CopyCheckpoint

    monkeypatch.setenv("SG_COPY_KEY", KEY_HEX)
    data = generate(300, seed=6)
    src = _write_parquet(tmp_path / "src", data, rows_per_group=100)
    pol = tmp_path / "policy.toml"
    pol.write_text(policy_text("users.parquet", "devices.parquet"))
    dest = f"sqlite:///{tmp_path / 'copy.db'}" if dest_kind == "sqlite" else str(tmp_path / "out")
    fmt = None if dest_kind == "sqlite" else "jsonl"
    assert copy(str(src), dest, policy=pol, fmt=fmt).exit_code == 0
    state = tmp_path / "copy.state"

    def crash(self, *_a):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(CopyCheckpoint, "finish", crash)  # every dataset published, the state not yet told
        with pytest.raises(KeyboardInterrupt):
            copy(str(src), dest, policy=pol, fmt=fmt, mode="append", state=state)
    resumed = copy(str(src), dest, policy=pol, fmt=fmt, mode="append", state=state, resume=True)
    assert resumed.exit_code == 0 and [d.rows for d in resumed.datasets] == [300, len(data.devices)]
    if dest_kind == "sqlite":
        con = sqlite3.connect(tmp_path / "copy.db")
        assert con.execute("SELECT count(*), count(DISTINCT user_id) FROM users").fetchone() == (600, 300)
        con.close()
    else:
        assert len((tmp_path / "out" / "users.jsonl").read_text().splitlines()) == 600


@pytest.mark.parametrize("dest_kind", ["sqlite", "jsonl"])
def test_a_halt_mid_copy_drops_the_staged_partitions_and_forgets_the_run(tmp_path, monkeypatch, dest_kind):
    import spillguard.safecopy.run as run_module
    from spillguard.safecopy import copy

    monkeypatch.setenv("SG_COPY_KEY", KEY_HEX)
    data = generate(300, seed=9)
    src = _write_parquet(tmp_path / "src", data, rows_per_group=100)
    pol = tmp_path / "policy.toml"
    pol.write_text(policy_text("users.parquet", "devices.parquet"))
    db = tmp_path / "copy.db"
    dest = f"sqlite:///{db}" if dest_kind == "sqlite" else str(tmp_path / "out")
    fmt = None if dest_kind == "sqlite" else "jsonl"
    state = tmp_path / "copy.state"
    real, calls = run_module._finished, {"n": 0}

    def finished(job, pid, order, out, run):
        calls["n"] += 1
        if calls["n"] == 3:  # as if a field the policy does not name showed up in the third partition
            out.halt = ["users.parquet: new field 'ssn'"]
        real(job, pid, order, out, run)

    with monkeypatch.context() as m:
        m.setattr(run_module, "_finished", finished)
        with pytest.raises(run_module.CopyHalted, match="halted and rolled back: users.parquet: new field 'ssn'"):
            copy(str(src), dest, policy=pol, fmt=fmt, state=state)
    assert _parts_saved(state) == 0
    if dest_kind == "sqlite":
        con = sqlite3.connect(db)
        assert {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} <= {"_sg_copy_parts"}
        assert con.execute("SELECT count(*) FROM _sg_copy_parts").fetchone()[0] == 0
        con.close()
    else:
        assert not any((tmp_path / "out").iterdir())
    # Nothing to resume: the next copy with the same state file simply runs.
    assert copy(str(src), dest, policy=pol, fmt=fmt, state=state).exit_code == 0


def test_the_proof_after_resume_uses_the_identifiers_of_partitions_copied_before_the_interruption(tmp_path, monkeypatch):
    from spillguard.safecopy import copy
    from spillguard.safecopy.run import CopyInterrupted

    monkeypatch.setenv("SG_COPY_KEY", KEY_HEX)
    data = generate(300, seed=12)
    src = _write_parquet(tmp_path / "src", data, rows_per_group=100)
    pol = tmp_path / "policy.toml"  # devices.user_id kept raw: the proof must see the users' ids in it
    pol.write_text(policy_text("users.parquet", "devices.parquet", device_user='"keep"'))
    dest, state = f"sqlite:///{tmp_path / 'copy.db'}", tmp_path / "copy.state"
    with monkeypatch.context() as m:
        interrupt_after(m, 3)  # every partition of users (whose user_id values the proof hashes), none of devices
        with pytest.raises(CopyInterrupted):
            copy(str(src), dest, policy=pol, state=state)
    resumed = copy(str(src), dest, policy=pol, state=state, resume=True)
    assert resumed.exit_code == 1
    found = resumed.verification.identifiers
    assert [(f["dataset"], f["field"]) for f in found] == [("devices", "user_id")]
    assert found[0]["values"] == len(data.devices)
