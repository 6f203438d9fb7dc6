"""The generated IoT dataset as records, for loading into the stores the tests start.

Every store test loads the same records and checks that an exhaustive scan of the store reports
the same categories and distinct people as the file scan of the generated files.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq

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


def category_subjects(result: Any) -> dict[str, int | None]:
    return {c: v["subjects"] for c, v in result.to_json()["summary"]["categories"].items()}


def field_categories(result: Any) -> set[tuple[str, str]]:
    """(field, category) pairs reported at medium or high confidence, whatever the dataset is called."""
    return {(f.field, f.category) for f in result.findings if f.confidence in ("high", "medium")}
