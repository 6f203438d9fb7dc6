"""The generated IoT dataset as records, the loaders that put it into the stores the tests start
(`load_postgres`, `load_mysql`, `load_redis`, `load_search`, `load_mongodb`; `tests/stores_plugin.py`
starts the servers and calls them), and the checks every store test shares.

Every store test loads the same records and checks that an exhaustive scan of the store reports
the same categories and distinct people as the file scan of the generated files
(`assert_scan_matches_file_scan`), and that a sample is repeatable (`repeated_sample`).
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from spillguard.model import ScanResult
from spillguard.scan.options import ScanOptions
from spillguard.scan.run import run_scan

USERS = 1500  # people in the dataset every store test generates

# dataset file -> short table / index / collection name
TABLES = {
    "users.jsonl": "users",
    "scale_measurements.jsonl": "scale_measurements",
    "support_tickets.csv": "support_tickets",
    "payments.parquet": "payments",
    "es_export/login-events.ndjson.gz": "login_events",
}


def dataset_records(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Table name -> records, exactly as the file scan sees them (CSV cells stay text)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for fname, table in TABLES.items():
        path = folder / fname
        if fname.endswith(".jsonl"):
            out[table] = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
        elif fname.endswith(".csv"):
            with open(path, newline="", encoding="utf-8") as fh:
                out[table] = list(csv.DictReader(fh))
        elif fname.endswith(".parquet"):
            out[table] = pq.read_table(path).to_pylist()
        else:
            with gzip.open(path) as fh:
                out[table] = [orjson.loads(line)["_source"] for line in fh.read().splitlines() if line.strip()]
    return out


def column_types(records: list[dict[str, Any]]) -> dict[str, str]:
    """Top-level field -> 'json' (objects/arrays), 'int', 'float' or 'text', in first-seen order."""
    kinds: dict[str, set[str]] = {}
    for rec in records:
        for k, v in rec.items():
            s = kinds.setdefault(k, set())
            if v is None:
                continue
            if isinstance(v, dict | list):
                s.add("json")
            elif isinstance(v, bool):
                s.add("text")
            elif isinstance(v, int):
                s.add("int")
            elif isinstance(v, float):
                s.add("float")
            else:
                s.add("text")
    out = {}
    for k, s in kinds.items():
        if "json" in s:
            out[k] = "json"
        elif s == {"int"}:
            out[k] = "int"
        elif s <= {"int", "float"} and s:
            out[k] = "float"
        else:
            out[k] = "text"
    return out


SQL_TYPES = {
    "postgres": {"json": "jsonb", "int": "bigint", "float": "double precision", "text": "text"},
    "mysql": {"json": "JSON", "int": "BIGINT", "float": "DOUBLE", "text": "TEXT"},
}


def load_postgres(url: str, records: dict[str, list[dict[str, Any]]]) -> None:
    """One table per dataset with a bigserial primary key, filled by COPY."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for table, recs in records.items():
            cols = column_types(recs)
            ddl = ", ".join(f'"{c}" {SQL_TYPES["postgres"][t]}' for c, t in cols.items())
            conn.execute(f'CREATE TABLE "{table}" (pk bigserial PRIMARY KEY, {ddl})')
            names = ", ".join(f'"{c}"' for c in cols)
            with conn.cursor() as cur, cur.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
                for rec in recs:
                    copy.write_row(
                        [orjson.dumps(rec[c]).decode() if cols[c] == "json" and rec.get(c) is not None else rec.get(c) for c in cols]
                    )
        conn.execute("ANALYZE")


def mysql_connect(server: Any, database: str | None = None) -> Any:
    """A root connection (autocommit) to a MariaDB server started by `tests.servers.mariadb_server`."""
    import pymysql

    return pymysql.connect(host=server.host, port=server.port, user="root", password=server.password or "", database=database, autocommit=True)


