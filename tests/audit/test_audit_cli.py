"""`spillguard audit` / `spillguard watch --once` on the command line: JSON contract, table, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from spillguard.audit import audit
from spillguard.audit.cli import register
from spillguard.errors import UserError
from tests import ROOT
from tests.servers import free_port, redis_server


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def _spillguard(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real entry point, as a user runs it."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    return subprocess.run([sys.executable, "-c", "from spillguard.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=60, env=env, cwd=cwd)  # fmt: skip


def test_json_output_is_the_library_result_and_exit_codes_follow_the_worst_verdict() -> None:
    runner = CliRunner()
    with redis_server() as open_srv, redis_server(password="pw") as locked:
        res = runner.invoke(_app(), ["audit", "--format", "json", open_srv.url, locked.url])
        assert res.exit_code == 1, res.output
        doc = json.loads(res.stdout)
        lib = audit([open_srv.url, locked.url]).to_json()
        strip = lambda d: [{k: v for k, v in t.items() if k != "timings"} for t in d["targets"]]  # noqa: E731
        assert strip(doc) == strip(lib)
        assert set(doc) == {"version", "checked_at", "targets"}
        assert set(doc["targets"][0]) == {"target", "name", "protocol", "verdict", "evidence", "tls",
                                          "server_version", "timings", "stakes"}  # fmt: skip
        assert runner.invoke(_app(), ["audit", locked.url]).exit_code == 0
        table = runner.invoke(_app(), ["audit", open_srv.url], env={"COLUMNS": "200"})
        assert "open-read" in table.stdout and "redis" in table.stdout
    res = runner.invoke(_app(), ["audit", f"redis://127.0.0.1:{free_port()}"])
    assert res.exit_code == 2


def test_real_entry_point_user_error_and_config(tmp_path: Path) -> None:
    res = _spillguard("audit", "ftp://127.0.0.1")
    assert res.returncode == 2
    assert "unknown scheme 'ftp'" in res.stderr and "Traceback" not in res.stderr
    with redis_server() as srv:
        (tmp_path / "spillguard.toml").write_text(
            f'[[target]]\nname = "cache"\nurl = "{srv.url}"\n[watch]\nstate = "w.sqlite"\n'
            f'[[watch.sink]]\ntype = "file"\npath = "alerts.jsonl"\n'
        )
        # Exit codes through the entry point depend on spillguard/cli.py's main(); CliRunner tests cover them.
        res = _spillguard("audit", "--format", "json", cwd=tmp_path)
        assert json.loads(res.stdout)["targets"][0]["name"] == "cache", res.stderr
        res = _spillguard("watch", "--once", cwd=tmp_path)
        assert res.stderr.startswith("spillguard watch: "), res.stderr
        alert = json.loads((tmp_path / "alerts.jsonl").read_text().splitlines()[0])
        assert alert["event"] == "exposed" and alert["name"] == "cache"
        assert (tmp_path / "w.sqlite").exists()
        # Same state, still exposed: de-duplicated, no second alert line.
        _spillguard("watch", "--once", cwd=tmp_path)
        assert len((tmp_path / "alerts.jsonl").read_text().splitlines()) == 1


def test_watch_once_exit_codes_and_default_stdout_sink(tmp_path: Path) -> None:
    runner = CliRunner()
    with redis_server(password="pw") as locked:
        res = runner.invoke(_app(), ["watch", "--once", "--state", str(tmp_path / "a.sqlite"), locked.url])
        assert res.exit_code == 0 and res.stdout == ""
    res = runner.invoke(_app(), ["watch", "--once", "--state", str(tmp_path / "b.sqlite"),
                                 f"redis://127.0.0.1:{free_port()}"])  # fmt: skip
    assert res.exit_code == 2
    assert json.loads(res.stdout.splitlines()[0])["new_verdict"] == "unreachable"
    res = runner.invoke(_app(), ["watch", "--once", "--interval", "0.1", "redis://127.0.0.1"])
    assert isinstance(res.exception, UserError) and "at least 1 second" in str(res.exception)


def test_table_at_80_columns_keeps_the_target_url_readable() -> None:
    with redis_server() as srv:
        url = f"redis://:secret-pw@127.0.0.1:{srv.port}/0?password=other-secret&health_check_interval=10"
        masked = f"redis://:***@127.0.0.1:{srv.port}/0?password=***&health_check_interval=10"
        env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="80")
        res = subprocess.run([sys.executable, "-c", "from spillguard.cli import main; main()", "audit", url],
                             capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
    assert res.returncode == 1, res.stderr
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    pieces = [line.split("│")[1].strip() for line in lines if line.startswith("│")]
    pieces = [p for p in pieces if p]
    assert "".join(pieces) == masked
    assert all(len(p) >= 30 for p in pieces[:-1]), pieces  # folded, never 9-character fragments
    assert "open-read" in res.stdout and "secret" not in res.stdout
