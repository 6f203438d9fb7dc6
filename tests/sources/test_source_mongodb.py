"""MongoDB source against the wire stand-in of tests/mongo_wire.py (mockupdb speaking the protocol,
mongomock running the commands; no MongoDB server can be installed here), loaded with the generated
IoT dataset in `iot` and typed documents in `fleet`: ObjectId, integer and string ids, nested
documents, arrays, binary, a view. The stand-in is not MongoDB: what it leaves out is listed in its
docstring. noida-db, a second wire server that lacks listCollections, checks discovery by name."""

from __future__ import annotations

import datetime as dt

import pytest

from spillguard.errors import UserError
from spillguard.scan.options import ScanOptions
from spillguard.scan.run import run_scan
from spillguard.sources import open_target
from tests import storedata
from tests.servers import free_port, noida_server
from tests.storedata import PROFILES, READINGS, USERS, records_read

pymongo = pytest.importorskip("pymongo")
mongo_wire = pytest.importorskip("tests.mongo_wire", reason="the MongoDB stand-in needs mockupdb and mongomock (pip install -e .[test])")

IOT = ["iot.users", "iot.scale_measurements", "iot.support_tickets", "iot.payments", "iot.login_events"]


generated = storedata.generated_dataset_fixture("mongodemo", seed=16)  # loaded into the `mongo` fixture (tests/stores_plugin.py)


def test_id_bounds_survive_json_for_every_bson_type():
    from bson import Decimal128, ObjectId

    from spillguard.sources.mongodb import decode_id, encode_id

    for value in (ObjectId(), 42, 2**40, "usr_0000001", dt.datetime(2019, 12, 4, tzinfo=dt.UTC), Decimal128("1.5")):
        text = encode_id(value)
        assert isinstance(text, str)
        back = decode_id(text)
        assert back == value or (isinstance(value, dt.datetime) and back.replace(tzinfo=dt.UTC) == value)


def test_exhaustive_scan_matches_file_scan(generated, mongo):
    result = storedata.assert_scan_matches_file_scan(mongo.url_for("iot"), generated, partition_rows=400)
    assert sorted(d["dataset"] for d in result.datasets) == sorted(IOT)


def test_id_range_partitions_cover_every_document_once(mongo):
    from spillguard.sources.mongodb import decode_id

    source = open_target(mongo.url, partition_rows=250)
    try:
        users = next(d for d in source.datasets() if d.name == "iot.users")
        parts = users.partitions()
        assert len(parts) == 6 and parts[0].spec["min"] is None and parts[-1].spec["max"] is None
        assert records_read(users, parts) == USERS
        # ids of three BSON types: the ranges follow BSON order across them (an index scan, not $gte/$lt)
        readings = next(d for d in source.datasets() if d.name == "fleet.readings")
        skipped = mongo.skipped
        parts = readings.partitions()
        assert len(parts) == READINGS // 250
        # each bound is found from the previous one: planning walks the collection once, not once per range
        assert mongo.skipped - skipped < READINGS
        assert {type(decode_id(p.spec["min"])).__name__ for p in parts[1:]} == {"int", "str", "ObjectId"}
        ids = [i for p in parts for t in readings.read(p, lambda *a: None) for i in t.column("_id").to_pylist()]
        assert len(ids) == len(set(ids)) == READINGS
    finally:
        source.close()


def test_reads_in_server_batches_and_closes_its_cursors(mongo):
    before = mongo.seen["getMore"]
    source = open_target(mongo.url_for("fleet"))
    try:
        readings = next(d for d in source.datasets() if d.name == "fleet.readings")
        [part] = readings.partitions()
        assert records_read(readings, [part]) == READINGS
    finally:
        source.close()
    assert mongo.seen["getMore"] - before == 2  # 2000 + 2000 + 500
    assert mongo.open_cursors() == 0


def test_mongodb_types(mongo):
    result, _ = run_scan([mongo.url_for("fleet")], ScanOptions(seed=1, workers=1, source_options={"include": ["profiles"]}))
    found = storedata.field_categories(result)
    for pair in [("contact.email", "email"), ("contact.phone", "phone"), ("aliases[]", "email"), ("devices[].mac", "mac_address"),
                 ("devices[].last_ip", "ip_address"), ("note", "email")]:  # fmt: skip
        assert pair in found, (pair, sorted(found))
    assert not [f for f in result.findings if f.field == "_id"]  # an ObjectId is neither personal data nor a secret
    assert result.records_scanned == PROFILES and result.subjects_scanned == PROFILES
    assert result.categories["email"].subjects == PROFILES


def test_sample_returns_n_random_documents(mongo):
    result, _ = run_scan([mongo.url_for("iot")], ScanOptions(seed=4, workers=1, source_options={"sample": 120, "include": ["users"]}))
    assert [d["records_scanned"] for d in result.datasets] == [120]
    assert result.subjects_scanned == 120  # drawn without replacement
    source = open_target(mongo.url_for("iot"), sample=120, seed=4)
    try:
        users = next(d for d in source.datasets() if d.name == "iot.users")
        [part] = users.partitions()

        def drawn() -> set[str]:
            return {u for t in users.read(part, lambda *a: None) for u in t.column("user_id").to_pylist()}

        first, second = drawn(), drawn()
    finally:
        source.close()
    # $sample cannot be seeded: the same seed draws other documents
    assert len(first) == len(second) == 120 and first != second


