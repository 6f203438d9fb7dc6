"""Damaged and odd files (issue 10, items 1-8, 14, 19): what was not scanned is accounted for, and
recoverable damage costs the damaged record, not the file."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

import spillguard
from spillguard.errors import UserError

DOCS = [{"user_id": f"u{i}", "email": f"person{i}@example.com"} for i in range(1, 201)]


def _jsonl(docs: list) -> bytes:
    return b"".join(orjson.dumps(d) + b"\n" for d in docs)


def _kinds(result) -> list[str]:
    return sorted(e.kind for e in result.errors)


def _email_records(result) -> int:
    return sum(f.records_matched for f in result.findings if f.category == "email")


# -- 1: a cut compressed stream is a truncated stream -------------------------------------------------------------
@pytest.mark.parametrize("compress", ["gzip", "zstd"])
@pytest.mark.parametrize("records", [20, 50_000])  # ~1 KB (the cut falls inside the only zstd block) and several MB
def test_a_cut_compressed_file_is_reported_as_truncated(tmp_path, compress, records):
    docs = [{"user_id": f"u{i}", "email": f"u{i}@example.com"} for i in range(records)]
    data = _jsonl(docs)
    packed = gzip.compress(data) if compress == "gzip" else zstandard.ZstdCompressor().compress(data)
    path = tmp_path / f"cut.jsonl.{'gz' if compress == 'gzip' else 'zst'}"
    path.write_bytes(packed[: len(packed) // 2])
    result = spillguard.scan([path])
    assert [e.kind for e in result.errors] == ["truncated"], result.errors
    assert "ends early or is corrupt" in result.errors[0].message
    assert result.malformed_records == 0  # the cut line is part of the cut, not a malformed record
    assert result.records_scanned < records
    assert _email_records(result) == result.records_scanned


@pytest.mark.parametrize("name", ["cut.json.zst", "cut.csv.zst", "cut.json.gz", "cut.csv.gz"])
def test_a_cut_stream_is_truncated_in_every_format(tmp_path, name):
    docs = [{"user_id": f"u{i}", "email": f"u{i}@example.com"} for i in range(50_000)]  # many zstd blocks
    if ".csv" in name:
        text = ("user_id,email\n" + "".join(f"{d['user_id']},{d['email']}\n" for d in docs)).encode()
    else:
        text = json.dumps(docs, indent=1).encode()
    packed = gzip.compress(text) if name.endswith(".gz") else zstandard.ZstdCompressor().compress(text)
    path = tmp_path / name
    path.write_bytes(packed[: len(packed) * 2 // 3])
    result = spillguard.scan([path])
    assert "truncated" in _kinds(result)
    assert 0 < result.records_scanned < 50_000


def test_several_zstd_frames_are_one_stream_and_not_a_cut(tmp_path):
    frames = b"".join(zstandard.ZstdCompressor().compress(_jsonl(DOCS[i : i + 50])) for i in range(0, 200, 50))
    path = tmp_path / "frames.jsonl.zst"
    path.write_bytes(frames)
    result = spillguard.scan([path])
    assert result.records_scanned == 200 and result.errors == []


# -- 2 and 14: deep nesting ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [400, 100_000])
def test_a_deep_line_is_scanned_as_text_below_the_documented_depth(tmp_path, depth):
    deep = b'{"user_id": "deep", "email": "top@example.com", "t": ' + b'{"a": ' * depth + b'"inner@example.com"' + b"}" * (depth + 1)
    lines = _jsonl(DOCS[:100]) + deep + b"\n" + _jsonl(DOCS[100:])
    path = tmp_path / "deep.jsonl"
    path.write_bytes(lines)
    result = spillguard.scan([path])
    assert result.errors == [] and result.records_scanned == 201
    assert result.categories["email"].records == 201
    # the e-mail 400 levels down is found too, in the subtree kept as text at level 64
    assert any(f.category == "email" and f.field.startswith("t.a.a") for f in result.findings)


def test_a_deep_single_document_keeps_memory_bounded(tmp_path):
    """Issue 10 item 14: a 600 KB .json of one object nested 100,000 deep (11 GB before the fix)."""
    path = tmp_path / "deep.json"
    path.write_bytes(b'{"email": "top@example.com", "t": ' + b'{"a":' * 100_000 + b"1" + b"}" * 100_001)
    assert 550_000 < path.stat().st_size < 650_000
    code = textwrap.dedent(
        f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))  # a regression fails fast instead of filling the machine
        import spillguard
        r = spillguard.scan([{str(path)!r}])
        print(r.records_scanned, r.categories["email"].records, len(r.errors))
        # VmHWM, not ru_maxrss: the latter survives exec and would report the pytest parent's peak.
        print(int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) // 1024)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    counts, peak_mb = proc.stdout.split("\n")[:2]
    assert counts == "1 1 0"
    assert int(peak_mb) < 600, f"peak RSS {peak_mb} MB"  # the interpreter with pyarrow and the rules is ~250 MB


# -- 3: bytes that are not UTF-8 ------------------------------------------------------------------------------------
def test_one_invalid_byte_in_a_csv_row_costs_nothing_and_is_reported(tmp_path):
    text = "user_id,email\n" + "".join(f"{d['user_id']},{d['email']}\n" for d in DOCS)
    path = tmp_path / "bad.csv"
    path.write_bytes(text.encode().replace(b"u50,", b"u\xff50,"))
    result = spillguard.scan([path])
    assert result.records_scanned == 200 and result.malformed_records == 0
    assert result.categories["email"].records == 200
    (warning,) = result.errors
    assert warning.kind == "warning" and warning.line == 51 and "not UTF-8" in warning.message


def test_a_latin1_csv_is_scanned_with_a_warning(tmp_path):
    text = "user_id,name,email\n" + "".join(f"{d['user_id']},Zoë Müller,{d['email']}\n" for d in DOCS)
    path = tmp_path / "latin1.csv"
    path.write_bytes(text.encode("latin-1"))
    result = spillguard.scan([path])
    assert result.records_scanned == 200 and result.categories["email"].records == 200
    assert _kinds(result) == ["warning"] and "200 more" not in result.errors[0].message


def test_a_parquet_binary_column_with_bytes_that_are_not_utf8_is_scanned(tmp_path):
    blobs = [b"\xff\xfe reach me at " + d["email"].encode() + b" \x80" for d in DOCS]
    table = pa.table({"user_id": [d["user_id"] for d in DOCS], "note": pa.array(blobs, pa.binary())})
    path = tmp_path / "bin.parquet"
    pq.write_table(table, path)
    result = spillguard.scan([path])
    assert result.records_scanned == 200
    assert result.categories["email"].records == 200
    assert _kinds(result) == ["warning"] and "note" in result.errors[0].message


# -- 4: JSON arrays and numbers out of range ---------------------------------------------------------------------
def _array(elements: list[str], indent: bool) -> str:
    sep = ",\n  " if indent else ","
    return ("[\n  " if indent else "[") + sep.join(elements) + ("\n]\n" if indent else "]")


@pytest.mark.parametrize("indent", [False, True])
@pytest.mark.parametrize(
    "broken",
    [
        '{"user_id": "u51", "email": "person51@example.com" "x": 1}',  # balanced: a comma missing
        '{"user_id": "u51", "email": "person51@example.com", "x": [1, 2}',  # a bracket that never closes
        '{"user_id": "u51", "email": "person51@example.com", "x": "no end}',  # a quote that never closes
    ],
)
def test_a_broken_array_element_costs_that_element(tmp_path, indent, broken):
    elements = [json.dumps(d) for d in DOCS]
    elements[50] = broken
    path = tmp_path / "arr.json"
    path.write_text(_array(elements, indent))
    result = spillguard.scan([path])
    assert result.records_scanned == 199, result.errors
    (err,) = result.errors
    assert err.kind == "malformed" and err.line == 51 and err.message.startswith("array element 51")
    assert result.malformed_records == 1
    assert _email_records(result) == 199


@pytest.mark.parametrize("name", ["big.json", "big.jsonl"])
def test_a_number_out_of_range_costs_at_most_that_value(tmp_path, name):
    docs = [dict(d) for d in DOCS]
    docs[50]["x"] = "@1e400@"
    docs[60]["id"] = "@123456789012345678901234567890@"
    text = "\n".join(json.dumps(d) for d in docs) if name.endswith("l") else json.dumps(docs)
    path = tmp_path / name
    path.write_text(text.replace('"@', "").replace('@"', ""))
    result = spillguard.scan([path])
    assert result.errors == [] and result.records_scanned == 200
    assert result.categories["email"].records == 200


def test_an_array_with_non_objects_names_their_index(tmp_path):
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps([DOCS[0], "a string", DOCS[1], None, DOCS[2]]))
    result = spillguard.scan([path])
    assert result.records_scanned == 3
    assert sorted(e.line for e in result.errors) == [2, 4]


# -- 5: CSV with an unterminated quote ----------------------------------------------------------------------------
def test_an_unterminated_csv_quote_costs_its_row_and_shifts_no_value(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('user_id,email,note\nu1,a1@example.com,ok\nu2,a2@example.com,"open\nu3,a3@example.com,fine\n')
    result = spillguard.scan([path])
    assert result.records_scanned == 2 and result.malformed_records == 1
    (err,) = result.errors
    assert err.line == 3 and "never closed" in err.message
    assert {f.field for f in result.findings if f.category == "email"} == {"email"}
    assert _email_records(result) == 2


def test_quoted_values_spanning_lines_still_parse(tmp_path):
    path = tmp_path / "multi.csv"
    path.write_text('user_id,email,note\nu1,a1@example.com,"two\nlines, with ""quotes"""\nu2,a2@example.com,plain\n')
    result = spillguard.scan([path])
    assert result.records_scanned == 2 and result.errors == []


