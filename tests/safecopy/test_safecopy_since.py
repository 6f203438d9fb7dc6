"""`copy --since`: stores that can filter are asked for the records past the watermark (SQL WHERE,
Elasticsearch range, MongoDB $gte); the records copied equal those of a whole read cut by Arrow."""

from __future__ import annotations

import datetime as dt
import random
import sqlite3

import pyarrow as pa
import pytest

from spillguard.safecopy.run import pushed_down
from spillguard.safecopy.watermark import Watermark
from spillguard.sources import open_target
from tests.servers import mariadb_server, noida_server, postgres_server

N = 400
BASE = dt.datetime(2024, 3, 1, 8, 0, 0)


def _rows() -> list[tuple[int, dt.datetime, int]]:
    rng = random.Random(17)
    # Many records share a day with the watermark (earlier and later hours): the pushed-down bound is the
    # start of that day, the exact cut is Arrow's.
    return [(i, BASE + dt.timedelta(hours=rng.randint(0, 24 * 6), seconds=rng.randint(0, 59)), rng.randint(0, 10**6)) for i in range(N)]


ROWS = _rows()
LAST_TS = sorted(r[1] for r in ROWS)[N // 2]
LAST = LAST_TS.strftime("%Y-%m-%dT%H:%M:%S")
LAST_N = sorted(r[2] for r in ROWS)[N // 3]


def _expected(field: str) -> set[int]:
    if field == "counter":
        return {i for i, _, c in ROWS if c > LAST_N}
    return {i for i, t, _ in ROWS if t.strftime("%Y-%m-%dT%H:%M:%S") > LAST}


def assert_pushed_down_equals_filtered(url: str, dataset: str, field: str, **options) -> None:
    last = LAST_N if field == "counter" else LAST
    src = open_target(url, partition_rows=150, **options)
    try:
        reader = src.dataset(dataset)
        parts = reader.partitions()

        def read(partitions) -> list[pa.Table]:
            return [t for p in partitions for t in reader.read(p, lambda *_: None)]

        whole, pushed = read(parts), read(pushed_down(parts, (field, last)))
    finally:
        src.close()
    assert sum(t.num_rows for t in whole) == N
    assert sum(t.num_rows for t in pushed) < N * 0.75, "the store did not filter"

    def cut(tables: list[pa.Table]) -> list[int]:
        mark = Watermark(field, last)
        return sorted(i for t in tables for i in mark.select(t, dataset).column("id").to_pylist())

    assert cut(pushed) == cut(whole) == sorted(_expected(field))


def test_postgres():
    import psycopg

    with postgres_server() as pg:
        for _ in range(100):
            try:
                conn = psycopg.connect(pg.dsn, autocommit=True)
                break
            except psycopg.OperationalError:
                import time

                time.sleep(0.1)
        with conn:
            conn.execute("CREATE TABLE events (id int, updated_at timestamp, counter bigint)")
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO events VALUES (%s, %s, %s)", ROWS)
            conn.execute("ANALYZE events")
        for field in ("updated_at", "counter"):
            assert_pushed_down_equals_filtered(pg.url, "public.events", field)


def test_mariadb():
    import pymysql

    with mariadb_server() as server:
        conn = pymysql.connect(host=server.host, port=server.port, user="root", password="", autocommit=True)
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE app")
            cur.execute("CREATE TABLE app.events (id int PRIMARY KEY, updated_at datetime, counter bigint)")
            cur.executemany("INSERT INTO app.events VALUES (%s, %s, %s)", ROWS)
        conn.close()
        url = f"mysql://root@{server.host}:{server.port}/app"
        for field in ("updated_at", "counter"):
            assert_pushed_down_equals_filtered(url, "app.events", field)


@pytest.mark.parametrize("sep", ["T", " "])
def test_sqlite(tmp_path, sep):
    db = tmp_path / "app.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, updated_at TEXT, counter INTEGER)")
    con.executemany("INSERT INTO events VALUES (?, ?, ?)", [(i, t.isoformat(sep=sep), c) for i, t, c in ROWS])
    con.commit()
    con.close()
    for field in ("updated_at", "counter"):
        assert_pushed_down_equals_filtered(f"sqlite:///{db}", "events", field)


def test_elasticsearch():
    import httpx
    import orjson

    with noida_server() as nd:
        es = f"http://{nd.elasticsearch.host}:{nd.elasticsearch.port}"
        httpx.put(f"{es}/events", json={"mappings": {"properties": {"updated_at": {"type": "date"}, "counter": {"type": "long"}}}}).raise_for_status()
        body = b"".join(orjson.dumps({"index": {"_index": "events"}}) + b"\n"
                        + orjson.dumps({"id": i, "updated_at": t.isoformat(), "counter": c}) + b"\n" for i, t, c in ROWS)
        httpx.post(f"{es}/_bulk", content=body, headers={"content-type": "application/x-ndjson"}, params={"refresh": "true"}).raise_for_status()
        for field in ("updated_at", "counter"):
            assert_pushed_down_equals_filtered(nd.elasticsearch.url, "events", field)


def test_mongodb():
    pymongo = pytest.importorskip("pymongo")
    mongo_wire = pytest.importorskip("tests.mongo_wire", reason="the MongoDB stand-in needs mockupdb and mongomock")
    with mongo_wire.mongo_wire_server() as server:
        client = pymongo.MongoClient(server.url)
        client.app.events.insert_many([{"id": i, "updated_at": t, "counter": c} for i, t, c in ROWS])
        client.close()
        for field in ("updated_at", "counter"):
            assert_pushed_down_equals_filtered(server.url, "app.events", field)
