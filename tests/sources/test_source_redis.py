"""Redis source against a real server started by the test, loaded with the generated IoT dataset."""

from __future__ import annotations

import orjson
import pytest

from spillguard.errors import UserError
from spillguard.scan.options import ScanOptions
from spillguard.scan.run import run_scan
from tests import storedata
from tests.servers import redis_server

redis = pytest.importorskip("redis")


generated = storedata.generated_dataset_fixture("redisdemo", seed=12)  # loaded into the `rds` fixture (tests/stores_plugin.py)


def test_key_patterns():
    from spillguard.sources.redis import key_pattern

    for key, pattern in [
        ("session:9f86d081884c7d65", "session:*"),
        ("user:42:tokens", "user:*:tokens"),
        ("user:usr_0001234", "user:*"),
        ("cache:2b1f6a3e-7d0c-4c39-9a7e-3f1de1c9f1aa", "cache:*"),
        ("user:alice@example.com:profile", "user:*:profile"),
        ("config:features", "config:features"),
    ]:
        assert key_pattern(key) == pattern, key


def test_exhaustive_scan_matches_file_scan(generated, rds):
    result = storedata.assert_scan_matches_file_scan(rds.url, generated, partition_rows=5000)
    assert {d["dataset"] for d in result.datasets} == {"user:*", "scale:*:measurements", "ticket:*", "payment:*", "events:*"}


def test_every_type_and_json_values(rds):
    r = redis.Redis.from_url(rds.admin_url, db=3)
    r.set("cfg:mail", "ops-team@example.com")
    r.sadd("optin:emails", *[f"set{i}@example.org" for i in range(30)])
    r.zadd("leader:board", {f"zz{i}@example.net": i for i in range(20)})
    r.rpush("queue:mail", *[orjson.dumps({"to": f"list{i}@example.com"}) for i in range(2500)])  # more than one LRANGE chunk
    r.hset("big:hash", mapping={f"f{i}": f"hash{i}@example.com" for i in range(1500)})  # HSCAN path
    r.xadd("audit:log", {"who": "str@example.com", "ip": "81.2.69.160"})
    try:
        result, _ = run_scan([rds.url + "/3"], ScanOptions(seed=1, workers=1))
        per = {(f.dataset, f.field, f.category): f for f in result.findings}
        assert per[("db3:cfg:mail", "value", "email")].values_matched == 1
        assert per[("db3:optin:emails", "value", "email")].values_matched == 30
        assert per[("db3:leader:board", "member", "email")].values_matched == 20
        assert per[("db3:queue:mail", "to", "email")].values_matched == 2500
        assert per[("db3:big:hash", "value", "email")].values_matched == 1500  # one record per field of a big hash
        assert per[("db3:audit:log", "ip", "ip_address")].values_matched == 1
    finally:
        r.flushdb()


def test_sample_picks_n_keys(rds):
    a = storedata.repeated_sample(rds.url, seed=4, sample=50, include=["user:*"])
    assert a.subjects_scanned == 50


def test_password_required_and_wrong_password():
    with redis_server(password="s3cret-rd") as server:
        with pytest.raises(UserError) as err:
            run_scan([server.url], ScanOptions(workers=1))
        assert "\n" not in str(err.value)
        with pytest.raises(UserError) as err:
            run_scan([server.url.replace("redis://", "redis://:wrong-Passw0rd@")], ScanOptions(workers=1))
        assert "wrong-Passw0rd" not in str(err.value)
        ok, _ = run_scan([server.url], ScanOptions(workers=1, source_options={"password": "s3cret-rd"}))
        assert ok.errors == []
