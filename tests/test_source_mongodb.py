"""MongoDB source. The only MongoDB wire server available here is noida-db; its 0.2.3 build on this
machine accepts inserts but stores nothing (`insert` answers n=0), and lacks listCollections,
count and $sample. The data tests therefore skip, with that reason, unless the server keeps documents."""

from __future__ import annotations

import datetime as dt

import pytest

from spillguard.errors import UserError
from spillguard.scanner import ScanOptions, run_scan
from tests.servers import free_port, noida_server
from tests.storedata import USERS, category_subjects, dataset_records, field_categories

pymongo = pytest.importorskip("pymongo")


def test_id_bounds_survive_json_for_every_bson_type():
    from bson import Decimal128, ObjectId

    from spillguard.sources.mongodb import decode_id, encode_id

    for value in (ObjectId(), 42, 2**40, "usr_0000001", dt.datetime(2019, 12, 4, tzinfo=dt.UTC), Decimal128("1.5")):
        text = encode_id(value)
        assert isinstance(text, str)
        back = decode_id(text)
        assert back == value or (isinstance(value, dt.datetime) and back.replace(tzinfo=dt.UTC) == value)


@pytest.fixture(scope="module")
def mongo(tmp_path_factory):
    from spillguard.demo import generate

    folder = tmp_path_factory.mktemp("mongodemo")
    truth = generate(folder, users=USERS, seed=16)
    with noida_server() as server:
        client = pymongo.MongoClient(server.mongodb.url, serverSelectionTimeoutMS=5000)
        for name, docs in dataset_records(folder).items():
            client["iot"][name].insert_many(docs)
        stores = client["iot"]["users"].find_one() is not None
        client.close()
        yield server.mongodb, folder, truth, stores


def test_discovery_needs_names_when_server_cannot_list(mongo):
    server, *_ = mongo
    with pytest.raises(UserError, match="cannot list databases"):
        run_scan([server.url], ScanOptions(workers=1))
    url = server.url.replace("/?", "/iot?")
    try:
        result, _ = run_scan([url], ScanOptions(workers=1))
    except UserError as exc:
        assert "--include" in str(exc)  # no listCollections: the user is told how to name collections
    else:
        assert result.datasets  # a server that lists collections
    named, _ = run_scan([url], ScanOptions(workers=1, source_options={"include": ["users", "iot.payments"]}))
    assert [d["dataset"] for d in named.datasets] == ["iot.users", "iot.payments"]


def test_exhaustive_scan_matches_file_scan(mongo):
    server, folder, truth, stores = mongo
    if not stores:
        pytest.skip("noida-db 0.2.3 accepted the inserts but stores no documents on this machine")
    file_result, _ = run_scan([str(folder)], ScanOptions(seed=1, workers=1))
    url = server.url.replace("/?", "/iot?")
    include = ["users", "scale_measurements", "support_tickets", "payments", "login_events"]
    result, _ = run_scan([url], ScanOptions(seed=3, workers=2, source_options={"partition_rows": 400, "include": include}))
    assert category_subjects(result) == category_subjects(file_result)
    assert field_categories(result) - {("_id", c) for c in ("secret",)} == field_categories(file_result)
    assert result.records_scanned == sum(truth.records.values())


def test_unreachable_is_one_line():
    with pytest.raises(UserError, match="cannot connect") as err:
        run_scan([f"mongodb://u:Pw-123@127.0.0.1:{free_port()}/iot?directConnection=true"], ScanOptions(workers=1, source_options={"connect_timeout": 1}))
    assert "Pw-123" not in str(err.value) and "\n" not in str(err.value)
