"""Where partition jobs run, and where their states are added up. One contract, `Executor`, and its
implementations, one row each in `EXECUTORS`: in this process, a pool of worker processes on this machine, or
tasks on a Ray cluster (scan/ray_executor.py). Each executor gives a `Totals`: here (`HereTotals`: every state
comes back and is merged as it arrives) or where the states are (`MergeTree`: a cluster's results merged by
its own tasks, bottom up, so the scanning process fetches one state per dataset at the end).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future
from dataclasses import dataclass
from importlib import import_module
from typing import Any, Protocol

from spillguard.detect.state import DatasetState
from spillguard.errors import UserError
from spillguard.scan.jobs import JobRunner, KeptState, PartitionJob, PartitionResult
from spillguard.scan.options import ScanOptions


@dataclass(slots=True)
class Summed:
    """A dataset's partition states added up; `lost` partitions were scanned but their states could not be
    added (a merge failed beyond its retries): the scan reports them as not scanned, never silently."""

    state: DatasetState | None
    lost: int = 0
    reason: str = ""


class Totals(Protocol):
    """Where one target's partition states are added up, per dataset; each state is added once."""

    def add(self, dataset: str, state: DatasetState | KeptState) -> None: ...

    def results(self) -> dict[str, Summed]:
        """Every dataset's sum, once all its states were added."""
        ...


class HereTotals:
    """States merged in the scanning process as they arrive: the first state of a dataset is its sum."""

    def __init__(self) -> None:
        self.sums: dict[str, DatasetState] = {}

    def add(self, dataset: str, state: DatasetState | KeptState) -> None:
        if isinstance(state, KeptState):
            raise TypeError("a state kept by an executor is added up by that executor's Totals")
        total = self.sums.get(dataset)
        if total is None:
            self.sums[dataset] = state
        else:
            total.merge(state)

    def results(self) -> dict[str, Summed]:
        return {dataset: Summed(state) for dataset, state in self.sums.items()}


MERGE_FANOUT = 4  # kept states merged per merge task: log4(k) levels rewrite a dataset's keys, not log2(k)


class MergeTree:
    """Kept states added up where they are (a cluster's object store), bottom up: as soon as `fanout` states
    of a dataset wait at one level, one `merge` of them (a task on the cluster) becomes a state of the next
    level. At the end, the few states left per dataset are merged once more there and `fetch` brings one
    state per dataset here (one round trip for all datasets). States that are here already (resumed from a
    state file, or the dataset's starting state) are merged here, with the fetched sum last.

    `merge(handles) -> handle` may return before the merge has run (the cluster orders it after its inputs);
    `fetch(handles)` returns, per handle, its state or the exception that lost it."""

    def __init__(self, merge: Callable[[list[Any]], Any], fetch: Callable[[list[Any]], list[DatasetState | BaseException]],
                 fanout: int = MERGE_FANOUT) -> None:
        self.merge = merge
        self.fetch = fetch
        self.fanout = max(2, fanout)
        self.here = HereTotals()
        self.levels: dict[str, list[list[tuple[Any, int]]]] = {}  # dataset -> level -> (handle, partitions in it)

    def add(self, dataset: str, state: DatasetState | KeptState) -> None:
        if isinstance(state, DatasetState):
            self.here.add(dataset, state)
        else:
            self._push(self.levels.setdefault(dataset, []), 0, (state.handle, 1))

    def _push(self, levels: list[list[tuple[Any, int]]], level: int, node: tuple[Any, int]) -> None:
        if len(levels) == level:
            levels.append([])
        levels[level].append(node)
        if len(levels[level]) == self.fanout:
            group, levels[level] = levels[level], []
            self._push(levels, level + 1, (self.merge([h for h, _ in group]), sum(n for _, n in group)))

    def handles(self) -> list[Any]:
        """The handles the tree holds now (to cancel them on Ctrl-C)."""
        return [h for levels in self.levels.values() for level in levels for h, _ in level]

    def results(self) -> dict[str, Summed]:
        finals: dict[str, tuple[Any, int]] = {}
        for dataset, levels in self.levels.items():
            nodes = [node for level in reversed(levels) for node in level]  # the largest sums first
            if len(nodes) == 1:
                finals[dataset] = nodes[0]
            elif nodes:
                finals[dataset] = (self.merge([h for h, _ in nodes]), sum(n for _, n in nodes))
        self.levels.clear()
        fetched = self.fetch([h for h, _ in finals.values()]) if finals else []
        out = self.here.results()
        for (dataset, (_, partitions)), state in zip(finals.items(), fetched, strict=True):
            summed = out.setdefault(dataset, Summed(None))
            if isinstance(state, BaseException):
                summed.lost, summed.reason = partitions, f"their counts were lost while being added up: {type(state).__name__}"
            elif summed.state is None:
                summed.state = state
            else:
                summed.state.merge(state)
        return out


class Executor(Protocol):
    """Runs partition jobs, a batch at a time: one partition, or many small ones (small files) that are
    read one by one and counted in one engine pass; one result per job, in order. `workers` is how many
    batches run at once (the scan keeps about twice that many queued); `in_process` says whether jobs run
    in the scanning process, whose sources then report progress as they read (others report it per
    finished partition).

    A result's state may be a `KeptState`, left where it was computed and added up by the executor's
    `totals()`. When the scan checkpoints (`options.state`), such a result carries `stored`: the partition
    encoded for the state file where it was computed (`StateCodec`), which the scanning process writes."""

    workers: int
    in_process: bool

    def submit(self, jobs: list[PartitionJob]) -> Future[list[PartitionResult]]: ...

    def totals(self) -> Totals:
        """Where one target's partition states are added up."""
        ...

    def shutdown(self, *, cancel: bool = False) -> None:
        """Release the workers; with `cancel`, at once (Ctrl-C): running jobs are abandoned."""
        ...


