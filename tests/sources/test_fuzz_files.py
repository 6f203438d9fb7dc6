"""Fuzz every file format with damage whose effect is known, and check that nothing goes unaccounted for.

Generated records (ground truth: how many, where each one ends in the file) are written as JSON Lines,
JSON arrays (compact and indented), concatenated objects (`jq .`), CSV, TSV and Parquet, plain or gzip/zstd
compressed; then truncated, byte-flipped, nested deep or re-encoded (BOM, UTF-16, Latin-1). All cases run
in one child process under a time budget, so a crash of native code or a hang fails the test instead of
killing the test runner.

The oracle. Let `d` be the first damaged byte of the text a reader parses (the cut or the first flipped
byte) and P the records that end before `d`: they are intact, so each must be scanned or, when damage
nearby swallows it (a flipped separator merges two records), counted as malformed:
    records_scanned + malformed_records >= P
Damage in compressed bytes or inside Parquet cannot be located in the text, so there: either a
malformed/truncated/error entry says that something was lost, or every record was scanned. Always: no
traceback, no hang, records_scanned <= the records in the file, and no field matched in more records
than were scanned. Undamaged files, however encoded, are scanned exactly and without loss entries.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import random
import subprocess
import sys
import textwrap
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from tests import ROOT

SEED = int(os.environ.get("SPILLGUARD_FUZZ_SEED", "20191226"))
CASES = int(os.environ.get("SPILLGUARD_FUZZ_CASES", "260"))
BUDGET_S = float(os.environ.get("SPILLGUARD_FUZZ_SECONDS", "40"))  # the child stops starting cases after this
CASE_TIMEOUT_S = 20

NAMES = ["Ana", "Zoë", "Jürgen", "Ólafur", "Chloé", "Bob", "Mia", "Łukasz"]
LOSS = {"malformed", "truncated", "error"}


@dataclass
class Case:
    path: str
    fmt: str
    mutation: str
    records: int  # records in the file
    intact: int  # P: records that end before the first damaged byte of the parsed text
    located: bool  # whether `intact` is known (damage in text we can locate)
    exact: bool  # undamaged: scanned exactly, no loss entries


def _records(rng: random.Random, n: int) -> list[dict]:
    out = []
    for i in range(n):
        rec: dict = {"user_id": f"u{i}", "email": f"person{i}@example.com", "name": rng.choice(NAMES)}
        if rng.random() < 0.3:
            rec["note"] = rng.choice(['says "hi", twice', "two\nlines", "plain", "semi;colon", "tab\there"])
        if rng.random() < 0.5:
            rec["score"] = rng.choice([1, 2.5, -7, 10**12])
        out.append(rec)
    return out


def _nested(rec: dict, rng: random.Random) -> dict:
    rec = dict(rec)
    rec["devices"] = [{"mac": f"00:1a:2b:3c:4d:{rng.randrange(256):02x}", "ssid": "Home"} for _ in range(rng.randrange(3))]
    return rec


def _serialise(fmt: str, recs: list[dict], deep: bytes) -> tuple[bytes, list[int]]:
    """The file's text and the offset just past each record."""
    ends: list[int] = []
    if fmt == "jsonl":
        parts = [_splice(json.dumps(r, ensure_ascii=False).encode(), deep) + b"\n" for r in recs]
        text = b"".join(parts)
        pos = 0
        for p in parts:
            pos += len(p)
            ends.append(pos)
        return text, ends
    if fmt in ("array", "array-indented"):
        indent = fmt == "array-indented"
        elems = [_splice(json.dumps(r, ensure_ascii=False, indent=2 if indent else None).encode(), deep) for r in recs]
        head, sep, tail = (b"[\n", b",\n", b"\n]\n") if indent else (b"[", b",", b"]")
        pos = len(head)
        for i, e in enumerate(elems):
            pos += len(e) + (len(sep) if i else 0)
            ends.append(pos)
        return head + sep.join(elems) + tail, ends
    if fmt == "concatenated":
        parts = [_splice(json.dumps(r, ensure_ascii=False, indent=2).encode(), deep) + b"\n" for r in recs]
        pos = 0
        for p in parts:
            pos += len(p)
            ends.append(pos)
        return b"".join(parts), ends
    delimiter = "\t" if fmt == "tsv" else ","
    cols = ["user_id", "email", "name", "note", "score"]
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    w.writerow(cols)
    pos = len(buf.getvalue().encode())
    for r in recs:
        row = io.StringIO()
        csv.writer(row, delimiter=delimiter, lineterminator="\n").writerow([r.get(c, "") for c in cols])
        text = row.getvalue()
        buf.write(text)
        pos += len(text.encode())
        ends.append(pos)
    return buf.getvalue().encode(), ends


