"""Safe-copy transforms and policy loading, on generated values with known answers."""

from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa
import pytest

from spillguard.errors import UserError
from spillguard.keys import key_id
from spillguard.safecopy.plan import DatasetPlan, drift, leaf_paths
from spillguard.safecopy.policy import parse_policy
from spillguard.safecopy.transforms import TransformStats, build_transform
from tests import ROOT

KEY_HEX = "3f" * 16 + "a1" * 16


def _policy(fields: dict, env: str = "SG_TEST_KEY", **extra):
    return parse_policy({"keys": {"main": {"env": env}}, "datasets": {"t": {"fields": fields, **extra}}})


def _run(policy, path: str, values: list) -> tuple[list, TransformStats]:
    stats = TransformStats()
    out = build_transform(policy.datasets["t"].fields[path], policy)(pa.array(values), stats)
    return out.to_pylist(), stats


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("SG_TEST_KEY", KEY_HEX)


def test_hmac_length_and_prefix_options_cut_the_standard_library_mac():
    vals = ["", "u1", "é" * 40, None, "u1"]
    out, _ = _run(_policy({"id": {"transform": "hmac", "length": 9, "prefix": "p_"}}), "id", vals)
    key = bytes.fromhex(KEY_HEX)
    assert out == [None if v is None else "p_" + hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:18] for v in vals]


def test_hmac_pseudonyms_join_across_types_and_runs_and_differ_by_key(monkeypatch):
    pol = _policy({"id": "hmac"})
    first, _ = _run(pol, "id", ["u1", "u2", "u1", None])
    again, _ = _run(_policy({"id": "hmac"}), "id", ["u2", "u1"])
    assert first[0] == first[2] != first[1] and first[3] is None
    assert again == [first[1], first[0]]
    # An integer id and its text form get the same pseudonym: a join across stores still works.
    numbers, _ = _run(pol, "id", [42])
    text, _ = _run(pol, "id", ["42"])
    assert numbers == text
    monkeypatch.setenv("SG_TEST_KEY", "77" * 32)
    other, _ = _run(_policy({"id": "hmac"}), "id", ["u1", "u2"])
    assert set(other).isdisjoint(first)
    assert first[0] == hmac.new(bytes.fromhex(KEY_HEX), b"u1", hashlib.sha256).hexdigest()[:32]


@pytest.mark.parametrize(
    ("value", "message"),
    [(None, "is not set"), ("", "empty"), ("00" * 15, "120 bits"), ("not-hex-at-all-but-long-enough!!", "hex")],
)
def test_missing_short_or_empty_keys_are_refused(monkeypatch, value, message):
    if value is None:
        monkeypatch.delenv("SG_TEST_KEY", raising=False)
    else:
        monkeypatch.setenv("SG_TEST_KEY", value)
    with pytest.raises(UserError, match=message):
        _policy({"id": "hmac"})


def test_key_file_and_key_id(tmp_path):
    (tmp_path / "copy.key").write_text(KEY_HEX + "\n")
    pol = parse_policy({"keys": {"main": {"file": "copy.key"}}, "datasets": {"t": {"fields": {"id": "hmac"}}}}, base=tmp_path)
    key = pol.keys["main"]
    assert key.id == key_id(bytes.fromhex(KEY_HEX)) and key.id.startswith("kid-") and KEY_HEX not in key.id and KEY_HEX not in repr(key)
    with pytest.raises(UserError, match="no key named"):
        parse_policy({"keys": {"main": {"file": str(tmp_path / "copy.key")}},
                      "datasets": {"t": {"fields": {"id": {"transform": "hmac", "key": "other"}}}}})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"a": "scramble"}, "unknown transform 'scramble'"),
        ({"a": {"transform": "mask", "keep_middle": 2}}, "unknown option"),
        ({"a": {"transform": "generalise"}}, "generalise needs one of"),
        ({"a": {"transform": "generalise", "to": "decade"}}, "not known"),
    ],
)
def test_bad_policies_name_the_problem(fields, message):
    with pytest.raises(UserError, match=message):
        pol = _policy(fields)
        DatasetPlan(pol.datasets["t"], pol, "halt", None)


def test_mask_keeps_only_what_it_is_told():
    pol = _policy({"a": {"transform": "mask", "keep_prefix": 1, "keep_suffix": 4}})
    out, _ = _run(pol, "a", ["jane@example.com", "abc", None, "héllo wörld"])
    assert out == ["j***********.com", "***", None, "h******örld"]


