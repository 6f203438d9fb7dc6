"""Many small JSON Lines files parsed as one buffer give exactly what reading each alone gives."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from spillguard.scan.options import ScanOptions
from spillguard.scan.run import run_scan
from spillguard.sources.base import Partition
from spillguard.sources.files import FileSource


def _line(doc: dict) -> bytes:
    return orjson.dumps(doc) + b"\n"


# Files that are not plain: each must still come out exactly as when read alone.
ODD: dict[str, bytes] = {
    "broken.jsonl": _line({"user_id": 900, "email": "a900@example.com"}) + b'{"user_id": 901, "email": "a901@example.com"\n'
    + _line({"user_id": 902, "email": "a902@example.com"}),
    "float.jsonl": _line({"user_id": 910, "email": "f@example.com", "score": 1.5}),
    "int_score.jsonl": _line({"user_id": 911, "email": "g@example.com", "score": 2}),
    "dated.jsonl": _line({"user_id": 920, "email": "d@example.com", "dob": "1990-05-17"}),  # alone: a timestamp
    "undated.jsonl": _line({"user_id": 921, "email": "e@example.com", "dob": "17/05/1990"}),
    "email_only.jsonl": _line({"email": "only@example.com", "phone": "+1 415 555 0100"}),
    "null_user.jsonl": _line({"user_id": None, "email": "n@example.com"}),
    "nested.jsonl": _line({"user": {"id": 7, "email": "nested@example.com"}, "user_id": 930, "email": "h@example.com"}),
    "tags.jsonl": _line({"user_id": 931, "email": "t@example.com", "tags": ["x", "2020-01-02"]}),
    "no_tags.jsonl": _line({"user_id": 932, "email": "u@example.com", "tags": []}),
    "latin1.jsonl": b'{"user_id": 940, "email": "l@example.com", "name": "Jos\xe9"}\n',
    "bom.jsonl": b"\xef\xbb\xbf" + _line({"user_id": 941, "email": "bom@example.com"}),
    "no_newline.jsonl": _line({"user_id": 942, "email": "nn@example.com"}).rstrip(b"\n"),
    "two_no_newline.jsonl": _line({"user_id": 943, "email": "m@example.com"}) + _line({"user_id": 944, "email": "p@example.com", "ip": "10.1.2.3"}).rstrip(b"\n"),
    "blank.jsonl": b"\n\n",
    "empty.jsonl": b"",
    "two_values.jsonl": b'{"user_id": 950, "email": "v@example.com"} {"user_id": 951}\n',
    "not_object.jsonl": b"null\n" + _line({"user_id": 952, "email": "w@example.com"}),
    "deep.jsonl": b'{"user_id": 953, "d": ' + b"[" * 80 + b'"deep@example.com"' + b"]" * 80 + b"}\n",
    "typed_int.jsonl": _line({"user_id": 960, "x": 1, "email": "ti@example.com"}),
    "typed_str.jsonl": _line({"user_id": 961, "x": "s", "email": "ts@example.com"}),
    "hits.jsonl": _line({"_index": "users", "_id": "1", "_source": {"user_id": 970, "email": "es@example.com"}}),
    "dotted.jsonl": _line({"a.b": "dot@example.com", "a": {"b": "nest@example.com"}, "user_id": 971}),
    "camel.jsonl": _line({"userId": 980, "user_id": 981, "email": "c@example.com"}),
    "pretty.jsonl": b'{\n  "user_id": 990,\n  "email": "pp@example.com"\n}\n',
    "crlf.jsonl": b'{"user_id": 991, "email": "crlf@example.com"}\r\n{"user_id": 992, "email": "crlf2@example.com"}\r\n',
    "token.jsonl": _line({"user_id": 993, "access_token": "Atza|" + "IwEBIA" * 60, "email": "tok@example.com"}),
}


def _lake(folder: Path) -> list[str]:
    """Clean one- and few-line files around every odd one, the damaged ones in the middle of a batch."""
    folder.mkdir()
    names = []
    odd = list(ODD.items())
    for i in range(60):
        name = f"f{i:03d}.jsonl"
        rows = [{"user_id": i * 10 + j, "email": f"user{i * 10 + j}@example.com", "device": f"cam-{j}"} for j in range(1 + i % 3)]
        (folder / name).write_bytes(b"".join(_line(r) for r in rows))
        names.append(name)
        if i % 2 and odd:
            odd_name, text = odd.pop(0)
            (folder / f"f{i:03d}_{odd_name}").write_bytes(text)
            names.append(f"f{i:03d}_{odd_name}")
    assert not odd
    return names


def _per_dataset(doc: dict) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for d in doc["datasets"]:
        out[d["dataset"]] = {"dataset": {k: v for k, v in d.items() if k not in ("dataset", "target")}, "findings": [], "errors": []}
    for f in doc["findings"]:
        out[f["dataset"]]["findings"].append({k: v for k, v in f.items() if k not in ("dataset", "target")})
    for e in doc["errors"]:
        if e["dataset"] is None:  # about the whole target (people identified by different fields)
            continue
        out[e["dataset"]]["errors"].append({k: v for k, v in e.items() if k not in ("dataset", "target")})
    return out


@pytest.mark.parametrize("subjects_out", [False, True])
def test_a_batch_with_damaged_files_gives_exactly_the_per_file_results(tmp_path, subjects_out):
    names = _lake(tmp_path / "lake")
    options = ScanOptions(seed=7, show_samples=True, workers=1, subjects_out=str(tmp_path / "subjects.csv") if subjects_out else None)
    together, _ = run_scan([str(tmp_path / "lake")], options)
    batched = _per_dataset(together.to_json())
    assert sorted(batched) == sorted(names)
    for name in names:
        alone, _ = run_scan([str(tmp_path / "lake" / name)], options)
        assert _per_dataset(alone.to_json()) == {name: batched[name]}, name
    doc = together.to_json()
    assert any(e["kind"] == "malformed" for e in doc["errors"]) and doc["summary"]["complete"] is False


def test_clean_files_are_parsed_together_and_odd_ones_alone(tmp_path):
    _lake(tmp_path / "lake")
    source = FileSource(str(tmp_path / "lake"))
    readers = list(source.datasets())
    pairs = [(r, Partition(r.name, r.file.spec())) for r in readers]
    read = readers[0].read_together(pairs)
    alone = {r.name for r, tables in zip(readers, read, strict=True) if tables is None}
    together = {r.name for r, tables in zip(readers, read, strict=True) if tables}
    clean = {f"f{i:03d}.jsonl" for i in range(60)}
    assert len(clean & together) >= 40, sorted(clean - together)  # odd files every other one: some neighbours go alone
    must_be_alone = ("broken", "float", "int_score", "dated", "email_only", "null_user", "latin1", "bom", "two_no_newline",
                     "two_values", "not_object", "deep", "hits", "dotted", "camel", "pretty", "tags")
    assert {n for n in alone if n.split("_", 1)[-1].removesuffix(".jsonl") in must_be_alone} == {
        n for n in (r.name for r in readers) if n.split("_", 1)[-1].removesuffix(".jsonl") in must_be_alone
    }
    # The rows each file gets back are its own records.
    for r, tables in zip(readers, read, strict=True):
        if tables:
            got = [row["user_id"] for t in tables for row in t.to_pylist()]
            want = [json.loads(line)["user_id"] for line in Path(r.file.shown).read_bytes().splitlines() if line.strip()]
            assert got == want, r.name


CASES = {
    # a file whose whole number (a card number) would become a float beside files with fractions
    "float": ({"card_number": 1.5}, {"card_number": 4111111111111111}),
    # a file without the subject field the others have: alone it picks another one
    "subject": ({"user_id": 1}, {"customer_id": "c-1"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_file_that_reads_differently_alone_is_read_alone(tmp_path, case):
    common, odd = CASES[case]
    lake = tmp_path / "lake"
    lake.mkdir()
    for i in range(12):
        fields = odd if i == 5 else common
        (lake / f"r{i:02d}.jsonl").write_bytes(_line({"email": f"p{i}@example.com", "dob_note": "x", **fields}))
    options = ScanOptions(seed=3, show_samples=True, workers=1)
    batched = _per_dataset(run_scan([str(lake)], options)[0].to_json())
    for i in range(12):
        name = f"r{i:02d}.jsonl"
        assert _per_dataset(run_scan([str(lake / name)], options)[0].to_json()) == {name: batched[name]}, name
