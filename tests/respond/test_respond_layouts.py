"""Parts of the issue's "what to build" that the other respond tests do not reach: Spring Session's own
PostgreSQL schema (unquoted names, folded to lower case), tokens stored as `<prefix><sha256>`, an HTTP action
proved by a verify request to the API, and bad input of Redis and HTTP actions (one line, exit 2, nothing
changed)."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.respond import test_respond as base
from tests.respond.test_respond import KEY, cli, fresh_pg, pg_query, plan_counts, playbook
from tests.responddata import sha
from tests.servers import free_port, redis_server

world = base.world  # the module-scoped fixtures of test_respond: the world, scanned; a PostgreSQL server
pg = base.pg

# Spring Session JDBC's PostgreSQL schema, as the project ships it: unquoted, so PostgreSQL stores it lower-case.
SPRING_SCHEMA = """
CREATE TABLE SPRING_SESSION (PRIMARY_ID CHAR(36) NOT NULL, SESSION_ID CHAR(36) NOT NULL, CREATION_TIME BIGINT NOT NULL,
    LAST_ACCESS_TIME BIGINT NOT NULL, MAX_INACTIVE_INTERVAL INT NOT NULL, EXPIRY_TIME BIGINT NOT NULL,
    PRINCIPAL_NAME VARCHAR(100), CONSTRAINT SPRING_SESSION_PK PRIMARY KEY (PRIMARY_ID));
CREATE UNIQUE INDEX SPRING_SESSION_IX1 ON SPRING_SESSION (SESSION_ID);
CREATE INDEX SPRING_SESSION_IX3 ON SPRING_SESSION (PRINCIPAL_NAME);
CREATE TABLE SPRING_SESSION_ATTRIBUTES (SESSION_PRIMARY_ID CHAR(36) NOT NULL, ATTRIBUTE_NAME VARCHAR(200) NOT NULL,
    ATTRIBUTE_BYTES BYTEA NOT NULL, CONSTRAINT SPRING_SESSION_ATTRIBUTES_PK PRIMARY KEY (SESSION_PRIMARY_ID, ATTRIBUTE_NAME),
    CONSTRAINT SPRING_SESSION_ATTRIBUTES_FK FOREIGN KEY (SESSION_PRIMARY_ID) REFERENCES SPRING_SESSION(PRIMARY_ID) ON DELETE CASCADE);
