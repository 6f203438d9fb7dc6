"""Keyword credentials in log lines: spillguard vs detect-secrets, precision/recall against ground truth and speed.

    python bench/bench_credential_logs.py --lines 20000 --peer-lines 5000 --seed 7

The lines come from `spillguard.demo.credential_logs` (one credential or decoy per line, the exact credential
text known). spillguard runs its engine over the lines as one column (as a scan of a log index's `message`
field does), with spans, so a credential counts as found only when the reported span is exactly the planted
text (and, at the line level, a line counts as found when any result is reported on it). detect-secrets (1.5, default plugins and filters) scans the same lines written to a file, as its users
run it; a credential counts as found when one of its results on that entry is exactly the planted text (its
Secret Keyword plugin reports the value, not the key), and every other value it reports counts as a false
positive. Both are timed in this process,
CPU seconds of the detection only (generation excluded), with the load average of the run.
"""

from __future__ import annotations

import argparse
import os
import resource
from collections import Counter

import pyarrow as pa

from spillguard.categories import CATEGORIES
from spillguard.demo.credential_logs import CredentialLogs, credential_log_lines
from spillguard.detect.engine import RuleSet
from spillguard.rules import select_rules


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def score(logs: CredentialLogs, found: dict[int, set[str]]) -> dict[str, float]:
    tp = fp = fn = 0
    misses: Counter[str] = Counter()
    for i, truth in enumerate(logs.secrets):
        got = found.get(i, set())
        if truth is not None:
            if truth in got:
                tp += 1
            else:
                fn += 1
                misses[logs.shapes[i]] += 1
        fp += len(got - {truth})
    # Line level: any result on a line with a credential finds it; any result on a line without one is false.
    flagged = {i for i, got in found.items() if got}
    has = {i for i, t in enumerate(logs.secrets) if t is not None}
    line_p = len(flagged & has) / max(1, len(flagged))
    line_r = len(flagged & has) / max(1, len(has))
    return {"tp": tp, "fp": fp, "fn": fn, "precision": tp / max(1, tp + fp), "recall": tp / max(1, tp + fn),
            "line_precision": line_p, "line_recall": line_r, "missed": dict(misses.most_common(5))}  # type: ignore[dict-item]


def spillguard_found(logs: CredentialLogs) -> tuple[dict[int, set[str]], float]:
    ruleset = RuleSet(select_rules())
    plan = ruleset.plan("message")
    column = pa.array(logs.lines, pa.string())
    ruleset.scan_column(column.slice(0, 100), plan, want_spans=True)  # compiled database loaded
    t = _cpu()
    hits = ruleset.scan_column(column, plan, want_spans=True)
    cpu = _cpu() - t
    found: dict[int, set[str]] = {}
    for (rid, vi), (s, e) in hits.spans.items():
        if CATEGORIES[ruleset.rules[rid].category].secret:
            found.setdefault(vi, set()).add(logs.lines[vi][s:e])
    return found, cpu


def detect_secrets_found(logs: CredentialLogs) -> tuple[dict[int, set[str]], float]:
    """detect-secrets as its users run it: a file scan (`SecretsCollection.scan_file`) with the default plugins
    and filters; each reported line is mapped back to its log entry."""
    import tempfile

    from detect_secrets import SecretsCollection
    from detect_secrets.settings import default_settings

    owner: list[int] = []
    with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False, encoding="utf-8") as fh:
        for i, text in enumerate(logs.lines):
            for line in text.splitlines():
                fh.write(line + "\n")
                owner.append(i)
        path = fh.name
    found: dict[int, set[str]] = {}
    try:
        with default_settings():
            t = _cpu()
            secrets = SecretsCollection()
            secrets.scan_file(path)
            cpu = _cpu() - t
        for _file, secret in secrets:
            if secret.secret_value and secret.line_number:
                found.setdefault(owner[secret.line_number - 1], set()).add(secret.secret_value)
    finally:
        os.unlink(path)
    return found, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=20_000)
    ap.add_argument("--peer-lines", type=int, default=5_000, help="lines given to detect-secrets (it is slower)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    load = [os.getloadavg()[0]]
    logs = credential_log_lines(args.lines, seed=args.seed)
    found, cpu = spillguard_found(logs)
    sg = score(logs, found)
    mb = sum(len(x) for x in logs.lines) / 1e6
    print(f"{args.lines:,} lines ({mb:.1f} MB), {sum(s is not None for s in logs.secrets):,} with a credential, seed {args.seed}")
    print(f"spillguard:     precision {sg['precision']:.4f} recall {sg['recall']:.4f} (tp {sg['tp']}, fp {sg['fp']}, fn {sg['fn']}) "
          f"CPU {cpu:.3f} s = {args.lines / cpu:,.0f} lines/s; missed: {sg['missed']}")
    print(f"                line level: precision {sg['line_precision']:.4f} recall {sg['line_recall']:.4f}")
    try:
        import detect_secrets  # noqa: F401
    except ImportError:
        print("detect-secrets is not installed (pip install -e '.[bench]'): no peer figures")
        return
    peer_logs = CredentialLogs(logs.lines[: args.peer_lines], logs.secrets[: args.peer_lines], logs.shapes[: args.peer_lines])
    pfound, pcpu = detect_secrets_found(peer_logs)
    ds = score(peer_logs, pfound)
    sg_same = score(peer_logs, {i: v for i, v in found.items() if i < args.peer_lines})
    load.append(os.getloadavg()[0])
    n = args.peer_lines
    print(f"detect-secrets: precision {ds['precision']:.4f} recall {ds['recall']:.4f} (tp {ds['tp']}, fp {ds['fp']}, fn {ds['fn']}) "
          f"CPU {pcpu:.3f} s = {n / pcpu:,.0f} lines/s on the first {n:,} lines; missed: {ds['missed']}")
    print(f"                line level: precision {ds['line_precision']:.4f} recall {ds['line_recall']:.4f}")
    print(f"spillguard on the same {n:,} lines: precision {sg_same['precision']:.4f} recall {sg_same['recall']:.4f}")
    print(f"lines per CPU-second, spillguard / detect-secrets: {(args.lines / cpu) / (n / pcpu):,.0f}x")
    print(f"load average (1 min): {min(load):.1f}-{max(load):.1f}")


if __name__ == "__main__":
    main()
