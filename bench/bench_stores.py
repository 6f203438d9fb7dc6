"""Exhaustive store scans against the fastest plain dump of the same data, in the same run.

PostgreSQL: a table of the generated IoT users (scalars plus jsonb address/alexa/google/devices),
scanned by spillguard vs `COPY (SELECT * FROM users) TO STDOUT` streamed into /dev/null.
Elasticsearch (noida-db stand-in): the same users scanned by spillguard vs a plain point-in-time +
search_after dump with the same page size. Target: spillguard rows/s >= 0.5 x dump rows/s.

    python bench/bench_stores.py --rows 1000000 --es-docs 200000 --workers 2 [--out /tmp/notes/bench_stores.md]

With `--paired BEFORE_TREE` it times PostgreSQL only, round by round and alternating: the COPY dump, the scan
as BEFORE_TREE's code does it and as this tree's does it (each a `spillguard scan` process; run from outside any
checkout), and prints medians of rows/s, ratios to the dump of the same round, and the scans' client CPU:

    cd /tmp && python /path/to/tree/bench/bench_stores.py --rows 300000 --paired /path/to/main --rounds 3
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import orjson  # noqa: E402
import psycopg  # noqa: E402

from spillguard.demo import generate  # noqa: E402
from spillguard.scan.options import ScanOptions  # noqa: E402
from spillguard.scan.run import run_scan  # noqa: E402
from tests.servers import noida_server, postgres_server  # noqa: E402
from tests.storedata import column_types, dataset_records  # noqa: E402

SQL_TYPES = {"json": "jsonb", "int": "bigint", "float": "double precision", "text": "text"}
BASE_USERS = 50_000


def users(tmp: Path) -> list[dict]:
    generate(tmp, users=BASE_USERS, seed=2019)
    return dataset_records(tmp)["users"]


def copy_in(conn: psycopg.Connection, table: str, cols: dict[str, str], recs: list[dict], create: bool) -> None:
    """Records into `table` by COPY (JSON columns as jsonb text), creating the table first when asked."""
    if create:
        ddl = ", ".join(f'"{c}" {SQL_TYPES[t]}' for c, t in cols.items())
        conn.execute(f"CREATE TABLE {table} ({ddl})")
    names = ", ".join(f'"{c}"' for c in cols)
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for r in recs:
            copy.write_row([orjson.dumps(r[c]).decode() if cols[c] == "json" and r.get(c) is not None else r.get(c) for c in cols])


def load_pg(url: str, recs: list[dict], rows: int) -> None:
    cols = column_types(recs)
    with psycopg.connect(url, autocommit=True) as conn:
        copy_in(conn, "users0", cols, recs, create=True)
        # Copies of the base users with distinct ids and e-mails, made by the server: fast to load.
        reps = -(-rows // len(recs))
        special = {"user_id": "user_id || '-' || g AS user_id", "email": "replace(email, '@', '.' || g || '@') AS email"}
        select = ", ".join(special.get(c, f'"{c}"') for c in cols)
        conn.execute(f"CREATE TABLE users AS SELECT {select} FROM users0, generate_series(1, {reps}) g LIMIT {rows}")
        conn.execute("DROP TABLE users0")
        conn.execute("VACUUM ANALYZE users")


def load_pg_distinct(url: str, tmp: Path, rows: int) -> None:
    """`rows` distinct demo users (made in parts of 250,000 with their own seeds), none a copy of another: every column
    as varied as the generator makes it (load_pg repeats 50,000 users, so all but ids and e-mails repeat)."""
    part = 250_000
    with psycopg.connect(url, autocommit=True) as conn:
        cols: dict[str, str] | None = None
        for k, start in enumerate(range(0, rows, part)):
            folder = tmp / f"distinct{k}"
            generate(folder, users=min(part, rows - start), seed=3000 + k)
            recs = dataset_records(folder)["users"]
            first = cols is None
            cols = column_types(recs) if cols is None else cols
            copy_in(conn, "users", cols, recs, create=first)
        conn.execute("VACUUM ANALYZE users")


def copy_dump(url: str) -> tuple[int, float]:
    start = time.perf_counter()
    n = 0
    sql = "COPY (SELECT * FROM users) TO STDOUT"
    with psycopg.connect(url) as conn, conn.cursor() as cur, open(os.devnull, "wb") as sink, cur.copy(sql) as copy:
        for chunk in copy:
            sink.write(chunk)
            n += 1
    return n, time.perf_counter() - start


def file_scan_of_rows(url: str, tmp: Path, workers: int) -> tuple[int, float]:
    """The same rows as JSON lines on disk, scanned as files: what the engine alone manages."""
    path = tmp / "users_rows.jsonl"
    sql = "COPY (SELECT row_to_json(r)::text FROM users r) TO STDOUT WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02', ESCAPE E'\\x01')"
    with psycopg.connect(url) as conn, conn.cursor() as cur, open(path, "wb") as out, cur.copy(sql) as copy:
        for chunk in copy:
            out.write(chunk)
    parts = tmp / "rows"
    parts.mkdir()
    # split into files so that the file scan can use the same number of workers
    with open(path, "rb") as fh:
        lines = fh.readlines()
    step = -(-len(lines) // (workers * 8))
    for i in range(0, len(lines), step):
        (parts / f"part{i // step:03d}.jsonl").write_bytes(b"".join(lines[i : i + step]))
    path.unlink()
    start = time.perf_counter()
    result, _ = run_scan([str(parts)], ScanOptions(seed=1, workers=workers))
    return result.records_scanned, time.perf_counter() - start


def load_es(base: str, recs: list[dict], docs: int) -> None:
    with httpx.Client(base_url=base, timeout=600) as http:
        done = 0
        while done < docs:
            lines = []
            for i in range(min(5000, docs - done)):
                r = dict(recs[(done + i) % len(recs)])
                r["user_id"] = f"{r['user_id']}-{done + i}"
                lines.append(b'{"index":{"_index":"users"}}')
                lines.append(orjson.dumps(r))
            resp = http.post("/_bulk", content=b"\n".join(lines) + b"\n", headers={"content-type": "application/x-ndjson"})
            resp.raise_for_status()
            done += len(lines) // 2
        http.post("/users/_refresh")


def pit_dump(base: str, page: int) -> tuple[int, float]:
    start = time.perf_counter()
    n = 0
    with httpx.Client(base_url=base, timeout=600) as http:
        pit = http.post("/users/_pit", params={"keep_alive": "5m"}).json()["id"]
        after = None
        while True:
            body: dict = {"size": page, "pit": {"id": pit, "keep_alive": "5m"}, "sort": ["_shard_doc"], "track_total_hits": False}
            if after:
                body["search_after"] = after
            hits = orjson.loads(http.post("/_search", content=orjson.dumps(body), headers={"content-type": "application/json"}).content)["hits"]["hits"]
            if not hits:
                break
            n += len(hits)
            after = hits[-1]["sort"]
        http.request("DELETE", "/_pit", json={"id": pit})
    return n, time.perf_counter() - start


def scan(url: str, workers: int) -> tuple[int, float]:
    start = time.perf_counter()
    result, _ = run_scan([url], ScanOptions(seed=1, workers=workers, source_options={"include": ["users", "public.users"]}))
    assert not [e for e in result.errors if e.kind == "error"], result.errors
    return result.records_scanned, time.perf_counter() - start


def scan_process(tree: Path, url: str, workers: int) -> tuple[float, float]:
    """(wall s, client CPU s: the scan and its workers) of `spillguard scan` run with `tree`'s code."""
    import subprocess

    argv = [sys.executable, "-c", "from spillguard.cli import main; main()", "scan", url, "--workers", str(workers),
            "--include", "users", "--format", "json", "--output", os.devnull]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env={**os.environ, "PYTHONPATH": str(tree)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 1):  # 1: personal data found
        raise SystemExit(f"scan with {tree} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return wall, usage.ru_utime + usage.ru_stime


def paired(args: argparse.Namespace) -> None:
    import statistics

    with tempfile.TemporaryDirectory() as tmp, postgres_server() as pg:
        if args.distinct:
            load_pg_distinct(pg.admin_url, Path(tmp), args.rows)
        else:
            load_pg(pg.admin_url, users(Path(tmp)), args.rows)
        trees = {"before": args.paired, "after": ROOT}
        ratio: dict[str, list[float]] = {"before": [], "after": []}
        rate: dict[str, list[float]] = {"before": [], "after": [], "COPY": []}
        cpu: dict[str, list[float]] = {"before": [], "after": []}
        for r in range(args.rounds):
            dump_n, dump_s = copy_dump(pg.admin_url)
            rate["COPY"].append(dump_n / dump_s)
            for name in (("before", "after") if r % 2 == 0 else ("after", "before")):
                wall, used = scan_process(trees[name], pg.url, args.workers)
                rate[name].append(args.rows / wall)
                ratio[name].append((args.rows / wall) / (dump_n / dump_s))
                cpu[name].append(used)
                print(f"round {r + 1} {name}: {wall:.2f} s wall, {used:.2f} s CPU, {ratio[name][-1]:.2f} x COPY", file=sys.stderr)
        print(f"| variant | median rows/s ({args.rounds} rounds) | median ratio to COPY of the same round | median client CPU s |")
        print("| --- | ---: | ---: | ---: |")
        print(f"| COPY (SELECT * FROM users) TO STDOUT | {statistics.median(rate['COPY']):,.0f} | 1.00 | – |")
        for name in ("before", "after"):
            print(f"| scan, {name} | {statistics.median(rate[name]):,.0f} | {statistics.median(ratio[name]):.2f} | {statistics.median(cpu[name]):.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--es-docs", type=int, default=200_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--paired", type=Path, help="another spillguard tree (e.g. main) to time against this one, PostgreSQL only")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--distinct", action="store_true", help="with --paired: every row a distinct demo user (slower to load)")
    args = ap.parse_args()
    os.environ.setdefault("XDG_STATE_HOME", tempfile.mkdtemp(prefix="sgbench-state-"))
    if args.paired is not None:
        paired(args)
        return
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        recs = users(Path(tmp))
        rows_out = []
        with postgres_server() as pg:
            t = time.perf_counter()
            load_pg(pg.admin_url, recs, args.rows)
            print(f"postgres: loaded {args.rows:,} rows in {time.perf_counter() - t:.1f}s", file=sys.stderr)
            dump_n, dump_s = copy_dump(pg.admin_url)
            scan_n, scan_s = scan(pg.url, args.workers)
            rows_out.append(("PostgreSQL", "COPY (SELECT * FROM users) TO STDOUT", dump_n, dump_s, scan_n, scan_s))
            file_n, file_s = file_scan_of_rows(pg.admin_url, Path(tmp), args.workers)
            engine_line = (
                f"Engine ceiling: the same {file_n:,} rows as JSON-lines files, scanned by spillguard with the same workers: "
                f"{file_n / file_s:,.0f} rows/s; the PostgreSQL scan reaches {(scan_n / scan_s) / (file_n / file_s):.2f} of it."
            )
        if args.es_docs:
            with noida_server() as noida:
                t = time.perf_counter()
                load_es(noida.elasticsearch.admin_url, recs, args.es_docs)
                print(f"elasticsearch: loaded {args.es_docs:,} docs in {time.perf_counter() - t:.1f}s", file=sys.stderr)
                dump_n, dump_s = pit_dump(noida.elasticsearch.admin_url, 1000)
                scan_n, scan_s = scan(noida.elasticsearch.url, args.workers)
                rows_out.append(("Elasticsearch (noida-db)", "PIT + search_after, 1000/page", dump_n, dump_s, scan_n, scan_s))
    cmd = f"python bench/bench_stores.py --rows {args.rows} --es-docs {args.es_docs} --workers {args.workers}"
    lines.append(f"Command: `{cmd}` on {os.cpu_count()} cores; spillguard `--workers {args.workers}`, exhaustive.")
    lines.append("")
    lines.append("| store | baseline | rows | baseline rows/s | spillguard rows/s | ratio |")
    lines.append("|---|---|---:|---:|---:|---:|")
    for store, base, dn, ds, sn, ss in rows_out:
        assert dn == sn, (store, dn, sn)
        lines.append(f"| {store} | {base} | {sn:,} | {dn / ds:,.0f} | {sn / ss:,.0f} | {(sn / ss) / (dn / ds):.2f} |")
    lines.append("")
    lines.append(engine_line)
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text("# Store scan benchmark\n\n" + text + "\n")


if __name__ == "__main__":
    main()
