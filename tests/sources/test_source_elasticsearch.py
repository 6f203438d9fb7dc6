"""Elasticsearch/OpenSearch source against noida-db (an Elasticsearch wire-compatible server the
test starts; no real Elasticsearch can be installed here), loaded with the generated IoT dataset."""

from __future__ import annotations

import pytest

from spillguard.errors import UserError
from spillguard.scan.options import ScanOptions
from spillguard.scan.run import run_scan
from tests import storedata
from tests.servers import free_port, nginx_basic_auth_proxy
from tests.storedata import USERS

generated = storedata.generated_dataset_fixture("esdemo", seed=13)  # loaded into the `es` fixture (tests/stores_plugin.py)


def test_exhaustive_scan_matches_file_scan(generated, es):
    result = storedata.assert_scan_matches_file_scan(es.url, generated, partition_rows=400)
    assert {d["dataset"] for d in result.datasets} == {"users", "scale_measurements", "support_tickets", "payments", "login_events"}


def test_sliced_partitions_cover_every_document_once(es):
    from spillguard.sources import open_target

    source = open_target(es.url, partition_rows=300)
    try:
        users = next(d for d in source.datasets() if d.name == "users")
        parts = users.partitions()
        assert len(parts) == 5 and all(p.spec["max"] == 5 for p in parts)
        assert storedata.records_read(users, parts) == USERS
    finally:
        source.close()


def test_scroll_fallback_when_no_point_in_time(es, monkeypatch):
    from spillguard.sources import elasticsearch as mod

    def no_pit(self, index):
        raise mod._NoPit()

    monkeypatch.setattr(mod.ElasticsearchSource, "open_pit", no_pit)
    result, _ = run_scan([es.url], ScanOptions(seed=3, workers=1, source_options={"partition_rows": 400, "include": ["users"]}))
    assert result.records_scanned == USERS and result.subjects_scanned == USERS


def test_hidden_indices_aliases_and_opensearch_scheme(es):
    url = es.url.replace("elasticsearch+http", "opensearch+http")
    plain, _ = run_scan([url], ScanOptions(seed=1, workers=1, source_options={"include": ["customers", ".*"]}))
    assert [d["dataset"] for d in plain.datasets] == ["users"]  # the alias names its index; hidden skipped
    hidden, _ = run_scan([url], ScanOptions(seed=1, workers=1, source_options={"include": [".*"], "include_hidden": True}))
    assert [d["dataset"] for d in hidden.datasets] == [".internal-secrets"]
    assert hidden.categories["email"].values == 1


def test_sample_returns_n_documents(es):
    a = storedata.repeated_sample(es.url, seed=4, sample=120, include=["users"])
    assert a.subjects_scanned == 120


def test_login_required_behind_basic_auth(es, monkeypatch):
    with nginx_basic_auth_proxy(es.port, password="s3cret-es") as proxy:
        url = f"elasticsearch+http://elastic@127.0.0.1:{proxy.port}"
        with pytest.raises(UserError, match="login failed") as err:
            run_scan([url], ScanOptions(workers=1))
        assert "\n" not in str(err.value)
        monkeypatch.setenv("ES_PASSWORD", "s3cret-es")
        ok, _ = run_scan([url], ScanOptions(workers=1, source_options={"include": ["payments"]}))
        assert ok.errors == [] and ok.records_scanned > 0


def test_unreachable_is_one_line():
    with pytest.raises(UserError, match="cannot connect"):
        run_scan([f"elasticsearch+http://elastic:pw@127.0.0.1:{free_port()}"], ScanOptions(workers=1, source_options={"connect_timeout": 2}))
