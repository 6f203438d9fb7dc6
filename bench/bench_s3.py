"""Scan of the same generated JSON Lines from local disk and from an S3 API server, side by side in one run.

Generates the demo dataset's users file (USERS people), uploads it to the S3 stand-in the tests use (moto's S3
backend behind S3's access control, tests/s3_standin.py, on a loopback port), and times, in alternating rounds:
  local   spillguard.scan(FILE)                       (the file read from disk)
  s3      spillguard.scan(s3://bench/users.jsonl)     (ranged GETs pinned by If-Match over HTTP)
both in this process with the same partition size, so the difference is the transport. Prints medians, the
ratio s3/local and the load average. The stand-in is Python (moto serving from memory): its throughput, not
that of a real object store, bounds the s3 figure.

    python bench/bench_s3.py [--users 100000] [--rounds 5] [--part-mb 16] [--workers 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402

import spillguard  # noqa: E402
from spillguard.demo import generate  # noqa: E402
from spillguard.sources import files  # noqa: E402
from tests.servers import s3_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--part-mb", type=int, default=16, help="byte-range partition size (both sides)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    files.PART_BYTES = args.part_mb << 20
    with tempfile.TemporaryDirectory(prefix="sg-bench-s3-") as tmp, s3_server() as s3:
        os.environ.update(XDG_STATE_HOME=tmp, AWS_ACCESS_KEY_ID=s3.user or "", AWS_SECRET_ACCESS_KEY=s3.password or "",
                          AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)  # fmt: skip
        generate(tmp, users=args.users, seed=2019, compress=False)
        path = Path(tmp) / "users.jsonl"
        size = path.stat().st_size
        owner = boto3.client("s3", endpoint_url=s3.url, region_name="us-east-1")
        owner.create_bucket(Bucket="bench")
        owner.upload_file(str(path), "bench", "users.jsonl")
        targets = {"local": str(path), "s3": "s3://bench/users.jsonl"}
        times: dict[str, list[float]] = {k: [] for k in targets}
        counts: dict[str, int] = {}
        for _ in range(args.rounds):
            for name, target in targets.items():
                started = time.perf_counter()
                result = spillguard.scan([target], endpoint_url=s3.url, workers=args.workers)
                times[name].append(time.perf_counter() - started)
                counts[name] = result.to_json()["summary"]["records_scanned"]
        assert counts["local"] == counts["s3"] == args.users, counts
        load = os.getloadavg()
        local, remote = statistics.median(times["local"]), statistics.median(times["s3"])
        print(f"file {size / 1e6:.1f} MB, {args.users:,} records, partitions of {args.part_mb} MB, workers {args.workers}, "
              f"{args.rounds} rounds")  # fmt: skip
        print(f"local  median {local:.2f} s  ({size / 1e6 / local:.1f} MB/s)  runs {[round(t, 2) for t in times['local']]}")
        print(f"s3     median {remote:.2f} s  ({size / 1e6 / remote:.1f} MB/s)  runs {[round(t, 2) for t in times['s3']]}")
        print(f"ratio s3/local {remote / local:.2f}x; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
