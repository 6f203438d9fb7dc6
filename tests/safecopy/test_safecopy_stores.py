"""Safe copies between real stores the tests start: PostgreSQL, MariaDB, Elasticsearch (noida-db stand-in)."""

from __future__ import annotations

import json

import psycopg
import pyarrow.parquet as pq
import pytest

from spillguard.errors import UserError
from spillguard.safecopy import copy
from tests.copydata import KEY_HEX, generate, policy_text, write_jsonl
from tests.servers import mariadb_server, noida_server, postgres_server


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("SG_COPY_KEY", KEY_HEX)


@pytest.fixture(scope="module")
def data():
    return generate(300, seed=11)


USERS_DDL = """CREATE TABLE {users} (user_id text PRIMARY KEY, email text, full_name text, phone text, api_token text,
    signup_at {ts}, last_ip text, plan text, notes text)"""
DEVICES_DDL = "CREATE TABLE {devices} (device_id text PRIMARY KEY, user_id text, mac text, model text, firmware text)"
USER_COLS = ["user_id", "email", "full_name", "phone", "api_token", "signup_at", "last_ip", "plan", "notes"]
DEVICE_COLS = ["device_id", "user_id", "mac", "model", "firmware"]


def _accepting(dsn: str) -> None:
    """servers.py waits for the port; PostgreSQL may still answer "starting up" for a moment after."""
    import time

    deadline = time.monotonic() + 30
    while True:
        try:
            psycopg.connect(dsn, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _write(path, text: str):
    path.write_text(text)
    return path


def _policy(tmp_path, users: str, devices: str, **kw):
    p = tmp_path / "policy.toml"
    p.write_text(policy_text(users, devices, **kw))
    return p


@pytest.fixture(scope="module")
def pg_source(data):
    with postgres_server() as server:
        _accepting(server.dsn)
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute(USERS_DDL.format(users="users", ts="timestamp"))
            conn.execute(DEVICES_DDL.format(devices="devices"))
            with conn.cursor() as cur:
                cur.executemany(f"INSERT INTO users VALUES ({', '.join(['%s'] * len(USER_COLS))})",
                                [tuple(u[c] for c in USER_COLS) for u in data.users])
                cur.executemany(f"INSERT INTO devices VALUES ({', '.join(['%s'] * len(DEVICE_COLS))})",
                                [tuple(d[c] for c in DEVICE_COLS) for d in data.devices])
            conn.execute("ANALYZE")
        yield server


def test_postgres_to_postgres_pseudonymised_user_id_still_joins(tmp_path, pg_source, data):
    pol = _policy(tmp_path, "public.users", "public.devices")
    with postgres_server(auth="scram") as dest:
        _accepting(dest.dsn)
        result = copy(pg_source.url, dest.dsn, policy=pol)
        assert result.exposure is not None and result.exposure["verdict"] == "protected"
        assert result.exit_code == 0, result.to_json()["verification"]
        assert {d.destination: d.rows for d in result.datasets} == {"public.users": 300, "public.devices": len(data.devices)}
        with psycopg.connect(dest.dsn) as conn:
            rows = conn.execute(
                "SELECT u.user_id, count(*) FROM users u JOIN devices d ON d.user_id = u.user_id GROUP BY 1"
            ).fetchall()
            assert sorted(n for _, n in rows) == sorted(data.devices_per_user().values())
            cols = [r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'users' ORDER BY ordinal_position")]
            assert "full_name" not in cols and "api_token" not in cols
            assert conn.execute("SELECT count(*) FROM users WHERE email LIKE '%@%'").fetchone()[0] == 0
            sig = conn.execute("SELECT signup_at FROM users ORDER BY signup_at LIMIT 1").fetchone()[0]
            assert sig.day == 1 and sig.hour == 0
            meta = conn.execute("SELECT meta FROM spillguard_copies WHERE dataset = 'public.users'").fetchone()[0]
            assert meta["keys"]["main"]["key_id"] == result.keys["main"]["key_id"] and KEY_HEX not in json.dumps(meta)
        # The same key gives the same pseudonyms on a second run (here: --replace into the same table).
        with psycopg.connect(dest.dsn) as conn:
            before = sorted(r[0] for r in conn.execute("SELECT email FROM users"))
        again = copy(pg_source.url, dest.dsn, policy=pol, mode="replace")
        assert again.exit_code == 0
        with psycopg.connect(dest.dsn) as conn:
            assert sorted(r[0] for r in conn.execute("SELECT email FROM users")) == before
            assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 300


def test_unauthenticated_destination_is_refused_unless_allowed(tmp_path, pg_source, data):
    src = write_jsonl(tmp_path / "src", data)
    pol = _policy(tmp_path, "users.jsonl", "devices.jsonl")
    pol.write_text(pol.read_text().replace('to = "users"', 'to = "copy_users"').replace('to = "devices"', 'to = "copy_devices"'))
    # pg_source runs with trust authentication: anyone who reaches it can read it.
    with pytest.raises(UserError, match=r"is exposed \(weak-credentials"):
        copy(str(src), pg_source.url, policy=pol)
    with psycopg.connect(pg_source.dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE tablename IN ('spillguard_copies', 'copy_users')").fetchone()[0] == 0
    result = copy(str(src), pg_source.url, policy=pol, allow_exposed_destination=True)
    assert result.exit_code == 0 and result.exposure["allowed_by_flag"] is True
    with psycopg.connect(pg_source.dsn) as conn:
        meta = conn.execute("SELECT meta FROM spillguard_copies WHERE dataset = 'public.copy_users'").fetchone()[0]
        assert meta["exposed_destination_allowed"] == "weak-credentials"
        conn.execute("DROP TABLE copy_users, copy_devices, spillguard_copies")
        conn.commit()


def test_mariadb_to_sqlite(tmp_path, data):
    pol = _policy(tmp_path, "app.users", "app.devices")
    db = tmp_path / "copy.db"
    with mariadb_server() as server:
        import pymysql

        conn = pymysql.connect(host=server.host, port=server.port, user="root", password="", autocommit=True)
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE app")
            cur.execute("USE app")
            cur.execute(USERS_DDL.format(users="users", ts="datetime").replace("text PRIMARY KEY", "varchar(32) PRIMARY KEY"))
            cur.execute(DEVICES_DDL.format(devices="devices").replace("text PRIMARY KEY", "varchar(32) PRIMARY KEY"))
            cur.executemany(f"INSERT INTO users VALUES ({', '.join(['%s'] * len(USER_COLS))})",
                            [tuple(u[c].replace("T", " ") if c == "signup_at" else u[c] for c in USER_COLS) for u in data.users])
            cur.executemany(f"INSERT INTO devices VALUES ({', '.join(['%s'] * len(DEVICE_COLS))})",
                            [tuple(d[c] for c in DEVICE_COLS) for d in data.devices])
        conn.close()
        result = copy(f"mysql://root@{server.host}:{server.port}/app", f"sqlite:///{db}", policy=pol)
    assert result.exit_code == 0, result.to_json()["verification"]
    import sqlite3

    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM users").fetchone()[0] == 300
    joined = con.execute("SELECT count(*) FROM devices d JOIN users u ON u.user_id = d.user_id").fetchone()[0]
    assert joined == len(data.devices)
    blob = db.read_bytes()
    assert not any(u["email"].encode() in blob or u["user_id"].encode() in blob for u in data.users)


def test_postgres_to_mysql_destination(tmp_path, pg_source, data):
    pol = _policy(tmp_path, "public.users", "public.devices")
    with mariadb_server(root_password="An0ther-s3cret") as dest:
        import pymysql

        conn = pymysql.connect(host=dest.host, port=dest.port, user="root", password="An0ther-s3cret", autocommit=True)
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE analytics")
        result = copy(pg_source.url, f"mysql://root:An0ther-s3cret@{dest.host}:{dest.port}/analytics", policy=pol)
        assert result.exposure is not None and result.exposure["verdict"] == "protected"
        assert result.exit_code == 0, result.to_json()["verification"]
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM analytics.devices d JOIN analytics.users u ON u.user_id = d.user_id")
            assert cur.fetchone()[0] == len(data.devices)
            cur.execute("SHOW TABLES FROM analytics")
            assert sorted(r[0] for r in cur.fetchall()) == ["devices", "spillguard_copies", "users"]
        conn.close()


def test_jsonl_to_elasticsearch_and_back_to_parquet(tmp_path, data):
    src = write_jsonl(tmp_path / "src", data)
    pol = _policy(tmp_path, "users.jsonl", "devices.jsonl")
    with noida_server() as es:
        # noida-db has no security at all: refused, then copied when the user insists (and recorded).
        with pytest.raises(UserError, match="is exposed"):
            copy(str(src), es.url, policy=pol)
        import httpx

        assert httpx.head(f"http://{es.host}:{es.port}/users").status_code == 404
        result = copy(str(src), es.url, policy=pol, allow_exposed_destination=True)
        assert result.exit_code == 0, result.to_json()["verification"]
        assert result.exposure == {"verdict": "open-read", "allowed_by_flag": True, "reason": result.exposure["reason"]}
        mapping = httpx.get(f"http://{es.host}:{es.port}/users/_mapping").json()
        meta = mapping["users"]["mappings"]["_meta"]["spillguard_copy"]
        assert meta["exposed_destination_allowed"] == "open-read" and meta["keys"]["main"]["key_id"].startswith("kid-")
        assert httpx.get(f"http://{es.host}:{es.port}/users/_count").json()["count"] == 300

        # Elasticsearch -> Parquet: the copy's pseudonyms are kept, nothing new appears.
        back = tmp_path / "back.toml"
        back.write_text("""
version = 1
[datasets.users]
to = "users"
[datasets.users.fields]
user_id = "keep"
email = "keep"
phone = "keep"
signup_at = "keep"
last_ip = { transform = "keep", allow = ["ip_address"] }   # already cut to /24 by the first copy
plan = "keep"
notes = "keep"
""")
        out = tmp_path / "users.parquet"
        strict = _write(tmp_path / "strict.toml", back.read_text().replace('{ transform = "keep", allow = ["ip_address"] }', '"keep"'))
        flagged = copy(es.url, str(tmp_path / "flagged.parquet"), policy=strict)
        # Kept without `allow`, the /24 networks are still IP addresses: the proof names the field.
        assert flagged.exit_code == 1
        assert [(p["field"], p["category"]) for p in flagged.verification.personal_data] == [("last_ip", "ip_address")]
        result = copy(es.url, str(out), policy=back)
        assert result.exit_code == 0, result.to_json()["verification"]
        table = pq.read_table(out)
        assert table.num_rows == 300
        assert set(table.column("user_id").to_pylist()).isdisjoint(u["user_id"] for u in data.users)


def test_a_refused_row_is_reported_without_its_values_and_nothing_is_committed(tmp_path, pg_source, data):
    src = write_jsonl(tmp_path / "src", data)
    pol = _policy(tmp_path, "users.jsonl", "devices.jsonl")
    pol.write_text(pol.read_text().replace('to = "users"', 'to = "typed_users"').replace('to = "devices"', 'to = "typed_devices"'))
    with psycopg.connect(pg_source.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE typed_users (plan bigint)")
    try:
        with pytest.raises(UserError) as err:
            copy(str(src), pg_source.url, policy=pol, mode="append", allow_exposed_destination=True)
        message = str(err.value)
        assert "writing public.typed_users failed (invalid input syntax for type bigint" in message
        assert not any(p in message for p in ("free", "plus", "pro"))
        with psycopg.connect(pg_source.dsn) as conn:
            assert conn.execute("SELECT count(*) FROM typed_users").fetchone()[0] == 0
            names = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'typed%' OR tablename = 'spillguard_copies'")]
            assert names == ["typed_users"]
    finally:
        with psycopg.connect(pg_source.dsn, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS typed_users, typed_devices")


def test_postgres_partitions_in_workers_equal_one_process(tmp_path, pg_source):
    import sqlite3

    from spillguard.sources import open_target

    src = open_target(pg_source.url, partition_rows=40)
    assert len(src.dataset("public.users").partitions()) > 2  # the workers really share the table
    src.close()
    pol = _policy(tmp_path, "public.users", "public.devices")
    outs = {}
    for workers in (1, 2):
        db = tmp_path / f"w{workers}.db"
        result = copy(pg_source.url, f"sqlite:///{db}", policy=pol, workers=workers, partition_rows=40)
        assert result.exit_code == 0, result.to_json()["verification"]
        con = sqlite3.connect(db)
        outs[workers] = sorted(con.execute("SELECT * FROM users").fetchall())
        con.close()
    assert len(outs[1]) == 300 and outs[1] == outs[2]


BIG = 3000


@pytest.fixture(scope="module")
def big_source(pg_source):
    """Schema `big` of the source server: enough rows for ten ctid partitions of 300 rows."""
    big = generate(BIG, seed=23)
    with psycopg.connect(pg_source.dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA big")
        conn.execute(USERS_DDL.format(users="big.users", ts="timestamp"))
        conn.execute(DEVICES_DDL.format(devices="big.devices"))
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO big.users VALUES ({', '.join(['%s'] * len(USER_COLS))})",
                            [tuple(u[c] for c in USER_COLS) for u in big.users])
            cur.executemany(f"INSERT INTO big.devices VALUES ({', '.join(['%s'] * len(DEVICE_COLS))})",
                            [tuple(d[c] for c in DEVICE_COLS) for d in big.devices])
        conn.execute("ANALYZE big.users")
        conn.execute("ANALYZE big.devices")
    return big


def _pg_rows(dsn: str, schema: str) -> dict[str, list[tuple]]:
    with psycopg.connect(dsn) as conn:
        return {t: sorted(conn.execute(f"SELECT * FROM {schema}.{t}").fetchall(), key=repr) for t in ("users", "devices")}


def test_postgres_kill_9_then_resume_equals_an_uninterrupted_copy(tmp_path, pg_source, big_source):
    import sys

    from tests.safecopy.test_safecopy import kill_when_checkpointed

    pol = _policy(tmp_path, "big.users", "big.devices")
    whole = _write(tmp_path / "whole.toml", pol.read_text().replace('to = "users"', 'to = "whole.users"').replace('to = "devices"', 'to = "whole.devices"'))
    state = tmp_path / "copy.state"
    with postgres_server(auth="scram") as dest:
        _accepting(dest.dsn)
        reference = copy(pg_source.url, dest.dsn, policy=whole, partition_rows=300)
        assert reference.exit_code == 0
        code = ("import sys; from spillguard.safecopy import copy; "
                "copy(sys.argv[1], sys.argv[2], policy=sys.argv[3], state=sys.argv[4], partition_rows=300)")
        kill_when_checkpointed([sys.executable, "-c", code, pg_source.url, dest.dsn, str(pol), str(state)], state, parts=3)
        with psycopg.connect(dest.dsn) as conn:
            names = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert "users" not in names and "_sg_stage_users" in names  # nothing visible before the publish
        resumed = copy(pg_source.url, dest.dsn, policy=pol, state=state, resume=True, workers=2, partition_rows=300)
        assert resumed.exit_code == 0, resumed.to_json()["verification"]
        assert [d.rows for d in resumed.datasets] == [d.rows for d in reference.datasets] == [BIG, len(big_source.devices)]
        assert [d.notes for d in resumed.datasets] == [d.notes for d in reference.datasets]
        assert _pg_rows(dest.dsn, "public") == _pg_rows(dest.dsn, "whole")
        with psycopg.connect(dest.dsn) as conn:
            names = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
            assert not any(n.startswith("_sg_stage_") for n in names)
            assert conn.execute("SELECT count(*) FROM _sg_copy_parts").fetchone()[0] == 0


def test_resume_into_mysql_and_elasticsearch(tmp_path, monkeypatch):
    from spillguard.safecopy.run import CopyInterrupted
    from tests.safecopy.test_safecopy import _write_parquet, interrupt_after

    small = generate(600, seed=29)
    src = str(_write_parquet(tmp_path / "src", small, rows_per_group=100))
    pol = _policy(tmp_path, "users.parquet", "devices.parquet")
    with mariadb_server(root_password="An0ther-s3cret") as maria, noida_server() as es:
        import httpx
        import pymysql

        conn = pymysql.connect(host=maria.host, port=maria.port, user="root", password="An0ther-s3cret", autocommit=True)
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE whole")
            cur.execute("CREATE DATABASE resumed")
        base = f"mysql://root:An0ther-s3cret@{maria.host}:{maria.port}"
        es_whole = tmp_path / "es-whole.toml"
        es_whole.write_text(pol.read_text().replace('to = "users"', 'to = "whole_users"').replace('to = "devices"', 'to = "whole_devices"'))
        targets = [(f"{base}/whole", f"{base}/resumed", pol, pol, {}),
                   (es.url, es.url, es_whole, pol, {"allow_exposed_destination": True})]
        for whole_dest, dest, whole_pol, dest_pol, extra in targets:
            assert copy(src, whole_dest, policy=whole_pol, **extra).exit_code == 0
            state = tmp_path / f"{len(str(dest))}.state"
            with monkeypatch.context() as m:
                interrupt_after(m, 4)
                with pytest.raises(CopyInterrupted):
                    copy(src, dest, policy=dest_pol, state=state, **extra)
            resumed = copy(src, dest, policy=dest_pol, state=state, resume=True, **extra)
            assert resumed.exit_code == 0, resumed.to_json()["verification"]
            assert [d.rows for d in resumed.datasets] == [600, len(small.devices)]

        def mysql_rows(db: str) -> list[tuple]:
            with conn.cursor() as cur:
                cur.execute(f"SELECT * FROM {db}.users")
                return sorted(cur.fetchall(), key=repr)

        assert len(mysql_rows("resumed")) == 600 and mysql_rows("resumed") == mysql_rows("whole")

        # Stopped between MySQL's RENAME TABLE (which commits on its own) and the metadata row: the resumed
        # append finds the stage renamed into place and only records it, it does not append a second time.
        from spillguard.safecopy.destinations import mysql as mysql_dest

        real_exec = mysql_dest.MySQLWriter._exec

        def exec_then_stop(self, sql, args=None):
            if sql.startswith("INSERT INTO `spillguard_copies`"):
                raise KeyboardInterrupt
            real_exec(self, sql, args)

        state = tmp_path / "append.state"
        with monkeypatch.context() as m:
            m.setattr(mysql_dest.MySQLWriter, "_exec", exec_then_stop)
            with pytest.raises(CopyInterrupted):
                copy(src, f"{base}/whole", policy=pol, mode="append", state=state)
        appended = copy(src, f"{base}/whole", policy=pol, mode="append", state=state, resume=True)
        assert appended.exit_code == 0
        assert len(mysql_rows("whole")) == 1200
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM whole.spillguard_copies WHERE dataset = 'users'")
            assert cur.fetchone()[0] == 2
        with conn.cursor() as cur:
            cur.execute("SHOW TABLES FROM resumed")
            assert sorted(r[0] for r in cur.fetchall()) == ["_sg_copy_parts", "devices", "spillguard_copies", "users"]
        conn.close()

        def es_docs(index: str) -> list[str]:
            hits = httpx.post(f"http://{es.host}:{es.port}/{index}/_search", json={"size": 10000}).json()["hits"]["hits"]
            return sorted(json.dumps(h["_source"], sort_keys=True) for h in hits)

        assert len(es_docs("users")) == 600 and es_docs("users") == es_docs("whole_users")


def test_watch_config_adds_the_destination_once_and_watch_alerts_when_it_opens(tmp_path, pg_source):
    from pathlib import Path

    from spillguard.audit.watch import WatchOptions, watch
    from spillguard.config import load_config
    from tests.audit.test_watch import RecordingSink

    cfg = tmp_path / "spillguard.toml"
    before = '# stores we keep an eye on\n[watch]\ninterval = 30   # seconds\n\n[[target]]\nname = "cache"  # the session cache\nurl = "redis://127.0.0.1:6399"\n'
    cfg.write_text(before)
    pol = _policy(tmp_path, "public.users", "public.devices")
    with postgres_server(auth="scram") as dest:
        _accepting(dest.dsn)
        result = copy(pg_source.url, dest.dsn, policy=pol, watch_config=cfg)
        assert result.exit_code == 0 and result.watch is not None and result.watch["added"] is True
        text = cfg.read_text()
        assert text.startswith(before) and dest.password not in text  # the user's comments and layout stay
        added = load_config(cfg).targets[-1]
        assert added.url == f"postgresql://postgres@{dest.host}:{dest.port}/postgres"
        again = copy(pg_source.url, dest.dsn, policy=pol, mode="replace", watch_config=cfg)
        assert again.watch == {**result.watch, "added": False} and cfg.read_text() == text  # no second entry

        sink = RecordingSink()
        options = WatchOptions(timeout=3.0)
        assert watch([added], state=tmp_path / "watch.sqlite", sinks=[sink], once=True, options=options) == 0
        assert sink.alerts == []
        # Someone "fixes" a login problem on the analytics server: pg_hba switches to trust.
        Path(dest.data_dir, "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        with psycopg.connect(dest.dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
        assert watch([added], state=tmp_path / "watch.sqlite", sinks=[sink], once=True, options=options) != 0
        assert [(a["event"], a["new_verdict"]) for a in sink.alerts] == [("exposed", "weak-credentials")]


def test_watch_config_is_checked_before_the_copy(tmp_path, pg_source, data):
    src = write_jsonl(tmp_path / "src", data)
    pol = _policy(tmp_path, "users.jsonl", "devices.jsonl")
    with pytest.raises(UserError, match="local file or SQLite database"):
        copy(str(src), f"sqlite:///{tmp_path / 'copy.db'}", policy=pol, watch_config=tmp_path / "spillguard.toml")
    assert not (tmp_path / "spillguard.toml").exists()
    broken = _write(tmp_path / "broken.toml", "[[target]\nurl = 1\n")
    pol.write_text(pol.read_text().replace('to = "users"', 'to = "w_users"').replace('to = "devices"', 'to = "w_devices"'))
    with pytest.raises(UserError, match="broken.toml: not valid TOML"):
        copy(str(src), pg_source.url, policy=pol, watch_config=broken, allow_exposed_destination=True)
    assert broken.read_text() == "[[target]\nurl = 1\n"
    with psycopg.connect(pg_source.dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'w\\_%'").fetchone()[0] == 0