def load_mysql(server: Any, records: dict[str, list[dict[str, Any]]]) -> None:
    """Database `iot`, one table per dataset with an auto-increment primary key."""
    conn = mysql_connect(server)
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE iot CHARACTER SET utf8mb4")
        cur.execute("USE iot")
        for table, recs in records.items():
            cols = column_types(recs)
            ddl = ", ".join(f"`{c}` {SQL_TYPES['mysql'][t]}" for c, t in cols.items())
            cur.execute(f"CREATE TABLE `{table}` (pk BIGINT AUTO_INCREMENT PRIMARY KEY, {ddl})")
            names = ", ".join(f"`{c}`" for c in cols)
            marks = ", ".join(["%s"] * len(cols))
            rows = [
                [orjson.dumps(r[c]).decode() if t == "json" and r.get(c) is not None else r.get(c) for c, t in cols.items()]
                for r in recs
            ]
            cur.executemany(f"INSERT INTO `{table}` ({names}) VALUES ({marks})", rows)
            cur.execute(f"ANALYZE TABLE `{table}`")
            cur.fetchall()
    conn.close()


def _redis_fields(doc: dict[str, Any]) -> dict[str, str]:
    return {k: (orjson.dumps(v).decode() if isinstance(v, dict | list) else str(v)) for k, v in doc.items() if v is not None}


def load_redis(url: str, records: dict[str, list[dict[str, Any]]]) -> None:
    """Each dataset in a different Redis type, as applications do."""
    import redis

    r = redis.Redis.from_url(url)
    pipe = r.pipeline(transaction=False)
    for doc in records["users"]:
        pipe.set(f"user:{doc['user_id']}", orjson.dumps(doc))  # JSON strings
    for doc in records["scale_measurements"]:
        pipe.xadd(f"scale:{doc['user_id']}:measurements", _redis_fields(doc))  # streams
    for doc in records["support_tickets"]:
        pipe.hset(f"ticket:{doc['ticket_id']}", mapping=_redis_fields(doc))  # hashes
    for doc in records["payments"]:
        pipe.hset(f"payment:{doc['payment_id']}", mapping=_redis_fields(doc))
    for doc in records["login_events"]:
        pipe.rpush(f"events:{doc['user_id']}", orjson.dumps(doc))  # lists of JSON strings
    pipe.execute()


def load_search(base: str, records: dict[str, list[dict[str, Any]]]) -> None:
    """One index per dataset by bulk requests, plus a system index and an alias for discovery."""
    import httpx

    with httpx.Client(base_url=base, timeout=120) as http:
        for index, docs in records.items():
            lines = []
            for doc in docs:
                lines.append(orjson.dumps({"index": {"_index": index}}))
                lines.append(orjson.dumps(doc))
            r = http.post("/_bulk?refresh=true", content=b"\n".join(lines) + b"\n", headers={"content-type": "application/x-ndjson"})
            assert r.status_code == 200 and not r.json().get("errors"), r.text[:300]
        # a system index and an alias, for discovery
        http.put("/.internal-secrets")
        http.post("/.internal-secrets/_doc?refresh=true", json={"email": "ops@example.com"})
        http.post("/_aliases", json={"actions": [{"add": {"index": "users", "alias": "customers"}}]})


READINGS = 4500  # MongoDB `fleet.readings`: more than two server batches of 2000
PROFILES = 60  # MongoDB `fleet.profiles`


def fleet_documents() -> dict[str, list[dict[str, Any]]]:
    """`readings` with integer, string and ObjectId ids; `profiles` with nested documents, arrays and binary."""
    from bson import Binary, ObjectId

    ids = [i if i % 3 == 0 else f"r{i:05d}" if i % 3 == 1 else ObjectId() for i in range(READINGS)]
    readings = [
        {"_id": ids[i], "owner": {"email": f"owner{i % 900}@example.org"}, "temps": [20.5, 21.0], "at": dt.datetime(2019, 12, 4, 10, i % 60)}
        for i in range(READINGS)
    ]
    profiles = [
        {
            "_id": ObjectId(),
            "user_id": f"u{i}",
            "contact": {"email": f"comp{i}@example.com", "phone": "+14155552671"},
            "aliases": [f"alias{i}@example.net"],
            "devices": [{"mac": f"0a:1b:2c:3d:4e:{i:02x}", "last_ip": f"81.2.{i}.7"}],
            "note": Binary(f"write to bytes{i}@example.com".encode()),
        }
        for i in range(PROFILES)
    ]
    return {"readings": readings, "profiles": profiles}


