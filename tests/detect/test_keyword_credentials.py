"""Credentials written as text in log lines: scored on generated lines with ground truth, spans on the secret
itself, and no raw credential in any output of a real scan (JSON, samples, --secrets-out)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import spillguard
from spillguard.categories import CATEGORIES
from spillguard.demo.credential_logs import credential_log_lines
from spillguard.detect.engine import RuleSet
from spillguard.keys import fingerprint
from spillguard.rules import select_rules

# Every shape the generator writes is one the keyword rules are built for, and every decoy is a class the
# placeholder check is built for; what may still be missed are random passwords that happen to contain filler
# (a generated "x%sQ" reads as a template). On 2 x 1,500 lines that is at most a handful: 0.97 leaves room for
# them while any broken shape (about 6 % of the lines each) or noisy decoy class (about 3 %) fails the test.
MIN_PRECISION = 0.97
MIN_RECALL = 0.97
KEY_HEX = "5f" * 32


def _score(seed: int) -> tuple[float, float, Counter[str], set[int], set[int]]:
    logs = credential_log_lines(1500, seed=seed)
    ruleset = RuleSet(select_rules())
    plan = ruleset.plan("message")
    column = pa.array(logs.lines)
    hits = ruleset.scan_column(column, plan, want_spans=True)
    found: dict[int, set[str]] = {}
    for (rid, vi), (s, e) in hits.spans.items():
        if CATEGORIES[ruleset.rules[rid].category].secret:
            found.setdefault(vi, set()).add(logs.lines[vi][s:e])
    tp = fp = fn = 0
    wrong: Counter[str] = Counter()
    for i, truth in enumerate(logs.secrets):
        got = found.get(i, set())
        if truth is not None and truth in got:
            tp += 1
        elif truth is not None:
            fn += 1
            wrong[f"missed {logs.shapes[i]}"] += 1
        extra = got - {truth}
        fp += len(extra)
        if extra:
            wrong[f"false {logs.shapes[i]}"] += 1
    plain = ruleset.scan_column(column, plan)  # the scan's own path, without spans
    plain_lines = {int(v) for rid, idx in plain.by_rule.items() if CATEGORIES[ruleset.rules[rid].category].secret for v in idx}
    return tp / max(1, tp + fp), tp / max(1, tp + fn), wrong, set(found), plain_lines


@pytest.mark.parametrize("seed", [11, 12])
def test_keyword_credentials_in_generated_logs(seed):
    precision, recall, wrong, span_lines, plain_lines = _score(seed)
    assert precision >= MIN_PRECISION, (precision, wrong)
    assert recall >= MIN_RECALL, (recall, wrong)
    assert span_lines == plain_lines  # the scan path flags the same lines as the exact path


@pytest.mark.parametrize(
    ("text", "secret", "rule"),
    [
        ('password = "hunter2!"', "hunter2!", "password_assignment"),
        ("api_key: 7d5c9e1f0a3b4c2d8e6f1a9b3c5d7e0f", "7d5c9e1f0a3b4c2d8e6f1a9b3c5d7e0f", "secret_assignment"),
        ('{"secret": "Qm8vT2pLx9RzW4kN7bYc3HdF"}', "Qm8vT2pLx9RzW4kN7bYc3HdF", "secret_assignment"),
        ("Authorization: Basic YWRtaW46czNjcjN0IVBhc3M=", "YWRtaW46czNjcjN0IVBhc3M=", "basic_auth_header"),
        ("Authorization: Bearer q7Vh2kP9xR4mT1nW8cY3zB6dF5gJ0sLe", "q7Vh2kP9xR4mT1nW8cY3zB6dF5gJ0sLe", "bearer_token"),
        ("redis://:s3cret-Pw@cache.internal:6379/0", "s3cret-Pw", "url_credentials"),
        ("export DB_PASSWORD=Xk9mQ2vLp", "Xk9mQ2vLp", "password_assignment"),
        ("database:\n  password: Tr0ub4dor&3\n", "Tr0ub4dor&3", "password_assignment"),
        ("12:00:01 WARN default login: username root / password root", "root", "user_password_pair"),
    ],
)
def test_the_reported_span_is_the_credential_itself(text, secret, rule):
    matches = [m for m in spillguard.scan_value(text) if m.rule == rule]
    assert matches, spillguard.scan_value(text)
    assert text[matches[0].start : matches[0].end] == secret


def test_no_raw_credential_in_any_output_of_a_scan(tmp_path):
    """A real scan of log lines: the JSON (with samples), stderr and the leaked set hold fingerprints and
    digests of exactly the credential (the secret group), never the credential."""
    logs = credential_log_lines(400, seed=5)
    data = tmp_path / "logs.jsonl"
    data.write_text("".join(json.dumps({"user_id": f"u{i % 50}", "message": line}) + "\n" for i, line in enumerate(logs.lines)))
    leaked = tmp_path / "leaked.sgs"
    env = {**os.environ, "SPILLGUARD_FINGERPRINT_KEY": KEY_HEX, "PYTHONPATH": str(Path(spillguard.__file__).parent.parent)}
    proc = subprocess.run(
        [sys.executable, "-c", "from spillguard.cli import main; main()", "scan", str(data), "--format", "json",
         "--show-samples", "--secrets-out", str(leaked), "--fail-on", "never", "--no-progress", "--workers", "1"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    planted = [s for s in logs.secrets if s is not None and len(s) >= 6]
    assert len(planted) > 100
    for where, blob in (("stdout", proc.stdout), ("stderr", proc.stderr), ("leaked set", leaked.read_bytes().decode("latin-1"))):
        shown = [s for s in planted if s in blob]
        assert not shown, f"{where} shows {len(shown)} credentials"
    table = pq.read_table(leaked)
    key = bytes.fromhex(KEY_HEX)
    prints = set(table.column("fingerprint").to_pylist())
    digests = set(table.column("sha256").to_pylist())
    tokens = [s for s, shape in zip(logs.secrets, logs.shapes, strict=True) if shape in ("github_token", "api_key_yaml", "bearer_header")]
    assert tokens and all(fingerprint(key, t) in prints for t in tokens)  # the credential, not its line
    assert all(hashlib.sha256(t.encode()).hexdigest() in digests for t in tokens)
    doc = json.loads(proc.stdout)
    rules = {f["rule"] for f in doc["findings"] if f["field"] == "message"}
    assert {"password_assignment", "secret_assignment", "bearer_token", "basic_auth_header", "github_token"} <= rules


def test_one_password_in_many_lines_is_one_credential(tmp_path):
    """Distinct credentials, not distinct lines: the same password logged 30 times is one value to rotate."""
    data = tmp_path / "app.jsonl"
    lines = [f"2026-12-01T10:{i:02d}:00Z INFO connect user=etl password=Harbor2024! attempt={i}" for i in range(30)]
    lines += [f"2026-12-01T11:{i:02d}:00Z INFO connect user=etl password=Maple{i}Quartz!" for i in range(5)]
    data.write_text("".join(json.dumps({"user_id": "u1", "message": line}) + "\n" for line in lines))
    result = spillguard.scan([data])
    (finding,) = [f for f in result.findings if f.rule == "password_assignment"]
    assert finding.values_matched == 35 and finding.values_distinct == 6
