"""Names, postal addresses and dates of birth in free text: accuracy on labelled data, and what the free-text
check costs (structured scans before/after, paired in one run; prose throughput).

    python bench/bench_freetext.py accuracy [--presidio PATH/synth_dataset_v2.json ...] [--demo-users 20000]
    python bench/bench_freetext.py speed --before /path/to/checkout/of/main [--records 200000] [--rounds 5]
    python bench/bench_freetext.py raw --before /path/to/checkout/of/main [--records 20000] [--rounds 2]

`accuracy` scores spans: a predicted span is right when it overlaps a labelled span of its kind (for addresses
also a town or postcode the dataset labels on their own); a labelled span is found when a predicted span overlaps
it. Without --presidio it uses the 400-sentence sample kept in tests/detect/data. The demo tickets are scored per
ticket against the generator's ground truth.

`speed` scans the same generated users.jsonl (structured, no prose) with the code of --before and of this tree
alternately, on one core (taskset), and prints the CPU seconds of each scan (user + system: on a shared machine
wall time mostly measures the neighbours), medians and their ratio with the load average; then the cost of
reading prose: the demo's support tickets with and without the free-text rules.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SAMPLE = ROOT / "tests" / "detect" / "data" / "presidio_synth_sample.json"
# kind -> (labels it must find, labels a prediction may overlap); STREET_ADDRESS/GPE in synth_dataset_v2.json,
# ADDRESS/LOCATION in the older tests/data/generated_large.json of the same project.
KINDS = {
    "person_name": ({"PERSON"}, {"PERSON"}),
    "postal_address": ({"STREET_ADDRESS", "ADDRESS"}, {"STREET_ADDRESS", "ADDRESS", "GPE", "LOCATION", "ZIP_CODE"}),
}


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _dob_spans(ruleset, text: str) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    rid = next(i for i, r in enumerate(ruleset.rules) if r.id == "date_of_birth_text")
    return [(s, e) for r, s, e in ruleset.resolve_value(text, [rid]) if r == rid]


def accuracy(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    from spillguard.detect.engine import RuleSet
    from spillguard.detect.freetext import model
    from spillguard.rules import builtin_rules

    ruleset = RuleSet(builtin_rules())
    t = time.perf_counter()
    nlp = model()
    print(f"model load {time.perf_counter() - t:.1f} s; load average {_load()}")
    rows = []
    for path in args.presidio or [SAMPLE]:
        rows += _labelled(nlp, ruleset, Path(path))
    _demo(nlp, ruleset, args, rows)


def _labelled(nlp, ruleset, path: Path) -> list[tuple[str, str, float, float, int, int]]:  # type: ignore[no-untyped-def]
    records = json.loads(path.read_text(encoding="utf-8"))
    texts = [r["full_text"] for r in records]
    t = time.perf_counter()
    found = nlp.find(texts)
    secs = time.perf_counter() - t
    print(f"{path.name}: {len(texts):,} sentences, {len(texts) / secs:,.0f} sentences/s")
    rows = []
    for kind, (gold_types, ok_types) in KINDS.items():
        tp_p = fp = tp_r = fn = 0
        for record, spans in zip(records, found, strict=True):
            pred = [(s, e) for k, s, e in spans if k == kind]
            gold = [(g["start_position"], g["end_position"]) for g in record["spans"] if g["entity_type"] in gold_types]
            ok = [(g["start_position"], g["end_position"]) for g in record["spans"] if g["entity_type"] in ok_types]
            tp_p += sum(any(_overlaps(p, g) for g in ok) for p in pred)
            fp += sum(not any(_overlaps(p, g) for g in ok) for p in pred)
            tp_r += sum(any(_overlaps(p, g) for p in pred) for g in gold)
            fn += sum(not any(_overlaps(p, g) for p in pred) for g in gold)
        rows.append((path.name[:22], kind, tp_p / max(tp_p + fp, 1), tp_r / max(tp_r + fn, 1), tp_p + fp, tp_r + fn))
    # No birth-date labels: every sentence with a birth word is listed with what was found, to judge by eye.
    print("  sentences mentioning birth (found date of birth | text):")
    for text in texts:
        if re.search(r"(?i)\b(?:born|birth|dob)\b", text):
            spans = _dob_spans(ruleset, text)
            print(f"    {[text[s:e] for s, e in spans]!s:<32} | {text[:100]!r}")
    return rows


def _demo(nlp, ruleset, args: argparse.Namespace, rows: list[tuple[str, str, float, float, int, int]]) -> None:  # type: ignore[no-untyped-def]
    import csv

    from spillguard.demo import generate

    with tempfile.TemporaryDirectory() as tmp:
        truth = generate(tmp, users=args.demo_users, seed=11)
        with open(Path(tmp) / "support_tickets.csv", encoding="utf-8", newline="") as fh:
            tickets = list(csv.DictReader(fh))
    notes = [row["note"] for row in tickets]
    t = time.perf_counter()
    demo_found = nlp.find(notes)
    demo_secs = time.perf_counter() - t
    for kind in ("person_name", "postal_address", "date_of_birth"):
        expected = truth.subjects[("support_tickets.csv", "note", kind)]
        if kind == "date_of_birth":
            hit = [bool(_dob_spans(ruleset, n)) for n in notes]
        else:
            hit = [any(k == kind for k, _s, _e in spans) for spans in demo_found]
        got = {row["user_id"] for row, h in zip(tickets, hit, strict=True) if h}
        tp = len(got & expected)
        rows.append(("demo tickets", kind, tp / max(len(got), 1), tp / max(len(expected), 1), len(got), len(expected)))
    print(f"demo support tickets: {len(notes):,} notes, {len(notes) / demo_secs:,.0f} notes/s")
    print(f"\n{'data':<24} {'kind':<15} {'precision':>9} {'recall':>7} {'predicted':>9} {'labelled':>8}")
    for data, kind, p, r, npred, ngold in rows:
        print(f"{data:<24} {kind:<15} {p:>9.3f} {r:>7.3f} {npred:>9,} {ngold:>8,}")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _scan(tree: Path, path: Path, out: Path, extra: list[str]) -> float:
    cmd = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    cmd += [sys.executable, "-c", "from spillguard.cli import main; main()", "scan", str(path), "--format", "json", "-o", str(out),
            "--fail-on", "never", "--no-progress", "--workers", "1", *extra]
    # CPU seconds of the child (user + system): on a shared machine wall time mostly measures the neighbours.
    # cwd outside any checkout: `python -c` puts the working directory first on sys.path, ahead of PYTHONPATH.
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(tree)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            cwd=tempfile.gettempdir())
    err = proc.stderr.read() if proc.stderr else b""
    _pid, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        sys.exit(f"scan failed ({code}) with {tree}: {err.decode()[-2000:]}")
    return usage.ru_utime + usage.ru_stime


def _generate(work: Path, records: int) -> Path:
    """The demo data (seed 42) under work/data, written by this tree; returns its users.jsonl."""
    gen = ("import sys; from spillguard.demo import generate; "
           "generate(sys.argv[1], users=int(sys.argv[2]), seed=42, compress=False)")
    subprocess.run([sys.executable, "-c", gen, str(work / "data"), str(records)], check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    return work / "data" / "users.jsonl"


def speed(args: argparse.Namespace) -> None:
    before = args.before.resolve()
    commit = subprocess.run(["git", "-C", str(before), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    mine = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="spillguard-bench-text-"))
    try:
        users = _generate(work, args.records)
        tickets = work / "data" / "support_tickets.csv"
        print(f"structured: {users.stat().st_size / 1e6:.0f} MB users.jsonl ({args.records:,} records); before = {before} "
              f"({commit}), after = {ROOT} ({mine}); load average before: {_load()}")
        _scan(ROOT, users, work / "warm.json", [])  # compiled pattern databases cached for both
        _scan(before, users, work / "warm.json", [])
        times: dict[str, list[float]] = {"before": [], "after": []}
        for i in range(args.rounds):
            order = ("before", "after") if i % 2 == 0 else ("after", "before")
            for label in order:
                times[label].append(_scan(before if label == "before" else ROOT, users, work / f"{label}.json", []))
        a, b = json.loads((work / "after.json").read_text()), json.loads((work / "before.json").read_text())
        same = [(f["field"], f["rule"], f["values_matched"]) for f in a["findings"]] == [
            (f["field"], f["rule"], f["values_matched"]) for f in b["findings"]]
        mb, ma = statistics.median(times["before"]), statistics.median(times["after"])
        print(f"  rounds {args.rounds}: before median {mb:.2f} CPU s, min {min(times['before']):.2f} s; "
              f"after median {ma:.2f} CPU s, min {min(times['after']):.2f} s")
        print(f"  after/before = {ma / mb:.3f} (medians), {min(times['after']) / min(times['before']):.3f} (minimums); "
              f"same findings: {same}; load average after: {_load()}")
        small = work / "tickets.csv"  # the first --prose-records tickets: reading prose is ~100x slower than patterns
        with tickets.open(encoding="utf-8") as src, small.open("w", encoding="utf-8") as dst:
            for i, line in enumerate(src):
                if i > args.prose_records:
                    break
                dst.write(line)
        tickets = small
        n = sum(1 for _ in tickets.open(encoding="utf-8")) - 1
        with_text: list[float] = []
        with_before: list[float] = []
        for i in range(args.rounds):  # the free-text path itself, before/after, alternating
            order = ((ROOT, with_text), (before, with_before))
            for tree, out in order if i % 2 == 0 else order[::-1]:
                out.append(_scan(tree, tickets, work / "t.json", []))
        without = [_scan(ROOT, tickets, work / "t.json", ["--except", "person_name_text,postal_address_text"]) for _ in range(3)]
        mw, mb2, mo = statistics.median(with_text), statistics.median(with_before), statistics.median(without)
        print(f"prose: {n:,} support tickets: with the free-text rules after {mw:.2f} CPU s, before {mb2:.2f} CPU s "
              f"(after/before {mw / mb2:.3f}); without them {mo:.2f} CPU s (model load included; "
              f"{n / max(mw - mo, 1e-9):,.0f} notes/s for the free-text part after, {n / max(mb2 - mo, 1e-9):,.0f} before); "
              f"load average: {_load()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


RAW_CHILD = r"""
import sys, time
import pyarrow as pa, pyarrow.json as pj, pyarrow.compute as pc
from spillguard.detect.engine import RuleSet
from spillguard.rules import builtin_rules
t = pj.read_json(sys.argv[1]).flatten().flatten()
values = pa.concat_arrays([pc.cast(c, pa.string()).combine_chunks() for c in t.columns if not pa.types.is_nested(c.type)])
values = values.drop_null()
rs = RuleSet(builtin_rules())
rs._raw_hits(values[:100])
runs = []
for _ in range(int(sys.argv[2])):
    t0 = time.process_time()
    idx, _v = rs._raw_hits(values)
    runs.append(time.process_time() - t0)
