"""Bucket exposure, against an S3 API server started here (moto's S3 backend; tests/s3_standin.py enforces S3's
access control from each bucket's own ACL, policy and public access block): verdicts for a private bucket, a
bucket anyone can list, a public-read object, a public policy, a public ACL neutralised by a block; `watch`
alerts when a bucket opens; credentials never show."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import spillguard
from spillguard.audit import audit
from spillguard.audit.watch import WatchOptions, watch
from spillguard.notify import FileSink
from tests.servers import Server, free_port, s3_server

boto3 = pytest.importorskip("boto3")
USERS = b"".join(b'{"user_id": %d, "email": "user%d@example.com"}\n' % (i, i) for i in range(200))


@pytest.fixture(scope="module")
def s3() -> Iterator[Server]:
    with s3_server() as server:
        owner = boto3.client("s3", endpoint_url=server.url, region_name="us-east-1",
                             aws_access_key_id=server.user, aws_secret_access_key=server.password)  # fmt: skip
        for bucket in ("private-bucket", "listing-bucket", "object-bucket", "policy-bucket", "blocked-bucket", "watched-bucket"):
            owner.create_bucket(Bucket=bucket)
            owner.put_object(Bucket=bucket, Key="exports/users.jsonl", Body=USERS)
            owner.put_object(Bucket=bucket, Key="exports/notes.jsonl", Body=b'{"note": "hello"}\n')
        owner.put_bucket_acl(Bucket="listing-bucket", ACL="public-read")  # listing only: objects stay private
        owner.put_object_acl(Bucket="object-bucket", Key="exports/users.jsonl", ACL="public-read")
        owner.put_bucket_policy(Bucket="policy-bucket", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::policy-bucket/*"}]}))  # fmt: skip
        owner.put_bucket_acl(Bucket="blocked-bucket", ACL="public-read")
        owner.put_public_access_block(Bucket="blocked-bucket", PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})  # fmt: skip
        server.owner = owner  # type: ignore[attr-defined]
        yield server


def _env(monkeypatch: pytest.MonkeyPatch, s3: Server | None) -> None:
    """The AWS chain: the owner's key in the environment, or no credentials at all (an outsider)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    if s3 is not None:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.user or "")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.password or "")


def _url(s3: Server, bucket: str) -> str:
    return f"s3://{bucket}?endpoint={s3.url}"


def _verdicts(s3: Server, *buckets: str, **options: Any) -> dict[str, Any]:
    result = audit([_url(s3, b) for b in buckets], **options)
    text = json.dumps(result.to_json())
    assert (s3.password or "") not in text and (s3.user or "") not in text  # the key id only masked, the secret never
    return {v.target.partition("?")[0].removeprefix("s3://"): v for v in result.targets}


def test_verdicts_with_the_owners_credentials(s3: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch, s3)
    got = _verdicts(s3, "private-bucket", "listing-bucket", "object-bucket", "policy-bucket", "blocked-bucket")
    assert {b: v.verdict.value for b, v in got.items()} == {
        "private-bucket": "protected", "listing-bucket": "open-metadata", "object-bucket": "open-read",
        "policy-bucket": "open-read", "blocked-bucket": "protected"}
    assert got["private-bucket"].evidence["anonymous_list"] is False and got["private-bucket"].evidence["public_acl"] == []
    assert got["private-bucket"].evidence["anonymous_reads_tried"] == 2  # keys found by the owner's listing, refused
    assert got["private-bucket"].evidence["credentials"].startswith("AKIA")
    listing = got["listing-bucket"].evidence
    assert listing["anonymous_list"] and listing["objects_listed"] == 2 and "bucket: AllUsers READ" in listing["public_acl"]
    assert got["object-bucket"].evidence["anonymous_read"] == "exports/users.jsonl"
    assert "object exports/users.jsonl: AllUsers READ" in got["object-bucket"].evidence["public_acl"]
    policy = got["policy-bucket"].evidence
    assert policy["policy_public"] is True and policy["public_policy_statements"] == ["s3:GetObject on arn:aws:s3:::policy-bucket/*"]
    blocked = got["blocked-bucket"].evidence
    assert "bucket: AllUsers READ" in blocked["public_acl"] and blocked["public_access_block"]["IgnorePublicAcls"] is True
    assert "public access" in blocked["reason"]
    assert all(v.host == "127.0.0.1" and v.port == s3.port for v in got.values())