def _damage(text: bytes, ends: list[int], rng: random.Random, kind: str) -> tuple[bytes, int]:
    """Damaged text and the number of records that end before the first damaged byte."""
    if kind == "truncate":
        at = rng.randrange(1, len(text))  # not to nothing: an empty file is an honest zero
        return text[:at], sum(1 for e in ends if e <= at)
    flips = rng.randint(1, 4)
    data = bytearray(text)
    positions = sorted(rng.randrange(len(data)) for _ in range(flips))
    for p in positions:
        data[p] = rng.choice([0x22, 0x2C, 0x0A, 0x7B, 0x7D, 0x5B, 0x5D, 0x5C, 0xFF, 0x00, rng.randrange(256)])
    return bytes(data), sum(1 for e in ends if e <= positions[0])


DEEP = "@deep@"  # stands for a deeply nested value, spliced in as text (json.dumps would recurse)


def _deep_text(rng: random.Random) -> bytes:
    depth = rng.choice([70, 300, 1500, 20_000])
    opens = [rng.random() < 0.7 for _ in range(depth)]
    head = b"".join(b'{"a": ' if o else b"[" for o in opens)
    tail = b"".join(b"}" if o else b"]" for o in reversed(opens))
    return head + f'"deep{rng.randrange(1000)}@example.com"'.encode() + tail


def _splice(data: bytes, deep: bytes) -> bytes:
    return data.replace(json.dumps(DEEP).encode(), deep)


def _compress(data: bytes, how: str | None) -> bytes:
    if how == "gzip":
        return gzip.compress(data)
    if how == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    return data


