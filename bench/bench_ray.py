"""Scan throughput on Ray: Ray with 2 CPUs vs Ray with 1 CPU vs the local process pool (2 workers), side by side.

    python bench/bench_ray.py --gb 2 --users 500000 --rounds 3
    python bench/bench_ray.py --gb 0.5 --users 200000 --rounds 3 --baseline /tmp/old-checkout   # A/B

With --baseline DIR (a checkout of another commit), the Ray configurations run a second time with that code,
in the same rounds (`ray1@base`, `ray2@base`): an A/B of two versions of the executor side by side.

The demo generator writes users.jsonl for --users customers; it is repeated to --gb gigabytes (a scan's cost
is per byte; repeated people are counted once, exactly). Each round runs the three configurations in a
rotating order, each in a fresh child process that starts its Ray instance (or pool) first and times only the
scan, so Ray's start-up (a few seconds, paid once per cluster, not per scan) is left out. Every child's counts
must agree. Ray's workers run at the pool's priority (RAY_worker_niceness=0, as spillguard sets it for a Ray
instance it starts; Ray's default of nice 15 lets any other load on a shared machine starve them). Prints per-round times with the load average, medians and the two ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, os, sys, time
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ["RAY_worker_niceness"] = "0"  # as spillguard sets it for a Ray it starts itself: the pool's priority
from spillguard.scan.options import ScanOptions
from spillguard.scan.run import run_scan
kind, cpus, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
executor = None
if kind == "ray":
    import logging, ray
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
             object_store_memory=512 << 20)
    from spillguard.scan.ray_executor import RayExecutor
    executor = RayExecutor()
else:
    from spillguard.scan.executors import ProcessPoolExecutor
    executor = ProcessPoolExecutor(cpus)
t, cpu = time.perf_counter(), time.process_time()
result, _ = run_scan([path], ScanOptions(seed=1, workers=cpus), executor=executor)
seconds, driver_cpu = time.perf_counter() - t, time.process_time() - cpu  # the scanning process's own CPU time
executor.shutdown()
if kind == "ray":
    ray.shutdown()
import spillguard
print(json.dumps({"seconds": seconds, "records": result.records_scanned, "subjects": result.subjects_affected,
                  "complete": result.complete, "driver_cpu_s": driver_cpu, "code": os.path.dirname(os.path.dirname(spillguard.__file__))}))
"""

CONFIGS = [("pool", 2, ""), ("ray", 1, ""), ("ray", 2, "")]


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def make_data(work: Path, users: int, gb: float) -> Path:
    demo = work / "demo"
    if not (demo / "users.jsonl").exists():
        code = "import sys; from spillguard.demo import generate; generate(sys.argv[1], users=int(sys.argv[2]), seed=42, compress=False)"
        subprocess.run([sys.executable, "-c", code, str(demo), str(users)], check=True)
    big = work / f"users-{gb:g}gb.jsonl"
    if not big.exists():
        data = (demo / "users.jsonl").read_bytes()
        copies = max(1, math.ceil(gb * 1e9 / len(data)))
        with open(big, "wb") as fh:
            for _ in range(copies):
                fh.write(data)
    return big


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=2.0)
    ap.add_argument("--users", type=int, default=500_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", type=Path, default=None, help="folder for the data (kept; default: a temp folder)")
    ap.add_argument("--baseline", type=Path, default=None, help="a checkout of other code: its Ray runs side by side")
    args = ap.parse_args()
    configs = CONFIGS + ([("ray", 1, "@base"), ("ray", 2, "@base")] if args.baseline else [])
    here = str(Path(__file__).resolve().parent.parent)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-ray-"))
    work.mkdir(parents=True, exist_ok=True)
    big = make_data(work, args.users, args.gb)
    size = big.stat().st_size
    print(f"data: {big} {size / 1e9:.2f} GB; load {load()}", flush=True)
    times: dict[str, list[float]] = {f"{k}{c}{v}": [] for k, c, v in configs}
    counts = set()
    for r in range(args.rounds):
        order = configs[r % len(configs):] + configs[: r % len(configs)]
        for kind, cpus, version in order:
            before = load()
            env = {**os.environ, "PYTHONPATH": str(args.baseline.resolve()) if version else here}
            # cwd outside any checkout: `python -c` puts the working directory ahead of PYTHONPATH.
            out = subprocess.run([sys.executable, "-c", CHILD, kind, str(cpus), str(big)], check=True, capture_output=True, text=True,
                                 env=env, cwd=work)
            doc = json.loads(out.stdout.strip().splitlines()[-1])
            if os.path.realpath(doc["code"]) != os.path.realpath(env["PYTHONPATH"]):
                raise SystemExit(f"{kind}{cpus}{version} ran the code in {doc['code']}, not {env['PYTHONPATH']}")
            counts.add((doc["records"], doc["subjects"], doc["complete"]))
            times[f"{kind}{cpus}{version}"].append(doc["seconds"])
            print(f"round {r + 1} {kind}{cpus}{version}: {doc['seconds']:.1f} s ({size / doc['seconds'] / 1e6:.0f} MB/s), "
                  f"scanning process {doc['driver_cpu_s']:.1f} s CPU; load before {before}, after {load()}", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = {"ray2_speedup_over_ray1": round(med["ray1"] / med["ray2"], 2), "ray2_time_over_pool2": round(med["ray2"] / med["pool2"], 2)}
    if args.baseline:
        ratios["base_ray2_speedup_over_ray1"] = round(med["ray1@base"] / med["ray2@base"], 2)
        ratios["base_ray2_time_over_pool2"] = round(med["ray2@base"] / med["pool2"], 2)
    best = {k: min(v) for k, v in times.items()}  # the least disturbed run of each, on a shared machine
    ratios["best_ray2_speedup_over_ray1"] = round(best["ray1"] / best["ray2"], 2)
    ratios["best_ray2_time_over_pool2"] = round(best["ray2"] / best["pool2"], 2)
    if args.baseline:
        ratios["best_base_ray2_speedup_over_ray1"] = round(best["ray1@base"] / best["ray2@base"], 2)
    print(json.dumps({"gb": round(size / 1e9, 2), "medians_s": {k: round(v, 2) for k, v in med.items()},
                      "best_s": {k: round(v, 2) for k, v in best.items()}, **ratios,
                      "counts": sorted(counts), "load_end": load(), "finished": time.strftime("%H:%M:%S")}))
    if len(counts) != 1:
        raise SystemExit(f"configurations disagree: {counts}")


if __name__ == "__main__":
    main()
