"""End-to-end scan throughput: spillguard on JSONL and Parquet vs Presidio's pattern recognizers.

    python bench/bench_scan.py --records 200000 --presidio-records 3000 --big-gb 2
    python bench/bench_scan.py --records 200000 --baseline /tmp/base --rounds 5   # before/after, paired

With --baseline DIR (a checkout of an earlier commit), each spillguard scan also runs with that code
(PYTHONPATH=DIR), alternating baseline and current for --rounds rounds; the median ratio is printed.

Every run is pinned to one core (taskset -c 0) and measured side by side in the same run, so the
ratio is what matters on a noisy machine. Peak RSS is the child's VmHWM-equivalent (wait4 maxrss).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GENERATE_CHILD = r"""
import sys
import pyarrow.json as pj, pyarrow.parquet as pq
from spillguard.demo import generate
generate(sys.argv[1], users=int(sys.argv[2]), seed=42, compress=False)
pq.write_table(pj.read_json(sys.argv[1] + "/users.jsonl"), sys.argv[3])
"""
PRESIDIO_CHILD = r"""
import json, sys, time
import tldextract
# Use the public-suffix snapshot bundled with tldextract instead of fetching it (no network here).
tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=())
from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import NoOpNlpEngine
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()[: int(sys.argv[2])]
engine = AnalyzerEngine(nlp_engine=NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "noop"}]), supported_languages=["en"])
engine.analyze(text=lines[0], language="en")  # warm-up: recognizers load lazily
t = time.perf_counter()
hits = 0
for line in lines:
    hits += len(engine.analyze(text=line, language="en"))
elapsed = time.perf_counter() - t
print(json.dumps({"records": len(lines), "seconds": elapsed, "results": hits}))
"""


def _pinned(cmd: list[str]) -> list[str]:
    return (["taskset", "-c", "0"] if shutil.which("taskset") else []) + cmd


def run_measured(cmd: list[str], code: Path | None = None) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in MB, stdout) of a child process; `code`: import spillguard from that tree."""
    elapsed, _cpu, rss, out = run_child(cmd, code)
    return elapsed, rss, out


