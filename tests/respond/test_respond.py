"""Respond end to end against real PostgreSQL, MariaDB and Redis servers started here, with generated
token/session stores in the real layouts and ground truth of which tokens leaked and whose."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests import ROOT
from tests.responddata import World, sha
from tests.servers import mariadb_server, postgres_server, redis_server

KEY = "5f" * 32
psycopg = pytest.importorskip("psycopg")


def cli(*args: str, check: int | None = None, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SPILLGUARD_FINGERPRINT_KEY": KEY, **(extra_env or {})}
    res = subprocess.run([sys.executable, "-c", "from spillguard.cli import main; main()", *args], capture_output=True,
                         text=True, env=env, timeout=600)
    if check is not None:
        assert res.returncode == check, f"exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[World, Path, Path]:
    """The world, its exposed copy scanned into leaked.sgs and people.csv."""
    w = World(users=120, leaked_every=3)
    d = tmp_path_factory.mktemp("copy")
    w.write_copy(d / "copy.jsonl")
    cli("scan", str(d / "copy.jsonl"), "--secrets-out", str(d / "leaked.sgs"), "--subjects-out", str(d / "people.csv"),
        "--no-progress", "--fail-on", "never", "-f", "json", "-o", str(d / "scan.json"), check=0)
    return w, d / "leaked.sgs", d / "people.csv"


@pytest.fixture(scope="module")
def pg():
    with postgres_server() as server:
        yield server


def fresh_pg(pg, name: str, w: World) -> str:
    from tests.respond.test_respond_crash import _connect

    with _connect(pg.dsn) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    url = pg.url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(url, autocommit=True) as conn:
        w.load_sql(conn, "postgresql")
    return url


def pg_query(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql).fetchall()


SQL_ACTIONS = """
[[action]]
preset = "django-oauth-toolkit-access"
store = "{url}"

[[action]]
preset = "django-oauth-toolkit-refresh"
store = "{url}"

[[action]]
preset = "drf-authtoken"
store = "{url}"

[[action]]
preset = "laravel-sanctum"
store = "{url}"

[[action]]
preset = "django-session"
store = "{url}"

[[action]]
preset = "laravel-sessions"
store = "{url}"

[[action]]
id = "cutoff"
kind = "not-valid-before"
store = "{url}"
table = "auth_user"
column = "tokens_valid_after"
user_column = "id"