def test_a_quote_inside_an_unquoted_csv_value_is_read_row_by_row(tmp_path):
    path = tmp_path / "q2.csv"
    rows = [f"{d['user_id']},{d['email']},x" for d in DOCS]
    rows[10] = 'u11,person11@example.com,5" screen'
    path.write_text("user_id,email,note\n" + "\n".join(rows) + "\n")
    result = spillguard.scan([path])
    assert result.records_scanned == 200 and result.errors == []
    assert _email_records(result) == 200


# -- 6: byte-order marks ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bom.jsonl", "bom.json", "bom.csv", "bom.jsonl.gz"])
def test_a_utf8_bom_is_skipped(tmp_path, name):
    if ".csv" in name:
        body = ("user_id,email\n" + "".join(f"{d['user_id']},{d['email']}\n" for d in DOCS)).encode()
    elif name.endswith(".json"):
        body = orjson.dumps(DOCS)
    else:
        body = _jsonl(DOCS)
    data = b"\xef\xbb\xbf" + body
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    result = spillguard.scan([path])
    assert result.records_scanned == 200 and result.errors == []
    assert {f.field for f in result.findings} >= {"email"}


def test_a_bom_in_a_big_split_jsonl_file_is_skipped(tmp_path, monkeypatch):
    import spillguard.sources.files as files

    monkeypatch.setattr(files, "PART_BYTES", 2000)
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + _jsonl(DOCS))
    result = spillguard.scan([path])
    assert result.records_scanned == 200 and result.errors == []


