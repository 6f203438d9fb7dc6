"""s3:// targets against an S3 API server started here (moto's S3 backend behind S3's access control, a stand-in:
tests/s3_standin.py): a bucket scans to the same JSON as the same files on disk, byte ranges and row groups are
read exactly in ranged GETs, an object rewritten mid-scan is an error of that object (exit 3), bad inputs are one
line (exit 2), and credentials never show."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import zstandard

import spillguard
from spillguard.demo import generate
from spillguard.errors import UserError
from spillguard.scan.cli import FailOn, exit_code
from spillguard.sources import files, open_target
from spillguard.targets import store_key
from tests.servers import Server, free_port, s3_server

boto3 = pytest.importorskip("boto3")
PREFIX = "exports/2019/"


@pytest.fixture(scope="module")
def s3() -> Iterator[Server]:
    with s3_server() as server:
        yield server


@pytest.fixture(scope="module")
def lake(s3: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo dataset (JSON Lines, CSV, Parquet, gzip'd NDJSON) plus a zstd TSV and a JSON array, on disk and
    under s3://lake/exports/2019/."""
    folder = tmp_path_factory.mktemp("lake")
    generate(folder, users=1500, seed=11)
    (folder / "extra").mkdir()
    tsv = (folder / "support_tickets.csv").read_text().replace(",", "\t")  # the notes hold no commas of their own
    (folder / "extra" / "tickets.tsv.zst").write_bytes(zstandard.ZstdCompressor().compress(tsv.encode()))
    users = [json.loads(line) for line in (folder / "users.jsonl").read_text().splitlines()[:300]]
    (folder / "extra" / "users-page.json").write_text(json.dumps(users, indent=1))
    owner = _owner(s3)
    owner.create_bucket(Bucket="lake")
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            owner.upload_file(str(path), "lake", PREFIX + path.relative_to(folder).as_posix())
    return folder


def _owner(s3: Server) -> Any:
    return boto3.client("s3", endpoint_url=s3.url, region_name="us-east-1", aws_access_key_id=s3.user, aws_secret_access_key=s3.password)


