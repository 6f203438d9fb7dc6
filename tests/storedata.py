"""The generated IoT dataset as records, for loading into the stores the tests start, and the
checks every store test shares.

Every store test loads the same records and checks that an exhaustive scan of the store reports
the same categories and distinct people as the file scan of the generated files
(`assert_scan_matches_file_scan`), and that a sample is repeatable (`repeated_sample`).
"""

from __future__ import annotations

import csv
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
