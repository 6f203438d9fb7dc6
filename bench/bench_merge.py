"""The driver's exact merge: 100 M subject hashes from 100 partitions, in memory and spilled to disk.

    python bench/bench_merge.py --partitions 100 --per-partition 1000000 --budget-mb 256

Each partition's result is a sorted array of distinct keyed 64-bit hashes, as a worker sends it; the hashes are
uniform and practically all distinct (the worst case for memory: 100 M people). Every mode runs in a fresh child
process: `exact` (budget above the data: all runs in memory), `spill` (a small budget: runs beyond it go to
memory-mapped files in a private temp folder), and for reference `concat` (one np.concatenate + sort + unique,
what a naive driver would do), and `approx` (--approx-subjects: a HyperLogLog sketch per partition, merged; its
relative error against the exact count is printed). Time is the merge and the final count, not the generation of the partitions; peak
memory is the largest anonymous resident memory seen (RssAnon sampled every 20 ms: file pages of spilled runs
are the kernel's page cache and are not counted) and the child's VmHWM. The load average is printed with each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, sys, threading, time
import numpy as np
from spillguard.detect.keymerge import spill_pool
from spillguard.detect.state import KeySet

mode, parts, per, budget = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0

peak = [0]
stop = threading.Event()
def sample():
    while not stop.is_set():
        peak[0] = max(peak[0], status("RssAnon"))
        time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()
base = status("RssAnon")
rng = np.random.default_rng(1)

def partition():
    keys = rng.integers(1, 1 << 64, per, dtype=np.uint64, endpoint=False)
    keys.sort()
    return keys

merge_s = 0.0
estimate = None
if mode == "approx":
    from spillguard.detect.sketch import HllSketch
    total = HllSketch()
    for _ in range(parts):
        keys = partition()
        t = time.perf_counter()
        part = HllSketch()
        part.add(keys)  # done by the worker in a real scan; timed here too
        total.update(part)
        merge_s += time.perf_counter() - t
    t = time.perf_counter()
    count = len(total)
    merge_s += time.perf_counter() - t
    spilled = 0
elif mode == "concat":
    chunks = [partition() for _ in range(parts)]
    t = time.perf_counter()
    merged = np.concatenate(chunks)
    del chunks
    merged.sort()
    count = int(np.count_nonzero(merged[1:] != merged[:-1]) + 1)
    merge_s = time.perf_counter() - t
    spilled = 0
else:
    with spill_pool(budget) as pool:
        total = KeySet()
        for _ in range(parts):
            keys = partition()
            part = KeySet()
            part.__setstate__({"keys": keys})  # a partition result as it arrives (sorted, distinct)
            t = time.perf_counter()
            total.update(part)
            merge_s += time.perf_counter() - t
            del part, keys
        t = time.perf_counter()
        count = len(total)
        merge_s += time.perf_counter() - t
        spilled = pool.spilled
stop.set()
print(json.dumps({"mode": mode, "count": count, "merge_s": round(merge_s, 2), "peak_anon_mb": round((peak[0] - base) / 2**20),
                  "vmhwm_mb": round(status("VmHWM") / 2**20), "spilled_mb": round(spilled / 2**20)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--partitions", type=int, default=100)
    ap.add_argument("--per-partition", type=int, default=1_000_000)
    ap.add_argument("--budget-mb", type=int, default=256, help="memory budget of the spill mode")
    ap.add_argument("--modes", default="exact,spill,concat,approx")
    args = ap.parse_args()
    total = args.partitions * args.per_partition
    print(f"{total:,} hashes from {args.partitions} partitions", flush=True)
    counts = set()
    for mode in args.modes.split(","):
        budget = (64 << 30) if mode == "exact" else args.budget_mb << 20
        before = os.getloadavg()
        out = subprocess.run([sys.executable, "-c", CHILD, mode, str(args.partitions), str(args.per_partition), str(budget)],
                             check=True, capture_output=True, text=True)
        doc = json.loads(out.stdout.strip().splitlines()[-1])
        doc["budget_mb"] = budget >> 20 if mode != "concat" else None
        doc["load_before"] = [round(x, 2) for x in before]
        doc["load_after"] = [round(x, 2) for x in os.getloadavg()]
        if mode == "approx":
            exact = next(iter(counts)) if counts else None
            if exact:
                doc["relative_error"] = round((doc["count"] - exact) / exact, 5)
        else:
            counts.add(doc["count"])
        print(json.dumps(doc), flush=True)
    if len(counts) != 1:
        raise SystemExit(f"modes disagree: {counts}")


if __name__ == "__main__":
    main()
