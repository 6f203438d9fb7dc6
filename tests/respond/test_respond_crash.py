"""kill -9 during `respond execute`, then a rerun: every leaked token revoked, no side effect repeated."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from spillguard.leaked import SCHEMA, write_leaked
from tests import ROOT
from tests.servers import postgres_server

KEY = "5f" * 32
psycopg = pytest.importorskip("psycopg")
TOKENS = 60_000
LEAKED_EVERY = 2


def _leaked_set(path: Path, tokens: list[str]) -> None:
    digests = [hashlib.sha256(t.encode()).hexdigest() for t in tokens]
    n = len(digests)
    table = pa.table({
        "fingerprint": pa.array([f"hmac-sha256:{d[:32]}" for d in digests]), "sha256": pa.array(digests),
        "sha256_tail": pa.nulls(n, pa.string()), "rule": pa.array(["opaque_token_field"] * n), "category": pa.array(["secret"] * n),
        "target": pa.array(["copy.jsonl"] * n), "dataset": pa.array(["copy.jsonl"] * n), "field": pa.array(["token"] * n),
        "subject": pa.array([0] * n, pa.uint64()), "hmac": pa.nulls(n, pa.string()),
    }, schema=SCHEMA)
    write_leaked(path, table, bytes.fromhex(KEY))


def _cmd(pb: Path) -> list[str]:
    return [sys.executable, "-c", "from spillguard.cli import main; main()", "respond", "execute", str(pb), "--execute", "-f", "json"]


def _outcomes(journal: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT count(*) FROM entries WHERE kind = 'outcome'").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def _connect(dsn: str) -> psycopg.Connection:
    # The port opens a moment before the server accepts logins ("the database system is starting up").
    for _ in range(100):
        try:
            return psycopg.connect(dsn, autocommit=True)
        except psycopg.OperationalError:
            time.sleep(0.1)
    return psycopg.connect(dsn, autocommit=True)


def test_kill_9_during_execute_then_rerun(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SPILLGUARD_FINGERPRINT_KEY": KEY}
    with postgres_server() as pg, _connect(pg.dsn) as conn:
        conn.execute("""
            CREATE TABLE oauth2_provider_refreshtoken (id bigserial primary key, user_id bigint, token text not null,
                token_checksum varchar(64) not null, access_token_id bigint, revoked timestamptz null, unique (token_checksum, revoked));
            CREATE TABLE oauth2_provider_accesstoken (id bigserial primary key, user_id bigint, token text not null,
                token_checksum varchar(64) not null unique);
            CREATE TABLE side_effects (kind text, row_id bigint);
            CREATE FUNCTION log_revoke() RETURNS trigger AS $$ BEGIN
                INSERT INTO side_effects VALUES (TG_ARGV[0], OLD.id); RETURN NULL; END $$ LANGUAGE plpgsql;
            CREATE TRIGGER revoke_log AFTER UPDATE OF revoked ON oauth2_provider_refreshtoken FOR EACH ROW EXECUTE FUNCTION log_revoke('flag');
            CREATE TRIGGER delete_log AFTER DELETE ON oauth2_provider_accesstoken FOR EACH ROW EXECUTE FUNCTION log_revoke('delete');
        """)
        for table, salt in (("oauth2_provider_refreshtoken", "r"), ("oauth2_provider_accesstoken", "a")):
            conn.execute(f"""INSERT INTO {table} (user_id, token, token_checksum)
                SELECT i, '{salt}' || md5(i::text) || md5((i * 7)::text), encode(sha256(convert_to('{salt}' || md5(i::text) || md5((i * 7)::text), 'UTF8')), 'hex')
                FROM generate_series(1, {TOKENS}) AS i""")
        leaked = [f"{s}{hashlib.md5(str(i).encode()).hexdigest()}{hashlib.md5(str(i * 7).encode()).hexdigest()}"
                  for s in ("r", "a") for i in range(1, TOKENS + 1, LEAKED_EVERY)]
        _leaked_set(tmp_path / "leaked.sgs", leaked)
        pb = tmp_path / "respond.toml"
        pb.write_text(f"""incident = "crash"\nleaked = "leaked.sgs"\njournal = "respond.journal"\n[limits]\nbatch = 200\n
[[action]]\npreset = "django-oauth-toolkit-refresh"\nstore = "{pg.url}"\n
[[action]]\npreset = "django-oauth-toolkit-access"\nstore = "{pg.url}"\n""")
        journal = tmp_path / "respond.journal"
        proc = subprocess.Popen(_cmd(pb), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while _outcomes(journal) < 40 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.005)
        assert proc.poll() is None, "execute finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        done_at_kill = conn.execute("SELECT count(*) FROM side_effects").fetchone()[0]
        assert 0 < done_at_kill < len(leaked)

        res = subprocess.run(_cmd(pb), env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr
        per_leaked = len(leaked) // 2
        flags = conn.execute("SELECT count(*), count(DISTINCT row_id) FROM side_effects WHERE kind = 'flag'").fetchone()
        deletes = conn.execute("SELECT count(*), count(DISTINCT row_id) FROM side_effects WHERE kind = 'delete'").fetchone()
        assert flags == (per_leaked, per_leaked)  # every leaked refresh token revoked exactly once
        assert deletes == (per_leaked, per_leaked)
        assert conn.execute("SELECT count(*) FROM oauth2_provider_refreshtoken WHERE revoked IS NULL").fetchone()[0] == TOKENS - per_leaked
        assert conn.execute("SELECT count(*) FROM oauth2_provider_accesstoken").fetchone()[0] == TOKENS - per_leaked

    check = subprocess.run([sys.executable, "-c", "from spillguard.cli import main; main()", "journal", "verify", str(journal)],
                           env=env, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr
    db = sqlite3.connect(journal)
    intents = {r[0] for r in db.execute("SELECT step_key FROM entries WHERE kind = 'intent'")}
    finished = {r[0] for r in db.execute("SELECT step_key FROM entries WHERE kind = 'outcome' AND result = 'done'")}
    assert intents == finished  # nothing left in flight
    # The journal's outcomes never count a revocation twice; the step in flight at the kill is closed with an
    # unknown count (at most one step of 200), the store itself (the triggers above) proves the rest.
    done = db.execute("SELECT sum(done) FROM entries WHERE kind = 'outcome'").fetchone()[0]
    assert len(leaked) - 200 <= done <= len(leaked)
    # Steps the first run finished were not executed again.
    twice = db.execute("SELECT count(*) FROM (SELECT step_key FROM entries WHERE kind = 'intent' GROUP BY step_key HAVING count(*) > 1)").fetchone()[0]
    assert twice <= 1  # at most the one step in flight at the kill
    db.close()
