"""PostgreSQL -> PostgreSQL safe copy against `pg_dump -t users | psql` of the same table, in the same run.

Starts its own PostgreSQL (scram, so the destination audit says "protected"), makes a users table of N rows
server-side (text ids, e-mails, names, phones, tokens, timestamps, IPs, plan, notes), then times:
  baseline   pg_dump -t users SRC | psql DST1          (a plain copy, the way Greenmask moves data)
  spillguard spillguard copy SRC DST2 --policy P --no-verify   (hmac x2, mask, generalise x2, drop x2, keep, redact off)
  spillguard the same with the proof scan
and the peak RSS of each spillguard process. Target (issue 12): rows/s >= 0.5 x baseline, RSS < 500 MB.

    python bench/bench_copy.py --rows 1000000 [--workers 2]

With `--paired BEFORE_TREE` it instead times, alternating round by round, `pg_dump | psql`, the copy as
BEFORE_TREE's code does it and as this tree's does it (plain, and checkpointed with --state), and prints medians,
ratios to before and to the `pg_dump | psql` of the same round (run it from outside any checkout):

    python bench/bench_copy.py --rows 100000 --paired /work/main --rounds 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from tests.servers import _pg_bindir, postgres_server  # noqa: E402

POLICY = """
version = 1
[keys.main]
env = "SPILLGUARD_COPY_KEY"
[datasets."public.users"]
to = "users"
[datasets."public.users".fields]
user_id = "hmac"
email = "hmac"
full_name = "drop"
phone = { transform = "mask", keep_suffix = 2 }
api_token = "drop"
signup_at = { transform = "generalise", to = "month" }
last_ip = { transform = "generalise", to = "network" }
plan = "keep"
notes = "keep"
"""

MAKE_USERS = """
CREATE TABLE users AS SELECT
  'usr_' || lpad(g::text, 8, '0') AS user_id,
  'person.' || g || '@example' || (g % 97) || '.com' AS email,
  (ARRAY['Ana','Ben','Chloe','Dev','Eun','Femi'])[1 + g % 6] || ' ' || (ARRAY['Lima','Okafor','Novak','Rossi'])[1 + g % 4] AS full_name,
  '+44 20 7946 ' || lpad((g % 10000)::text, 4, '0') AS phone,
  md5(g::text) || md5((g * 7)::text) AS api_token,
  timestamp '2015-01-01' + (g % 3000) * interval '1 day' + (g % 86400) * interval '1 second' AS signup_at,
  (11 + g % 180) || '.' || (g % 256) || '.' || ((g / 256) % 256) || '.' || (1 + g % 254) AS last_ip,
  (ARRAY['free','plus','pro'])[1 + g % 3] AS plan,
  (ARRAY['likes the night mode','asked about billing','renewal in spring'])[1 + g % 3] AS notes