class InProcessExecutor:
    """Runs each job when it is submitted, in this process, with the scan's own open sources."""

    in_process = True
    workers = 1

    def __init__(self, runner: JobRunner | None = None) -> None:
        self.runner = runner or JobRunner()

    def submit(self, jobs: list[PartitionJob]) -> Future[list[PartitionResult]]:
        fut: Future[list[PartitionResult]] = Future()
        fut.set_result(self.runner.run_batch(jobs))  # every failure of a job becomes its result
        return fut

    def totals(self) -> Totals:
        return HereTotals()

    def shutdown(self, *, cancel: bool = False) -> None:
        self.runner.close()


# -- worker processes -------------------------------------------------------------------------------
_worker_runner = JobRunner()


def _worker_init() -> None:
    # Ctrl-C goes to the whole process group; the parent alone decides how to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()


def _die_with_parent() -> None:
    """A worker whose parent was killed (kill -9, OOM) must not linger holding store connections."""
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: Linux delivers SIGTERM when the parent dies
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def worker_pool(workers: int) -> futures.ProcessPoolExecutor:
    """Worker processes that ignore Ctrl-C (the parent decides) and die with their parent; shared by every
    pillar that spreads work over processes (scan, copy)."""
    # fork where available: spawn and forkserver re-run the caller's __main__ in every worker, which
    # breaks scripts without a main guard. Forked workers never touch (or finalise: they leave through
    # os._exit) the parent's open connections; each opens its own.
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    return futures.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init)


def run_jobs(jobs: list[PartitionJob]) -> list[PartitionResult]:
    """Worker entry point: sources and scanners are opened once per worker and kept."""
    return _worker_runner.run_batch(jobs)


class ProcessPoolExecutor:
    """Jobs in worker processes on this machine, one per core by default."""

    in_process = False

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = worker_pool(workers)

    def submit(self, jobs: list[PartitionJob]) -> Future[list[PartitionResult]]:
        return self.pool.submit(run_jobs, jobs)

    def totals(self) -> Totals:
        return HereTotals()

    def shutdown(self, *, cancel: bool = False) -> None:
        if not cancel:
            self.pool.shutdown(wait=True)
            return
        # Workers ignore SIGINT and would finish their partitions (seconds to minutes): stop them now.
        # Nothing is lost: every finished partition is checkpointed by the parent, not by workers.
        processes = list(self.pool._processes.values()) if self.pool._processes else []  # noqa: SLF001
        self.pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            if proc.is_alive():
                proc.terminate()
        for proc in processes:
            proc.join(timeout=1)


def default_workers() -> int:
    """One worker per core this process may run on (taskset, cpusets), not per core of the machine."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity API (macOS)
        return max(1, os.cpu_count() or 1)


def local_executor(options: ScanOptions, targets: list[str], runner: JobRunner | None = None) -> Executor:
    """In this process for one worker, else a process pool (--workers, default one per core)."""
    workers = options.workers or default_workers()
    if workers <= 1:
        return InProcessExecutor(runner)
    return ProcessPoolExecutor(workers)


def in_process_executor(options: ScanOptions, targets: list[str], runner: JobRunner | None = None) -> Executor:
    return InProcessExecutor(runner)


def pool_executor(options: ScanOptions, targets: list[str], runner: JobRunner | None = None) -> Executor:
    return ProcessPoolExecutor(options.workers or default_workers())


ExecutorFactory = Callable[[ScanOptions, list[str], JobRunner | None], Executor]


@dataclass(frozen=True, slots=True)
class ExecutorKind:
    name: str  # what --executor takes
    factory: str  # "module:function" (options, targets, runner) -> Executor, imported only when chosen
    help: str


# The one list of executors: `scan --executor NAME`, run_scan(options.executor), the docs and the tests read it.
EXECUTORS: dict[str, ExecutorKind] = {
    kind.name: kind
    for kind in (
        ExecutorKind("local", "spillguard.scan.executors:local_executor", "this machine: a pool of --workers processes (in this process for one)"),
        ExecutorKind("in-process", "spillguard.scan.executors:in_process_executor", "every partition in the scanning process"),
        ExecutorKind("pool", "spillguard.scan.executors:pool_executor", "a pool of --workers processes on this machine"),
        ExecutorKind("ray", "spillguard.scan.ray_executor:ray_executor", "Ray tasks on a cluster (--ray-address; needs spillguard[ray])"),
    )
}


def make_executor(options: ScanOptions, targets: list[str], runner: JobRunner | None = None) -> Executor:
    """The executor options.executor names (a row of EXECUTORS)."""
    kind = EXECUTORS.get(options.executor)
    if kind is None:
        raise UserError(f"--executor {options.executor}: unknown; choose one of {', '.join(EXECUTORS)}")
    module, _, name = kind.factory.partition(":")
    factory: ExecutorFactory = getattr(import_module(module), name)
    return factory(options, targets, runner)
