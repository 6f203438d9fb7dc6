"""No credential in a target URL ever reaches an output, an error line or a written file (issue 9 fix 1,
issue 10 item 17), and the report joins an audit and a scan that spell one store differently (fix 2).

Real servers, the real entry point: every stdout, stderr and file a scan, an audit and a watch produce
is searched for the password (raw and percent-encoded) and for the secret query values, SQLite files
as bytes. The password holds an unescaped '@' and '#', which is how the partial leak happened.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from spillguard.report import build_report
from spillguard.report.inputs import validate_audit, validate_scan
from tests.report.test_report_data import T0, make_store
from tests.servers import free_port, postgres_server, redis_command, redis_server

ROOT = Path(__file__).resolve().parent.parent
PW = "Scan@Pw#9911-kq7Z"  # the server's real password, written unescaped in URLs
SSL_PW = "SslKeyPw-4rT9x"
TOKEN = "QueryTok-3nV8z"
WRONG_PW = "Other@Pw#5521-mm2W"


def _needles() -> list[bytes]:
    out = []
    for s in (PW, SSL_PW, TOKEN, WRONG_PW):
        for form in (s, quote(s, safe=""), quote(s)):
            out.append(form.encode())
    # Any long enough tail of the password (what `***@Pw#9911@host` used to leave behind).
    out += [b"Pw#9911", b"9911-kq7Z", b"Pw%239911", b"5521-mm2W"]
    return out


def assert_no_secret(where: str, data: bytes | str) -> None:
    blob = data.encode() if isinstance(data, str) else data
    for needle in _needles():
        assert needle not in blob, f"{where} shows a credential ({needle!r})"


def assert_files_clean(paths: Iterable[Path]) -> int:
    n = 0
    for p in paths:
        for candidate in (p, Path(f"{p}-wal"), Path(f"{p}-shm"), Path(f"{p}-journal")):
            if candidate.exists():
                assert_no_secret(str(candidate), candidate.read_bytes())
                n += 1
    return n


def run(*args: str, cwd: Path, columns: int = 200) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if "PASSWORD" not in k and k not in ("PGPASSWORD", "MYSQL_PWD")}
    env.update(PYTHONPATH=str(ROOT), COLUMNS=str(columns), XDG_STATE_HOME=str(cwd / "state"))
    res = subprocess.run(
        [sys.executable, "-c", "from spillguard.cli import main; main()", *args],
        capture_output=True, timeout=120, env=env, cwd=cwd,
    )  # fmt: skip
    assert b"Traceback" not in res.stderr, res.stderr.decode()
    assert_no_secret(f"`spillguard {' '.join(args[:2])}` stdout", res.stdout)
    assert_no_secret(f"`spillguard {' '.join(args[:2])}` stderr", res.stderr)
    return res


@pytest.fixture(scope="module")
def pg():
    with postgres_server(auth="scram", password=PW) as srv:
        with psycopg.connect(srv.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE users (id int PRIMARY KEY, email text, phone text)")
            conn.execute(
                "INSERT INTO users SELECT i, 'person' || i || '@example.com', '+49 30 ' || (1000000 + i) "
                "FROM generate_series(1, 120) i"
            )
        yield srv


def test_scan_outputs_state_subjects_and_errors_never_show_the_password(pg, tmp_path: Path) -> None:
    userinfo = f"postgresql://postgres:{PW}@127.0.0.1:{pg.port}/postgres"
    in_query = (
        f"postgresql://postgres@127.0.0.1:{pg.port}/postgres?password={quote(PW, safe='')}"
        f"&sslpassword={SSL_PW}&application_name=sg"
    )
    written: list[Path] = []
    for i, url in enumerate((userinfo, in_query)):
        for fmt in ("table", "json", "ndjson"):
            res = run("scan", "--workers", "1", "--format", fmt, url, cwd=tmp_path)
            assert res.returncode == 1, res.stderr.decode()  # found e-mails: proves the login worked
            assert (b"127.0.0.1" if fmt != "table" else b"Scanned 120 records") in res.stdout
            out = tmp_path / f"out{i}.{fmt}"
            res = run("scan", "--workers", "2", "--format", fmt, "-o", str(out), url, cwd=tmp_path)
            assert res.returncode == 1 and out.stat().st_size > 0
            written.append(out)
        doc = json.loads((tmp_path / f"out{i}.json").read_text())
        assert doc["summary"]["records_scanned"] == 120
        assert doc["targets"] == [
            f"postgresql://postgres:***@127.0.0.1:{pg.port}/postgres" if i == 0 else
            f"postgresql://postgres@127.0.0.1:{pg.port}/postgres?password=***&sslpassword=***&application_name=sg"
        ]  # fmt: skip
        state = tmp_path / f"state{i}.sqlite"
        res = run("scan", "--format", "json", "--state", str(state), url, cwd=tmp_path)
        assert res.returncode == 1
        res = run("scan", "--format", "json", "--state", str(state), "--resume", url, cwd=tmp_path)
        assert res.returncode == 1
        written.append(state)
        people = tmp_path / f"people{i}.csv"
        res = run("scan", "--format", "json", "--subject-field", "id", "--subjects-out", str(people), url, cwd=tmp_path)
        assert res.returncode == 1 and len(people.read_text().splitlines()) == 121
        written.append(people)
    assert assert_files_clean(written) >= len(written)

    # The connection error line, for a refused port and for a parameter the driver rejects.
    closed = free_port()
    for url in (
        f"postgresql://postgres:{PW}@127.0.0.1:{closed}/postgres?sslpassword={SSL_PW}",
        f"postgresql://postgres:{PW}@127.0.0.1:{pg.port}/postgres?sslpassword={SSL_PW}&token={TOKEN}",
        f"postgresql://postgres:{WRONG_PW}@127.0.0.1:{pg.port}/postgres",
    ):
        res = run("scan", "--connect-timeout", "2", url, cwd=tmp_path)
        assert res.returncode == 2 and b"spillguard: error:" in res.stderr, res.stderr.decode()
        assert res.stderr.count(b"\n") == 1


def test_redis_scan_with_an_unescaped_password(tmp_path: Path) -> None:
    with redis_server(password=PW) as srv:
        for i in range(30):
            redis_command(srv.port, "SET", f"user:{i}", f"person{i}@example.com", password=PW)
        res = run("scan", "--format", "json", "--workers", "1", f"redis://:{PW}@127.0.0.1:{srv.port}/0", cwd=tmp_path)
        assert res.returncode == 1, res.stderr.decode()
        doc = json.loads(res.stdout)
        assert doc["summary"]["records_scanned"] == 30
        assert doc["targets"] == [f"redis://:***@127.0.0.1:{srv.port}/0"]


def test_audit_and_watch_never_show_the_password(pg, tmp_path: Path) -> None:
    with redis_server() as open_redis:
        targets = [
            f"postgresql://postgres:{PW}@127.0.0.1:{pg.port}/postgres?sslpassword={SSL_PW}",
            f"postgresql://postgres@127.0.0.1:{pg.port}/postgres?password={quote(PW, safe='')}&token={TOKEN}",
            # open to anyone: the watch alerts, and the alert carries the (masked) URL
            f"redis://:{PW}@127.0.0.1:{open_redis.port}/0?password={quote(WRONG_PW, safe='')}",
        ]
        res = run("audit", "--format", "json", "--timeout", "3", *targets, cwd=tmp_path)
        assert res.returncode == 1, res.stderr.decode()
        doc = json.loads(res.stdout)
        assert {t["verdict"] for t in doc["targets"]} == {"protected", "open-read"}
        for columns in (200, 80):
            res = run("audit", "--timeout", "3", *targets, cwd=tmp_path, columns=columns)
            assert res.returncode == 1 and b"open-read" in res.stdout
        history, alerts = tmp_path / "watch.sqlite", tmp_path / "alerts.jsonl"
        for _ in range(2):
            res = run("watch", "--once", "--timeout", "3", "--state", str(history), "--alert-file", str(alerts),
                      *targets, cwd=tmp_path)  # fmt: skip
            assert res.returncode == 1, res.stderr.decode()
        lines = [json.loads(x) for x in alerts.read_text().splitlines()]
        assert [a["event"] for a in lines] == ["exposed"]
        assert lines[0]["target"] == f"redis://:***@127.0.0.1:{open_redis.port}/0?password=***"
        assert stat.S_IMODE(alerts.stat().st_mode) == 0o600
        assert assert_files_clean([history, alerts]) >= 2


def test_malformed_urls_end_scan_and_audit_with_one_line(tmp_path: Path) -> None:
    for url in ("postgresql://[::1/app", "redis://:pw@127.0.0.1:abc", "mysql://u:p@[zz]:3306/db"):
        for args in (("scan", url), ("scan", "--format", "json", str(tmp_path), url), ("audit", url),
                     ("watch", "--once", "--state", str(tmp_path / "w.sqlite"), url)):  # fmt: skip
            res = run(*args, cwd=tmp_path)
            err = res.stderr.decode()
            assert res.returncode == 2 and err.startswith("spillguard: error: target "), (args, err)
            assert err.count("\n") == 1 and res.stdout == b"", (args, err)
            assert ":p@" not in err and ":pw@" not in err


def _scan_doc(target: str) -> dict:
    doc, _truth = make_store(target, 1000, seed=31, started=T0)
    return validate_scan(doc)


@pytest.mark.parametrize(
    ("scanned", "audited"),
    [
        ("elasticsearch+https://127.0.0.1", "https://127.0.0.1:9200"),
        ("elasticsearch+https://elastic:***@localhost:9200/", "https://127.0.0.1:9200"),
        ("opensearch+http://[::1]", "es://127.0.0.1"),
        ("elasticsearch+http://127.0.0.1", "elasticsearch://***@LOCALHOST:9200"),
        ("postgresql://app:***@DB.internal/prod?password=***", "postgres://db.internal:5432"),
    ],
)
def test_report_joins_an_audit_to_a_scan_of_the_same_store(scanned: str, audited: str) -> None:
    audit = validate_audit({
        "version": 1, "checked_at": "2026-11-27T11:00:00Z",
        "targets": [{"target": audited, "name": None, "protocol": "elasticsearch", "verdict": "open-read",
                     "evidence": {}, "tls": True, "server_version": None, "timings": {"total_ms": 1.0},
                     "stakes": None}],
    })  # fmt: skip
    r = build_report([_scan_doc(scanned)], [audit])
    assert [s["exposure_status"] for s in r.stores] == ["exposed"]
    # A different port is a different store: no join.
    other = dict(audit, targets=[dict(audit["targets"][0], target="https://127.0.0.1:443")])
    r = build_report([_scan_doc(scanned)], [other])
    assert [s["exposure_status"] for s in r.stores] != ["exposed"]


def test_audit_stakes_join_an_inventory_spelled_differently(tmp_path: Path) -> None:
    from spillguard.audit.stakes import Inventory, stakes_for
    from spillguard.targets import parse_target

    inv = Inventory("scan.json", _scan_doc("elasticsearch+https://elastic:***@localhost/"))
    target = parse_target("https://127.0.0.1:9200")
    stakes = stakes_for(target.store_key, [inv])
    assert stakes is not None and stakes["subjects"] == 1000 and stakes["categories"]
    assert stakes_for(parse_target("https://127.0.0.1").store_key, [inv]) is None
