"""Stakes: a scan inventory of the same host:port says who and what an exposure exposes, and ranks targets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from spillguard.audit import audit
from spillguard.audit.stakes import load_inventory, stakes_for
from spillguard.errors import UserError
from spillguard.targets import store_key
from tests.servers import redis_server


def _inventory(
    path: Path, targets: list[str], findings: list[dict[str, Any]], summary: dict[str, Any]
) -> str:
    path.write_text(json.dumps({
        "version": 1, "started_at": "2026-11-27T10:00:00Z", "finished_at": "2026-11-27T10:05:00Z",
        "targets": targets, "findings": findings, "summary": summary, "errors": [],
    }))  # fmt: skip
    return str(path)


def _finding(
    target: str, dataset: str, field: str, category: str, subjects: int, records: int
) -> dict[str, Any]:
    return {"target": target, "dataset": dataset, "field": field, "category": category, "rule": category,
            "confidence": "high", "records_scanned": records * 2, "records_matched": records,
            "values_matched": records, "subjects_matched": subjects, "samples": []}  # fmt: skip


def test_exposed_target_gets_stakes_and_ranks_above_a_smaller_one(tmp_path: Path) -> None:
    with redis_server() as small, redis_server() as big, redis_server(password="pw") as closed:
        # The big store is named with localhost and no port in the URL form the scanner used: still matched.
        big_inv = _inventory(
            tmp_path / "big.json", [f"redis://localhost:{big.port}/0"],
            [_finding(f"redis://localhost:{big.port}/0", "db0", "email", "email", 2400, 2500)],
            {"records_scanned": 5000, "subjects_scanned": 2400,
             "categories": {"email": {"subjects": 2400, "records": 2500, "values": 2500},
                            "secret": {"subjects": 24, "records": 24, "values": 24}}},
        )  # fmt: skip
        small_inv = _inventory(
            tmp_path / "small.json", [small.url],
            [_finding(small.url, "db0", "name", "health", 140, 140)],
            {"records_scanned": 140, "subjects_scanned": 140,
             "categories": {"health": {"subjects": 140, "records": 140, "values": 140}}},
        )  # fmt: skip
        closed_inv = _inventory(
            tmp_path / "closed.json", [closed.url], [],
            {"records_scanned": 10**6, "subjects_scanned": 10**6, "categories": {"email": {"subjects": 10**6,
             "records": 10**6, "values": 10**6}}},
        )  # fmt: skip
        result = audit(
            [closed.url, small.url, big.url], inventory=[small_inv, big_inv, closed_inv], timeout=3
        )
    doc = result.to_json()
    order = [t["target"] for t in doc["targets"]]
    # Exposed first and by people at stake; the protected store with more people comes last.
    assert order == [big.url, small.url, closed.url]
    big_stakes = doc["targets"][0]["stakes"]
    assert big_stakes == {
        "subjects": 2400, "records": 5000,
        "categories": {"email": {"subjects": 2400, "records": 2500, "values": 2500},
                       "secret": {"subjects": 24, "records": 24, "values": 24}},
    }  # fmt: skip
    assert doc["targets"][1]["stakes"]["categories"]["health"]["subjects"] == 140


def test_multi_target_inventory_is_split_by_target() -> None:
    inv_doc = {
        "version": 1,
        "finished_at": "2026-11-27T10:05:00Z",
        "targets": ["postgresql://a@10.0.0.5:5432/app", "redis://10.0.0.6:6379"],
        "findings": [
            _finding("postgresql://a@10.0.0.5:5432/app", "public.users", "email", "email", 900, 1000),
            _finding("postgresql://a@10.0.0.5:5432/app", "public.orders", "contact", "email", 700, 1500),
            _finding("postgresql://a@10.0.0.5:5432/app", "public.users", "phone", "phone", 300, 300),
            _finding("redis://10.0.0.6:6379", "db0", "value", "secret", 5, 5),
        ],
        "summary": {"records_scanned": 9999, "subjects_scanned": 9999, "categories": {}},
    }
    from spillguard.audit.stakes import Inventory

    inv = Inventory("x.json", inv_doc)
    s = stakes_for(store_key("postgresql://other@10.0.0.5/app"), [inv])
    assert s is not None
    # Per category the biggest field: the same people are often in two fields.
    assert s["categories"]["email"] == {"subjects": 900, "records": 1500, "values": 2500}
    assert s["subjects"] == 900
    assert s["records"] == 2000 + 3000  # records scanned, once per dataset
    assert stakes_for(store_key("redis://10.0.0.7:6379"), [inv]) is None


def test_bad_inventory_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        load_inventory(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text('{"version": 2}')
    with pytest.raises(UserError, match="not a version-1 scan inventory"):
        load_inventory(tmp_path / "x.json")