def load_mongodb(url: str, records: dict[str, list[dict[str, Any]]]) -> None:
    """The dataset into database `iot`; `fleet_documents()` and a view on `profiles` into database `fleet`."""
    import pymongo

    client: Any = pymongo.MongoClient(url, serverSelectionTimeoutMS=5000)
    for name, docs in records.items():
        client["iot"][name].insert_many(docs)
    for name, docs in fleet_documents().items():
        client["fleet"][name].insert_many(docs)
    client["fleet"].create_collection("profile_emails", viewOn="profiles", pipeline=[{"$project": {"user_id": 1, "contact.email": 1}}])
    client.close()


def category_subjects(result: Any) -> dict[str, int | None]:
    return {c: v["subjects"] for c, v in result.to_json()["summary"]["categories"].items()}


def field_categories(result: Any) -> set[tuple[str, str]]:
    """(field, category) pairs reported at medium or high confidence, whatever the dataset is called."""
    return {(f.field, f.category) for f in result.findings if f.confidence in ("high", "medium")}


def generated_dataset(tmp_path_factory: Any, prefix: str, seed: int) -> tuple[Path, Any, ScanResult]:
    """The IoT dataset generated into a fresh folder, its ground truth, and the file scan of it."""
    from spillguard.demo import generate

    folder = tmp_path_factory.mktemp(prefix)
    truth = generate(folder, users=USERS, seed=seed)
    file_result, _ = run_scan([str(folder)], ScanOptions(seed=1, workers=1))
    return folder, truth, file_result


def generated_dataset_fixture(prefix: str, seed: int) -> Any:
    """A module-scoped `generated` fixture: (folder, ground truth, file scan) of a dataset generated with `seed`."""

    @pytest.fixture(scope="module")
    def generated(tmp_path_factory: Any) -> tuple[Path, Any, ScanResult]:
        return generated_dataset(tmp_path_factory, prefix, seed)

    return generated


def assert_scan_matches_file_scan(target: str, generated: tuple[Path, Any, ScanResult], **source_options: Any) -> ScanResult:
    """An exhaustive scan of the store loaded with the `generated` dataset fails on no dataset, reports
    what the file scan of the same records reports, and reads every record and every person."""
    _folder, truth, file_result = generated
    result, _ = run_scan([target], ScanOptions(seed=3, workers=2, source_options=source_options))
    assert not [e for e in result.errors if e.kind == "error"], result.errors
    assert category_subjects(result) == category_subjects(file_result)
    assert field_categories(result) == field_categories(file_result)
    assert result.records_scanned == sum(truth.records.values())
    assert result.subjects_scanned == truth.users
    return result


def repeated_sample(target: str, *, seed: int, sample: int, include: list[str]) -> ScanResult:
    """Two sampled scans with the same seed: each reads `sample` records of the one included dataset,
    and both report the same people per category. Returns the first."""
    opts = {"sample": sample, "include": include}
    a, _ = run_scan([target], ScanOptions(seed=seed, workers=1, source_options=opts))
    b, _ = run_scan([target], ScanOptions(seed=seed, workers=1, source_options=opts))
    assert [d["records_scanned"] for d in a.datasets] == [sample]
    assert category_subjects(a) == category_subjects(b)
    return a


def assert_include_exclude_and_subject_fields(target: str, prefix: str) -> None:
    """Patterns select the generated datasets by full name (`prefix.*`) and by bare name; a per-dataset
    subject field overrides the detected one."""
    opts = {"include": [f"{prefix}.*"], "exclude": ["*payments", "login_*"], "subject_fields": {f"{prefix}.support_tickets": "ticket_id"}}
    result, _ = run_scan([target], ScanOptions(seed=1, workers=1, source_options=opts))
    names = {d["dataset"]: d for d in result.datasets}
    assert set(names) == {f"{prefix}.users", f"{prefix}.scale_measurements", f"{prefix}.support_tickets"}
    assert names[f"{prefix}.support_tickets"]["subject_field"] == "ticket_id"
    assert names[f"{prefix}.users"]["subject_field"] == "user_id"


def records_read(reader: Any, partitions: list[Any]) -> int:
    """How many records a dataset reader yields over the partitions (malformed ones are ignored)."""
    return sum(t.num_rows for p in partitions for t in reader.read(p, lambda *a: None))
