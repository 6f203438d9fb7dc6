"""File sources: formats, Elasticsearch export shapes, compression, malformed input, big and deep values."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

import spillguard
from spillguard.errors import UserError

DOCS = [
    {"user_id": f"u{i}", "email": f"Person{i}@Example.COM", "devices": [{"mac": f"00:1a:2b:3c:4d:{i:02x}", "ssid": f"Net{i}"}]}
    for i in range(1, 41)
]


def _cats(result):
    return {c: s.subjects for c, s in result.categories.items()}


def _expect(result, mac_field="devices[].mac"):
    assert _cats(result) == {"email": 40, "mac_address": 40, "wifi_ssid": 40}, _cats(result)
    fields = {(f.field, f.category) for f in result.findings}
    assert (mac_field, "mac_address") in fields and ("email", "email") in fields


def _jsonl(docs):
    return b"".join(orjson.dumps(d) + b"\n" for d in docs)


@pytest.mark.parametrize(
    "name,writer",
    [
        ("a.jsonl", lambda p: p.write_bytes(_jsonl(DOCS))),
        ("a.ndjson.gz", lambda p: p.write_bytes(gzip.compress(_jsonl(DOCS)))),
        ("a.jsonl.zst", lambda p: p.write_bytes(zstandard.ZstdCompressor().compress(_jsonl(DOCS)))),
        ("a.json", lambda p: p.write_bytes(orjson.dumps(DOCS))),
        ("hits.jsonl", lambda p: p.write_bytes(_jsonl([{"_index": "users", "_id": str(i), "_source": d} for i, d in enumerate(DOCS)]))),
        ("search.json", lambda p: p.write_bytes(orjson.dumps({"took": 3, "hits": {"total": {"value": 40}, "hits": [{"_index": "users", "_source": d} for d in DOCS]}}))),
        ("dump.json", lambda p: p.write_bytes(_jsonl([{"_index": "users", "_type": "_doc", "_id": str(i), "_score": 1, "_source": d} for i, d in enumerate(DOCS)]))),
        # `jq .` output: indented objects one after another, whatever the file is called
        ("jq.json", lambda p: p.write_text("".join(json.dumps(d, indent=2) + "\n" for d in DOCS))),
        ("jq.jsonl.gz", lambda p: p.write_bytes(gzip.compress("".join(json.dumps(d, indent=2) + "\n" for d in DOCS).encode()))),
        ("glued.json", lambda p: p.write_bytes(b"".join(orjson.dumps(d) for d in DOCS))),  # no separator at all
        ("jqsearch.json", lambda p: p.write_text(json.dumps({"took": 3, "hits": {"hits": [{"_index": "users", "_source": d} for d in DOCS]}}, indent=2))),
        # zstd's reader has no look-ahead of its own: the shape is still recognised
        ("jq.json.zst", lambda p: p.write_bytes(zstandard.ZstdCompressor().compress("".join(json.dumps(d, indent=2) + "\n" for d in DOCS).encode()))),
        ("a.json.zst", lambda p: p.write_bytes(zstandard.ZstdCompressor().compress(json.dumps(DOCS, indent=1).encode()))),
    ],
)
def test_json_shapes(tmp_path, name, writer):
    path = tmp_path / name
    writer(path)
    result = spillguard.scan([path])
    _expect(result)
    assert result.records_scanned == 40
    # Elasticsearch metadata is not a field of the record
    assert not any(f.field.startswith("_") for f in result.findings)


def test_concatenated_objects_with_a_broken_one_keep_what_came_before(tmp_path):
    path = tmp_path / "broken.json"  # glued objects: after a syntax error there is no telling where the next begins
    path.write_text("".join(json.dumps(d) for d in DOCS[:30]) + '{"email": "x@example.com", ' + "".join(json.dumps(d) for d in DOCS[30:]))
    result = spillguard.scan([path])
    assert result.records_scanned == 30
    assert [e.kind for e in result.errors] == ["malformed"] and "rest of file skipped" in result.errors[0].message


@pytest.mark.parametrize("name", ["jq.json", "jq.jsonl.gz"])
def test_indented_objects_recover_after_a_broken_one(tmp_path, name):
    texts = [json.dumps(d, indent=2) for d in DOCS]
    texts[12] = texts[12][:-3]  # cut short: its closing brace is gone
    data = ("\n".join(texts) + "\n").encode()
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    result = spillguard.scan([path])
    assert result.records_scanned == 39  # every object but the broken one
    first_line = 1 + sum(t.count("\n") + 1 for t in texts[:12])
    assert [(e.kind, e.line) for e in result.errors] == [("malformed", first_line)]
    assert _cats(result)["email"] == 39


def test_indented_objects_across_read_boundaries(tmp_path):
    docs = [{"user_id": f"u{i}", "email": f"p{i}@example.com", "note": "x" * 3000} for i in range(1500)]  # ~4.7 MB
    path = tmp_path / "big.json"
    path.write_text("".join(json.dumps(d, indent=4) + "\n" for d in docs))
    result = spillguard.scan([path])
    assert result.records_scanned == 1500 and not result.errors
    assert _cats(result)["email"] == 1500


@pytest.mark.parametrize(
    "text",
    [
        '{"email": "Jane.Doe@Example.com", "token": "Atza|IwEBIJ"} trailing words',  # one object, then garbage
        '[{"email": "Jane.Doe@Example.com", "token": "Atza|IwEBIJ"} trailing words',  # an array cut short
        '{\n  "email": "Jane.Doe@Example.com",\n  "token": "Atza|IwEBIJ"\n}\n{"email": ',  # `jq .` output cut short
    ],
)
def test_a_json_syntax_error_is_reported_without_the_file_content(tmp_path, text):
    # yajl appends an excerpt of the text around the error to its message; the excerpt is personal data
    path = tmp_path / "cut.json"
    path.write_text(text)
    result = spillguard.scan([path])
    assert result.records_scanned == 1
    (err,) = result.errors
    assert err.kind == "malformed" and "invalid JSON" in err.message
    assert "Jane" not in err.message and "Atza" not in err.message and "\n" not in err.message, err.message


def test_csv_tsv_and_parquet(tmp_path):
    rows = [{"user_id": d["user_id"], "email": d["email"], "mac": d["devices"][0]["mac"], "ssid": d["devices"][0]["ssid"]} for d in DOCS]
    import csv

    for name, delim in (("a.csv", ","), ("a.tsv", "\t")):
        with open(tmp_path / name, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter=delim)
            w.writeheader()
            w.writerows(rows)
        _expect(spillguard.scan([tmp_path / name]), "mac")
    with gzip.open(tmp_path / "b.csv.gz", "wt", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    _expect(spillguard.scan([tmp_path / "b.csv.gz"]), "mac")
    pq.write_table(pa.Table.from_pylist(DOCS), tmp_path / "c.parquet")
    _expect(spillguard.scan([tmp_path / "c.parquet"]))


def test_folder_scans_every_supported_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.jsonl").write_bytes(_jsonl(DOCS[:20]))
    (tmp_path / "b.jsonl").write_bytes(_jsonl(DOCS[20:]))
    (tmp_path / "README.txt").write_text("not data")
    result = spillguard.scan([tmp_path])
    assert sorted(d["dataset"] for d in result.datasets) == ["b.jsonl", "sub/a.jsonl"]
    assert result.subjects_scanned == 40
    assert result.categories["email"].subjects == 40


def test_malformed_lines_are_counted_with_line_numbers_and_the_rest_is_scanned(tmp_path):
    lines = _jsonl(DOCS).split(b"\n")
    lines.insert(5, b'{"user_id": "broken", "email": ')  # line 6
    lines.insert(20, b"[1, 2, 3]")  # line 21: not an object
    lines.insert(30, b"\x00\xff garbage")  # line 31
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"\n".join(lines))
    result = spillguard.scan([path])
    _expect(result)
    bad = sorted(e.line for e in result.errors if e.kind == "malformed")
    assert bad == [6, 21, 31]
    assert result.malformed_records == 3
    assert result.records_scanned == 40


def test_type_changes_between_records_do_not_lose_records(tmp_path):
    docs = [dict(d, score=i if i % 2 else f"s{i}", devices=d["devices"] if i % 3 else "none") for i, d in enumerate(DOCS)]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(_jsonl(docs))
    result = spillguard.scan([path])
    assert result.records_scanned == 40
    assert result.categories["email"].subjects == 40
    assert result.malformed_records == 0


def test_ten_megabyte_value_and_deep_nesting(tmp_path):
    big = "x" * (10 << 20) + " contact: Big.Value@Example.org"
    deep = b'{"user_id": "u2", "tree": ' + b'{"child": ' * 300 + b'{"email": "deep@example.com"}' + b"}" * 301
    docs = [{"user_id": "u1", "note": big}, {"user_id": "u3", "email": "plain@example.com"}]
    path = tmp_path / "big.jsonl"
    path.write_bytes(_jsonl(docs[:1]) + deep + b"\n" + _jsonl(docs[1:]))
    result = spillguard.scan([path])
    assert result.categories["email"].subjects == 3
    assert result.records_scanned == 3


def test_unknown_and_missing_files_are_user_errors(tmp_path):
    (tmp_path / "x.xlsx").write_text("nope")
    with pytest.raises(UserError, match="unknown file type"):
        spillguard.scan([tmp_path / "x.xlsx"])
    with pytest.raises(UserError, match="no such file"):
        spillguard.scan([tmp_path / "missing.jsonl"])
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    result = spillguard.scan([bad])
    assert any("Parquet" in e.message for e in result.errors)


def test_memory_stays_flat_on_a_large_file(tmp_path):
    """Peak RSS scanning ~200 MB of JSONL stays far below the file size (blocks, not the whole file)."""
    path = tmp_path / "large.jsonl"
    line = orjson.dumps({"user_id": "u", "email": "a@b.com", "note": "y" * 1800}) + b"\n"
    with open(path, "wb") as fh:
        chunk = line * 10_000
        for _ in range(11):
            fh.write(chunk)
    size = os.path.getsize(path)
    # VmHWM, not ru_maxrss: the latter survives exec and would report the pytest parent's peak.
    code = (
        "import re, spillguard, sys; r = spillguard.scan([sys.argv[1]]);"
        "hwm = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1));"
        "print(r.records_scanned, hwm // 1024)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True, env={**os.environ})
    records, peak_mb = map(int, out.stdout.split())
    assert records == 110_000
    print(f"\nfile {size / 1e6:.0f} MB, peak RSS {peak_mb} MB")
    assert peak_mb < 400


def test_json_output_is_valid_json(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(_jsonl(DOCS))
    doc = spillguard.scan([path]).to_json()
    assert json.loads(json.dumps(doc)) == doc


def test_non_object_lines_are_malformed_and_deep_lines_scanned_not_fatal(tmp_path):
    # Arrow's JSON reader crashes the process on a first line of `null` and on very deep nesting:
    # such lines must never reach it. Deep lines are records whose levels below 64 are scanned as text.
    deep_array = b'{"user_id": "u0", "t": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    deep_object = b'{"user_id": "u1", "t": ' + b'{"a": ' * 2000 + b"1" + b"}" * 2001
    nested_200 = b'{"user_id": "u2", "t": ' + b'{"a": ' * 200 + b'"Deep@Example.com"' + b"}" * 201
    lines = [b"null", deep_array, deep_object, nested_200, b'"just a string"', b"42", b'{"user_id": "u3", "email": "a@b.org"}', b"null"]
    path = tmp_path / "odd.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = spillguard.scan([path])
    assert result.records_scanned == 4
    assert result.categories["email"].subjects == 2  # the 200-deep e-mail is found (kept as text below depth 64)
    assert sorted(e.line for e in result.errors if e.kind == "malformed") == [1, 5, 6, 8]
    (tmp_path / "n.json").write_text("null")
    assert spillguard.scan([tmp_path / "n.json"]).malformed_records == 1


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst"])
def test_truncated_compressed_file_keeps_what_was_readable(tmp_path, suffix):
    data = b"".join(orjson.dumps({"user_id": f"u{i}", "email": f"u{i}@example.com"}) + b"\n" for i in range(50_000))
    packed = gzip.compress(data) if suffix.endswith("gz") else zstandard.ZstdCompressor().compress(data)
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(packed[: len(packed) // 2])
    result = spillguard.scan([path])
    assert 10_000 < result.records_scanned < 50_000
    assert result.categories["email"].subjects == result.records_scanned
    # gzip reports the early end; zstd's reader just stops, leaving a cut last line, reported as malformed
    assert any("ends early or is corrupt" in e.message or "unexpected end" in e.message for e in result.errors)


def test_a_folder_without_data_files_is_a_user_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "looks.jsonl").mkdir()
    with pytest.raises(UserError, match="no data files"):
        spillguard.scan([tmp_path])


def test_identifiers_in_field_and_file_names_are_masked(tmp_path):
    doc = {"user_id": "u1", "contacts": {"jane.doe@example.com": {"phone": "+44 20 7946 0958"}}}
    path = tmp_path / "export-jane.doe@example.com.jsonl"
    path.write_bytes(orjson.dumps(doc) + b"\n")
    text = json.dumps(spillguard.scan([tmp_path]).to_json())
    assert "jane.doe@example.com" not in text
    # a key that holds dots is quoted in the path, so the mask takes exactly the key
    assert '"field": "contacts[\\"j***@e***.com\\"].phone"' in text


def test_different_kinds_of_subject_id_are_not_presented_as_exact(tmp_path):
    users = b"".join(orjson.dumps({"user_id": f"u{i}", "email": f"p{i}@example.com"}) + b"\n" for i in range(50))
    news = b"".join(orjson.dumps({"email": f"p{i}@example.com", "ip": f"10.0.0.{i + 1}"}) + b"\n" for i in range(50))
    (tmp_path / "users.jsonl").write_bytes(users)
    (tmp_path / "newsletter.jsonl").write_bytes(news)
    result = spillguard.scan([tmp_path])
    assert result.subjects_exact is False
    assert any(e.kind == "warning" and "different fields" in e.message for e in result.errors)
    same = spillguard.scan([tmp_path], subject_field="email")
    assert same.subjects_exact is True and same.subjects_scanned == 50


def test_ragged_csv_rows_are_counted_and_named_by_record(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text('user_id,email,note\nu1,a@b.org,"two\nlines"\nu2,c@d.org\nu3,e@f.org,ok\n')
    result = spillguard.scan([path])
    assert result.records_scanned == 2 and result.malformed_records == 1
    (err,) = [e for e in result.errors if e.kind == "malformed"]
    assert err.message.startswith("CSV record ") and "expected 3 columns, found 2" in err.message


@pytest.mark.parametrize("workers", [1, 2])
def test_big_jsonl_splits_into_byte_ranges_with_identical_results(tmp_path, monkeypatch, workers):
    """Each line is read by exactly one range, whatever the boundaries cut; line numbers stay exact."""
    import spillguard.sources.files as files

    rng = __import__("random").Random(3)
    lines = []
    for i in range(3000):
        pad = "x" * rng.randrange(0, 900)  # lines of very different lengths move the boundaries around
        lines.append(orjson.dumps({"user_id": f"u{i}", "email": f"p{i}@example.com", "pad": pad}))
    lines[1234] = b'{"broken": '
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"\n".join(lines))  # no newline after the last line
    whole = spillguard.scan([path])
    monkeypatch.setattr(files, "PART_BYTES", 64 << 10)
    reader = next(files.FileSource(str(path)).datasets())
    assert len(reader.partitions()) > 10
    split = spillguard.scan([path], workers=workers)
    assert split.records_scanned == whole.records_scanned == 2999
    assert split.categories["email"].subjects == 2999
    assert [(e.line, e.message) for e in split.errors] == [(e.line, e.message) for e in whole.errors] == [(1235, whole.errors[0].message)]
    assert [(f.field, f.rule, f.records_matched, f.subjects_matched) for f in split.findings] == [
        (f.field, f.rule, f.records_matched, f.subjects_matched) for f in whole.findings
    ]


def test_parquet_row_groups_are_partitions(tmp_path):
    table = pa.Table.from_pylist([{"user_id": f"u{i}", "email": f"p{i}@example.com"} for i in range(5000)])
    pq.write_table(table, tmp_path / "g.parquet", row_group_size=1000)
    from spillguard.sources.files import FileSource

    assert len(next(FileSource(str(tmp_path / "g.parquet")).datasets()).partitions()) == 5
    result = spillguard.scan([tmp_path / "g.parquet"], workers=2)
    assert result.records_scanned == 5000 and result.categories["email"].subjects == 5000


def test_a_broken_link_in_a_folder_is_reported_not_silently_skipped(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(_jsonl(DOCS))
    os.symlink(tmp_path / "moved-away.jsonl", tmp_path / "b.jsonl")
    os.symlink(tmp_path / "nowhere", tmp_path / "notes.txt")  # not a data file: not worth a word
    result = spillguard.scan([tmp_path])
    _expect(result)
    warnings = [e for e in result.errors if e.kind == "warning"]
    assert [w.message for w in warnings] == ["b.jsonl: broken symbolic link, not read"]


def test_a_folder_of_broken_links_says_so(tmp_path):
    os.symlink(tmp_path / "moved-away.jsonl", tmp_path / "users.jsonl")
    os.symlink(tmp_path / "loop-b.jsonl", tmp_path / "loop-a.jsonl")
    os.symlink(tmp_path / "loop-a.jsonl", tmp_path / "loop-b.jsonl")
    with pytest.raises(UserError, match="no data files") as err:
        spillguard.scan([tmp_path])
    assert "users.jsonl (broken symbolic link)" in str(err.value) and "loop-a.jsonl (broken symbolic link)" in str(err.value)
    exe = shutil.which("spillguard") or str(Path(sys.executable).with_name("spillguard"))
    done = subprocess.run([exe, "scan", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "users.jsonl (broken symbolic link)" in done.stderr


def test_a_link_to_a_folder_is_reported_not_followed(tmp_path):
    (tmp_path / "scan").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "scan" / "a.jsonl").write_bytes(_jsonl(DOCS))
    (tmp_path / "elsewhere" / "more.jsonl").write_bytes(_jsonl([{"email": "other@example.org"}]))
    os.symlink(tmp_path / "elsewhere", tmp_path / "scan" / "more")
    os.symlink(tmp_path / "scan", tmp_path / "scan" / "itself")  # a loop: following links could never end
    result = spillguard.scan([tmp_path / "scan"])
    _expect(result)
    assert [e.message for e in result.errors if e.kind == "warning"] == [
        "itself: symbolic link to a folder, not followed; scan it as a target of its own",
        "more: symbolic link to a folder, not followed; scan it as a target of its own",
    ]


def test_a_line_with_a_second_value_is_malformed_not_two_records(tmp_path):
    lines = [orjson.dumps(d) for d in DOCS]
    lines[10] += b" null"  # Arrow's reader alone would return an extra row for each of these
    lines[20] += orjson.dumps({"email": "extra@example.com"})
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = spillguard.scan([path])
    assert result.records_scanned == 38
    assert [(e.kind, e.line) for e in result.errors] == [("malformed", 11), ("malformed", 21)]
    assert _cats(result)["email"] == 38


def test_range_line_numbers_mapped_and_read_agree(tmp_path) -> None:
    """The line each byte range begins on: counted over each range mapped in memory (offsets not on a page
    boundary) and, for files that cannot be mapped, read through one buffer; both equal a plain count."""
    import random

    from spillguard.sources.files import _range_lines_mapped, _range_lines_read

    rng = random.Random(4)
    data = b"".join(b"x" * rng.randrange(0, 300) + b"\n" for _ in range(20_000))
    path = tmp_path / "lines.jsonl"
    path.write_bytes(data)
    n = 7
    bounds = [len(data) * i // n for i in range(n + 1)]
    want = [1 + data[:b].count(b"\n") for b in bounds]
    with open(path, "rb") as fh:
        assert _range_lines_mapped(fh.fileno(), bounds) == want
    with open(path, "rb") as fh:
        assert _range_lines_read(fh, bounds) == want
    with open(path, "rb") as fh, pytest.raises(OSError, match="cut shorter"):  # bounds past the end: nothing mapped
        _range_lines_mapped(fh.fileno(), [*bounds[:-1], len(data) + 10_000])


def _awkward_lines(rng) -> list[bytes]:
    """JSON lines with a bit of everything a reader must get right: broken and blank lines, CRLF, bytes that are
    not UTF-8, lines longer than a block."""
    lines = []
    for i in range(3000):
        kind = rng.random()
        if kind < 0.01:
            lines.append(b'{"broken": ')
        elif kind < 0.02:
            lines.append(b" " * rng.randrange(0, 4))
        elif kind < 0.03:
            lines.append(b'{"user_id": "u%d", "note": "caf\xe9 %d"}' % (i, i))  # Latin-1, not UTF-8
        elif kind < 0.035:
            lines.append(orjson.dumps({"user_id": f"u{i}", "note": "y" * rng.randrange(5000, 12000)}))
        elif kind < 0.045:
            lines.append(orjson.dumps({"user_id": f"u{i}", "note": f"n{i}"}) + b"\r")
        else:
            lines.append(orjson.dumps({"user_id": f"u{i}", "email": f"p{i}@example.com", "note": "x" * rng.randrange(0, 700)}))
    return lines


def _read_every_partition(files, path, progress: list[int] | None = None) -> tuple[list[dict], list[tuple]]:
    reader = next(files.FileSource(str(path)).datasets())
    if progress is not None:
        reader.progress = progress.append
    rows: list[dict] = []
    bad: list[tuple] = []
    for part in reader.partitions():
        for table in reader.read(part, lambda dataset, line, reason, kind="malformed": bad.append((line, reason, kind))):
            # (a field absent from a whole block is no column of its table: compare the values present)
            rows.extend({k: v for k, v in row.items() if v is not None} for row in table.to_pylist())
    return rows, bad


def _same_reading(lines: list[bytes], mapped: tuple[list[dict], list[tuple]], read: tuple[list[dict], list[tuple]]) -> None:
    assert mapped[0] == read[0]
    assert len(mapped[0]) == sum(1 for line in lines if line.strip() and not line.startswith(b'{"broken'))
    # Malformed lines exactly; lines with bytes that are not UTF-8 are reported a block at a time (the first line
    # and how many more), and the two paths cut blocks differently: the same lines in all.
    malformed = sorted(b for b in mapped[1] if b[2] == "malformed")
    assert malformed == sorted(b for b in read[1] if b[2] == "malformed")
    assert [b[0] for b in malformed] == [k + 1 for k, line in enumerate(lines) if line.startswith(b'{"broken')]

    def latin1_lines(bad: list[tuple]) -> int:
        return sum(1 + (int(re.search(r"and (\d+) more", b[1]).group(1)) if "more" in b[1] else 0) for b in bad if b[2] == "warning")

    assert latin1_lines(mapped[1]) == latin1_lines(read[1]) == sum(1 for line in lines if b"caf\xe9" in line)


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_byte_ranges_parsed_in_the_mapped_file_equal_ranges_read_through_a_buffer(tmp_path, monkeypatch, seed) -> None:
    """A local byte range is parsed where it lies in the mapped file; read through a buffer instead (a file that
    cannot be mapped, the way remote ranges are read) it gives the same rows and the same malformed lines with the
    same numbers, whatever the ranges and blocks cut: a BOM, blank and CRLF lines, lines longer than a block,
    broken lines, bytes that are not UTF-8 and no newline after the last line."""
    import random

    import spillguard.sources.files as files

    rng = random.Random(seed)
    lines = _awkward_lines(rng)
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\n".join(lines))
    monkeypatch.setattr(files, "PART_BYTES", rng.randrange(20_000, 90_000))
    monkeypatch.setattr(files, "BLOCK_BYTES", rng.randrange(3000, 9000))
    assert len(next(files.FileSource(str(path)).datasets()).partitions()) > 10
    mapped = _read_every_partition(files, path)
    monkeypatch.setattr(files, "_map_from", lambda fh: None)
    _same_reading(lines, mapped, _read_every_partition(files, path))


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_a_whole_file_parsed_in_the_mapped_file_equals_the_file_read_as_a_stream(tmp_path, monkeypatch, bom) -> None:
    """A JSON Lines file below the size that splits it is mapped too: the same rows, malformed lines and progress
    (every byte once, the bytes the format sniffing read included) as reading it as a stream."""
    import random

    import spillguard.sources.files as files

    lines = _awkward_lines(random.Random(8))
    path = tmp_path / "small.jsonl"
    path.write_bytes(bom + b"\n".join(lines) + b"\n")
    monkeypatch.setattr(files, "BLOCK_BYTES", 7000)
    assert len(next(files.FileSource(str(path)).datasets()).partitions()) == 1
    progress_mapped: list[int] = []
    mapped = _read_every_partition(files, path, progress_mapped)
    monkeypatch.setattr(files, "_map_from", lambda fh: None)
    progress_read: list[int] = []
    _same_reading(lines, mapped, _read_every_partition(files, path, progress_read))
    assert sum(progress_mapped) == sum(progress_read) == path.stat().st_size
    assert len(progress_mapped) > 10


def test_a_mapped_range_stops_with_an_error_when_the_file_is_cut_shorter(tmp_path, monkeypatch) -> None:
    """Pages of a mapped file that was cut shorter are never touched: the range ends with a read error."""
    import spillguard.sources.files as files

    path = tmp_path / "big.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"user_id": f"u{i}", "pad": "x" * 200}) + b"\n" for i in range(2000)))
    monkeypatch.setattr(files, "PART_BYTES", 100_000)
    monkeypatch.setattr(files, "BLOCK_BYTES", 20_000)
    reader = next(files.FileSource(str(path)).datasets())
    tables = reader.read(reader.partitions()[0], lambda *a, **k: None)
    next(tables)
    os.truncate(path, 30_000)
    with pytest.raises(UserError, match="cut shorter"):
        list(tables)