def test_discovery_skips_system_databases_views_and_system_collections(mongo):
    source = open_target(mongo.url)
    try:
        assert [d.name for d in source.datasets()] == ["fleet.profiles", "fleet.readings", *sorted(IOT)]
    finally:
        source.close()
    # a view is read whole: MongoDB takes no _id bounds on a view, and a view's _ids need not be unique
    opts = {"include": ["fleet.*"], "exclude": ["*readings"], "include_views": True, "partition_rows": 25}
    with_views, _ = run_scan([mongo.url], ScanOptions(seed=1, workers=2, source_options=opts))
    assert not with_views.errors, with_views.errors
    scanned = {d["dataset"]: d["records_scanned"] for d in with_views.datasets}
    assert scanned == {"fleet.profiles": PROFILES, "fleet.profile_emails": PROFILES}  # never system.views


def test_a_time_series_collection_is_scanned_whole_by_default(mongo):
    # IoT readings often live in time-series collections: listed with type "timeseries", no _id index to bound.
    mongo.timeseries.add("fleet.readings")
    try:
        result, _ = run_scan([mongo.url], ScanOptions(seed=1, workers=1, source_options={"include": ["fleet.readings"], "partition_rows": 500}))
    finally:
        mongo.timeseries.discard("fleet.readings")
    assert not [e for e in result.errors if e.kind == "error"], result.errors
    assert {d["dataset"]: d["records_scanned"] for d in result.datasets} == {"fleet.readings": READINGS}


def test_include_exclude_and_subject_fields(mongo):
    storedata.assert_include_exclude_and_subject_fields(mongo.url, "iot")


def test_a_failing_collection_is_reported_and_the_others_are_scanned(mongo):
    mongo.refuse("find", "iot.payments")
    try:
        result, _ = run_scan([mongo.url_for("iot")], ScanOptions(seed=1, workers=2))
    finally:
        mongo.allow("find", "iot.payments")
    errors = [e for e in result.errors if e.kind == "error"]
    assert [e.dataset for e in errors] == ["iot.payments"] and "not authorized" in errors[0].message
    scanned = {d["dataset"]: d["records_scanned"] for d in result.datasets}
    assert scanned["iot.users"] == USERS and scanned["iot.payments"] == 0


def test_a_cursor_lost_midway_is_read_again_from_the_checkpoint(mongo, monkeypatch):
    monkeypatch.setattr("spillguard.sources.retry.FIRST_DELAY_S", 0.05)
    # The server forgets the cursor between two batches (a cursor timeout, a failover): getMore fails once.
    mongo.refuse("getMore", "fleet.readings", code=43, errmsg="cursor id 77 not found", times=1)
    try:
        result, _ = run_scan([mongo.url_for("fleet")], ScanOptions(seed=1, workers=1, source_options={"include": ["readings"]}))
    finally:
        mongo.allow("getMore", "fleet.readings")
    assert not [e for e in result.errors if e.kind == "error"], result.errors
    assert {d["dataset"]: d["records_scanned"] for d in result.datasets} == {"fleet.readings": READINGS}


def test_a_failed_range_plan_never_shows_the_password(mongo):
    # The stand-in has no authentication: the password is given to the source after it connected.
    source = open_target(mongo.url_for("iot"), partition_rows=250)
    source.password = "Pw-3x4mple"
    mongo.refuse("find", "iot.users", code=2, errmsg="cannot use Pw-3x4mple here")
    try:
        users = next(d for d in source.datasets() if d.name == "iot.users")
        with pytest.raises(UserError, match="cannot split into _id ranges") as err:
            users.partitions()
    finally:
        mongo.allow("find", "iot.users")
        source.close()
    assert "Pw-3x4mple" not in str(err.value)


def test_discovery_needs_names_when_the_server_cannot_list(mongo):
    mongo.refuse("listDatabases")
    mongo.refuse("listCollections", "iot")
    try:
        with pytest.raises(UserError, match="cannot list databases"):
            run_scan([mongo.url], ScanOptions(workers=1))
        with pytest.raises(UserError, match="--include"):
            run_scan([mongo.url_for("iot")], ScanOptions(workers=1))
        named, _ = run_scan([mongo.url_for("iot")], ScanOptions(workers=1, source_options={"include": ["users", "iot.payments"]}))
    finally:
        mongo.allow("listDatabases")
        mongo.allow("listCollections", "iot")
    assert [(d["dataset"], d["records_scanned"]) for d in named.datasets] == [("iot.users", USERS), ("iot.payments", 420)]


def test_noida_db_without_list_commands_scans_named_collections():
    with noida_server() as server:
        with pytest.raises(UserError, match="cannot list databases"):
            run_scan([server.mongodb.url], ScanOptions(workers=1))
        url = server.mongodb.url.replace("/?", "/iot?")
        named, _ = run_scan([url], ScanOptions(workers=1, source_options={"include": ["users", "iot.payments"]}))
    assert [d["dataset"] for d in named.datasets] == ["iot.users", "iot.payments"]


def test_unknown_commands_answer_an_error_not_silence(mongo):
    client = pymongo.MongoClient(mongo.url, serverSelectionTimeoutMS=3000, socketTimeoutMS=3000)
    try:
        with pytest.raises(pymongo.errors.OperationFailure) as err:
            client.admin.command("replSetGetStatus")
        assert err.value.code == 59
    finally:
        client.close()


def test_unreachable_is_one_line():
    with pytest.raises(UserError, match="cannot connect") as err:
        run_scan([f"mongodb://u:Pw-123@127.0.0.1:{free_port()}/iot?directConnection=true"], ScanOptions(workers=1, source_options={"connect_timeout": 1}))
    assert "Pw-123" not in str(err.value) and "\n" not in str(err.value)
