"""Partition jobs as Ray tasks (`scan --executor ray`): on a Ray instance started on this machine, or on an
existing cluster (`--ray-address auto`, `ray://HOST:10001`, a KubeRay RayCluster).

The same `Executor` contract as the local pool: a batch of partition jobs is one task, run by a `JobRunner` in
a Ray worker. What a partition found (records, errors, malformed lines) comes back to the scanning process,
which takes each partition once (by its id) and reports progress; the partition's state (its sorted subject
hashes, record bitmaps, ...) stays in Ray's object store as a separate return of the task and is added up by
merge tasks on the cluster, a tree (`executors.MergeTree`), so the scanning process fetches one state per dataset
at the end. With --state each partition is also encoded for the state file where it was scanned, and the
scanning process writes it as it comes.
A task lost with its worker node is run again by Ray (`max_retries`), and a state lost with a node after its
task finished is computed again from its lineage (the same task, or merge); a partition's result is the same
wherever and however often it is computed, so counts stay exact. A task that still fails becomes an error
result for its partitions: they are reported as not scanned (exit 3), never silently missing.

Nothing secret travels in a task: store passwords are never in task arguments (a URL with a password, or
--ask-password, is refused; spillguard.toml's `password_env` travels by NAME and each worker reads the
variable, like SPILLGUARD_PASSWORD and the scheme's own variables, from its own environment), and the
fingerprint key is not sent either: the task carries its key id, and a worker whose own key
($SPILLGUARD_FINGERPRINT_KEY) differs refuses to count.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import uuid
import warnings
from collections import Counter
from concurrent.futures import Future
from types import ModuleType
from typing import Any

from spillguard.detect.state import DatasetState
from spillguard.errors import UserError
from spillguard.keys import ENV_KEY, fingerprint_key, key_id
from spillguard.scan.checkpoint import StateCodec
from spillguard.scan.executors import Executor, MergeTree, Totals, default_workers
from spillguard.scan.jobs import JobRunner, KeptState, PartitionJob, PartitionResult
from spillguard.scan.options import ScanOptions
from spillguard.sources.store import one_line
from spillguard.targets import mask_url, parse_url

MAX_RETRIES = 3  # times Ray runs a task again after its worker or node died
WARM_TASKS = 64
LOCAL_OBJECT_STORE = 512 << 20  # object store of a Ray instance started here: results are small
_REFUSED_PASSWORD = (
    "--executor ray never puts a password in a task: remove it from {what} and set it on every Ray worker as "
    "SPILLGUARD_PASSWORD (or the store's own variable), or name the variable with password_env in spillguard.toml"
)


def import_ray() -> ModuleType:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports from a scanner of personal data
    try:
        import ray
    except ImportError:
        raise UserError(
            "--executor ray needs Ray: pip install 'spillguard[ray]' (ray[client] is included, for ray:// addresses)"
        ) from None
    return ray


def check_shippable(targets: list[str], options: ScanOptions) -> None:
    """Refuse, before any work, what would put a password into task arguments."""
    for target in targets:
        if "://" in target and parse_url(target).password is not None:
            raise UserError(f"{mask_url(target)}: " + _REFUSED_PASSWORD.format(what="the URL"))
    if options.source_options.get("password") is not None:
        raise UserError("--ask-password: " + _REFUSED_PASSWORD.format(what="the command line"))
    for target, own in options.target_options.items():
        if own.get("password") is not None and not own.get("password_env"):
            raise UserError(f"{mask_url(target)}: " + _REFUSED_PASSWORD.format(what="the configuration"))


def shippable_options(options: ScanOptions) -> ScanOptions:
    """The options as a task may carry them: password variable names, never their values."""
    return dataclasses.replace(
        options,
        source_options={k: v for k, v in options.source_options.items() if k != "password"},
        target_options={t: {k: v for k, v in own.items() if k != "password"} for t, own in options.target_options.items()},
    )


# -- in the Ray worker --------------------------------------------------------------------------------
_runner: tuple[str, JobRunner] | None = None  # this worker's runner for the current scan (sources kept open)


def _failed(jobs: list[PartitionJob], message: str) -> list[PartitionResult]:
    return [PartitionResult(job.key, job.dataset, None, error=message) for job in jobs]


def run_task(scan_id: str, kid: str | None, jobs: list[PartitionJob], keep: bool = False) -> Any:
    """A Ray task: scan a batch of partitions in this worker; returns (node id, results), or with `keep`
    [(node id, results), state of each job...]: each state a return of its own, left in the object store for
    the merge tree, and a `KeptState` in its result. A checkpointed scan's partitions are encoded here for
    the state file (the result's `stored`), and the state kept is the stored form, as on resume."""
    node, results, key = _scan(scan_id, kid, jobs)
    if not keep:
        return node, results
    codec = StateCodec(key) if key is not None and jobs[0].options.state else None
    states: list[DatasetState | None] = []
    for result in results:
        state = result.state if isinstance(result.state, DatasetState) else None
        if state is not None and codec is not None:
            result.stored = codec.encode(state, result.malformed)
            state, result.malformed = codec.decode(*result.stored, state.target)
        states.append(state)
        if state is not None:
            result.state = KeptState(state.records)
    return [(node, results), *states]


def merge_task(*states: DatasetState) -> DatasetState:
    """A Ray task of the merge tree: several kept states of one dataset (the largest first) as one."""
    total = states[0]
    for state in states[1:]:
        total.merge(state)
    return total


def warm_task() -> None:
    """Nothing: loading this task imports the scanning code in a worker while the scanning process plans."""


def _scan(scan_id: str, kid: str | None, jobs: list[PartitionJob]) -> tuple[str, list[PartitionResult], bytes | None]:
    """(node id, results, the fingerprint key when the scan has one)."""
    global _runner
    import ray

    node = ray.get_runtime_context().get_node_id()
    if _runner is None or _runner[0] != scan_id:
        if _runner is not None:
            _runner[1].close()  # sources of an earlier scan in this long-lived worker
        _runner = (scan_id, JobRunner())
    key = None
    if kid is not None:
        try:
            key = fingerprint_key()
        except UserError as exc:
            return node, _failed(jobs, f"Ray worker on node {node[:12]}: {exc}"), None
        if key_id(key) != kid:
            return node, _failed(
                jobs,
                f"Ray worker on node {node[:12]}: its fingerprint key is not the scan's ({kid}); "
                f"give every worker the same ${ENV_KEY}",
            ), None
        for job in jobs:
            job.key_bytes = key
    return node, _runner[1].run_batch(jobs), key


def _check_client_port(address: str | None) -> None:
    """A ray:// address whose port does not answer fails in seconds, not after the client's 30 s of retries."""
    if not address or not address.startswith("ray://"):
        return
    hostport = address.removeprefix("ray://").split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port or 10001)), timeout=5):
        pass


