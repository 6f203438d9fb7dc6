"""End-to-end scan throughput: spillguard on JSONL and Parquet vs DataFog's Rust backend and Presidio's pattern recognizers.

    python bench/bench_scan.py --records 200000 --presidio-records 3000 --datafog-records 20000 --big-gb 2
    python bench/bench_scan.py --records 200000 --presidio-records 3000 --datafog-records 20000 --floors
    python bench/bench_scan.py --records 200000 --presidio-records 3000 --datafog-records 20000 --floors --paired-rounds 6
    python bench/bench_scan.py --records 100000 --compare /path/to/old/tree --rounds 5
    python bench/bench_scan.py --records 100000 --compare /path/to/old/tree --rounds 3 --big-records 2000000

Every run is pinned to one core (taskset -c 0) and measured side by side in the same run, so the
ratio is what matters on a noisy machine. Peak RSS is the child's VmHWM-equivalent (wait4 maxrss).
The peers get each record's JSON text (DataFog: `datafog.scan(text, backend="rust")`, and its native
`datafog_core.scan(text)` alone as a floor; Presidio: `AnalyzerEngine.analyze`) on the first records of
the same file; their rates are records per second of that subsample. spillguard's first scan of the file is timed
apart (it fills the compile cache if it is empty); the JSONL row compared is the median (by CPU) of the next five
scans (a later scan may still compile a narrowed database once its rent is due). What each tool found on the first
--presidio-records records is printed per type and per JSON field, so the rates compare tools that detect.
`--floors` also times the Vectorscan pass and the JSON decoding inside a scan, and the start-up, per record: the
most records per CPU second a scan keeping those two passes could reach, and so the best ratio to each peer.
`--paired-rounds N` also times spillguard's scan and DataFog's in N alternating rounds and prints the median of the
per-round ratios (a machine whose speed drifts over minutes moves a ratio of runs minutes apart).
`--compare TREE` times this tree's scan against another checkout's (before/after a change): the two
alternate, ROUNDS times each after one warm-up each, and the medians of CPU and wall seconds and their
paired ratio are printed with the load average.

"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# A big file of distinct people (not one file repeated: repeats would flatter the validators' caches), made in
# parts of 250,000 users with their own seeds; the demo generator holds a part in memory.
BIG_CHILD = r"""
import os, shutil, sys
from spillguard.demo import generate
out, total, part = sys.argv[1], int(sys.argv[2]), 250_000
with open(out, "wb") as dst:
    for k, start in enumerate(range(0, total, part)):
        tmp = out + f".part{k}"
        generate(tmp, users=min(part, total - start), seed=1000 + k, compress=False)
        with open(os.path.join(tmp, "users.jsonl"), "rb") as src:
            shutil.copyfileobj(src, dst, 1 << 22)
        shutil.rmtree(tmp)
"""
GENERATE_CHILD = r"""
import sys
import pyarrow.json as pj, pyarrow.parquet as pq
from spillguard.demo import generate
generate(sys.argv[1], users=int(sys.argv[2]), seed=42, compress=False)
pq.write_table(pj.read_json(sys.argv[1] + "/users.jsonl"), sys.argv[3])
"""
# --floors: the same scan in one process, pinned, with two of its passes timed inside it: the Vectorscan pass (every
# call of scan_text, as the engine makes them) and decoding JSON Lines blocks into Arrow columns (_read_block). The
# first scan warms the process (lazy imports, databases from the cache); the second is measured.
FLOOR_CHILD = r"""
import importlib, json, sys, time
from spillguard.detect import engine, matcher
from spillguard.sources import records
spent = {"vectorscan": 0.0, "json": 0.0}
depth = {"vectorscan": 0, "json": 0}
def timed(fn, key):
    def wrapper(*args, **kwargs):
        depth[key] += 1
        t = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            depth[key] -= 1
            if depth[key] == 0:  # scan_text splits a column over 4 GB and calls itself: count the outer call
                spent[key] += time.process_time() - t
    return wrapper
