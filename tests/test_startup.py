"""Starting `spillguard` loads only what the command needs: registering every pillar's commands must not import
their machinery, and a scan of a small local file must not import the drivers, HTTP clients and template
engines of other commands (each costs tens of milliseconds of CPU on every start; the tests start it thousands
of times). Timing lives in bench/bench_startup.py; this checks the modules, which do not depend on load."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spillguard.demo import generate

# Optional or per-command heavy modules: none of them has any business in `spillguard scan FILE --format json`.
# pydantic: typer 0.29 coerces every option through it (~0.1 s of every start; pyproject.toml pins typer below).
# The report's model and renderer: registering `report` loads only its package (exports load on first use).
NOT_FOR_A_FILE_SCAN = (
    "jinja2", "httpx", "psycopg", "pymysql", "pymongo", "paho", "redis", "boto3", "botocore", "ray", "spacy",
    "msgpack", "tomlkit", "rich", "smtplib", "pydantic", "spillguard.report.document", "spillguard.report.rendering",
    "numpy.ma",  # (pa.array of a numpy array imports it: positions go through detect/arrays.py `indices`)
)  # fmt: skip
# Not even numpy or Arrow: `spillguard --help` and `spillguard audit URL` run without them.
NOT_FOR_REGISTERING = (*NOT_FOR_A_FILE_SCAN, "numpy", "pyarrow", "stdnum", "phonenumbers")

_PROBE = """
import json, sys
watched = set(sys.argv[1].split(","))
def heavy():  # a top-level package watched, or one module named in full
    return sorted({m.split(".")[0] for m in sys.modules} & watched | set(sys.modules) & watched)
from spillguard.cli import main
registered, code = heavy(), None
if len(sys.argv) > 2:
    sys.argv = ["spillguard", *sys.argv[2:]]
    try:
        main()
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"registered": registered, "exit": code, "ran": heavy()}))
"""


def _probe(watched: tuple[str, ...], *args: str, cwd: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", _PROBE, ",".join(watched), *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_registering_the_commands_loads_no_pillar_machinery(tmp_path):
    got = _probe(NOT_FOR_REGISTERING, cwd=tmp_path)
    assert got["registered"] == [], f"`from spillguard.cli import main` imported {got['registered']}"


@pytest.fixture(scope="module")
def small_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("small")
    generate(folder, users=200, compress=False)
    return folder / "users.jsonl"


def test_a_small_file_scan_loads_no_optional_driver_client_or_template_engine(small_file, tmp_path):
    out = tmp_path / "out.json"
    got = _probe(NOT_FOR_A_FILE_SCAN, "scan", str(small_file), "--format", "json", "-o", str(out), cwd=tmp_path)
    assert got["exit"] == 1  # findings: the scan really ran ...
    doc = json.loads(out.read_text())
    assert doc["summary"]["categories"]["email"]["subjects"] > 0  # ... and found people
    assert got["ran"] == [], f"a JSON scan of a small file imported {got['ran']}"


_THREADS_PROBE = """
import json, os, sys
from spillguard.cli import main
sys.argv = ["spillguard", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
assert "numpy" in sys.modules  # loaded by the scan, so its BLAS threads would be there
names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
print(json.dumps({"exit": code, "threads": names}))
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir() or (os.cpu_count() or 1) < 2, reason="needs Linux and two cores")
def test_a_scan_leaves_no_blas_threads_spinning(small_file, tmp_path):
    """numpy's OpenBLAS would start a thread per other core, spinning ~0.1 s of CPU after numpy loads: `main` asks
    for one (the caller's own OPENBLAS_NUM_THREADS is kept). Run without the variable, the scan's process holds no
    thread of OpenBLAS's besides its own."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    proc = subprocess.run([sys.executable, "-c", _THREADS_PROBE, "scan", str(small_file), "--format", "json", "-o",
                           str(tmp_path / "out.json")], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)  # fmt: skip
    got = json.loads(proc.stdout.splitlines()[-1])
    assert got["exit"] == 1
    python_threads = [n for n in got["threads"] if n.startswith("python")]
    assert python_threads == ["python"], got  # OpenBLAS's threads carry the process's name


_COLLECTOR_PROBE = """
import gc, json, sys
from spillguard import cli
from spillguard.scan import run
seen = {}
real = run.run_scan
def recording(*args, **kwargs):  # the scan's own work: the collector is on, start-up's objects frozen
    seen["work"] = [gc.isenabled(), gc.get_freeze_count()]
    return real(*args, **kwargs)