def make_cases(folder: Path, rng: random.Random, count: int) -> list[Case]:
    cases: list[Case] = []
    text_formats = ["jsonl", "array", "array-indented", "concatenated", "csv", "tsv"]
    suffix = {"jsonl": ".jsonl", "array": ".json", "array-indented": ".json", "concatenated": ".json", "csv": ".csv", "tsv": ".tsv"}
    for i in range(count):
        fmt = rng.choice([*text_formats, "parquet"])
        n = rng.randint(1, 150)
        recs = _records(rng, n)
        if fmt in ("jsonl", "array", "array-indented", "concatenated"):
            recs = [_nested(r, rng) if rng.random() < 0.3 else r for r in recs]
        mutation = rng.choice(["none", "truncate", "flip", "truncate-compressed", "flip-compressed", "deep", "bom", "utf16", "latin1"])
        if fmt == "parquet":
            mutation = rng.choice(["none", "truncate-stored", "flip-stored"])
        elif fmt in ("csv", "tsv") and mutation == "deep":
            mutation = "flip"
        compression = rng.choice([None, None, "gzip", "zstd"]) if fmt != "parquet" else None
        if mutation.endswith("-compressed"):
            compression = compression or rng.choice(["gzip", "zstd"])
        path = folder / f"case{i:04d}{suffix.get(fmt, '.parquet')}{({'gzip': '.gz', 'zstd': '.zst'}).get(compression or '', '')}"
        if fmt == "parquet":
            table = pa.Table.from_pylist(recs)
            pq.write_table(table, path, row_group_size=rng.choice([10, 64, 1000]))
            data = path.read_bytes()
            if mutation != "none":
                data, _ = _damage(data, [], rng, mutation.split("-")[0])
                path.write_bytes(data)
            cases.append(Case(str(path), fmt, mutation, n, 0, False, mutation == "none"))
            continue
        deep = b""
        if mutation == "deep":
            recs[rng.randrange(n)]["t"] = DEEP
            deep = _deep_text(rng)
        text, ends = _serialise(fmt, recs, deep)
        intact, located, exact = n, True, mutation in ("none", "deep", "bom", "utf16", "latin1")
        if mutation in ("truncate", "flip"):
            text, intact = _damage(text, ends, rng, mutation)
        elif mutation == "bom":
            text = b"\xef\xbb\xbf" + text
        elif mutation == "utf16":
            bom, codec = rng.choice([(b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")])
            text = bom + text.decode().encode(codec)
        elif mutation == "latin1":
            text = text.decode().encode("latin-1", "replace")  # not UTF-8: replaced by U+FFFD, with a warning
        stored = _compress(text, compression)
        if mutation.endswith("-compressed"):
            stored, _ = _damage(stored, [], rng, mutation.split("-")[0])
            intact, located = 0, False
        path.write_bytes(stored)
        cases.append(Case(str(path), fmt, mutation, n, intact, located, exact))
    return cases


CHILD = textwrap.dedent(
    """
    import json, signal, sys, time, traceback
    import spillguard
    from spillguard.errors import UserError

    class Hang(Exception):
        pass

    def on_alarm(signum, frame):
        raise Hang()

    signal.signal(signal.SIGALRM, on_alarm)
    cases = json.load(open(sys.argv[1]))
    budget, per_case = float(sys.argv[2]), int(sys.argv[3])
    start = time.monotonic()
    for case in cases:
        if time.monotonic() - start > budget:
            break
        out = {"path": case["path"]}
        t = time.monotonic()
        signal.alarm(per_case)
        try:
            r = spillguard.scan([case["path"]])
            out.update(scanned=r.records_scanned, malformed=r.malformed_records, kinds=sorted({e.kind for e in r.errors}),
                       over=[f.field for f in r.findings if f.records_matched > r.records_scanned])
        except UserError as exc:
            out.update(user_error=str(exc))
        except Hang:
            out.update(hang=True)
        except BaseException:
            out.update(crash=traceback.format_exc()[-1500:])
        finally:
            signal.alarm(0)
        out["seconds"] = time.monotonic() - t
        print(json.dumps(out), flush=True)
    """
)


def _violations(case: Case, got: dict) -> list[str]:
    bad = []
    if "crash" in got:
        return [f"traceback: {got['crash']}"]
    if got.get("hang"):
        return [f"no answer within {CASE_TIMEOUT_S} s"]
    if "user_error" in got:
        # A clear one-line answer is fine for a file that is not data any more (a broken Parquet footer)
        # but not for a readable text file, whose damage must cost records, not the file.
        if case.fmt != "parquet":
            bad.append(f"user error on a text file: {got['user_error']}")
        return bad
    loss = LOSS & set(got["kinds"])
    if got["scanned"] > case.records:
        bad.append(f"{got['scanned']} records scanned of {case.records} in the file")
    if got["over"]:
        bad.append(f"fields matched in more records than scanned: {got['over']}")
    if case.exact and (got["scanned"] != case.records or loss):
        bad.append(f"undamaged file: {got['scanned']} of {case.records} scanned, entries {got['kinds']}")
    if case.located and got["scanned"] + got["malformed"] < case.intact and "truncated" not in loss:
        bad.append(f"silent loss: {got['scanned']} scanned + {got['malformed']} malformed < {case.intact} intact records")
    if not case.located and not loss and got["scanned"] != case.records:
        bad.append(f"{got['scanned']} of {case.records} scanned and no entry says why")
    return bad


def test_fuzz_every_file_format(tmp_path):
    rng = random.Random(SEED)
    cases = make_cases(tmp_path, rng, CASES)
    manifest = tmp_path / "cases.json"
    manifest.write_text(json.dumps([asdict(c) for c in cases]))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(manifest), str(BUDGET_S), str(CASE_TIMEOUT_S)],
        capture_output=True, text=True, timeout=BUDGET_S + 2 * CASE_TIMEOUT_S + 30, env=env,
    )
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0, f"the scanning process died ({proc.returncode}) after {len(results)} cases:\n{proc.stderr[-3000:]}"
    by_path = {c.path: c for c in cases}
    failures = []
    for got in results:
        case = by_path[got["path"]]
        for problem in _violations(case, got):
            failures.append(f"{Path(case.path).name} [{case.fmt}, {case.mutation}, {case.records} records]: {problem}")
    assert len(results) >= min(len(cases), 60), f"only {len(results)} cases ran within the budget"
    assert not failures, f"seed {SEED}: {len(failures)} of {len(results)} cases failed:\n" + "\n".join(failures[:30])