[[action]]
id = "alexa"
kind = "integrations"
store = "{url}"
table = "alexa_links"
user_column = "user_id"
token_columns = ["access_token", "refresh_token"]
partner = "Alexa"
relink_out = "relink.jsonl"
"""


def pick(url: str, *ids: str) -> str:
    """Some of SQL_ACTIONS, by action id or preset."""
    parts = SQL_ACTIONS.format(url=url).split("[[action]]")[1:]
    chosen = [p for p in parts if any(f'"{i}"' in p for i in ids)]
    assert len(chosen) == len(ids)
    return "".join("[[action]]" + p for p in chosen)


def playbook(tmp: Path, leaked: Path, people: Path, actions: str, scope: str = "exact", extra: str = "") -> Path:
    p = tmp / "respond.toml"
    p.write_text(f'incident = "2019-12-es"\nscope = "{scope}"\nleaked = "{leaked}"\nsubjects = "{people}"\n'
                 f'journal = "respond.journal"\n{extra}\n{actions}')
    return p


def plan_counts(pb: Path, *args: str) -> dict[str, int]:
    import json

    res = cli("respond", "plan", str(pb), "-f", "json", *args, check=0)
    return {a["action"]: a["count"] for a in json.loads(res.stdout)["actions"]}


def test_exact_scope_postgres(world, pg, tmp_path):
    w, leaked, people = world
    url = fresh_pg(pg, "exact", w)
    pb = playbook(tmp_path, leaked, people, SQL_ACTIONS.format(url=url))
    L = w.leaked
    n = len(L)
    expected = {
        "django-oauth-toolkit-access": n, "django-oauth-toolkit-refresh": n, "drf-authtoken": n, "laravel-sanctum": n,
        "django-session": 2 * n, "laravel-sessions": 2 * n, "cutoff": n, "alexa": n,
    }
    assert plan_counts(pb) == expected
    before = pg_query(url, "SELECT count(*) FROM oauth2_provider_accesstoken")[0][0]
    # Without --execute nothing changes.
    cli("respond", "execute", str(pb), check=0)
    assert pg_query(url, "SELECT count(*) FROM oauth2_provider_accesstoken")[0][0] == before
    assert not (tmp_path / "respond.journal").exists()
    assert cli("respond", "verify", str(pb)).returncode == 1  # everything still active

    cli("respond", "execute", str(pb), "--execute", check=0)
    leaked_ids = {u.id for u in L}
    # Exactly the leaked tokens are gone; tokens issued after the copy and everyone else's stay.
    left = {r[0] for r in pg_query(url, "SELECT token_checksum FROM oauth2_provider_accesstoken")}
    assert left == {sha(u.dot_access) for u in w.users if not u.leaked} | {sha(u.fresh_access) for u in L if u.fresh_access}
    revoked = {r[0] for r in pg_query(url, "SELECT user_id FROM oauth2_provider_refreshtoken WHERE revoked IS NOT NULL")}
    assert revoked == leaked_ids
    assert {r[0] for r in pg_query(url, "SELECT user_id FROM authtoken_token")} == {u.id for u in w.users} - leaked_ids
    assert {r[0] for r in pg_query(url, "SELECT tokenable_id FROM personal_access_tokens")} == {u.id for u in w.users} - leaked_ids
    dj_left = {r[0] for r in pg_query(url, "SELECT session_key FROM django_session")}
    assert dj_left == {k for u in w.users if not u.leaked for k in u.django_sessions} | set(w.guest_sessions)
    lv_left = {r[0] for r in pg_query(url, "SELECT id FROM sessions")}
    assert lv_left == {k for u in w.users if not u.leaked for k in u.laravel_sessions} | set(w.guest_sessions)
    assert {r[0] for r in pg_query(url, "SELECT id FROM auth_user WHERE tokens_valid_after IS NOT NULL")} == leaked_ids
    assert {r[0] for r in pg_query(url, "SELECT user_id FROM alexa_links")} == {u.id for u in w.users} - leaked_ids
    relink = (tmp_path / "relink.jsonl").read_text().splitlines()
    assert len(relink) == n and oct((tmp_path / "relink.jsonl").stat().st_mode & 0o777) == "0o600"

    cli("respond", "verify", str(pb), check=0)
    # A second execute changes nothing and plans nothing.
    assert set(plan_counts(pb).values()) == {0}
    snapshot = pg_query(url, "SELECT count(*), max(tokens_valid_after) FROM auth_user WHERE tokens_valid_after IS NOT NULL")
    cli("respond", "execute", str(pb), "--execute", check=0)
    assert pg_query(url, "SELECT count(*), max(tokens_valid_after) FROM auth_user WHERE tokens_valid_after IS NOT NULL") == snapshot
    assert len((tmp_path / "relink.jsonl").read_text().splitlines()) == n
    cli("journal", "verify", str(tmp_path / "respond.journal"), check=0)


def test_all_scope_postgres(world, pg, tmp_path):
    w, leaked, people = world
    url = fresh_pg(pg, "everything", w)
    pb = playbook(tmp_path, leaked, people, SQL_ACTIONS.format(url=url), scope="all")
    counts = plan_counts(pb)
    users = len(w.users)
    fresh = sum(1 for u in w.users if u.fresh_access)
    assert counts == {
        "django-oauth-toolkit-access": users + fresh, "django-oauth-toolkit-refresh": users, "drf-authtoken": users,
        "laravel-sanctum": users, "django-session": 2 * users + len(w.guest_sessions),
        "laravel-sessions": 2 * users + len(w.guest_sessions), "cutoff": users, "alexa": users,
    }
    cli("respond", "execute", str(pb), "--execute", check=0)
    for table in ("oauth2_provider_accesstoken", "authtoken_token", "personal_access_tokens", "django_session", "sessions", "alexa_links"):
        assert pg_query(url, f"SELECT count(*) FROM {table}")[0][0] == 0, table
    assert pg_query(url, "SELECT count(*) FROM oauth2_provider_refreshtoken WHERE revoked IS NULL")[0][0] == 0
    assert pg_query(url, "SELECT count(*) FROM auth_user WHERE tokens_valid_after IS NULL")[0][0] == 0
    cli("respond", "verify", str(pb), check=0)


def test_mariadb_exact(world, tmp_path):
    pymysql = pytest.importorskip("pymysql")
    w, leaked, people = world
    with mariadb_server() as server:
        conn = pymysql.connect(host=server.host, port=server.port, user="root", password="", autocommit=True)
        conn.cursor().execute("CREATE DATABASE app")
        conn.select_db("app")
        w.load_sql(conn, "mysql")
        url = server.url.rstrip("/") + "/app"
        pb = playbook(tmp_path, leaked, people, pick(url, "drf-authtoken", "laravel-sanctum", "laravel-sessions", "alexa"))
        n = len(w.leaked)
        assert plan_counts(pb) == {"drf-authtoken": n, "laravel-sanctum": n, "laravel-sessions": 2 * n, "alexa": n}
        cli("respond", "execute", str(pb), "--execute", check=0)
        cur = conn.cursor()
        leaked_ids = {u.id for u in w.leaked}
        cur.execute("SELECT tokenable_id FROM personal_access_tokens")
        assert {r[0] for r in cur.fetchall()} == {u.id for u in w.users} - leaked_ids
        cur.execute("SELECT count(*) FROM sessions")
        assert cur.fetchone()[0] == 2 * (len(w.users) - n) + len(w.guest_sessions)
        cur.execute("SELECT count(*) FROM authtoken_token")
        assert cur.fetchone()[0] == len(w.users) - n
        cli("respond", "verify", str(pb), check=0)
        conn.close()


def test_sqlite_authlib_flags(world, tmp_path):
    """Authlib-style raw tokens with integer *_revoked_at, in SQLite: flagged, never deleted, only once."""
    w, leaked, people = world
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE oauth2_token (id integer primary key, user_id int, client_id text, token_type text, "
                 "access_token text unique not null, refresh_token text, scope text, issued_at int not null, "
                 "access_token_revoked_at int not null default 0, refresh_token_revoked_at int not null default 0, expires_in int)")
    conn.executemany("INSERT INTO oauth2_token (user_id, access_token, refresh_token, issued_at) VALUES (?, ?, ?, 1700000000)",
                     [(u.id, u.dot_access, u.dot_refresh) for u in w.users])
    conn.commit()
    conn.close()
    url = f"sqlite:///{db}"
    pb = playbook(tmp_path, leaked, people, f'[[action]]\npreset = "authlib-access"\nstore = "{url}"\n\n'
                                            f'[[action]]\npreset = "authlib-refresh"\nstore = "{url}"\n')
    n = len(w.leaked)
    assert plan_counts(pb) == {"authlib-access": n, "authlib-refresh": n}
    cli("respond", "execute", str(pb), "--execute", check=0)
    conn = sqlite3.connect(db)
    flagged = {r[0] for r in conn.execute("SELECT user_id FROM oauth2_token WHERE access_token_revoked_at > 0 AND refresh_token_revoked_at > 0")}
    assert flagged == {u.id for u in w.leaked}
    assert conn.execute("SELECT count(*) FROM oauth2_token").fetchone()[0] == len(w.users)
    conn.close()
    cli("respond", "verify", str(pb), check=0)
    # The report's Art. 33 draft lists the measures taken, with times, from the journal.
    report = cli("report", str(leaked.parent / "scan.json"), "--journal", str(tmp_path / "respond.journal"), "-f", "md", check=0)
    assert f"authlib-access (exact scope) at {url}: {n:,} done. Verified" in report.stdout
    assert "[List the measures already taken" not in report.stdout
    doc = cli("report", str(leaked.parent / "scan.json"), "--journal", str(tmp_path / "respond.journal"), "-f", "json", check=0)
    import json

    assert json.loads(doc.stdout)["art33"]["journal"]["intact"] is True


def test_redis_sessions_exact_then_all(world, tmp_path):
    import redis

    w, leaked, people = world
    with redis_server() as server:
        client = redis.Redis.from_url(server.url)
        w.load_redis(client)
        pb = playbook(tmp_path, leaked, people, f'[[action]]\npreset = "express-session"\nstore = "{server.url}"\n')
        n = len(w.leaked)
        assert plan_counts(pb) == {"express-session": 2 * n}
        cli("respond", "execute", str(pb), "--execute", check=0)
        left = {k.decode() for k in client.scan_iter("sess:*")}
        assert left == {f"sess:{s}" for u in w.users if not u.leaked for s in u.redis_sessions} | {f"sess:{s}" for s in w.guest_sessions}
        res = cli("respond", "verify", str(pb), check=0)
        assert "without a readable user" in res.stdout  # guests: reported, never silently skipped
        assert plan_counts(pb, "--scope", "all") == {"express-session": len(left)}
        cli("respond", "execute", str(pb), "--scope", "all", "--execute", check=0)
        assert not list(client.scan_iter("sess:*"))
        assert client.get("cache:home") == b"x"
        client.close()


@pytest.mark.parametrize("action, message", [
    ('preset = "drf-authtoken"\nstore = "{url}"\ncolour = "red"', "unknown key 'colour'"),
    ('preset = "drf-authtoken"\nstore = "{url}"\npassword_env = "SPILLGUARD_TEST_NO_SUCH_VAR"', "SPILLGUARD_TEST_NO_SUCH_VAR is not set"),
    ('preset = "drf-authtoken"\nstore = "postgresql://postgres:hunter2-pw@127.0.0.1:{dead}/x"', "cannot connect"),
    ('preset = "drf-authtoken"\nstore = "{url}"\ntoken_column = "tok"', "column 'tok' does not exist"),
    ('preset = "drf-authtoken"\nstore = "{url}"\ntable = "no_tokens_here"', "table 'no_tokens_here' does not exist"),
    ('preset = "no-such-stack"\nstore = "{url}"', "unknown preset 'no-such-stack'"),
    ('kind = "sql-tokens"\nstore = "{url}"\ntable = "authtoken_token"\ntoken_column = "key"\nstored = "rot13"', "stored = 'rot13'"),
])
def test_bad_input_changes_nothing(world, pg, tmp_path, action, message):
    from tests.servers import free_port

    w, leaked, people = world
    url = fresh_pg(pg, "badinput", w)
    # Two actions: the good one first, so a late check that ran after it would show as a change.
    good = f'[[action]]\nid = "first"\npreset = "laravel-sessions"\nstore = "{url}"\n'
    pb = playbook(tmp_path, leaked, people, good + "\n[[action]]\n" + action.format(url=url, dead=free_port()))
    res = cli("respond", "execute", str(pb), "--execute")
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spillguard: error: ") and message in lines[0], res.stderr
    assert "hunter2-pw" not in res.stderr and "Traceback" not in res.stderr
    assert pg_query(url, "SELECT count(*) FROM sessions")[0][0] == 2 * len(w.users) + len(w.guest_sessions)
    assert not (tmp_path / "respond.journal").exists()


def test_leaked_set_from_another_key_is_refused(world, pg, tmp_path):
    w, leaked, people = world
    url = fresh_pg(pg, "otherkey", w)
    pb = playbook(tmp_path, leaked, people, f'[[action]]\npreset = "drf-authtoken"\nstore = "{url}"\n')
    res = cli("respond", "plan", str(pb), extra_env={"SPILLGUARD_FINGERPRINT_KEY": "77" * 32})
    assert res.returncode == 2 and "another fingerprint key" in res.stderr


def test_no_raw_secret_email_or_password_anywhere(world, tmp_path):
    """Every output, the journal, its exports, the leaked set and the relink file: fingerprints and masks only."""
    import redis

    w, leaked, people = world
    password = "pg-S3cret-for-respond"
    with postgres_server(auth="scram", password=password) as server, redis_server() as rs:
        from tests.respond.test_respond_crash import _connect

        with _connect(server.dsn) as conn:
            w.load_sql(conn, "postgresql")
        client = redis.Redis.from_url(rs.url)
        w.load_redis(client)
        client.close()
        url = server.url  # no password in the URL: it comes from the environment
        actions = SQL_ACTIONS.format(url=url).replace(f'store = "{url}"', f'store = "{url}"\npassword_env = "APP_DB_PASSWORD"')
        actions += f'\n[[action]]\npreset = "express-session"\nstore = "{rs.url}"\n'
        pb = playbook(tmp_path, leaked, people, actions)
        env = {"APP_DB_PASSWORD": password}
        outputs = []
        for args in (["respond", "plan", str(pb)], ["respond", "plan", str(pb), "-f", "json"],
                     ["respond", "execute", str(pb)], ["respond", "execute", str(pb), "--execute"],
                     ["respond", "execute", str(pb), "--execute", "-f", "json"], ["respond", "verify", str(pb)],
                     ["respond", "verify", str(pb), "-f", "json"], ["journal", "verify", str(tmp_path / "respond.journal")],
                     ["journal", "export", str(tmp_path / "respond.journal"), "--format", "md"],
                     ["journal", "export", str(tmp_path / "respond.journal"), "--format", "json"]):
            res = cli(*args, extra_env=env)
            assert res.returncode == 0, (args, res.stderr)
            outputs.append(res.stdout + res.stderr)
    blobs = [o.encode() for o in outputs]
    for f in (tmp_path / "respond.journal", tmp_path / "relink.jsonl"):
        blobs.append(f.read_bytes())
    import pyarrow.parquet as pq

    # The leaked set is compressed: check its decoded values, not its bytes.
    blobs.append(str(pq.read_table(leaked).to_pylist()).encode())
    forbidden = [s.encode() for s in w.raw_secrets()] + [u.email.encode() for u in w.users] + [password.encode()]
    for blob in blobs:
        for secret in forbidden:
            assert secret not in blob


def test_secrets_out_holds_every_leaked_credential_with_workers(tmp_path):
    """Every leaked token of the ground truth, the same set with 1 or 2 worker processes, owner-only, no raw value."""
    import pyarrow.parquet as pq

    from spillguard.keys import fingerprint

    w = World(users=300, leaked_every=2, seed=5)
    folder = tmp_path / "copy"
    folder.mkdir()
    w.write_copy(tmp_path / "all.jsonl")
    lines = (tmp_path / "all.jsonl").read_text().splitlines(keepends=True)
    (folder / "a.jsonl").write_text("".join(lines[::2]))
    (folder / "b.jsonl").write_text("".join(lines[1::2]))
    tables = []
    for workers in ("1", "2"):
        out = tmp_path / f"leaked{workers}.sgs"
        cli("scan", str(folder), "--secrets-out", str(out), "--workers", workers, "--no-progress", "--fail-on", "never",
            "-f", "json", "-o", str(tmp_path / "scan.json"), check=0)
        assert oct(out.stat().st_mode & 0o777) == "0o600"
        t = pq.read_table(out)
        tables.append(sorted(map(str, t.to_pylist())))
        rows = t.to_pylist()
    assert tables[0] == tables[1]
    L = w.leaked
    by_field: dict[str, set[str]] = {}
    for r in rows:
        by_field.setdefault(r["field"], set()).add(r["sha256"])
    assert by_field["access_token"] == {sha(u.dot_access) for u in L}
    assert by_field["refresh_token"] == {sha(u.dot_refresh) for u in L}
    assert by_field["auth_token"] == {sha(u.drf) for u in L}
    assert by_field["api_token"] == {sha(u.sanctum_plain) for u in L}
    assert by_field["alexa.access"] == {sha(u.alexa_access) for u in L}
    assert by_field["alexa.refresh"] == {sha(u.alexa_refresh) for u in L}
    assert {r["sha256_tail"] for r in rows if r["field"] == "api_token"} == {sha(u.sanctum_secret) for u in L}
    key = bytes.fromhex(KEY)
    assert {r["fingerprint"] for r in rows if r["field"] == "access_token"} == {fingerprint(key, u.dot_access) for u in L}
    # One subject per leaked person, the same keyed hash for all of that person's credentials.
    assert len({r["subject"] for r in rows}) == len(L) and 0 not in {r["subject"] for r in rows}


def test_http_action_per_token_paced_retried_idempotent(world, tmp_path):
    """An admin API on a loopback port: one call per leaked token (digest, never the token), a 503 retried,
    an Idempotency-Key per item, paced to per_second, and the credential taken from the environment."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from spillguard.leaked import LeakedSet

    w, leaked, people = world
    seen: list[dict] = []
    failed_once: set[str] = set()

    class Admin(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            key = self.headers["Idempotency-Key"]
            if key not in failed_once:
                failed_once.add(key)
                self.send_response(503)
                self.end_headers()
                return
            seen.append({"body": body, "key": key, "auth": self.headers["Authorization"], "path": self.path})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Admin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        action = (f'[[action]]\nid = "admin"\nkind = "http"\nurl = "http://127.0.0.1:{port}/revoke/{{sha256}}"\n'
                  'headers = { Authorization = "Bearer {env:ADMIN_TOKEN}" }\n'
                  'body = \'{"sha256": "{sha256}", "fp": "{fingerprint}", "incident": "{incident}"}\'\n'
                  'per = "token"\nrules = ["lwa_access_token"]\n')
        pb = playbook(tmp_path, leaked, people, action, extra="[limits]\nper_second = 200\nbackoff_s = 0.01\n")
        n = len(w.leaked)
        assert cli("respond", "execute", str(pb), "--execute").returncode == 2  # ADMIN_TOKEN not set: nothing sent
        assert not seen and not failed_once
        import time

        t0 = time.monotonic()
        cli("respond", "execute", str(pb), "--execute", extra_env={"ADMIN_TOKEN": "adm-XYZ"}, check=0)
        assert time.monotonic() - t0 >= (n - 1) / 200
        assert len(seen) == n and len({s["key"] for s in seen}) == n
        assert {s["body"]["sha256"] for s in seen} == {sha(u.alexa_access) for u in w.leaked}
        assert all(s["auth"] == "Bearer adm-XYZ" and s["path"] == f"/revoke/{s['body']['sha256']}" for s in seen)
        key = bytes.fromhex(KEY)
        fps = set(LeakedSet.load(leaked, key).digests("fingerprint", ["lwa_access_token"]))
        assert {s["body"]["fp"] for s in seen} == fps
        # Done steps are not sent again.
        cli("respond", "execute", str(pb), "--execute", extra_env={"ADMIN_TOKEN": "adm-XYZ"}, check=0)
        assert len(seen) == n
        assert b"adm-XYZ" not in (tmp_path / "respond.journal").read_bytes()
    finally:
        server.shutdown()


def test_dropped_connection_is_reopened_and_retried(world, pg, tmp_path, monkeypatch):
    """The server ends the respond session between plan and execute: steps reconnect, retry and finish."""
    from spillguard.respond.runner import execute_response, open_response, plan_response
    from tests.respond.test_respond_crash import _connect

    monkeypatch.setenv("SPILLGUARD_FINGERPRINT_KEY", KEY)
    w, leaked, people = world
    url = fresh_pg(pg, "dropped", w)
    pb = playbook(tmp_path, leaked, people, pick(url, "django-oauth-toolkit-access", "django-oauth-toolkit-refresh"),
                  extra="[limits]\nbatch = 7\nbackoff_s = 0.05\n")
    resp = open_response(pb, execute=True)
    try:
        plan_response(resp)
        with _connect(pg.dsn) as admin:
            ended = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                  "WHERE application_name = 'spillguard-respond'").fetchone()[0]
        assert ended >= 1
        execute_response(resp)
        doc = resp.execute_dict()
    finally:
        resp.close()
    n = len(w.leaked)
    assert {a["action"]: (a["done"], a["failed"]) for a in doc["actions"]} == {
        "django-oauth-toolkit-access": (n, 0), "django-oauth-toolkit-refresh": (n, 0)}
    assert pg_query(url, "SELECT count(*) FROM oauth2_provider_refreshtoken WHERE revoked IS NOT NULL")[0][0] == n