engine.scan_text = matcher.scan_text = timed(matcher.scan_text, "vectorscan")
records._read_block = timed(records._read_block, "json")
run_scan = importlib.import_module("spillguard.scan.run").run_scan
from spillguard.scan.options import ScanOptions
run_scan([sys.argv[1]], ScanOptions(seed=1, workers=1))
spent.update(vectorscan=0.0, json=0.0)
t = time.process_time()
result, _ = run_scan([sys.argv[1]], ScanOptions(seed=1, workers=1))
print(json.dumps({"records": result.records_scanned, "scan_cpu": time.process_time() - t, **spent}))
"""
# Shared by the peers' children: the first N lines, and the JSON key a match sits under (the demo file is
# compact JSON Lines, `"key":value`), so each peer's findings can be tallied per type and per field.
PEER_PRELUDE = r"""
import collections, itertools, json, sys, time
def read_lines(path, n):
    with open(path, encoding="utf-8") as fh:
        return [line.rstrip("\n") for line in itertools.islice(fh, n)]
def field_of(text, start):
    colon = text.rfind('":', 0, start)
    return text[text.rfind('"', 0, colon) + 1 : colon] if colon > 0 else "?"
def timed(scan, lines):
    # Wall and CPU seconds of one pass: the machine is shared, CPU time is the steadier of the two.
    wall, cpu = time.perf_counter(), time.process_time()
    hits = sum(len(scan(line)) for line in lines)
    return {"seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu, "results": hits}
def tally(found, kind, text, start):
    entry = found.setdefault(kind, {"count": 0, "fields": collections.Counter()})
    entry["count"] += 1
    entry["fields"][field_of(text, start)] += 1
"""
PRESIDIO_CHILD = PEER_PRELUDE + r"""
import tldextract
# Use the public-suffix snapshot bundled with tldextract instead of fetching it (no network here).
tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=())
from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import NoOpNlpEngine
lines = read_lines(sys.argv[1], int(sys.argv[2]))
engine = AnalyzerEngine(nlp_engine=NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "noop"}]), supported_languages=["en"])
engine.analyze(text=lines[0], language="en")  # warm-up: recognizers load lazily
found = {}
def analyze(line):
    results = engine.analyze(text=line, language="en")
    for r in results:
        tally(found, r.entity_type, line, r.start)
    return results
print(json.dumps({"records": len(lines), **timed(analyze, lines), "found": found}))
"""
# DataFog's documented Rust path. Its 4.x `scan` defaults to engine="regex" (no NER) and raises ImportError
# without datafog-core rather than falling back; the untimed first pass also proves each call reaches the
# native `datafog_core.scan` (calls counted) and treats any warning (a fallback notice) as an error.
DATAFOG_CHILD = PEER_PRELUDE + r"""
import warnings
import datafog, datafog_core
lines = read_lines(sys.argv[1], int(sys.argv[2]))
sample = min(int(sys.argv[3]), len(lines))
native = datafog_core.scan
calls = 0
def counted(*args, **kwargs):
    global calls
    calls += 1
    return native(*args, **kwargs)
datafog_core.scan = counted
found = {}
with warnings.catch_warnings():
    warnings.simplefilter("error")
    for line in lines[:sample]:
        result = datafog.scan(line, backend="rust")
        assert result.engine_used == "regex", result.engine_used
        for e in result.entities:
            tally(found, e.type, line, e.start)
datafog_core.scan = native
if calls < sample:
    sys.exit(f"datafog.scan(backend='rust') reached datafog_core.scan {calls} times for {sample} records")
wrapped = timed(lambda line: datafog.scan(line, backend="rust").entities, lines)
core = timed(datafog_core.scan, lines)
from importlib.metadata import version
print(json.dumps({"records": len(lines), **wrapped, "core": core, "native_calls_per_record": calls / sample,
                  "found": found, "versions": {"datafog": version("datafog"), "datafog-core": version("datafog-core")}}))
