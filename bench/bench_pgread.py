"""Reading a PostgreSQL table into Arrow, nothing else: the row_to_json reading against the COPY text one.

Starts its own PostgreSQL, loads the generated IoT users (scalars plus jsonb columns, as bench_stores.py does),
then reads every partition of the table with `PostgresTable.read_row_json` and `PostgresTable.read`, alternating
round by round in this process, and reports per row: the client's CPU (this process's CPU time, in which
does all the work) and the server backend's CPU (from /proc, the server runs on this machine).

    cd /tmp && python /path/to/tree/bench/bench_pgread.py --rows 300000 --rounds 3
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

from bench.bench_stores import load_pg, users  # noqa: E402
from tests.servers import postgres_server  # noqa: E402


def backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_once(url: str, row_json: bool) -> tuple[int, float, float, float]:
    """(rows, wall s, client CPU s, server CPU s) of reading the users table once."""
    from spillguard.sources import open_target

    source = open_target(url, partition_rows=50_000)
    try:
        ds = source.dataset("public.users")
        pid = source.connection().info.backend_pid
        server0, cpu0, wall0 = backend_cpu(pid), time.process_time(), time.perf_counter()
        rows = 0
        read = ds.read_row_json if row_json else ds.read
        for part in ds.partitions():
            for table in read(part, lambda *a: None):
                rows += table.num_rows
        return rows, time.perf_counter() - wall0, time.process_time() - cpu0, backend_cpu(pid) - server0
    finally:
        source.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, postgres_server() as pg:
        load_pg(pg.admin_url, users(Path(tmp)), args.rows)
        out: dict[str, list[tuple[int, float, float, float]]] = {"row_to_json": [], "COPY text": []}
        for r in range(args.rounds):
            for name in (("row_to_json", "COPY text") if r % 2 == 0 else ("COPY text", "row_to_json")):
                out[name].append(read_once(pg.url, name == "row_to_json"))
                n, wall, cpu, server = out[name][-1]
                print(f"round {r + 1} {name}: {n:,} rows, {wall:.2f} s wall, client {cpu:.2f} s, server {server:.2f} s", file=sys.stderr)
    print(f"| reading ({args.rows:,} rows, median of {args.rounds}) | rows/s | client CPU µs/row | server CPU µs/row |")
    print("| --- | ---: | ---: | ---: |")
    for name, runs in out.items():
        n = runs[0][0]
        print(f"| {name} | {n / statistics.median(r[1] for r in runs):,.0f} | {1e6 * statistics.median(r[2] for r in runs) / n:.2f} "
              f"| {1e6 * statistics.median(r[3] for r in runs) / n:.2f} |")


if __name__ == "__main__":
    main()