run.run_scan = recording
building = cli.command
def built(*args):  # called by main() as the command starts
    seen["starting"] = [gc.isenabled()]
    return building(*args)
cli.command = built
seen["start"] = [gc.isenabled()]
sys.argv = ["spillguard", *sys.argv[1:]]
try:
    cli.main()
except SystemExit as exc:
    seen["exit"] = [exc.code, gc.isenabled(), gc.get_freeze_count()]
print(json.dumps(seen))
"""


def test_the_collector_skips_start_up_and_runs_for_the_work(small_file, tmp_path):
    """`main` keeps the cyclic collector off while the command starts, turns it on with start-up's objects frozen
    when the command's work begins (every command of the tree), and freezes what is left at exit (no walk of the
    heap by the interpreter's exit collections)."""
    proc = subprocess.run([sys.executable, "-c", _COLLECTOR_PROBE, "scan", str(small_file), "--format", "json", "-o",
                           str(tmp_path / "out.json")], capture_output=True, text=True, cwd=tmp_path, timeout=300)  # fmt: skip
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert seen["start"] == [True]  # a caller's process is left as it was until main() runs
    assert seen["starting"] == [False]
    enabled, frozen = seen["work"]
    assert enabled and frozen > 10_000  # on for the work; the modules and parsed options frozen
    code, enabled, frozen_at_exit = seen["exit"]
    assert code == 1 and enabled and frozen_at_exit > frozen  # what the work left is frozen too


def test_command_alone_leaves_the_collector_to_its_caller():
    """Tests and embedders build the command in their own process: no freezing there (frozen objects are never
    collected), so `command()` wraps nothing."""
    from spillguard.cli import command

    before = gc.get_freeze_count()
    cmd = command()
    scan = cmd.commands["scan"]
    assert scan.callback.__name__ != "run"
    assert gc.get_freeze_count() == before


def _shape(cmd) -> object:
    """What a click command reads from argv and prints: its parameters (names, flags, types, defaults, help) and,
    for a group, each subcommand's."""
    params = [(p.name, tuple(p.opts), p.param_type_name, type(p.type).__name__, getattr(p.type, "choices", None), repr(p.default),
               p.required, p.multiple, getattr(p, "help", None), getattr(p, "metavar", None)) for p in cmd.params]  # fmt: skip
    subs = {name: _shape(sub) for name, sub in getattr(cmd, "commands", {}).items()}
    return params, cmd.help, subs


def test_the_group_is_built_with_the_invoked_command_alone():
    """`spillguard scan ...` builds the scan command only (typer reads each command's signature: ~30 ms of every
    start for the others), exactly as the whole group holds it; the root's options, no command or a mistyped one
    build the whole group, whose help and suggestions name every command."""
    from spillguard.cli import app, command

    whole = command()
    names = set(whole.commands)
    assert {"scan", "demo", "rules", "audit", "watch", "report", "copy", "respond", "journal", "policy"} <= names
    for name in names:
        alone = command([name, "--some-option", "x"])
        assert set(alone.commands) == {name}
        assert _shape(alone.commands[name]) == _shape(whole.commands[name]), name
        assert _shape(alone)[0] == _shape(whole)[0]  # the root's own options (--version) are the same
    for argv in ([], ["--help"], ["--version"], ["scna"], ["-x", "scan"], ["Scan"]):
        assert set(command(argv).commands) == names, argv
    assert len(app.registered_commands) + len(app.registered_groups) == len(names)  # the app itself is left whole


@pytest.mark.parametrize("package", ["spillguard.audit", "spillguard.report", "spillguard.respond", "spillguard.safecopy"])
def test_a_lazily_exported_name_stays_the_object_once_every_submodule_is_loaded(package):
    """A package that loads its exports on first use must not export a name its own submodule has: loading that
    submodule would set the package's attribute to the module (`spillguard.report.render` was a module once
    `report/render.py` had loaded, not the function)."""
    import importlib
    import pkgutil
    import types

    pkg = importlib.import_module(package)
    for sub in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{package}.{sub.name}")
    for name in pkg.__all__:
        assert not isinstance(getattr(pkg, name), types.ModuleType), f"{package}.{name} is a module"
