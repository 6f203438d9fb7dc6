"""MySQL/MariaDB source against a real MariaDB server started by the test, loaded with the generated IoT dataset."""

from __future__ import annotations

import orjson
import pytest

from spillguard.errors import UserError
from spillguard.scan.options import ScanOptions
from spillguard.scan.run import run_scan
from tests import storedata
from tests.servers import mariadb_server
from tests.storedata import USERS, mysql_connect

pymysql = pytest.importorskip("pymysql")
generated = storedata.generated_dataset_fixture("mysqldemo", seed=14)  # loaded into the `maria` fixture (tests/stores_plugin.py)


def test_exhaustive_scan_matches_file_scan(generated, maria):
    result = storedata.assert_scan_matches_file_scan(maria.url, generated, partition_rows=400)
    assert {d["dataset"] for d in result.datasets} == {"iot.users", "iot.scale_measurements", "iot.support_tickets", "iot.payments", "iot.login_events"}


def test_primary_key_ranges_cover_every_row_once(maria):
    from spillguard.sources import open_target

    source = open_target(maria.url.replace("mysql://", "mariadb://") + "iot", partition_rows=300)
    try:
        users = source.dataset("iot.users")
        parts = users.partitions()
        assert len(parts) >= 4 and parts[0].spec["range"][0] is None and parts[-1].spec["range"][1] is None
        assert storedata.records_read(users, parts) == USERS
    finally:
        source.close()


def test_sample_and_types(maria):
    storedata.repeated_sample(maria.url + "iot", seed=4, sample=80, include=["users"])
    conn = mysql_connect(maria, "iot")
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE typed (id INT PRIMARY KEY, note BLOB, prefs JSON, seen DATETIME)")
        cur.executemany(
            "INSERT INTO typed VALUES (%s, %s, %s, NOW())",
            [(i, f"mail bytes{i}@example.com".encode(), orjson.dumps({"contact": {"email": f"j{i}@example.org"}}).decode()) for i in range(20)],
        )
    try:
        result, _ = run_scan([maria.url + "iot"], ScanOptions(seed=1, workers=1, source_options={"include": ["typed"]}))
        found = {(f.field, f.category) for f in result.findings}
        assert ("note", "email") in found and ("prefs.contact.email", "email") in found, found
    finally:
        with conn.cursor() as cur:
            cur.execute("DROP TABLE typed")
        conn.close()


def test_session_is_read_only(maria):
    from spillguard.sources import open_target

    source = open_target(maria.url + "iot")
    try:
        with source.connection().cursor() as cur, pytest.raises(pymysql.err.MySQLError, match="READ ONLY"):
            cur.execute("START TRANSACTION")
            cur.execute("INSERT INTO iot.users (user_id) VALUES ('x')")
    finally:
        source.close()


def test_wrong_password_is_one_line():
    with mariadb_server(root_password="s3cret-my") as server:
        with pytest.raises(UserError, match="cannot connect") as err:
            run_scan([server.url.replace("root@", "root:Wr0ng-pass@")], ScanOptions(workers=1))
        assert "Wr0ng-pass" not in str(err.value) and "\n" not in str(err.value)


def test_connection_lost_mid_read_is_a_transient_error(maria, monkeypatch):
    """A partition whose connection is cut while rows stream in fails as a transient error (retried), never as
    pymysql's AttributeError from draining a closed socket, and leaves no error behind when collected."""
    import gc
    import sys

    from spillguard.sources import open_target, store
    from spillguard.sources.retry import TransientError

    rows = 400_000
    conn = mysql_connect(maria, "iot")
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE streamed (id INT PRIMARY KEY, email VARCHAR(64))")
        cur.execute(f"INSERT INTO streamed SELECT seq, CONCAT('person', seq, '@example.com') FROM seq_1_to_{rows}")
    monkeypatch.setattr(store, "BLOCK_BYTES", 1 << 16)  # a table handed on every ~64 KB of rows
    unraisable: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    source = open_target(maria.url + "iot", partition_rows=10 * rows)
    try:
        table = source.dataset("iot.streamed")
        (part,) = table.partitions()
        reading = table.read(part, lambda *a: None)
        assert next(reading).num_rows > 0
        with conn.cursor() as cur:
            cur.execute("KILL CONNECTION %s", (source.connection().thread_id(),))
        with pytest.raises(TransientError):
            for _ in reading:
                pass
        gc.collect()
        assert unraisable == []
        assert storedata.records_read(table, table.partitions()) == rows  # the next attempt reconnects
    finally:
        source.close()
        with conn.cursor() as cur:
            cur.execute("DROP TABLE streamed")
        conn.close()
