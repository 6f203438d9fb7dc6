"""PostgreSQL source against a real server started by the test, loaded with the generated IoT dataset."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from spillguard.errors import UserError
from spillguard.scan.options import ScanOptions
from spillguard.scan.run import run_scan
from tests import storedata
from tests.servers import postgres_server
from tests.storedata import USERS, category_subjects

psycopg = pytest.importorskip("psycopg")
generated = storedata.generated_dataset_fixture("pgdemo", seed=11)  # loaded into the `pg` fixture (tests/stores_plugin.py)


def test_exhaustive_scan_matches_file_scan(generated, pg):
    result = storedata.assert_scan_matches_file_scan(pg.url, generated, partition_rows=300)
    names = {d["dataset"] for d in result.datasets}
    assert names == {"public.users", "public.scale_measurements", "public.support_tickets", "public.payments", "public.login_events"}
    # jsonb arrives nested, as in the file scan
    assert any(f.field == "devices[].mac" and f.category == "mac_address" for f in result.findings)


def test_ctid_partitions_cover_every_row_once(pg):
    from spillguard.sources import open_target

    source = open_target(pg.url, partition_rows=250)
    try:
        users = source.dataset("public.users")
        parts = users.partitions()
        assert len(parts) > 2
        assert storedata.records_read(users, parts) == USERS
        assert parts[-1].spec["ctid"][1] is None  # the last range is open-ended
    finally:
        source.close()


def test_sample_is_random_repeatable_and_bounded(pg):
    a = storedata.repeated_sample(pg.url, seed=5, sample=100, include=["users"])
    c, _ = run_scan([pg.url], ScanOptions(seed=6, workers=1, source_options={"sample": 100, "include": ["users"]}))
    assert a.subjects_scanned == 100
    # a true random sample, not the first rows: different seeds pick different people
    assert a.to_json()["summary"]["categories"] != c.to_json()["summary"]["categories"] or a.findings != c.findings


def test_views_only_when_asked(pg):
    with psycopg.connect(pg.admin_url, autocommit=True) as conn:
        conn.execute("CREATE VIEW contact_emails AS SELECT user_id, email FROM users")
    try:
        without, _ = run_scan([pg.url], ScanOptions(seed=1, workers=1, source_options={"include": ["contact_*"]}))
        assert without.datasets == []
        with_views, _ = run_scan([pg.url], ScanOptions(seed=1, workers=1, source_options={"include": ["contact_*"], "include_views": True}))
        assert [d["records_scanned"] for d in with_views.datasets] == [USERS]
        assert with_views.categories["email"].subjects == USERS
    finally:
        with psycopg.connect(pg.admin_url, autocommit=True) as conn:
            conn.execute("DROP VIEW contact_emails")


def test_include_exclude_and_subject_fields(pg):
    storedata.assert_include_exclude_and_subject_fields(pg.url, "public")


def test_session_is_read_only(pg):
    from spillguard.sources import open_target

    source = open_target(pg.url)
    try:
        conn = source.connection()
        with conn.cursor() as cur:
            cur.execute("SHOW default_transaction_read_only")
            assert cur.fetchone()[0] == "on"
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                cur.execute("CREATE TABLE spillguard_should_not_exist (x int)")
        conn.rollback()
    finally:
        source.close()


def test_postgres_types(pg):
    with psycopg.connect(pg.admin_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS hstore")
        conn.execute("CREATE TYPE contact AS (email text, phone text)")
        conn.execute(
            "CREATE TABLE typed (user_id text, prefs hstore, last_ip inet, mac macaddr, note bytea, "
            "aliases text[], who contact, raw json)"
        )
        for i in range(50):
            conn.execute(
                "INSERT INTO typed VALUES (%s, %s::hstore, %s::inet, %s::macaddr, %s, %s, ROW(%s, %s)::contact, %s::json)",
                (
                    f"u{i}", f'"email"=>"hs{i}@example.org"', f"81.2.{i}.7", f"0a:1b:2c:3d:4e:{i:02x}",
                    f"write to bytes{i}@example.com".encode(), [f"alias{i}@example.net"], f"comp{i}@example.com",
                    "+14155552671", '{\n  "contact": {"email": "js' + str(i) + '@example.com"}\n}',
                ),
            )
    try:
        result, _ = run_scan([pg.url], ScanOptions(seed=1, workers=1, source_options={"include": ["public.typed"]}))
        found = {(f.field, f.category) for f in result.findings if f.confidence in ("high", "medium")}
        for pair in [("prefs.email", "email"), ("last_ip", "ip_address"), ("mac", "mac_address"), ("note", "email"),
                     ("aliases[]", "email"), ("who.email", "email"), ("raw.contact.email", "email")]:
            assert pair in found, (pair, sorted(found))
        assert result.categories["email"].subjects == 50
    finally:
        with psycopg.connect(pg.admin_url, autocommit=True) as conn:
            conn.execute("DROP TABLE typed")
            conn.execute("DROP TYPE contact")


def test_failed_login_is_one_clear_line_without_password():
    with postgres_server(auth="scram") as server:
        wrong = server.url.replace("postgres@", "postgres:not-the-Passw0rd@")
        with pytest.raises(UserError) as err:
            run_scan([wrong], ScanOptions(workers=1))
        msg = str(err.value)
        assert "not-the-Passw0rd" not in msg and "\n" not in msg
        assert "password authentication failed" in msg and "***" in msg
        # the right password from the environment works
        os.environ["PGPASSWORD"] = server.password
        try:
            result, _ = run_scan([server.url], ScanOptions(workers=1))
            assert result.errors == []
        finally:
            del os.environ["PGPASSWORD"]


def test_unreachable_host_fails_within_connect_timeout_with_exit_2():
    from tests.servers import free_port

    port = free_port()
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", "from spillguard.cli import main; main()", "scan", f"postgresql://postgres:pw@127.0.0.1:{port}/postgres", "--connect-timeout", "3"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert time.monotonic() - start < 15
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "cannot connect" in lines[0] and ":pw@" not in lines[0], proc.stderr


def test_dropped_connection_is_retried_and_counts_stay_exact(generated, pg, monkeypatch):
    from spillguard.sources import postgres as mod

    _folder, truth, file_result = generated
    original = mod.PostgresTable.read
    killed: list[int] = []

    def read_after_a_kill(self, partition, malformed):
        if len(killed) < 2:
            # The server ends this session (as a failover or an idle-timeout would) just before the read.
            pid = self.source.connection().info.backend_pid
            with psycopg.connect(pg.admin_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            killed.append(pid)
        return original(self, partition, malformed)

    monkeypatch.setattr(mod.PostgresTable, "read", read_after_a_kill)
    monkeypatch.setattr("spillguard.sources.retry.FIRST_DELAY_S", 0.05)
    result, _ = run_scan([pg.url], ScanOptions(seed=3, workers=1, source_options={"partition_rows": 300}))
    assert len(killed) == 2
    assert not [e for e in result.errors if e.kind == "error"], result.errors
    assert category_subjects(result) == category_subjects(file_result)
    assert result.records_scanned == sum(truth.records.values())


def test_connection_lost_in_the_middle_of_a_copy_is_retried(pg, monkeypatch):
    """The backend is killed while it is provably inside the COPY: rows already sent, the rest not yet
    produced (it sleeps at row 2000 while a flag is up). Killing it any later would only test the
    rollback after a COPY the client had read in full from its socket buffer."""
    from spillguard.sources import postgres as mod

    rows = 4000
    base, admin_base = pg.url.rsplit("/", 1)[0], pg.admin_url.rsplit("/", 1)[0]
    with psycopg.connect(pg.admin_url, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS copykill")
        admin.execute("CREATE DATABASE copykill")
    admin_url = f"{admin_base}/copykill"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE stall_flag (up boolean)")
        conn.execute("INSERT INTO stall_flag VALUES (true)")
        conn.execute(
            "CREATE FUNCTION stall(n int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN "
            "IF n = 2000 AND EXISTS (SELECT 1 FROM stall_flag) THEN PERFORM pg_sleep(60); END IF; RETURN n; END $$"
        )
        conn.execute(f"CREATE VIEW people AS SELECT stall(g) AS user_no, 'person' || g || '@example.com' AS email FROM generate_series(1, {rows}) g")

    original = mod.text_lines_to_tables
    kills: list[tuple[int, list[int]]] = []  # (lines already parsed by this attempt, backends killed)

    def parse_then_kill(block, line, dataset, malformed, columns):
        yield from original(block, line, dataset, malformed, columns)
        if line == 1 and len(kills) < 2:  # the first block of an attempt: rows arrived, the COPY goes on
            with psycopg.connect(admin_url, autocommit=True) as admin:
                deadline = time.monotonic() + 20
                while True:
                    pids = [r[0] for r in admin.execute(
                        "SELECT pid FROM pg_stat_activity WHERE datname = 'copykill' AND state = 'active' "
                        "AND wait_event = 'PgSleep' AND query LIKE 'COPY%%'"
                    )]  # fmt: skip
                    if pids or time.monotonic() > deadline:
                        break
                    time.sleep(0.01)
                for pid in pids:
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                if len(kills) == 1:
                    admin.execute("DELETE FROM stall_flag")  # the third attempt reads through
            kills.append((block.count(b"\n"), pids))

    monkeypatch.setattr(mod, "BLOCK_BYTES", 4096)  # the first block is parsed long before row 2000
    monkeypatch.setattr(mod, "text_lines_to_tables", parse_then_kill)
    monkeypatch.setattr("spillguard.sources.retry.FIRST_DELAY_S", 0.05)
    try:
        opts = {"include_views": True, "include": ["people"]}
        result, _ = run_scan([f"{base}/copykill"], ScanOptions(seed=3, workers=1, source_options=opts))
    finally:
        with psycopg.connect(pg.admin_url, autocommit=True) as admin:
            admin.execute("DROP DATABASE IF EXISTS copykill WITH (FORCE)")
    assert len(kills) == 2 and all(len(pids) == 1 and 0 < parsed < 2000 for parsed, pids in kills), kills
    assert not [e for e in result.errors if e.kind == "error"], result.errors
    assert result.records_scanned == rows and result.categories["email"].subjects == rows


def test_failing_dataset_is_reported_and_the_others_go_on(pg):
    with psycopg.connect(pg.admin_url, autocommit=True) as conn:
        conn.execute("CREATE ROLE scanner LOGIN")
        conn.execute("GRANT SELECT ON users TO scanner")
        conn.execute("CREATE TABLE locked (email text)")
        conn.execute("INSERT INTO locked VALUES ('hidden@example.com')")
    try:
        url = pg.url.replace("postgres@", "scanner@")
        result, _ = run_scan([url], ScanOptions(seed=1, workers=2, source_options={"include": ["users", "locked"]}))
        errors = {e.dataset: e.message for e in result.errors if e.kind == "error"}
        assert list(errors) == ["public.locked"] and "permission denied" in errors["public.locked"]
        assert [d["dataset"] for d in result.datasets if d["records_scanned"]] == ["public.users"]
        assert result.categories["email"].subjects == USERS
    finally:
        with psycopg.connect(pg.admin_url, autocommit=True) as conn:
            conn.execute("DROP TABLE locked")
            conn.execute("REVOKE ALL ON users FROM scanner")
            conn.execute("DROP ROLE scanner")