def test_generalise_dates_networks_and_numbers():
    pol = _policy({
        "d": {"transform": "generalise", "to": "month"}, "y": {"transform": "generalise", "to": "year"},
        "ip": {"transform": "generalise", "to": "network"}, "n": {"transform": "generalise", "bucket": 10},
        "g": {"transform": "generalise", "grid": 0.1},
    })
    assert _run(pol, "d", ["2024-05-17T10:00:00", "2024-12-01"])[0] == ["2024-05-01", "2024-12-01"]
    import datetime as dt

    stamp = pa.array([dt.datetime(1980, 7, 9, 12, 30)])
    out = build_transform(pol.datasets["t"].fields["y"], pol)(stamp, TransformStats())
    assert out.to_pylist() == [dt.datetime(1980, 1, 1)]
    ips, stats = _run(pol, "ip", ["10.1.2.3", "192.168.7.255", "2001:db8:abcd:12::1", "not an ip", None])
    assert ips == ["10.1.2.0", "192.168.7.0", "2001:db8:abcd::", None, None]
    assert stats.notes == {"ip: values that are not IP addresses nulled": 1}
    assert _run(pol, "n", [1, 15, 27, None])[0] == [0, 10, 20, None]
    assert _run(pol, "g", [48.85661, -2.35222])[0] == [48.8, -2.4]


def test_fpe_is_ff1_keeps_the_format_and_counts_what_it_cannot_encrypt():
    pytest.importorskip("ffx")
    pol = _policy({"card": {"transform": "fpe"}})
    values = ["4111-1111-1111-1111", "+44 20 7946 0958", "12", None]
    out, stats = _run(pol, "card", values)
    assert out[0] != values[0] and [c for c in out[0] if not c.isdigit()] == ["-", "-", "-"]
    assert len(out[1]) == len(values[1]) and out[1].startswith("+") and out[1][3] == " "
    assert out[2] is None and out[3] is None
    assert stats.notes == {"card: values too short for FF1 nulled": 1}
    from ffx import FF1

    from spillguard.safecopy.transforms import ff1_key

    digits = FF1(ff1_key(pol.keys["main"]), alphabet="0123456789").decrypt(out[0].replace("-", ""))
    assert digits == "4111111111111111"


def test_redact_replaces_every_detected_value_with_its_category():
    pol = _policy({"body": "redact"})
    text = "write to Jane.Doe@Example.COM or +44 20 7946 0958, also bob@x.org and carl@y.org"
    out, stats = _run(pol, "body", [text, "nothing here", None])
    assert out == ["write to [email] or [phone], also [email] and [email]", "nothing here", None]
    assert stats.notes == {"body: email redacted": 3, "body: phone redacted": 1}


def test_paths_drift_and_nested_application():
    table = pa.table({
        "id": ["a", "b"],
        "address": [{"city": "Paris", "zip": "75001"}, None],
        "devices": [[{"mac": "aa:bb:cc:dd:ee:ff", "model": "X"}], []],
        "tags": [["x"], None],
    })
    assert leaf_paths(table.schema) == {"id": "text", "address.city": "text", "address.zip": "text",
                                        "devices[].mac": "text", "devices[].model": "text", "tags[]": "text"}
    pol = _policy({"id": "hmac", "address": "drop", "devices[].mac": "hmac", "devices[].model": "keep"},
                  types={"id": "integer"})
    d = drift(pol.datasets["t"], table.schema)
    assert d.new == ["tags[]"] and d.changed == [("id", "integer", "text")]
    pol = _policy({"id": "hmac", "address": "drop", "devices[].mac": "hmac", "devices[].model": "keep", "tags": "null"})
    out = DatasetPlan(pol.datasets["t"], pol, "halt", None).apply(table)
    assert out.column_names == ["id", "devices", "tags"]
    devices = out.column("devices").to_pylist()
    assert devices[1] == [] and devices[0][0]["model"] == "X" and len(devices[0][0]["mac"]) == 32
    assert out.column("tags").to_pylist() == [None, None]


def test_the_policy_example_in_docs_copy_md_is_valid(monkeypatch):
    import re
    import tomllib

    pytest.importorskip("ffx")
    text = (ROOT / "docs" / "copy.md").read_text()
    block = re.search(r"```toml\n(.*?)```", text, re.S).group(1)
    monkeypatch.setenv("SPILLGUARD_COPY_KEY", KEY_HEX)
    pol = parse_policy(tomllib.loads(block))
    users = pol.datasets["public.users"]
    DatasetPlan(users, pol, "halt", None)  # every transform and option of the example builds
    transforms = {r.transform for r in users.fields.values()}
    assert transforms == {"keep", "drop", "null", "hmac", "mask", "generalise", "fpe", "redact"}