# -- in the scanning process ----------------------------------------------------------------------------
class RayExecutor:
    """Each batch of partitions a Ray task; `workers` is the cluster's CPUs (the scan keeps twice that queued)."""

    in_process = False

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        ray = import_ray()
        self.ray = ray
        self.owned = False  # this executor started or connected Ray, and so shuts it down
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False}
            if address is None and not os.environ.get("RAY_ADDRESS"):
                # "local": a new instance, not a cluster someone started on this machine (ray.init() alone joins one)
                kwargs.update(address="local", num_cpus=workers or default_workers(), object_store_memory=LOCAL_OBJECT_STORE)
                # Ray runs workers at nice 15 by default; on this machine they are the scan itself and should run at
                # its priority, as the process pool's workers do (else anything else running starves them).
                os.environ.setdefault("RAY_worker_niceness", "0")
            else:
                kwargs["address"] = address
            try:
                _check_client_port(address)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # Ray's own multi-line connection advice: ours is one line
                    ray.init(**kwargs)
            except Exception as exc:  # noqa: BLE001 - ConnectionError, RuntimeError, grpc errors: all one line
                where = address or os.environ.get("RAY_ADDRESS") or "this machine"
                raise UserError(
                    f"--ray-address {where}: cannot start or reach Ray ({one_line(exc)}); check the address "
                    "(auto, or ray://HOST:10001 for a cluster's client port) and that the cluster is up"
                ) from None
            self.owned = True
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.scan_id = uuid.uuid4().hex
        self.task = ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False, num_cpus=1, scheduling_strategy="SPREAD")(run_task)
        # Placed by Ray's default: on the node that holds most of its inputs.
        self.merge_task = ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False, num_cpus=1)(merge_task)
        # One task per CPU (up to WARM_TASKS): workers import spillguard while the scanning process lists and plans.
        warm = ray.remote(num_cpus=1, max_retries=0)(warm_task)
        for _ in range(min(self.workers, WARM_TASKS)):
            warm.remote()
        self.pending: dict[Any, Future[list[PartitionResult]]] = {}  # ObjectRef -> its future
        self.trees: list[MergeTree] = []  # of the targets being scanned (their merges are cancelled on Ctrl-C)
        self.nodes: Counter[str] = Counter()  # batches finished per node id
        self._shipped: tuple[ScanOptions, ScanOptions] | None = None

    def _options(self, options: ScanOptions) -> ScanOptions:
        if self._shipped is None or self._shipped[0] is not options:
            self._shipped = (options, shippable_options(options))
        return self._shipped[1]

    def submit(self, jobs: list[PartitionJob]) -> Future[list[PartitionResult]]:
        kid = key_id(jobs[0].key_bytes) if jobs and jobs[0].key_bytes else None
        shipped = [dataclasses.replace(job, options=self._options(job.options), key_bytes=None) for job in jobs]
        # States stay on the cluster; a checkpointed scan's are encoded there for the state file, with the key.
        keep = bool(jobs) and (kid is not None or not jobs[0].options.state)
        kept: list[Any] = []
        if keep:
            ref, *kept = self.task.options(num_returns=1 + len(jobs)).remote(self.scan_id, kid, shipped, True)
        else:
            ref = self.task.remote(self.scan_id, kid, shipped)
        fut: Future[list[PartitionResult]] = Future()
        self.pending[ref] = fut

        def finished(ray_fut: Future[Any]) -> None:
            self.pending.pop(ref, None)
            if fut.cancelled():
                return
            try:
                node, results = ray_fut.result()
            except Exception as exc:  # noqa: BLE001 - lost beyond retries, cancelled, worker crash: not scanned
                results = _failed(jobs, f"Ray task failed: {type(exc).__name__}: {one_line(exc)}")
            else:
                self.nodes[node] += 1
                for result, handle in zip(results, kept, strict=False):
                    if isinstance(result.state, KeptState):
                        result.state.handle = handle
            if fut.set_running_or_notify_cancel():
                fut.set_result(results)

        def withdrawn(f: Future[list[PartitionResult]]) -> None:
            if f.cancelled():
                self._cancel(ref)

        fut.add_done_callback(withdrawn)
        ref.future().add_done_callback(finished)
        return fut

    def totals(self) -> Totals:
        """The target's kept states, merged by merge tasks as a tree; states that come back are merged here."""
        tree = MergeTree(lambda handles: self.merge_task.remote(*handles), self._fetch)
        self.trees = [t for t in self.trees if t.levels] + [tree]
        return tree

    def _fetch(self, handles: list[Any]) -> list[DatasetState | BaseException]:
        try:
            return list(self.ray.get(handles))
        except Exception:  # noqa: BLE001 - one lost beyond its retries: fetch each, to know which
            out: list[DatasetState | BaseException] = []
            for handle in handles:
                try:
                    out.append(self.ray.get(handle))
                except Exception as exc:  # noqa: BLE001
                    out.append(exc)
            return out

    def _cancel(self, ref: Any) -> None:
        with contextlib.suppress(Exception):  # finished already, or the cluster is gone: nothing to stop
            self.ray.cancel(ref, force=True)

    def shutdown(self, *, cancel: bool = False) -> None:
        if cancel:
            # Ctrl-C: stop every task now; finished partitions are checkpointed by the scanning process.
            for ref in list(self.pending) + [h for tree in self.trees for h in tree.handles()]:
                self._cancel(ref)
        self.pending.clear()
        self.trees.clear()
        if self.owned:
            self.ray.shutdown()
            self.owned = False


def ray_executor(options: ScanOptions, targets: list[str], runner: JobRunner | None = None) -> Executor:
    """The `ray` row of scan.executors.EXECUTORS."""
    check_shippable(targets, options)
    return RayExecutor(options.ray_address, options.workers)