def test_library_api_plans_executes_only_when_told_and_verifies(world, tmp_path, monkeypatch):
    """`spillguard.respond()` is the CLI's respond as a call: same plan, nothing changed without execute=True."""
    import spillguard

    monkeypatch.setenv("SPILLGUARD_FINGERPRINT_KEY", KEY)
    w, leaked, people = world
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE authtoken_token (key varchar(40) primary key, user_id int not null, created text)")
    conn.executemany("INSERT INTO authtoken_token VALUES (?, ?, '2026-01-01')", [(u.drf, u.id) for u in w.users])
    conn.commit()
    conn.close()
    pb = playbook(tmp_path, leaked, people, f'[[action]]\npreset = "drf-authtoken"\nstore = "sqlite:///{db}"\n')
    plan = spillguard.respond(pb)
    assert [(a["action"], a["count"]) for a in plan["actions"]] == [("drf-authtoken", len(w.leaked))]
    assert spillguard.respond(pb, step="execute") == plan  # not told to execute: the plan, nothing changed
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT count(*) FROM authtoken_token").fetchone()[0] == len(w.users)
    done = spillguard.respond(pb, step="execute", execute=True)
    assert sum(a["done"] for a in done["actions"]) == len(w.leaked)
    with sqlite3.connect(db) as c:
        left = {r[0] for r in c.execute("SELECT user_id FROM authtoken_token")}
    assert left == {u.id for u in w.users} - {u.id for u in w.leaked}
    assert spillguard.respond(pb, step="verify")["still_active"] == 0
    with pytest.raises(spillguard.UserError):
        spillguard.respond(pb, step="revoke")