def _aws_env(s3: Server, **extra: str) -> dict[str, str]:
    """The AWS chain of a scan: credentials in the environment, nothing from the machine's own files or roles."""
    return {"AWS_ACCESS_KEY_ID": s3.user or "", "AWS_SECRET_ACCESS_KEY": s3.password or "", "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, **extra}  # fmt: skip


@pytest.fixture(autouse=True)
def _credentials(s3: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in _aws_env(s3).items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """A scan's JSON without what differs between a folder and a bucket: times and target names."""
    doc = {k: v for k, v in doc.items() if k not in ("started_at", "finished_at", "targets")}
    for section in ("datasets", "findings", "errors"):
        doc[section] = sorted(({k: v for k, v in item.items() if k != "target"} for item in doc.get(section, [])), key=repr)
    return doc


def test_a_bucket_prefix_scans_like_the_same_folder(s3: Server, lake: Path) -> None:
    local = spillguard.scan([lake], show_samples=True).to_json()
    remote = spillguard.scan([f"s3://lake/{PREFIX}"], endpoint_url=s3.url, show_samples=True).to_json()
    assert {d["dataset"] for d in remote["datasets"]} == {
        "users.jsonl", "scale_measurements.jsonl", "support_tickets.csv", "payments.parquet", "es_export/login-events.ndjson.gz",
        "extra/tickets.tsv.zst", "extra/users-page.json"}
    assert _comparable(remote) == _comparable(local)
    assert [d["dataset"] for d in remote["datasets"]] == [d["dataset"] for d in local["datasets"]]  # in the same order
    assert remote["summary"]["complete"] and remote["summary"]["records_scanned"] > 3000
    assert remote["targets"] == [f"s3://lake/{PREFIX}?endpoint={s3.url}"]
    assert store_key(remote["targets"][0]) == f"s3://127.0.0.1:{s3.port}/lake"
    # Worker processes read the same objects by name, pinned to the ETags the scan listed.
    pooled = spillguard.scan([f"s3://lake/{PREFIX}"], endpoint_url=s3.url, show_samples=True, workers=2).to_json()
    assert _comparable(pooled) == _comparable(local)


def test_one_object_include_patterns_and_listing_pages(s3: Server, lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one = spillguard.scan([f"s3://lake/{PREFIX}es_export/login-events.ndjson.gz"], endpoint_url=s3.url).to_json()
    alone = spillguard.scan([lake / "es_export" / "login-events.ndjson.gz"]).to_json()
    assert _comparable(one) == _comparable(alone)
    picked = spillguard.scan([f"s3://lake/{PREFIX}"], endpoint_url=s3.url, include=["*.csv", "*.parquet"]).to_json()
    assert sorted(d["dataset"] for d in picked["datasets"]) == ["payments.parquet", "support_tickets.csv"]
    from spillguard.sources import s3 as s3_source

    monkeypatch.setattr(s3_source, "LIST_PAGE", 2)  # the listing follows ListObjectsV2's continuation tokens
    paged = open_target(f"s3://lake/{PREFIX}?endpoint={s3.url}")
    assert len(list(paged.datasets())) == 7


def test_byte_ranges_and_row_groups_are_read_exactly_in_ranged_gets(s3: Server, lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "PART_BYTES", 200 << 10)  # the users file (~1.6 MB) in 8 byte ranges
    table = pq.read_table(lake / "payments.parquet")
    pq.write_table(table, tmp_path / "payments.parquet", row_group_size=128)  # 4 row groups
    owner = _owner(s3)
    owner.upload_file(str(tmp_path / "payments.parquet"), "lake", "grouped/payments.parquet")
    owner.upload_file(str(lake / "users.jsonl"), "lake", "grouped/users.jsonl")
    source = open_target(f"s3://lake/grouped/?endpoint={s3.url}")
    records = {}
    for reader in source.datasets():
        parts = reader.partitions()
        assert len(parts) >= 4 and all("etag" in p.spec for p in parts), reader.name
        records[reader.name] = sum(t.num_rows for p in parts for t in reader.read(p, lambda *a, **k: pytest.fail(str(a))))
    assert records == {"payments.parquet": table.num_rows, "users.jsonl": len((lake / "users.jsonl").read_bytes().splitlines())}
    local = spillguard.scan([lake / "users.jsonl", tmp_path / "payments.parquet"]).to_json()
    remote = spillguard.scan(["s3://lake/grouped/users.jsonl", "s3://lake/grouped/payments.parquet"], endpoint_url=s3.url).to_json()
    assert _comparable(remote) == _comparable(local)


def test_a_malformed_line_in_a_remote_byte_range_is_counted_and_named_by_its_range(s3: Server, lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "PART_BYTES", 200 << 10)
    lines = (lake / "users.jsonl").read_bytes().splitlines(keepends=True)
    lines[1000] = b'{"user_id": 99999, "email": \n'  # in the third or fourth of 8 ranges
    damaged = tmp_path / "users.jsonl"
    damaged.write_bytes(b"".join(lines))
    _owner(s3).upload_file(str(damaged), "lake", "damaged/users.jsonl")
    local = spillguard.scan([damaged]).to_json()
    remote = spillguard.scan(["s3://lake/damaged/users.jsonl"], endpoint_url=s3.url).to_json()
    assert remote["summary"] == local["summary"] and remote["summary"]["malformed_records"] == 1
    (near,) = [e for e in local["errors"] if e["kind"] == "malformed"]
    (far,) = [e for e in remote["errors"] if e["kind"] == "malformed"]
    assert near["line"] == 1001 and far["line"] is None and far["message"].startswith("byte range from "), far
    # The range is named by its first byte, the line by its place in the range: both as the planner cut them.
    start, line = (int(x.replace(",", "")) for x in re.match(r"byte range from ([\d,]+), its line ([\d,]+): ", far["message"]).groups())  # type: ignore[union-attr]
    size = damaged.stat().st_size
    n = -(-size // files.PART_BYTES)
    bounds = [size * i // n for i in range(n + 1)]
    assert start in bounds[:-1]
    end = bounds[bounds.index(start) + 1]
    starts = [0]
    for text in lines[:-1]:
        starts.append(starts[-1] + len(text))
    first = next(i for i, at in enumerate(starts) if at >= start)  # a line straddling `start` belongs to the range before
    assert starts[first] <= starts[1000] < end and line == 1000 - first + 1
    assert far["message"].endswith(near["message"]), (near, far)


def test_an_object_rewritten_mid_scan_is_an_error_of_that_object(s3: Server, lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "PART_BYTES", 64 << 10)
    owner = _owner(s3)
    owner.upload_file(str(lake / "users.jsonl"), "lake", "moving/users.jsonl")
    owner.upload_file(str(lake / "support_tickets.csv"), "lake", "moving/support_tickets.csv")
    from spillguard.sources.s3 import S3Object

    original = S3Object.get
    rewritten: list[int] = []

    def rewrite_once(self: S3Object, start: int, end: int) -> bytes:
        # Another writer replaces the object while the scan is between its byte ranges.
        if self.key.endswith("users.jsonl") and start > 200_000 and not rewritten:
            owner.put_object(Bucket="lake", Key=self.key, Body=b'{"user_id": 1, "access_token": "Atza|' + b"x" * 400 + b'"}\n')
            rewritten.append(start)
        return original(self, start, end)

    monkeypatch.setattr(S3Object, "get", rewrite_once)
    result = spillguard.scan(["s3://lake/moving/"], endpoint_url=s3.url)
    doc = result.to_json()
    assert rewritten and exit_code(result, FailOn.never) == 3
    failed = [e for e in doc["errors"] if e["kind"] == "error"]
    assert len(failed) == 1 and failed[0]["dataset"] == "users.jsonl" and "changed during the scan" in failed[0]["message"], failed
    users = next(d for d in doc["datasets"] if d["dataset"] == "users.jsonl")
    assert 0 < users["records_scanned"] < 1500  # the ranges read before the rewrite, of the old version only
    assert not any(f["dataset"] == "users.jsonl" and f["category"] == "secret" and f["field"] == "access_token" and f["records_matched"] == 1
                   for f in doc["findings"])  # fmt: skip
    tickets = next(d for d in doc["datasets"] if d["dataset"] == "support_tickets.csv")
    assert tickets["records_scanned"] == len((lake / "support_tickets.csv").read_text().splitlines()) - 1


def test_a_server_hanging_mid_scan_is_retried_and_counts_stay_exact(s3: Server, lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "PART_BYTES", 200 << 10)
    _owner(s3).upload_file(str(lake / "users.jsonl"), "lake", "hang/users.jsonl")
    from spillguard.sources.s3 import S3Object

    original = S3Object.get
    hung: list[threading.Timer] = []
    assert s3.process is not None

    def hang_once(self: S3Object, start: int, end: int) -> bytes:
        if start > 400_000 and not hung:  # the server stops answering for 3 s between two byte ranges
            s3.process.send(signal.SIGSTOP)  # type: ignore[union-attr]
            hung.append(threading.Timer(3.0, s3.process.send, (signal.SIGCONT,)))  # type: ignore[union-attr]
            hung[0].start()
        return original(self, start, end)

    monkeypatch.setattr(S3Object, "get", hang_once)
    try:
        doc = spillguard.scan(["s3://lake/hang/users.jsonl"], endpoint_url=s3.url, read_timeout=0.5, connect_timeout=0.5).to_json()
    finally:
        for timer in hung:
            timer.join()
        s3.process.send(signal.SIGCONT)
    assert hung and doc["summary"]["complete"], doc["errors"]
    assert doc["summary"]["records_scanned"] == len((lake / "users.jsonl").read_bytes().splitlines())
    assert any("read again from the start" in e["message"] for e in doc["errors"] if e["kind"] == "warning"), doc["errors"]


def test_state_and_resume_key_objects_by_etag(s3: Server, lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    owner = _owner(s3)
    for name in ("users.jsonl", "support_tickets.csv"):
        owner.upload_file(str(lake / name), "lake", f"resume/{name}")
    state, target = tmp_path / "scan.state", "s3://lake/resume/"
    first = spillguard.scan([target], endpoint_url=s3.url, state=state).to_json()
    from spillguard.sources.s3 import S3Object

    original = S3Object.get
    reads: list[str] = []

    def counted(self: S3Object, start: int, end: int) -> bytes:
        reads.append(self.key)
        return original(self, start, end)

    monkeypatch.setattr(S3Object, "get", counted)
    again = spillguard.scan([target], endpoint_url=s3.url, state=state, resume=True).to_json()
    assert _comparable(again) == _comparable(first) and reads == []  # every partition came from the state file
    # An object rewritten since (another ETag and size) is read again, and only it; its new content counts.
    tickets = (lake / "support_tickets.csv").read_text().splitlines(keepends=True)
    owner.put_object(Bucket="lake", Key="resume/support_tickets.csv", Body="".join(tickets[:11]).encode())
    changed = spillguard.scan([target], endpoint_url=s3.url, state=state, resume=True).to_json()
    assert set(reads) == {"resume/support_tickets.csv"}
    assert {d["dataset"]: d["records_scanned"] for d in changed["datasets"]} == {
        "support_tickets.csv": 10, "users.jsonl": next(d["records_scanned"] for d in first["datasets"] if d["dataset"] == "users.jsonl")}


EXE = shutil.which("spillguard") or str(Path(sys.executable).with_name("spillguard"))


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120,
                          env={**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **env})  # fmt: skip


def test_bad_inputs_are_one_line_exit_2_and_credentials_never_show(s3: Server, lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = _aws_env(s3)
    wrong_secret = _aws_env(s3, AWS_SECRET_ACCESS_KEY="Wr0ng/" + "k" * 34)
    slashed = "9/dTk9+9SIMTokEWiPUHaQicL8A/vXJ4wgPrYnWd"  # (moto drew one like it: a random CI failure)
    secrets = (s3.password or "", s3.user or "", wrong_secret["AWS_SECRET_ACCESS_KEY"], "AKIAQQQQQQQQQQQQQQQQ", slashed, "dTk9+9SIM")
    dead = f"http://127.0.0.1:{free_port()}"
    cases = [  # the command line: one line on stderr, exit 2
        (["s3://no-such-bucket/", "--endpoint-url", s3.url], good, "no such bucket"),
        ([f"s3://lake/{PREFIX}", "--endpoint-url", s3.url], wrong_secret, "credentials were refused"),
    ]
    for args, env, said in cases:
        proc = _cli("scan", "--format", "json", *args, env=env)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and said in lines[0], (args, proc.stderr)
        assert not any(secret in proc.stdout + proc.stderr for secret in secrets), (args, proc.stderr)
    # The same refusals as library calls (a UserError is that one line), without a process each.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAQQQQQQQQQQQQQQQQ")
    with pytest.raises(UserError, match="credentials were refused") as refused:
        spillguard.scan([f"s3://lake/{PREFIX}"], endpoint_url=s3.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.user or "")
    messages = [str(refused.value)]
    for target, endpoint, said in [
        (f"s3://lake/{PREFIX}", dead, "cannot connect to the endpoint"),
        (f"s3://lake/{PREFIX}", "ftp://127.0.0.1", "not http(s)://HOST[:PORT]"),
        ("s3://lake/nothing-here/", s3.url, "no data objects"),
        (f"s3://lake/{PREFIX}notes.txt", s3.url, "no data objects"),
        (f"s3://{s3.user}:{s3.password}@lake/{PREFIX}", s3.url, "credentials do not belong"),
        # a secret key holding "/" (AWS's are base64) ends the authority early: still credentials, never shown
        (f"s3://{s3.user}:{slashed}@lake/{PREFIX}", s3.url, "credentials do not belong"),
        (f"s3://{s3.user}:{slashed}@lake/{PREFIX}?endpoint={s3.url}", s3.url, "credentials do not belong"),
    ]:
        with pytest.raises(UserError, match=said.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")) as bad:
            spillguard.scan([target], endpoint_url=endpoint)
        messages.append(str(bad.value))
    assert all("\n" not in m and not any(secret in m for secret in secrets) for m in messages), messages
    # The environment's endpoint works like --endpoint-url, and is written into the result.
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.url)
    doc = spillguard.scan([f"s3://lake/{PREFIX}users.jsonl"]).to_json()
    assert doc["targets"] == [f"s3://lake/{PREFIX}users.jsonl?endpoint={s3.url}"] and doc["summary"]["complete"]
    assert not any(secret in str(doc) for secret in secrets)
