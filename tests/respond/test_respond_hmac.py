"""Token stores that keep HMAC-SHA-256(app key, token): the scan computes the app's HMAC of every leaked secret
(--secrets-hmac-key-env), respond matches `stored = "hmac"` against it in a real PostgreSQL table."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.respond.test_respond import cli, pg, pg_query, plan_counts, playbook  # noqa: F401 - pg is a fixture
from tests.responddata import World

psycopg = pytest.importorskip("psycopg")

APP_KEY = "app-secret-of-the-company-2019!"  # the application's own HMAC key (its text, as the app uses it)


def app_hmac(token: str, key: str = APP_KEY) -> str:
    return hmac.new(key.encode(), token.encode(), hashlib.sha256).hexdigest()


@pytest.fixture(scope="module")
def hworld(tmp_path_factory) -> tuple[World, Path, Path, Path]:
    """The exposed copy scanned twice: with the app's HMAC key and without."""
    w = World(users=90, leaked_every=4, seed=23)
    d = tmp_path_factory.mktemp("hcopy")
    w.write_copy(d / "copy.jsonl")
    common = ("--subjects-out", str(d / "people.csv"), "--no-progress", "--fail-on", "never", "-f", "json", "-o", str(d / "scan.json"))
    res = cli("scan", str(d / "copy.jsonl"), "--secrets-out", str(d / "leaked.sgs"), "--secrets-hmac-key-env", "APP_TOKEN_KEY",
              *common, check=0, extra_env={"APP_TOKEN_KEY": APP_KEY})
    assert APP_KEY not in res.stdout + res.stderr
    cli("scan", str(d / "copy.jsonl"), "--secrets-out", str(d / "plain.sgs"), *common, check=0)
    return w, d / "leaked.sgs", d / "plain.sgs", d / "people.csv"


def load_hmac_table(url: str, w: World) -> None:
    """An app's token table: every user's access token (HMAC), plus tokens issued after the copy."""
    rows = [(u.id, app_hmac(u.dot_access)) for u in w.users]
    rows += [(u.id, app_hmac(u.fresh_access)) for u in w.users if u.fresh_access]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE api_tokens (id serial PRIMARY KEY, user_id int NOT NULL, token_hmac char(64) NOT NULL UNIQUE,"
                     " revoked_at timestamptz)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO api_tokens (user_id, token_hmac) VALUES (%s, %s)", rows)


def fresh_db(pg, name: str, w: World) -> str:  # noqa: F811 - pg is the fixture
    from tests.respond.test_respond_crash import _connect

    with _connect(pg.dsn) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    url = pg.url.rsplit("/", 1)[0] + f"/{name}"
    load_hmac_table(url, w)
    return url


def action(url: str, revoke: str = "delete") -> str:
    extra = 'revoke = "flag"\nflag_column = "revoked_at"\n' if revoke == "flag" else ""
    return (f'[[action]]\nid = "app-tokens"\nkind = "sql-tokens"\nstore = "{url}"\ntable = "api_tokens"\n'
            f'token_column = "token_hmac"\nstored = "hmac"\nuser_column = "user_id"\n{extra}')


def test_leaked_set_holds_the_apps_hmac_and_never_the_key(hworld):
    w, leaked, plain, _ = hworld
    table = pq.read_table(leaked)
    meta = table.schema.metadata
    assert meta[b"hmac_key"].startswith(b"APP_TOKEN_KEY kid-") and APP_KEY.encode() not in leaked.read_bytes()
    by_field: dict[str, set[str]] = {}
    for r in table.to_pylist():
        by_field.setdefault(r["field"], set()).add(r["hmac"])
    assert by_field["access_token"] == {app_hmac(u.dot_access) for u in w.leaked}
    assert by_field["refresh_token"] == {app_hmac(u.dot_refresh) for u in w.leaked}
    # Without the option the column is there and empty, and the metadata says so.
    t2 = pq.read_table(plain)
    assert t2["hmac"].null_count == t2.num_rows and b"hmac_key" not in (t2.schema.metadata or {})


@pytest.mark.parametrize("revoke", ["delete", "flag"])
def test_hmac_store_exactly_the_leaked_rows(hworld, pg, tmp_path, revoke):  # noqa: F811
    w, leaked, _, people = hworld
    url = fresh_db(pg, f"hmac_{revoke}", w)
    pb = playbook(tmp_path, leaked, people, action(url, revoke))
    assert plan_counts(pb) == {"app-tokens": len(w.leaked)}
    assert cli("respond", "verify", str(pb)).returncode == 1
    cli("respond", "execute", str(pb), "--execute", check=0)
    live_sql = "SELECT token_hmac FROM api_tokens" + (" WHERE revoked_at IS NULL" if revoke == "flag" else "")
    live = {r[0] for r in pg_query(url, live_sql)}
    expected = {app_hmac(u.dot_access) for u in w.users if not u.leaked} | {app_hmac(u.fresh_access) for u in w.users if u.fresh_access}
    assert live == expected
    if revoke == "flag":
        revoked_users = {r[0] for r in pg_query(url, "SELECT user_id FROM api_tokens WHERE revoked_at IS NOT NULL")}
        assert revoked_users == {u.id for u in w.leaked}
    cli("respond", "verify", str(pb), check=0)
    assert set(plan_counts(pb).values()) == {0}


def test_hmac_store_refused_without_the_column(hworld, pg, tmp_path):  # noqa: F811
    w, _, plain, people = hworld
    url = fresh_db(pg, "hmac_refused", w)
    pb = playbook(tmp_path, plain, people, action(url))
    for cmd in (("plan",), ("execute", "--execute"), ("verify",)):
        res = cli("respond", *cmd, str(pb))
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1 and "--secrets-hmac-key-env" in lines[0], res.stderr
    assert pg_query(url, "SELECT count(*) FROM api_tokens")[0][0] == len(w.users) + sum(1 for u in w.users if u.fresh_access)
    assert not (tmp_path / "respond.journal").exists()


def test_scan_refuses_a_missing_app_key(tmp_path):
    w = World(users=10, leaked_every=2, seed=5)
    w.write_copy(tmp_path / "copy.jsonl")
    out = tmp_path / "leaked.sgs"
    res = cli("scan", str(tmp_path / "copy.jsonl"), "--secrets-out", str(out), "--secrets-hmac-key-env", "NO_SUCH_VAR_X",
              "--no-progress")
    assert res.returncode == 2 and "NO_SUCH_VAR_X is not set" in res.stderr and "Traceback" not in res.stderr
    assert not out.exists()
    res = cli("scan", str(tmp_path / "copy.jsonl"), "--secrets-hmac-key-env", "APP", "--no-progress", extra_env={"APP": "k"})
    assert res.returncode == 2 and "--secrets-out" in res.stderr
