"""Where partition jobs run. One contract, `Executor`, and its implementations: in this process, or in a
pool of worker processes on this machine. A cluster executor (Ray) is one more class with `submit`.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent import futures
from concurrent.futures import Future
from typing import Protocol

from spillguard.scan.jobs import JobRunner, PartitionJob, PartitionResult


class Executor(Protocol):
    """Runs partition jobs, a batch at a time: one partition, or many small ones (small files) that are
    read one by one and counted in one engine pass; one result per job, in order. `workers` is how many
    batches run at once (the scan keeps about twice that many queued); `in_process` says whether jobs run
    in the scanning process, whose sources then report progress as they read (others report it per
    finished partition)."""

    workers: int
    in_process: bool

    def submit(self, jobs: list[PartitionJob]) -> Future[list[PartitionResult]]: ...

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


def make_executor(workers: int, runner: JobRunner | None = None) -> Executor:
    """In this process for one worker, else a process pool."""
    if workers <= 1:
        return InProcessExecutor(runner)
    return ProcessPoolExecutor(workers)
