"""The Ray executor: the same JSON as the local executor on files, PostgreSQL and Elasticsearch; a node killed
mid-scan leaves counts exact; Ctrl-C and resume; no password in a task; clear refusals (exit 2)."""

from __future__ import annotations

import logging
import os
import pickle
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spillguard.errors import UserError
from spillguard.scan.executors import EXECUTORS
from spillguard.scan.jobs import PartitionJob
from spillguard.scan.options import ScanOptions
from spillguard.scan.run import ScanInterrupted, run_scan
from spillguard.sources import files
from tests import ROOT, storedata

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: E402

from spillguard.scan.ray_executor import RayExecutor, check_shippable, ray_executor  # noqa: E402

generated = storedata.generated_dataset_fixture("raydemo", seed=21)  # loaded into the `pg` and `es` fixtures
CLI = [sys.executable, "-c", "from spillguard.cli import main; main()", "scan"]


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: Any) -> Iterator[Cluster]:
    """One Ray cluster for the session: a head node with 2 CPUs, this process its driver. Nodes the tests add
    share the machine. Worker processes inherit this environment: the same fingerprint key folder as the
    tests' (conftest's XDG_STATE_HOME), and no usage reports."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.getbasetemp() / "state")
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 2, "include_dashboard": False, "object_store_memory": 150 << 20,
            # a killed node is declared dead in about a second, not the default 15 s
            "_system_config": {"health_check_period_ms": 300, "health_check_failure_threshold": 3},
        },
    )
    ray.init(address=cluster.address, logging_level=logging.ERROR, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def _json(result: Any) -> dict[str, Any]:
    doc = result.to_json()
    doc.pop("started_at")
    doc.pop("finished_at")
    return doc


def _local_and_ray(target: str, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], RayExecutor]:
    local, _ = run_scan([target], ScanOptions(seed=5, workers=2, show_samples=True, **options))
    executor = RayExecutor()
    try:
        on_ray, _ = run_scan([target], ScanOptions(seed=5, show_samples=True, executor="ray", **options), executor=executor)
    finally:
        executor.shutdown()
    return _json(local), _json(on_ray), executor


def test_ray_is_a_row_of_the_executor_registry() -> None:
    assert EXECUTORS["ray"].factory == "spillguard.scan.ray_executor:ray_executor"
    assert {"local", "in-process", "pool"} <= set(EXECUTORS)


def test_demo_data_gives_the_local_json(ray_cluster: Cluster, demo_data: Any) -> None:
    folder, truth = demo_data
    local, on_ray, executor = _local_and_ray(str(folder), {})
    assert on_ray == local
    assert on_ray["summary"]["complete"] and on_ray["summary"]["subjects_scanned"] == truth.users
    assert sum(executor.nodes.values()) >= 2  # the batches really ran as Ray tasks


def test_postgres_table_gives_the_local_json(ray_cluster: Cluster, generated: Any, pg: Any) -> None:
    local, on_ray, executor = _local_and_ray(pg.url, {"source_options": {"partition_rows": 300}})
    assert on_ray == local and on_ray["summary"]["complete"]
    assert on_ray["summary"]["subjects_scanned"] == generated[1].users
    assert sum(executor.nodes.values()) > len(on_ray["datasets"])  # tables were split into ranges


def test_elasticsearch_index_gives_the_local_json(ray_cluster: Cluster, generated: Any, es: Any) -> None:
    options = {"source_options": {"partition_rows": 300, "include": ["users", "login_events"]}}
    local, on_ray, executor = _local_and_ray(es.url, options)
    assert on_ray == local and on_ray["summary"]["complete"]
    assert on_ray["summary"]["records_scanned"] == generated[1].records["users.jsonl"] + generated[1].records["es_export/login-events.ndjson.gz"]
    assert sum(executor.nodes.values()) > 2  # sliced


@pytest.fixture()
def many_partitions(demo_data: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """The demo users file planned as ~100 byte ranges (planning happens in the driver; workers read ranges)."""
    monkeypatch.setattr(files, "PART_BYTES", 32 << 10)
    return str(demo_data[0] / "users.jsonl")


@ray.remote(num_cpus=1)
def _warm() -> str:
    import spillguard.scan.ray_executor  # noqa: F401

    return str(ray.get_runtime_context().get_node_id())


def test_a_node_killed_mid_scan_leaves_counts_exact(ray_cluster: Cluster, many_partitions: str) -> None:
    expected, _ = run_scan([many_partitions], ScanOptions(seed=5, workers=1))
    node = ray_cluster.add_node(num_cpus=1, object_store_memory=80 << 20)
    second = node.node_id
    # A worker process on the new node, with spillguard imported, before the scan: else, on a busy machine, the
    # head node can finish every partition while the new node is still starting its first worker.
    pinned = NodeAffinitySchedulingStrategy(second, soft=False)
    assert ray.get(_warm.options(scheduling_strategy=pinned).remote()) == second
    executor = RayExecutor()
    killed: list[int] = []

    def progress(_n: int) -> None:
        # Kill the second node as soon as it has finished a batch: it holds more, which Ray runs again elsewhere.
        if not killed and executor.nodes.get(second) and executor.pending:
            killed.append(len(executor.pending))
            ray_cluster.remove_node(node, allow_graceful=False)

    try:
        result, _ = run_scan([many_partitions], ScanOptions(seed=5, executor="ray"), progress=progress, executor=executor)
    finally:
        executor.shutdown()
        if not killed:
            ray_cluster.remove_node(node)
    assert killed, "the second node finished no batch while others were in flight"
    assert _json(result) == _json(expected)
    assert result.complete


def test_ctrl_c_saves_state_and_resume_on_ray_equals_an_uninterrupted_scan(ray_cluster: Cluster, many_partitions: str, tmp_path: Path) -> None:
    state = tmp_path / "scan.state"
    uninterrupted, _ = run_scan([many_partitions], ScanOptions(seed=5, workers=1))
    seen: list[int] = []

    def ctrl_c_after_five(_n: int) -> None:
        seen.append(1)
        if len(seen) == 5:
            raise KeyboardInterrupt

    executor = RayExecutor()
    with pytest.raises(ScanInterrupted) as stop:
        run_scan([many_partitions], ScanOptions(executor="ray", state=state), progress=ctrl_c_after_five, executor=executor)
    assert not executor.pending  # every task was cancelled
    assert 5 <= stop.value.saved < 100
    executor = RayExecutor()
    try:
        resumed, _ = run_scan([many_partitions], ScanOptions(executor="ray", state=state, resume=True), executor=executor)
    finally:
        executor.shutdown()
    assert _json(resumed) == _json(uninterrupted)


def test_approx_subjects_on_ray_with_state(ray_cluster: Cluster, demo_data: Any, tmp_path: Path) -> None:
    folder, truth = demo_data
    executor = RayExecutor()
    try:
        result, _ = run_scan([str(folder)], ScanOptions(executor="ray", approx_subjects=True, state=tmp_path / "s"), executor=executor)
    finally:
        executor.shutdown()
    doc = result.to_json()
    approx = doc["summary"]["subjects_approx"]
    assert approx["method"] == "hyperloglog" and doc["summary"]["subjects_exact"] is False
    assert abs(doc["summary"]["subjects_scanned"] - truth.users) <= 4 * approx["relative_error"] * truth.users
    assert all(f["subjects_approx"] for f in doc["findings"] if f["subjects_matched"] is not None)


def test_no_password_travels_in_a_task(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="never puts a password in a task"):
        check_shippable(["postgresql://scanner:hunter2-pw@127.0.0.1:5432/app"], ScanOptions())
    with pytest.raises(UserError, match="--ask-password"):
        check_shippable(["postgresql://scanner@127.0.0.1:5432/app"], ScanOptions(source_options={"password": "hunter2-pw"}))
    # spillguard.toml's password_env: the value stays here, the variable's NAME goes to the workers
    target = "postgresql://scanner@127.0.0.1:5432/app"
    options = ScanOptions(target_options={target: {"password": "hunter2-pw", "password_env": "APP_DB_PASSWORD"}})
    check_shippable([target], options)
    executor = RayExecutor.__new__(RayExecutor)
    executor._shipped = None
    shipped = executor._options(options)
    job = PartitionJob(target, "users", {"lo": 1, "hi": 2}, None, shipped, None, "x")
    blob = pickle.dumps(job)
    assert b"hunter2-pw" not in blob and b"APP_DB_PASSWORD" in blob
    assert options.target_options[target]["password"] == "hunter2-pw"  # the scan's own options are untouched


def test_without_the_extra_the_refusal_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as when spillguard[ray] is not installed
    with pytest.raises(UserError, match=r"pip install 'spillguard\[ray\]'"):
        ray_executor(ScanOptions(executor="ray"), ["x"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cli_refusals_exit_2_with_one_line(demo_data: Any, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_STATE_HOME": str(tmp_path)}
    folder = str(demo_data[0])
    cases = [
        (["--executor", "ray", "--ray-address", f"ray://127.0.0.1:{_free_port()}"], "cannot start or reach Ray"),
        (["--executor", "ray", "postgresql://u:pw-in-url@127.0.0.1:1/db"], "never puts a password in a task"),
        (["--executor", "spark"], "--executor spark: unknown"),
        (["--ray-address", "auto"], "--ray-address is for --executor ray"),
        (["--approx-subjects", "--subjects-out", str(tmp_path / "p.csv")], "cannot be combined with --subjects-out"),
        (["--merge-memory", "12"], "--merge-memory 12: give a size"),
    ]
    for args, message in cases:
        proc = subprocess.run([*CLI, folder, *args], env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, proc.stderr)
        assert "pw-in-url" not in proc.stderr