def test_verdicts_of_an_outsider_and_hints_from_a_scan(s3: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _env(monkeypatch, None)
    got = _verdicts(s3, "private-bucket", "listing-bucket", "object-bucket")
    assert {b: v.verdict.value for b, v in got.items()} == {
        "private-bucket": "protected", "listing-bucket": "open-metadata", "object-bucket": "protected"}
    assert "credentials" not in got["object-bucket"].evidence and "no object key was known" in got["object-bucket"].evidence["reason"]
    # A scan's inventory names the objects: the outsider's read of one then proves the exposure, with its stakes.
    _env(monkeypatch, s3)
    scan = spillguard.scan([f"s3://object-bucket/exports/?endpoint={s3.url}"])
    inventory = tmp_path / "scan.json"
    inventory.write_text(json.dumps(scan.to_json()))
    _env(monkeypatch, None)
    # The audit names the scanned prefix: the inventory's object names are relative to it.
    hinted = audit([f"s3://object-bucket/exports/?endpoint={s3.url}"], inventory=[inventory]).targets[0]
    assert hinted.verdict.value == "open-read" and hinted.stakes and hinted.stakes["records"] == 201


def test_what_the_audit_calls_open_an_outsider_can_scan(s3: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch, None)  # no credentials anywhere: the scan sends unsigned requests
    doc = spillguard.scan([f"s3://policy-bucket/exports/users.jsonl?endpoint={s3.url}"]).to_json()
    assert doc["summary"]["records_scanned"] == 200 and doc["summary"]["categories"]["email"]["subjects"] == 200
    with pytest.raises(spillguard.UserError, match="access denied"):
        spillguard.scan([f"s3://private-bucket/exports/?endpoint={s3.url}"])


def test_missing_bucket_and_dead_endpoint(s3: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch, None)
    missing = audit(["s3://no-such-bucket"], endpoint_url=s3.url).targets[0]  # the library's endpoint_url, as --endpoint-url
    assert missing.target == f"s3://no-such-bucket?endpoint={s3.url}"
    assert missing.verdict.value == "error" and "no such bucket" in missing.evidence["reason"]
    dead = audit([f"s3://private-bucket?endpoint=http://127.0.0.1:{free_port()}"], timeout=2).targets[0]
    assert dead.verdict.value == "unreachable"


def test_watch_alerts_when_a_bucket_opens(s3: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _env(monkeypatch, s3)
    alerts = tmp_path / "alerts.jsonl"
    state = tmp_path / "watch.sqlite"
    options = WatchOptions(interval=1.0, timeout=5.0)
    assert watch([_url(s3, "watched-bucket")], state=state, sinks=[FileSink(str(alerts))], options=options, once=True) == 0
    assert not alerts.exists() or alerts.read_text() == ""
    s3.owner.put_object_acl(Bucket="watched-bucket", Key="exports/notes.jsonl", ACL="public-read")  # type: ignore[attr-defined]
    assert watch([_url(s3, "watched-bucket")], state=state, sinks=[FileSink(str(alerts))], options=options, once=True) == 1
    (alert,) = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert alert["event"] == "exposed" and alert["old_verdict"] == "protected" and alert["new_verdict"] == "open-read"
    assert alert["evidence"]["anonymous_read"] == "exports/notes.jsonl" and (s3.password or "") not in alerts.read_text()


def test_audit_command_line_with_endpoint_url(s3: Server) -> None:
    import shutil
    import subprocess
    import sys

    exe = shutil.which("spillguard") or str(Path(sys.executable).with_name("spillguard"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    proc = subprocess.run([exe, "audit", "s3://listing-bucket", "s3://private-bucket", "--endpoint-url", s3.url, "--format", "json"],
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # something exposed
    doc = json.loads(proc.stdout)
    verdicts = {t["target"]: t["verdict"] for t in doc["targets"]}
    assert verdicts == {f"s3://listing-bucket?endpoint={s3.url}": "open-metadata", f"s3://private-bucket?endpoint={s3.url}": "protected"}