FROM generate_series(1, {rows}) g
"""


def run_measured(argv: list[str], env: dict[str, str], cpu: list[float] | None = None) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MB, exit code) of one process; its CPU seconds (user + system) appended to `cpu`,
    which other sessions' load disturbs far less than wall time."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if cpu is not None:
        cpu.append(usage.ru_utime + usage.ru_stime)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{argv[:2]} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return wall, usage.ru_maxrss / 1024, proc.returncode


def dump_restore(bindir: str, pg: Any, env: dict[str, str]) -> float:
    """Seconds of `pg_dump -t users SRC | psql DST` into a fresh database `dump_copy`."""
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS dump_copy")
        conn.execute("CREATE DATABASE dump_copy")
    start = time.perf_counter()
    dump = subprocess.Popen([f"{bindir}/pg_dump", "-t", "users", "-h", pg.host, "-p", str(pg.port), "-U", "postgres", "postgres"],
                            stdout=subprocess.PIPE, env=env)
    subprocess.run([f"{bindir}/psql", "-q", "-h", pg.host, "-p", str(pg.port), "-U", "postgres", "dump_copy"],
                   stdin=dump.stdout, stdout=subprocess.DEVNULL, env=env, check=True)
    dump.wait()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--paired", type=Path, help="another spillguard tree (e.g. main) to time against this one, round by round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    exe = shutil.which("spillguard") or str(Path(sys.executable).with_name("spillguard"))
    bindir = _pg_bindir()
    with postgres_server(auth="scram") as pg, tempfile.TemporaryDirectory() as tmp:
        for _ in range(300):
            try:
                psycopg.connect(pg.dsn, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                time.sleep(0.1)
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute(MAKE_USERS.format(rows=args.rows))
            conn.execute("VACUUM ANALYZE users")
            for db in ("dump_copy", "safe_copy", "safe_copy_verified"):
                conn.execute(f"CREATE DATABASE {db}")
        base = pg.dsn.rsplit("/", 1)[0]
        env = {**os.environ, "PGPASSWORD": pg.password or "", "SPILLGUARD_COPY_KEY": "ab" * 32,
               "XDG_STATE_HOME": tmp, "COLUMNS": "200"}
        if args.paired is not None:
            paired(args, pg, base, env, Path(tmp))
            return
        dump_s = dump_restore(bindir, pg, env)
        policy = Path(tmp) / "policy.toml"
        policy.write_text(POLICY)
        src = f"postgresql://postgres@{pg.host}:{pg.port}/postgres"
        copy_s, copy_rss, _ = run_measured([exe, "copy", src, f"{base}/safe_copy", "--policy", str(policy), "--no-verify", "--workers", str(args.workers)], env)
        ver_s, ver_rss, code = run_measured([exe, "copy", src, f"{base}/safe_copy_verified", "--policy", str(policy), "--workers", str(args.workers)], env)
        with psycopg.connect(f"{base}/safe_copy") as conn:
            assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == args.rows
    n = args.rows
    print("| rows | pg_dump \\| psql rows/s | spillguard copy rows/s (ratio, peak RSS) | with the proof scan rows/s (ratio, peak RSS, exit) |")
    print("| ---: | ---: | ---: | ---: |")
    print(f"| {n:,} | {n / dump_s:,.0f} | {n / copy_s:,.0f} ({dump_s / copy_s:.2f}, {copy_rss:.0f} MB) "
          f"| {n / ver_s:,.0f} ({dump_s / ver_s:.2f}, {ver_rss:.0f} MB, {code}) |")


def paired(args: argparse.Namespace, pg: Any, base: str, env: dict[str, str], tmp: Path) -> None:
    """Before (another tree) and after (this tree), plain and checkpointed, alternating; medians and ratios."""
    import statistics

    policy = tmp / "policy.toml"
    policy.write_text(POLICY)
    src = f"postgresql://postgres@{pg.host}:{pg.port}/postgres"
    variants = {"before": (args.paired, []), "after": (ROOT, []), "after --state": (ROOT, ["--state", str(tmp / "copy.state")])}
    times: dict[str, list[float]] = {v: [] for v in variants}
    cpus: dict[str, list[float]] = {v: [] for v in variants}
    to_dump: dict[str, list[float]] = {v: [] for v in variants}
    rss: dict[str, float] = dict.fromkeys(variants, 0.0)
    dumps: list[float] = []
    for r in range(args.rounds):
        dumps.append(dump_restore(_pg_bindir(), pg, env))
        print(f"round {r + 1} pg_dump | psql: {dumps[-1]:.2f} s wall", file=sys.stderr)
        order = list(variants.items()) if r % 2 == 0 else list(reversed(variants.items()))
        for name, (tree, extra) in order:
            (tmp / "copy.state").unlink(missing_ok=True)
            argv = [sys.executable, "-c", "from spillguard.cli import main; main()", "copy", src, f"{base}/safe_copy",
                    "--policy", str(policy), "--no-verify", "--workers", str(args.workers), "--replace", *extra]
            wall, peak, _ = run_measured(argv, {**env, "PYTHONPATH": str(tree)}, cpus[name])
            times[name].append(wall)
            to_dump[name].append(dumps[-1] / wall)
            rss[name] = max(rss[name], peak)
            print(f"round {r + 1} {name}: {wall:.2f} s wall, {cpus[name][-1]:.2f} s CPU", file=sys.stderr)
    n = args.rows
    before, before_cpu = statistics.median(times["before"]), statistics.median(cpus["before"])
    print(f"| variant | median wall s ({args.rounds} rounds) | rows/s | ratio to before | median ratio to `pg_dump \\| psql` of the round "
          "| median CPU s | CPU ratio to before | peak RSS |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    dump = statistics.median(dumps)
    print(f"| `pg_dump \\| psql` | {dump:.2f} | {n / dump:,.0f} | – | 1.00 | – | – | – |")
    for name in variants:
        med, med_cpu = statistics.median(times[name]), statistics.median(cpus[name])
        print(f"| {name} | {med:.2f} | {n / med:,.0f} | {before / med:.2f} | {statistics.median(to_dump[name]):.2f} | {med_cpu:.2f} "
              f"| {before_cpu / med_cpu:.2f} | {rss[name]:.0f} MB |")


if __name__ == "__main__":
    main()
