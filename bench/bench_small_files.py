"""Many small files (a data-lake export): the scan must stay linear in the number of files.

    python bench/bench_small_files.py --files 20000 --workers 1 2

Generates FILES one-line JSON Lines files (1,000 per folder) whose records carry a user id and an e-mail,
then runs `spillguard scan DIR --format json` end to end (process start-up included) for a quarter, a
half and all of the files, pinned to as many cores as workers (`taskset`). Reports wall and CPU seconds
(user + system of the scan and its workers, from wait4), files per second and per CPU-second, and checks
the result against the ground truth (every record scanned, every e-mail and person counted).
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

ROOT = Path(__file__).resolve().parent.parent


def generate(folder: Path, files: int) -> None:
    for i in range(files):
        sub = folder / f"part-{i // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"rec-{i:06d}.jsonl").write_text(
            json.dumps({"user_id": i, "email": f"user{i}@example.com", "device": f"cam-{i % 7}", "note": "hello"}) + "\n"
        )


def scan(folder: Path, workers: int) -> tuple[float, dict]:
    """(wall seconds, JSON result) of one scan process (its CPU time is read by the caller, os.times)."""
    cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0))[:workers])
    cmd = [sys.executable, "-c", "from spillguard.cli import main; main()", "scan", str(folder), "--format", "json",
           "--workers", str(workers), "--fail-on", "never", "--no-progress"]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", cpus, *cmd]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out, err = proc.communicate()
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"scan failed ({proc.returncode}): {err.decode()[-500:]}")
    return wall, json.loads(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sg-small-") as tmp:
        print(f"{'files':>8} {'workers':>7} {'wall s':>8} {'cpu s':>7} {'files/s':>8} {'files/cpu-s':>11}")
        for n in (args.files // 4, args.files // 2, args.files):
            folder = Path(tmp) / str(n)
            generate(folder, n)
            for w in args.workers:
                before = os.times()
                wall, doc = scan(folder, w)
                after = os.times()
                cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
                summary = doc["summary"]
                assert summary["records_scanned"] == n, summary
                assert summary["categories"]["email"]["subjects"] == n and summary["subjects_affected"] == n, summary
                assert summary["complete"] and len(doc["datasets"]) == n
                print(f"{n:>8,} {w:>7} {wall:>8.2f} {cpu:>7.2f} {n / wall:>8,.0f} {n / cpu:>11,.0f}", flush=True)
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()
