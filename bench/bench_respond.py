"""Respond at scale: revoke 1 M leaked tokens by digest in PostgreSQL, end 1 M Redis sessions.

Target (issue 11): >= 50,000 per second each. The servers are throwaway instances started here on
free loopback ports. `setup` starts them, loads the data once (a template database; the Redis
sessions are re-made before each run) and waits; `run` resets one store, then plans and executes
its playbook through the library API and prints the measured seconds; `stop` ends `setup`.

    python bench/bench_respond.py setup --dir /tmp/br --tokens 1000000 --sessions 1000000 &
    /usr/bin/time -v python bench/bench_respond.py run --dir /tmp/br --store postgresql
    /usr/bin/time -v python bench/bench_respond.py run --dir /tmp/br --store redis --scope all
    /usr/bin/time -v python bench/bench_respond.py run --dir /tmp/br --store redis --scope exact
    python bench/bench_respond.py stop --dir /tmp/br

Before/after in one run (alternating order, medians, load averages), against a checkout of an earlier commit:

    git archive <commit> spillguard | tar -x -C /tmp/before
    python bench/bench_respond.py compare --dir /tmp/br --before /tmp/before --store redis --scope exact --rounds 3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# `--code DIR`: measure the spillguard package found in DIR (a checkout of an earlier commit) instead of this tree's.
CODE = Path(sys.argv[sys.argv.index("--code") + 1]).resolve() if "--code" in sys.argv[:-1] else ROOT
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(CODE))
KEY = "5f" * 32
os.environ.setdefault("SPILLGUARD_FINGERPRINT_KEY", KEY)

import pyarrow as pa  # noqa: E402

from spillguard.leaked import SCHEMA, sha256_hex, write_leaked  # noqa: E402


def _token_sql(n: int, salt: str) -> str:
    return f"'{salt}' || md5(i::text) || md5((i * 7)::text)"


def setup(d: Path, tokens: int, sessions: int) -> None:
    import psycopg

    from tests.servers import postgres_server, redis_server

    d.mkdir(parents=True, exist_ok=True)
    total = tokens + tokens // 2  # a third of the store did not leak
    with postgres_server() as pg, redis_server() as rs:
        for _ in range(100):
            try:
                conn = psycopg.connect(pg.dsn, autocommit=True)
                break
            except psycopg.OperationalError:
                time.sleep(0.1)
        conn.execute("CREATE DATABASE bench_template")
        tpl = pg.url.rsplit("/", 1)[0] + "/bench_template"
        with psycopg.connect(tpl, autocommit=True) as t:
            t.execute("""CREATE TABLE oauth2_provider_accesstoken (id bigserial primary key, user_id bigint, token text not null,
                         token_checksum varchar(64) not null unique, expires timestamptz, scope text)""")
            t.execute(f"""INSERT INTO oauth2_provider_accesstoken (user_id, token, token_checksum, scope)
                SELECT i, {_token_sql(total, 'a')}, encode(sha256(convert_to({_token_sql(total, 'a')}, 'UTF8')), 'hex'), 'read'
                FROM generate_series(1, {total}) AS i""")
            t.execute("VACUUM ANALYZE oauth2_provider_accesstoken")
        conn.close()
        leaked = [f"a{hashlib.md5(str(i).encode()).hexdigest()}{hashlib.md5(str(i * 7).encode()).hexdigest()}" for i in range(1, tokens + 1)]
        digests = sha256_hex(pa.array(leaked))
        n = len(leaked)
        const = {"rule": "opaque_token_field", "category": "secret", "target": "copy.jsonl", "dataset": "copy.jsonl", "field": "token"}
        table = pa.table({"fingerprint": pa.repeat(pa.scalar("hmac-sha256:-"), n), "sha256": digests, "sha256_tail": pa.nulls(n, pa.string()),
                          **{k: pa.repeat(pa.scalar(v), n) for k, v in const.items()}, "subject": pa.array([0] * n, pa.uint64()),
                          "hmac": pa.nulls(n, pa.string())}, schema=SCHEMA)
        write_leaked(d / "leaked.sgs", table, bytes.fromhex(KEY))
        del leaked, digests, table
        # Affected people for scope exact: every other user owns the Redis sessions to end.
        (d / "people.csv").write_text("subject,email,categories,datasets\n" + "".join(f"{u},,secret,copy\n" for u in range(0, sessions, 2)))
        (d / "env.json").write_text(json.dumps({"pg": pg.url.rsplit("/", 1)[0], "pg_admin": pg.dsn, "redis": rs.url,
                                                "tokens": tokens, "sessions": sessions}))
        for name, body in {
            "pg.toml": f'[[action]]\npreset = "django-oauth-toolkit-access"\nstore = "{pg.url.rsplit("/", 1)[0]}/bench"\n',
            "redis.toml": f'[[action]]\npreset = "express-session"\nstore = "{rs.url}"\n',
        }.items():
            (d / name).write_text(f'incident = "bench"\nleaked = "leaked.sgs"\nsubjects = "people.csv"\njournal = "respond.journal"\n'
                                  f'[limits]\nbatch = 10000\n{body}')
        print(f"ready: {total:,} tokens ({tokens:,} leaked) in PostgreSQL, Redis at {rs.url}", flush=True)
        (d / "ready").touch()
        while not (d / "stop").exists():
            time.sleep(0.5)


def _reset(d: Path, env: dict, store: str) -> None:
    if store == "postgresql":
        import psycopg

        with psycopg.connect(env["pg_admin"], autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS bench")
            conn.execute("CREATE DATABASE bench TEMPLATE bench_template")
    else:
        import redis

        client = redis.Redis.from_url(env["redis"])
        client.flushall()
        pipe = client.pipeline(transaction=False)
        for u in range(env["sessions"]):
            pipe.set(f"sess:{hashlib.sha256(str(u).encode()).hexdigest()[:32]}",
                     '{"cookie":{"originalMaxAge":86400000,"httpOnly":true,"path":"/"},"passport":{"user":' + str(u) + "}}")
            if u % 10_000 == 9_999:
                pipe.execute()
        pipe.execute()
        client.close()
    (d / "respond.journal").unlink(missing_ok=True)


def run(d: Path, store: str, scope: str) -> None:
    from spillguard.respond.runner import execute_response, open_response, plan_response

    env = json.loads((d / "env.json").read_text())
    _reset(d, env, store)
    t0 = time.perf_counter()
    resp = open_response(d / ("pg.toml" if store == "postgresql" else "redis.toml"), scope=scope, execute=True)
    t1 = time.perf_counter()
    plan_response(resp)
    t2 = time.perf_counter()
    execute_response(resp)
    t3 = time.perf_counter()
    doc = resp.execute_dict()
    resp.close()
    done = sum(a["done"] for a in doc["actions"])
    expected = env["tokens"] if store == "postgresql" else env["sessions"] if scope == "all" else env["sessions"] // 2
    assert done == expected, f"{done:,} done, {expected:,} expected"
    line = (f"{store} scope={scope}: {done:,} {'tokens revoked' if store == 'postgresql' else 'sessions ended'}; "
            f"load {t1 - t0:.2f} s, plan {t2 - t1:.2f} s, execute {t3 - t2:.2f} s; "
            f"{done / (t3 - t1):,.0f}/s plan+execute, {done / (t3 - t2):,.0f}/s execute")
    print(line, flush=True)
    with open(d / "results.txt", "a") as fh:
        fh.write(line + "\n")
    print("RESULT " + json.dumps({"done": done, "plan": t2 - t1, "execute": t3 - t2, "rate": done / (t3 - t1),
                                   "code": str(CODE), "load": os.getloadavg()[0]}), flush=True)


def compare(d: Path, before: Path, store: str, scope: str, rounds: int) -> None:
    """Rounds of before/after runs, alternating in one process tree on the same data: medians and their ratio."""
    import statistics
    import subprocess

    rates: dict[str, list[float]] = {"before": [], "after": []}
    loads: list[float] = []
    for r in range(rounds):
        for label, code in (("before", before), ("after", ROOT)) if r % 2 == 0 else (("after", ROOT), ("before", before)):
            out = subprocess.run([sys.executable, __file__, "run", "--dir", str(d), "--store", store, "--scope", scope,
                                  "--code", str(code)], capture_output=True, text=True, check=True).stdout
            res = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
            rates[label].append(res["rate"])
            loads.append(res["load"])
            print(f"round {r + 1} {label}: {res['rate']:,.0f}/s (plan {res['plan']:.2f} s, execute {res['execute']:.2f} s, "
                  f"load {res['load']:.2f})", flush=True)
    mb, ma = statistics.median(rates["before"]), statistics.median(rates["after"])
    print(f"{store} scope={scope}: before median {mb:,.0f}/s, after median {ma:,.0f}/s, ratio {ma / mb:.2f}; "
          f"1-min load average {min(loads):.2f}-{max(loads):.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=("setup", "run", "compare", "stop"))
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--sessions", type=int, default=1_000_000)
    ap.add_argument("--store", choices=("postgresql", "redis"), default="postgresql")
    ap.add_argument("--scope", choices=("exact", "all"), default="exact")
    ap.add_argument("--code", type=Path, default=ROOT, help="run: the tree whose spillguard package is measured")
    ap.add_argument("--before", type=Path, help="compare: a checkout of the earlier commit (its spillguard/ is enough)")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    if a.command == "setup":
        setup(a.dir, a.tokens, a.sessions)
    elif a.command == "run":
        run(a.dir, a.store, a.scope)
    elif a.command == "compare":
        if a.before is None:
            ap.error("compare needs --before DIR")
        compare(a.dir, a.before, a.store, a.scope, a.rounds)
    else:
        (a.dir / "stop").touch()


if __name__ == "__main__":
    main()