print(len(rs.rules), len(values), len(idx), min(runs))
"""


def raw(args: argparse.Namespace) -> None:
    """Raw Vectorscan matching of every string value of generated users with all built-in rules, before/after:
    what rules added to the one database cost the structured path, without the rest of a scan's noise."""
    before = args.before.resolve()
    work = Path(tempfile.mkdtemp(prefix="spillguard-bench-raw-"))
    try:
        users = _generate(work, args.records)
        pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
        mins: dict[str, list[float]] = {"before": [], "after": []}
        for i in range(args.rounds):
            order = ("before", "after") if i % 2 == 0 else ("after", "before")
            for label in order:
                tree = before if label == "before" else ROOT
                out = subprocess.run([*pin, sys.executable, "-c", RAW_CHILD, str(users), "3"], check=True, capture_output=True,
                                     text=True, env={**os.environ, "PYTHONPATH": str(tree)}, cwd=work).stdout.split()
                mins[label].append(float(out[3]))
                print(f"  {label}: {out[0]} rules, {int(out[1]):,} values, {int(out[2]):,} raw hits, min of 3 {float(out[3]):.2f} CPU s")
        mb, ma = statistics.median(mins["before"]), statistics.median(mins["after"])
        print(f"raw matching after/before = {ma / mb:.3f} (medians of the minimums); load average {_load()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    acc = sub.add_parser("accuracy")
    acc.add_argument("--presidio", type=Path, nargs="*", default=None,
                     help="presidio-research's data/synth_dataset_v2.json (and tests/data/generated_large.json)")
    acc.add_argument("--demo-users", type=int, default=20000)
    sp = sub.add_parser("speed")
    sp.add_argument("--before", type=Path, required=True, help="a checkout of the code to compare with (e.g. main)")
    sp.add_argument("--records", type=int, default=200_000)
    sp.add_argument("--rounds", type=int, default=5)
    sp.add_argument("--prose-records", type=int, default=3000, help="support tickets read for the prose cost")
    rw = sub.add_parser("raw")
    rw.add_argument("--before", type=Path, required=True, help="a checkout of the code to compare with")
    rw.add_argument("--records", type=int, default=20_000)
    rw.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    {"accuracy": accuracy, "speed": speed, "raw": raw}[args.what](args)


if __name__ == "__main__":
    main()
