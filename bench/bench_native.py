"""The native core's pieces against the pure-Python paths they replaced, side by side in one process.

    python bench/bench_native.py --records 50000 --rounds 5

On the demo users (spillguard.demo, seed 42): the per-field Vectorscan matching of every leaf of users.jsonl,
the keyed 64-bit subject hash and HMAC-SHA-256 pseudonyms of 1 M e-mail addresses, users.jsonl read into Arrow
columns (the native reader against Arrow's JSON reader) and checked line by line, the entropy of every token
and password hash, and the sort of 1 M random 64-bit keys. Each pair alternates for
ROUNDS rounds; the figures are the mean thread CPU time of each (CPU time: the machine is shared) and the
ratio. The former paths live in tests/detect/former.py, where the differential tests also use them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spillguard.demo import generate  # noqa: E402
from spillguard.detect.arrays import as_text  # noqa: E402
from spillguard.detect.checks import entropy_per_value  # noqa: E402
from spillguard.detect.engine import RuleSet  # noqa: E402
from spillguard.detect.flatten import flatten_table  # noqa: E402
from spillguard.detect.keymerge import sort_keys  # noqa: E402
from spillguard.detect.matcher import rule_flags, scan_text  # noqa: E402
from spillguard.detect.placeholders import MARKERS  # noqa: E402
from spillguard.keys import Hasher, hmac_digests  # noqa: E402
from spillguard.rules import builtin_rules  # noqa: E402
from spillguard.sources.base import BLOCK_BYTES  # noqa: E402
from spillguard.sources.records import _arrow_read, _read_block, _scan_lines  # noqa: E402
from tests.detect import former  # noqa: E402


def best(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.thread_time()
        fn()
        times.append(time.thread_time() - t)
    return min(times)


def pair(label: str, new: Callable[[], object], old: Callable[[], object], rounds: int, unit: str) -> None:
    new(), old()  # warm: compiled databases, page cache
    n_t = o_t = 0.0
    for _ in range(rounds):  # alternate, so load changes hit both
        n_t += best(new, 1)
        o_t += best(old, 1)
    print(f"| {label} | {o_t / rounds:.3f} s | {n_t / rounds:.3f} s | **{o_t / n_t:.2f}x** | {unit} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp, users=args.records, seed=42, compress=False)
        raw = Path(tmp, "users.jsonl").read_bytes()
        table = pj.read_json(os.path.join(tmp, "users.jsonl"))
    blocks = []  # the file in the blocks a scan reads (BLOCK_BYTES, cut at a line end)
    while raw:
        cut = raw.rfind(b"\n", 0, BLOCK_BYTES) + 1 or len(raw)
        blocks.append(raw[:cut])
        raw = raw[cut:]
    rs = RuleSet(builtin_rules())
    work = []
    for leaf in flatten_table(table):
        plan = rs.plan(leaf.path)
        if not plan.value_rules:
            continue
        text = as_text(leaf.values)
        text = pc.fill_null(text, "") if text.null_count else text
        ids = list(plan.value_rules)
        exprs = [rs.rules[i].hyperscan_expression() for i in ids]
        flags = [rule_flags(rs.rules[i].ignore_case) for i in ids]
        if rs._token_rule[ids].any():
            exprs, flags, ids = [*exprs, MARKERS.encode()], [*flags, rule_flags(False)], [*ids, rs._marker_id]
        work.append((rs._compile(plan.value_rules), exprs, flags, ids, text))
    mb = sum(w[4].nbytes for w in work) / 1e6

    def native_scan() -> None:
        for matcher, _e, _f, _i, text in work:
            scan_text(matcher, text)

    def former_scan() -> None:
        for _m, exprs, flags, ids, text in work:
            former.matches(exprs, flags, ids, text)

    emails = pa.array([f"user{i:07d}@example.org" for i in range(1_000_000)])
    tokens = pa.concat_arrays([table.column(name).combine_chunks() for name in ("api_token", "password_hash")])
    keys = np.random.default_rng(5).integers(0, 2**63, 1_000_000, dtype=np.int64).astype(np.uint64)
    hasher = Hasher(7)
    key = b"k" * 32
    print(f"{args.records:,} demo users ({mb:.0f} MB of leaf text), {args.rounds} rounds, load {os.getloadavg()[0]:.1f}")
    print("| piece | former path | native core | speed-up | input |")
    print("| --- | ---: | ---: | ---: | --- |")
    pair("rule matching, every leaf (Vectorscan)", native_scan, former_scan, args.rounds, f"{args.records:,} users")
    pair("keyed 64-bit hash", lambda: hasher.hash_strings(emails),
         lambda: former.keyed_hash64(hasher._keys, hasher._len_key, emails), args.rounds, "1 M e-mails")
    pair("HMAC-SHA-256", lambda: hmac_digests(key, emails), lambda: former.hmac_digests(key, emails), args.rounds, "1 M e-mails")
    pair("JSON lines to Arrow columns (native reader vs Arrow's)", lambda: [_read_block(b) for b in blocks],
         lambda: [_arrow_read(b) for b in blocks], args.rounds, f"users.jsonl, {len(blocks)} blocks")
    pair("line check of JSON-lines blocks", lambda: [_scan_lines(b) for b in blocks],
         lambda: [former._scan_lines(b) for b in blocks], args.rounds, f"users.jsonl, {len(blocks)} blocks")
    pair("entropy per value (secret check)", lambda: entropy_per_value(tokens), lambda: former.entropy_per_value(tokens),
         args.rounds, f"{len(tokens):,} tokens and hashes")
    pair("sort of 64-bit keys", lambda: sort_keys(keys), lambda: np.sort(keys), args.rounds, "1 M random hashes")
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