def run_child(cmd: list[str], code: Path | None = None) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds (user + system), peak RSS in MB, stdout) of a child process."""
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    t = time.perf_counter()
    proc = subprocess.Popen(_pinned(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t
    exit_code = os.waitstatus_to_exitcode(status)
    if exit_code not in (0, 1):
        sys.exit(f"command failed ({exit_code}): {' '.join(cmd)}\n{err.decode()[-2000:]}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024, out.decode()


def spillguard_cmd(path: Path, out: Path) -> list[str]:
    exe = shutil.which("spillguard") or str(Path(sys.executable).with_name("spillguard"))
    return [exe, "scan", str(path), "--format", "json", "-o", str(out), "--fail-on", "never", "--no-progress"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000, help="synthetic customers (records in users.jsonl)")
    ap.add_argument("--presidio-records", type=int, default=3000, help="records given to Presidio (it is slow)")
    ap.add_argument("--big-gb", type=float, default=0.0, help="also scan a file of this many GB for peak RSS")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    ap.add_argument("--baseline", type=Path, default=None, help="a checkout of an earlier commit: paired before/after only")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the paired before/after comparison")
    args = ap.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="spillguard-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    jsonl = work / "data" / "users.jsonl"
    parquet = work / "users.parquet"
    # In a child: a child's peak RSS (wait4) starts from its parent's, so this process must stay small.
    subprocess.run([sys.executable, "-c", GENERATE_CHILD, str(work / "data"), str(args.records), str(parquet)], check=True)
    print(f"generated {args.records:,} records ({jsonl.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.0f} s")

    if args.baseline is not None:
        paired(args, jsonl, parquet, work)
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
        return

    rows = []

    def spill(label: str, path: Path, records: int) -> dict:
        secs, rss, _ = run_measured(spillguard_cmd(path, work / "out.json"))
        result = json.loads((work / "out.json").read_text())
        assert result["summary"]["records_scanned"] == records, result["summary"]
        size = path.stat().st_size
        row = {"tool": "spillguard", "input": label, "records": records, "MB": round(size / 1e6, 1), "seconds": round(secs, 2),
               "records_per_s": round(records / secs), "MB_per_s": round(size / 1e6 / secs, 1), "peak_rss_MB": rss}
        rows.append(row)
        return row

    jl = spill("JSONL", jsonl, args.records)
    spill("Parquet", parquet, args.records)

    secs, rss, out = run_measured([sys.executable, "-c", PRESIDIO_CHILD, str(jsonl), str(args.presidio_records)])
    pres = json.loads(out.strip().splitlines()[-1])
    p_rate = pres["records"] / pres["seconds"]
    rows.append({"tool": "presidio (pattern recognizers, NoOpNlpEngine)", "input": "JSONL text per record", "records": pres["records"],
                 "MB": None, "seconds": round(pres["seconds"], 2), "records_per_s": round(p_rate), "MB_per_s": None, "peak_rss_MB": rss})

    if args.big_gb:
        big = work / "big.jsonl"
        data = jsonl.read_bytes()
        copies = max(1, int(args.big_gb * 1e9 // len(data)))
        with open(big, "wb") as fh:
            for _ in range(copies):
                fh.write(data)
        spill(f"JSONL {big.stat().st_size / 1e9:.1f} GB", big, args.records * copies)
        big.unlink()

    print()
    print(f"{'tool':<48} {'input':<22} {'records':>10} {'MB':>8} {'s':>8} {'rec/s':>10} {'MB/s':>7} {'RSS MB':>7}")
    for r in rows:
        print(f"{r['tool']:<48} {r['input']:<22} {r['records']:>10,} {r['MB'] or '':>8} {r['seconds']:>8} "
              f"{r['records_per_s']:>10,} {r['MB_per_s'] or '':>7} {r['peak_rss_MB']:>7}")
    ratio = jl["records_per_s"] / p_rate
    print(f"\nspillguard / presidio records per second (JSONL): {ratio:,.0f}x")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "ratio_vs_presidio": ratio}, indent=2))
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


def paired(args: argparse.Namespace, jsonl: Path, parquet: Path, work: Path) -> None:
    """Baseline and current code on the same files, alternating, one core each run; medians and ratios."""
    import statistics

    current = Path(__file__).resolve().parent.parent
    print(f"load average before: {os.getloadavg()}")
    for label, path in (("JSONL", jsonl), ("Parquet", parquet)):
        times: dict[str, list[float]] = {"baseline": [], "current": []}
        cpu: dict[str, list[float]] = {"baseline": [], "current": []}
        for r in range(args.rounds):
            order = (("baseline", args.baseline), ("current", current))
            for name, code in order if r % 2 == 0 else order[::-1]:
                secs, cpu_secs, _rss, _ = run_child(spillguard_cmd(path, work / f"out-{name}.json"), code)
                times[name].append(secs)
                cpu[name].append(cpu_secs)
        a = json.loads((work / "out-baseline.json").read_text())["summary"]["records_scanned"]
        b = json.loads((work / "out-current.json").read_text())["summary"]["records_scanned"]
        assert a == b == args.records, (a, b)
        mb, mc = statistics.median(times["baseline"]), statistics.median(times["current"])
        ratios = [c / b for b, c in zip(times["baseline"], times["current"], strict=True)]
        print(f"{label}: baseline median {mb:.2f} s {times['baseline']}, current median {mc:.2f} s {times['current']}, "
              f"current/baseline {mc / mb:.3f} (per-round ratios {[round(x, 3) for x in ratios]})")
        cb, cc = statistics.median(cpu["baseline"]), statistics.median(cpu["current"])
        print(f"{label} CPU: baseline median {cb:.2f} s, current median {cc:.2f} s, current/baseline {cc / cb:.3f} "
              f"(per-round {[round(c / b, 3) for b, c in zip(cpu['baseline'], cpu['current'], strict=True)]})")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