"""


def _pinned(cmd: list[str]) -> list[str]:
    return (["taskset", "-c", "0"] if shutil.which("taskset") else []) + cmd


def run_measured(cmd: list[str], env: dict[str, str] | None = None, usage_out: list | None = None) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in MB, stdout) of a child process; its rusage is appended to `usage_out`."""
    t = time.perf_counter()
    # cwd outside any checkout: `python -c` puts the working directory first on sys.path, ahead of PYTHONPATH.
    proc = subprocess.Popen(_pinned(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tempfile.gettempdir())
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t
    if usage_out is not None:
        usage_out.append(usage)
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        sys.exit(f"command failed ({code}): {' '.join(cmd)}\n{err.decode()[-2000:]}")
    return elapsed, usage.ru_maxrss // 1024, out.decode()


def spillguard_cmd(path: Path, out: Path) -> list[str]:
    exe = shutil.which("spillguard") or str(Path(sys.executable).with_name("spillguard"))
    return [exe, "scan", str(path), "--format", "json", "-o", str(out), "--fail-on", "never", "--no-progress"]


def tree_cmd(path: Path, out: Path) -> list[str]:
    """The scan as `python -m`-style code, so PYTHONPATH picks which checkout runs."""
    return [sys.executable, "-c", "from spillguard.cli import main; main()", "scan", str(path), "--format", "json",
            "-o", str(out), "--fail-on", "never", "--no-progress", "--workers", "1"]


def precompile(tree: Path) -> None:
    """Byte-compile a tree's package, as `pip install` does: with PYTHONDONTWRITEBYTECODE set (as on these
    machines) every run would otherwise compile ~70 modules from source (~0.09 s) before it starts."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "spillguard")], check=True, stdout=subprocess.DEVNULL)


def compare(work: Path, path: Path, old_tree: Path, rounds: int) -> None:
    """This tree against OLD_TREE on the same file, alternating; medians and the median paired ratio."""
    import statistics

    new_tree = HERE.parent
    precompile(new_tree)
    precompile(old_tree)
    times: dict[str, list[tuple[float, float]]] = {"new": [], "old": []}
    loads = [os.getloadavg()]
    for i in range(rounds + 1):
        for label, tree in (("new", new_tree), ("old", old_tree)) if i % 2 == 0 else (("old", old_tree), ("new", new_tree)):
            env = {**os.environ, "PYTHONPATH": str(tree)}
            usage: list = []
            wall, _rss, _ = run_measured(tree_cmd(path, work / f"out-{label}.json"), env=env, usage_out=usage)
            if i:  # the first round warms caches (compiled rule databases, page cache)
                times[label].append((usage[0].ru_utime + usage[0].ru_stime, wall))
        loads.append(os.getloadavg())
    cpu_ratio = [n[0] / o[0] for n, o in zip(times["new"], times["old"], strict=True)]
    wall_ratio = [n[1] / o[1] for n, o in zip(times["new"], times["old"], strict=True)]
    print(f"{path.name}: {path.stat().st_size / 1e6:.0f} MB, {rounds} rounds after a warm-up, one core, --workers 1")
    for label in ("new", "old"):
        cpu = statistics.median(t[0] for t in times[label])
        wall = statistics.median(t[1] for t in times[label])
        print(f"  {label}: median CPU {cpu:.2f} s, wall {wall:.2f} s  (CPU runs: {', '.join(f'{t[0]:.2f}' for t in times[label])})")
    print(f"  new/old CPU: median {statistics.median(cpu_ratio):.3f} (min {min(cpu_ratio):.3f}, max {max(cpu_ratio):.3f}); "
          f"wall: median {statistics.median(wall_ratio):.3f}")
    print(f"  load average (1 min) during the runs: {min(a[0] for a in loads):.1f}-{max(a[0] for a in loads):.1f}")
    for label in ("new", "old"):
        doc = json.loads((work / f"out-{label}.json").read_text())
        print(f"  {label}: findings {len(doc['findings'])}, records {doc['summary']['records_scanned']:,}")


def measure_floors(work: Path, jsonl: Path, end_to_end: dict, peers: dict[str, dict]) -> dict:
    """Per record, on one core: the start-up (a one-record scan's CPU, spread over the file's records), JSON
    decoding and the Vectorscan pass (timed inside an in-process scan), and the rest; and the most records per CPU
    second, so the best ratio to each peer, that any scan keeping those two passes as they are could reach."""
    one = work / "one" / "users.jsonl"
    one.parent.mkdir(exist_ok=True)
    with open(jsonl, "rb") as src:
        one.write_bytes(src.readline())
    usage: list = []
    for _ in range(3):
        run_measured(spillguard_cmd(one, work / "one.json"), usage_out=usage)
    startup = statistics.median(u.ru_utime + u.ru_stime for u in usage)
    _secs, _rss, out = run_measured([sys.executable, "-c", FLOOR_CHILD, str(jsonl)])
    inner = json.loads(out.strip().splitlines()[-1])
    n = end_to_end["records"]
    assert inner["records"] == n, inner
    us = {"end to end (CLI)": end_to_end["cpu_seconds"] / n * 1e6, "start-up (one-record scan)": startup / n * 1e6,
          "JSON Lines decoding": inner["json"] / n * 1e6, "Vectorscan pass": inner["vectorscan"] / n * 1e6}
    us["the rest"] = us["end to end (CLI)"] - us["start-up (one-record scan)"] - us["JSON Lines decoding"] - us["Vectorscan pass"]
    print(f"\nwhere spillguard's CPU goes, per record ({n:,} records, one core):")
    for part, value in us.items():
        print(f"  {part:<28} {value:6.2f} us")
    floor = us["JSON Lines decoding"] + us["Vectorscan pass"]
    print(f"  decoding + Vectorscan alone allow at most {1e6 / floor:,.0f} records per CPU second:")
    best = {}
    for key, row in peers.items():
        best[key] = 1e6 / floor / row["records_per_cpu_s"]
        print(f"    {best[key]:,.1f}x {row['tool']} ({row['records_per_cpu_s']:,} records per CPU second)")
    # The peers' rates time their scan loops only (imports and set-up before the clock starts): spillguard's end to
    # end less its start-up is the like-for-like figure, printed beside the end-to-end one the targets are read on.
    loop = us["end to end (CLI)"] - us["start-up (one-record scan)"]
    print(f"  without its start-up, as the peers' loops are timed: {1e6 / loop:,.0f} records per CPU second:")
    like = {}
    for key, row in peers.items():
        like[key] = 1e6 / loop / row["records_per_cpu_s"]
        print(f"    {like[key]:,.1f}x {row['tool']}")
    return {"us_per_record": us, "best_ratio": best, "ratio_without_startup": like, "scan_cpu_in_process": inner["scan_cpu"]}


def paired_datafog(work: Path, jsonl: Path, records: int, fog_records: int, rounds: int) -> dict:
    """spillguard's end-to-end scan and DataFog's Rust backend timed in alternating rounds (the order swapped every
    round): the ratio of records per CPU second per round, and their median. On a machine whose speed drifts over
    minutes (a shared host), rounds taken seconds apart compare what one run of each minutes apart cannot."""
    ratios = []
    print(f"\nspillguard / datafog scan(backend='rust'), records per CPU second, {rounds} paired rounds:")
    for k in range(rounds):
        rates = {}
        for which in ("spillguard", "datafog") if k % 2 == 0 else ("datafog", "spillguard"):
            if which == "spillguard":
                usage: list = []
                run_measured(spillguard_cmd(jsonl, work / "paired.json"), usage_out=usage)
                rates[which] = records / (usage[0].ru_utime + usage[0].ru_stime)
            else:
                _secs, _rss, out = run_measured([sys.executable, "-c", DATAFOG_CHILD, str(jsonl), str(fog_records), "100"])
                fog = json.loads(out.strip().splitlines()[-1])
                rates[which] = fog["records"] / fog["cpu_seconds"]
        ratios.append(rates["spillguard"] / rates["datafog"])
        print(f"  round {k + 1}: spillguard {rates['spillguard']:,.0f}, datafog {rates['datafog']:,.0f}: {ratios[-1]:.2f}x")
    median = statistics.median(ratios)
    print(f"  median {median:.2f}x (range {min(ratios):.2f}-{max(ratios):.2f}; target >= 10x)")
    return {"ratios": ratios, "median": median}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000, help="synthetic customers (records in users.jsonl)")
    ap.add_argument("--presidio-records", type=int, default=3000,
                    help="records given to Presidio (it is slow); the findings of every tool are tallied on these")
    ap.add_argument("--datafog-records", type=int, default=20_000, help="records given to DataFog's Rust backend")
    ap.add_argument("--big-gb", type=float, default=0.0, help="also scan a file of this many GB for peak RSS")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    ap.add_argument("--compare", type=Path, default=None, metavar="TREE", help="time this tree against another checkout")
    ap.add_argument("--rounds", type=int, default=5, help="paired rounds for --compare")
    ap.add_argument("--floors", action="store_true",
                    help="also time the Vectorscan pass and JSON decoding inside a scan, and the start-up: the best ratios to the peers they allow")
    ap.add_argument("--paired-rounds", type=int, default=0,
                    help="also time spillguard's scan and DataFog's in this many alternating rounds: the median paired ratio")
    ap.add_argument("--big-records", type=int, default=0,
                    help="also scan a file of this many distinct demo users (made in parts of 250,000; with --compare: compared too)")
    args = ap.parse_args()

    work = args.workdir.resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="spillguard-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    jsonl = work / "data" / "users.jsonl"
    parquet = work / "users.parquet"
    # In a child: a child's peak RSS (wait4) starts from its parent's, so this process must stay small.
    subprocess.run([sys.executable, "-c", GENERATE_CHILD, str(work / "data"), str(args.records), str(parquet)], check=True)
    print(f"generated {args.records:,} records ({jsonl.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.0f} s")

    big_distinct = None
    if args.big_records:
        big_distinct = work / "big-distinct" / "users.jsonl"
        big_distinct.parent.mkdir(exist_ok=True)
        made = big_distinct.with_suffix(".records")  # the same seeds make the same file: a --workdir keeps it
        if made.exists() and big_distinct.exists() and made.read_text().strip() == str(args.big_records):
            print(f"reusing {args.big_records:,} distinct records ({big_distinct.stat().st_size / 1e9:.2f} GB) in {big_distinct}")
        else:
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", BIG_CHILD, str(big_distinct), str(args.big_records)], check=True)
            made.write_text(str(args.big_records))
            print(f"generated {args.big_records:,} distinct records ({big_distinct.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - t:.0f} s")

    if args.compare is not None:
        compare(work, jsonl, args.compare, args.rounds)
        compare(work, parquet, args.compare, args.rounds)
        if big_distinct is not None:
            compare(work, big_distinct, args.compare, args.rounds)
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
        return

    rows = []

    def spill(label: str, path: Path, records: int, runs: int = 1) -> dict:
        # With runs > 1 the run of median CPU is kept: a later scan may still compile a narrowed database whose
        # rent came due (seconds, once), which one run alone would put in the figure.
        measured = []
        for _ in range(runs):
            usage: list = []
            secs, rss, _ = run_measured(spillguard_cmd(path, work / "out.json"), usage_out=usage)
            measured.append((usage[0].ru_utime + usage[0].ru_stime, secs, rss))
        cpu, secs, rss = sorted(measured)[len(measured) // 2]
        result = json.loads((work / "out.json").read_text())
        assert result["summary"]["records_scanned"] == records, result["summary"]
        size = path.stat().st_size
        row = {"tool": "spillguard", "input": label, "records": records, "MB": round(size / 1e6, 1), "seconds": round(secs, 2),
               "records_per_s": round(records / secs), "MB_per_s": round(size / 1e6 / secs, 1), "cpu_seconds": round(cpu, 2),
               "records_per_cpu_s": round(records / cpu), "peak_rss_MB": rss}
        rows.append(row)
        return row

    precompile(HERE.parent)
    # A machine's first scan compiles the rules' Vectorscan databases (seconds, once: the compile cache keeps them);
    # timed apart, so the rows after it are what every later scan costs.
    spill("JSONL, first scan", jsonl, args.records)  # (fills the compile cache if empty)
    jl = spill("JSONL", jsonl, args.records, runs=5)
    spill("Parquet", parquet, args.records)

    def peer(tool: str, records: int, timing: dict, rss: int) -> dict:
        row = {"tool": tool, "input": "JSONL text per record", "records": records, "MB": None,
               "seconds": round(timing["seconds"], 2), "records_per_s": round(records / timing["seconds"]), "MB_per_s": None,
               "cpu_seconds": round(timing["cpu_seconds"], 2), "records_per_cpu_s": round(records / timing["cpu_seconds"]),
               "peak_rss_MB": rss}
        rows.append(row)
        return row

    sample = min(args.presidio_records, args.datafog_records, args.records)
    _secs, rss, out = run_measured([sys.executable, "-c", DATAFOG_CHILD, str(jsonl), str(args.datafog_records), str(sample)])
    fog = json.loads(out.strip().splitlines()[-1])
    fog_row = peer(f"datafog {fog['versions']['datafog']} scan(backend='rust')", fog["records"], fog, rss)
    core_row = peer(f"datafog_core {fog['versions']['datafog-core']} scan (native alone)", fog["records"], fog["core"], rss)

    _secs, rss, out = run_measured([sys.executable, "-c", PRESIDIO_CHILD, str(jsonl), str(args.presidio_records)])
    pres = json.loads(out.strip().splitlines()[-1])
    pres_row = peer("presidio (pattern recognizers, NoOpNlpEngine)", pres["records"], pres, rss)

    # What each tool reports on the same first records: spillguard scans a file of exactly those lines.
    head = work / "head" / "users.jsonl"
    head.parent.mkdir(exist_ok=True)
    with open(jsonl, "rb") as src, open(head, "wb") as dst:
        dst.writelines(line for _, line in zip(range(args.presidio_records), src, strict=False))
    run_measured(spillguard_cmd(head, work / "head.json"))
    found: dict[str, dict] = {}
    for f in json.loads((work / "head.json").read_text())["findings"]:
        entry = found.setdefault(f["category"], {"count": 0, "fields": {}})
        entry["count"] += f["values_matched"]
        leaf = f["field"].rsplit(".", 1)[-1].removesuffix("[]")
        entry["fields"][leaf] = entry["fields"].get(leaf, 0) + f["values_matched"]
    findings = {"spillguard (values matched)": (pres["records"], found), "datafog rust": (sample, fog["found"]),
                "presidio": (pres["records"], pres["found"])}

    if args.big_gb:
        big = work / "big.jsonl"
        data = jsonl.read_bytes()
        copies = max(1, int(args.big_gb * 1e9 // len(data)))
        with open(big, "wb") as fh:
            for _ in range(copies):
                fh.write(data)
        spill(f"JSONL {big.stat().st_size / 1e9:.1f} GB", big, args.records * copies)
        big.unlink()
    if big_distinct is not None:
        spill(f"JSONL {big_distinct.stat().st_size / 1e9:.1f} GB distinct", big_distinct, args.big_records)

    print()
    print(f"{'tool':<48} {'input':<22} {'records':>10} {'MB':>8} {'s':>8} {'rec/s':>10} {'MB/s':>7} {'CPU s':>8} "
          f"{'rec/CPU s':>10} {'RSS MB':>7}")
    for r in rows:
        print(f"{r['tool']:<48} {r['input']:<22} {r['records']:>10,} {r['MB'] or '':>8} {r['seconds']:>8} "
              f"{r['records_per_s']:>10,} {r['MB_per_s'] or '':>7} {r['cpu_seconds']:>8} {r['records_per_cpu_s']:>10,} "
              f"{r['peak_rss_MB']:>7}")
    for tool, (records, by_type) in findings.items():
        total = sum(e["count"] for e in by_type.values())
        print(f"\n{tool}: {total:,} findings on the first {records:,} records")
        for kind, e in sorted(by_type.items(), key=lambda kv: -kv[1]["count"]):
            fields = sorted(e["fields"].items(), key=lambda kv: -kv[1])
            print(f"  {kind:<26} {e['count']:>7,}  " + ", ".join(f"{name} {n:,}" for name, n in fields[:6])
                  + (f", +{len(fields) - 6} fields" if len(fields) > 6 else ""))
    # spillguard's figures include its process start-up and rule loading; the peers' only their scan loop.
    ratios = {}
    print("\nspillguard (JSONL, end to end) / peer, records per CPU second (per wall second):")
    for key, row, target in (("datafog_rust", fog_row, " (target >= 10x)"), ("datafog_core_alone", core_row, ""),
                             ("presidio", pres_row, " (target >= 1,000x)")):
        ratios[key] = {"cpu": jl["records_per_cpu_s"] / row["records_per_cpu_s"], "wall": jl["records_per_s"] / row["records_per_s"]}
        print(f"  / {row['tool']}: {ratios[key]['cpu']:,.1f}x ({ratios[key]['wall']:,.1f}x){target}")
    floors = measure_floors(work, jsonl, jl, {"datafog_rust": fog_row, "presidio": pres_row}) if args.floors else None
    paired = paired_datafog(work, jsonl, args.records, args.datafog_records, args.paired_rounds) if args.paired_rounds else None
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "ratios": ratios, "findings": findings, "floors": floors, "paired_datafog": paired}, indent=2))
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