# -- 7: distinct paths stay distinct ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,content,fields",
    [
        ("dot.jsonl", _jsonl([{"a.b": f"x{i}@example.com", "a": {"b": f"y{i}@example.com"}} for i in range(100)]), {'["a.b"]', "a.b"}),
        ("arr.jsonl", _jsonl([{"c[]": f"x{i}@example.com", "c": [f"y{i}@example.com"]} for i in range(100)]), {'["c[]"]', "c[]"}),
        ("dup.csv", ("email,email\n" + "".join(f"a{i}@example.com,b{i}@example.com\n" for i in range(100))).encode(), {"email", "email#2"}),
    ],
)
def test_records_matched_never_exceed_records_scanned(tmp_path, name, content, fields):
    path = tmp_path / name
    path.write_bytes(content)
    result = spillguard.scan([path])
    assert result.records_scanned == 100
    assert {f.field for f in result.findings} == fields
    assert all(f.records_matched <= result.records_scanned for f in result.findings)
    assert result.categories["email"].records == 100


# -- 8: search responses ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("one_line", [True, False])
def test_a_search_hit_that_is_not_an_object_is_malformed_and_the_others_scanned(tmp_path, one_line):
    hits = [{"_index": "users", "_source": d} for d in DOCS[:10]] + ["oops", 5] + [{"_index": "users", "_source": d} for d in DOCS[10:20]]
    doc = {"took": 1, "hits": {"total": {"value": 22}, "hits": hits}}
    path = tmp_path / "search.json"
    path.write_text(json.dumps(doc) if one_line else json.dumps(doc, indent=2))
    result = spillguard.scan([path])
    assert result.records_scanned == 20 and result.malformed_records == 2
    assert all("search hit" in e.message for e in result.errors)
    assert not any(f.field.startswith("hits") for f in result.findings)


# -- 19: FIFOs and empty files ------------------------------------------------------------------------------------
def test_a_fifo_target_is_named_as_such(tmp_path):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="not a regular file or a folder"):
        spillguard.scan([fifo])


def test_a_fifo_in_a_folder_is_reported_not_skipped_silently(tmp_path):
    os.mkfifo(tmp_path / "pipe.jsonl")
    (tmp_path / "a.jsonl").write_bytes(_jsonl(DOCS))
    result = spillguard.scan([tmp_path])
    assert result.records_scanned == 200
    (warning,) = result.errors
    assert warning.kind == "warning" and "pipe.jsonl" in warning.message and "not a regular file" in warning.message


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.json", "empty.csv", "empty.parquet", "empty.jsonl.gz"])
def test_an_empty_file_is_zero_records_in_every_format(tmp_path, name):
    (tmp_path / name).write_bytes(b"")
    result = spillguard.scan([tmp_path / name])
    assert result.records_scanned == 0 and result.errors == []
    exe = shutil.which("spillguard") or str(Path(sys.executable).with_name("spillguard"))
    proc = subprocess.run([exe, "scan", str(tmp_path / name), "--no-progress"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