"""


def test_spring_session_on_its_own_postgres_schema(world, pg, tmp_path):
    import psycopg

    w, leaked, people = world
    url = fresh_pg(pg, "spring", w)
    rows = []
    for u in w.users:
        for n in range(2):
            rows.append((str(uuid.uuid4()), str(uuid.uuid4()), str(u.id) if n == 0 or u.id % 5 else None))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SPRING_SCHEMA)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO spring_session VALUES (%s, %s, 1, 1, 1800, 9999999999999, %s)", rows)
            cur.executemany("INSERT INTO spring_session_attributes VALUES (%s, 'SPRING_SECURITY_CONTEXT', '\\x00')",
                            [(r[0],) for r in rows])
    pb = playbook(tmp_path, leaked, people, f'[[action]]\npreset = "spring-session"\nstore = "{url}"\n')
    affected = {str(u.id) for u in w.leaked}
    ended = [r for r in rows if r[2] in affected]
    assert plan_counts(pb) == {"spring-session": len(ended)}
    cli("respond", "execute", str(pb), "--execute", check=0)
    left = {r[0] for r in pg_query(url, "SELECT primary_id FROM spring_session")}
    assert left == {r[0] for r in rows} - {r[0] for r in ended}
    # The attributes went with their sessions (ON DELETE CASCADE).
    assert {r[0] for r in pg_query(url, "SELECT session_primary_id FROM spring_session_attributes")} == left
    assert cli("respond", "verify", str(pb)).returncode == 0
    assert plan_counts(pb, "--scope", "all") == {"spring-session": len(left)}


def test_prefix_stored_tokens(world, tmp_path):
    """`stored = "prefix"`: the column holds `<prefix><sha256 hex>` (e.g. `sha256$…`); only leaked rows go."""
    w, leaked, people = world
    db = tmp_path / "keys.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE api_keys (id integer primary key, owner int, digest text unique not null)")
        conn.executemany("INSERT INTO api_keys (owner, digest) VALUES (?, ?)", [(u.id, "sha256$" + sha(u.drf)) for u in w.users])
    pb = playbook(tmp_path, leaked, people, f'[[action]]\nid = "keys"\nkind = "sql-tokens"\nstore = "sqlite:///{db}"\n'
                  'table = "api_keys"\ntoken_column = "digest"\nstored = "prefix"\nprefix = "sha256$"\nkey_column = "id"\n'
                  'user_column = "owner"\nrevoke = "delete"\n')
    assert plan_counts(pb) == {"keys": len(w.leaked)}
    cli("respond", "execute", str(pb), "--execute", check=0)
    with sqlite3.connect(db) as conn:
        assert {r[0] for r in conn.execute("SELECT owner FROM api_keys")} == {u.id for u in w.users if not u.leaked}
    assert cli("respond", "verify", str(pb)).returncode == 0


class TokenApi(BaseHTTPRequestHandler):
    """An in-house admin API: POST /revoke/<sha256> revokes; GET /tokens/<sha256> says whether it is active."""

    revoked: set[str] = set()
    known: set[str] = set()
    broken: set[str] = set()  # answers 500 to verification, always

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.revoked.add(self.path.rsplit("/", 1)[1])
        self.send_response(204)
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        digest = self.path.rsplit("/", 1)[1]
        if digest in self.broken:
            self.send_response(500)
            self.end_headers()
            return
        body = json.dumps({"active": digest in self.known and digest not in self.revoked}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_http_action_verified_by_a_verify_request(world, tmp_path):
    w, leaked, people = world
    TokenApi.known = {sha(u.alexa_access) for u in w.users}
    TokenApi.revoked = set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), TokenApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        pb = playbook(tmp_path, leaked, people,
                      f'[[action]]\nid = "admin"\nkind = "http"\nurl = "{base}/revoke/{{sha256}}"\nper = "token"\n'
                      f'rules = ["lwa_access_token"]\nverify_url = "{base}/tokens/{{sha256}}"\nverify_active_field = "active"\n',
                      extra="[limits]\nbackoff_s = 0.01\nretries = 1\n")
        n = len(w.leaked)
        res = cli("respond", "verify", str(pb), "-f", "json")
        assert res.returncode == 1  # nothing revoked yet: the API says so, and the exit code too
        doc = json.loads(res.stdout)
        assert doc["actions"][0]["still_active"] == n and doc["actions"][0]["checked"] == n
        assert f"{n:,} of {n:,} (token) still active at {base}/tokens/…" in doc["actions"][0]["details"][0]
        cli("respond", "execute", str(pb), "--execute", check=0)
        assert TokenApi.revoked == {sha(u.alexa_access) for u in w.leaked}
        res = cli("respond", "verify", str(pb), "-f", "json", check=0)
        assert json.loads(res.stdout)["still_active"] == 0
        # An answer that says neither active nor inactive is never taken as success.
        TokenApi.broken = {sha(w.leaked[0].alexa_access)}
        res = cli("respond", "verify", str(pb), "-f", "json")
        assert res.returncode == 1
        assert "1 of" in json.loads(res.stdout)["actions"][0]["details"][0] and "1 × 500" in res.stdout
    finally:
        TokenApi.broken = set()
        server.shutdown()


@pytest.fixture(scope="module")
def redis_store():
    with redis_server() as server:
        yield server


@pytest.mark.parametrize("action, message", [
    ('preset = "express-session"\nstore = "redis://127.0.0.1:{dead}/0"', "cannot connect"),
    ('preset = "flask-session"\nstore = "{redis}"\nformat = "yaml"', "format = 'yaml'"),
    ('preset = "flask-session"\nstore = "{redis}"\nuser_fields = "id"', "unknown key 'user_fields'"),
    ('preset = "express-session"\nstore = "{redis}"\npassword_env = "SPILLGUARD_TEST_NO_SUCH_VAR"', "SPILLGUARD_TEST_NO_SUCH_VAR is not set"),
    ('kind = "http"\nurl = "http://127.0.0.1:{dead}/{{sha256}}"\nheaders = {{ Authorization = "Bearer {{env:SPILLGUARD_TEST_NO_SUCH_VAR}}" }}',
     "SPILLGUARD_TEST_NO_SUCH_VAR is not set"),
    ('kind = "http"\nurl = "http://127.0.0.1:{dead}/{{sha256}}"\nverify_active_field = "active"', "need `verify_url`"),
    ('kind = "http"\nurl = "http://127.0.0.1:{dead}/{{sha256}}"\nverify_url = "http://127.0.0.1:{dead}/{{token}}"', "placeholder {token}"),
])
def test_bad_redis_and_http_actions_change_nothing(world, redis_store, tmp_path, action, message):
    import redis

    w, leaked, people = world
    server = redis_store
    client = redis.Redis.from_url(server.url)
    client.flushall()
    w.load_redis(client)
    before = sorted(client.scan_iter("sess:*"))
    # A good action first: a check that ran only after it would show as a change.
    good = f'[[action]]\nid = "first"\npreset = "express-session"\nstore = "{server.url}"\nscope = "all"\n'
    pb = playbook(tmp_path, leaked, people, good + "\n[[action]]\n" + action.format(dead=free_port(), redis=server.url))
    res = cli("respond", "execute", str(pb), "--execute")
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spillguard: error: ") and message in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert sorted(client.scan_iter("sess:*")) == before
    assert not (tmp_path / "respond.journal").exists()
    client.close()


def test_redis_scan_that_repeats_keys_counts_each_session_once(tmp_path):
    """SCAN may return a key twice while Redis rehashes: every session is read, judged and ended once."""
    import numpy as np
    import pyarrow as pa
    import redis

    from spillguard.keys import subject_hasher
    from spillguard.leaked import LeakedSet
    from spillguard.respond.actions import Context, Limits
    from spillguard.respond.redis_sessions import RedisSessions
    from spillguard.respond.subjects import Subjects

    with redis_server() as server:
        client = redis.Redis.from_url(server.url)
        for u in range(300):
            client.set(f"sess:{u}", json.dumps({"passport": {"user": u}}) if u % 10 else "{}")
        action = RedisSessions({"id": "s", "scope": "exact", "store": server.url, "pattern": "sess:*",
                                "user_field": "passport.user"}, "test")
        action.connect()
        scan = action._scan

        def repeating(ctx, cursor, extra):
            nxt, found, replies = scan(ctx, cursor, extra)
            return nxt, found + found[: len(found) // 3], replies  # a third of every answer again

        action._scan = repeating
        key = bytes.fromhex(KEY)
        people = pa.array([str(u) for u in range(0, 300, 2)])
        subjects = Subjects(np.unique(subject_hasher(key).hash_strings(people)), key)
        ctx = Context("i", "exact", LeakedSet.empty(), subjects, None, key, Limits(batch=40))
        steps = action.plan(ctx)
        assert sum(s.count for s in steps) == len({u for u in range(0, 300, 2) if u % 10})
        assert action.unattributed == 30  # "{}" sessions, each counted once
        for s in steps:
            action.execute(ctx, s)
        assert {int(k[5:]) for k in client.scan_iter("sess:*")} == {u for u in range(300) if u % 2 or not u % 10}
        action.close()
        client.close()
