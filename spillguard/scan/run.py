"""Scan orchestration: targets -> datasets -> partitions -> jobs on an executor -> merged states -> result."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spillguard.detect.keymerge import spill_pool
from spillguard.detect.state import DatasetState
from spillguard.errors import UserError
from spillguard.keys import Hasher, fingerprint_key
from spillguard.model import ScanError, ScanResult
from spillguard.scan.accumulate import DatasetScanner, build_ruleset
from spillguard.scan.checkpoint import Checkpoint, options_fingerprint
from spillguard.scan.executors import EXECUTORS, Executor, InProcessExecutor, make_executor
from spillguard.scan.inventory import ScanRun, now, result_from_run
from spillguard.scan.jobs import MAX_MALFORMED, KeptState, Malformed, PartitionJob, PartitionResult
from spillguard.scan.names import shown_name
from spillguard.scan.options import ScanOptions
from spillguard.sources import Partition, open_target
from spillguard.sources.base import BLOCK_BYTES, DatasetReader
from spillguard.sources.retry import (
    GaveUp,
    NotScanned,
    TransientError,
    fresh_breaker,
    not_tried,
    partition_estimate,
    retried_warning,
    with_retries,
)
from spillguard.targets import check_targets, mask_url

Progress = Callable[[int], None]
OnDataset = Callable[[str, int | None], None]


class ScanInterrupted(KeyboardInterrupt):
    """Ctrl-C during a scan: says what was saved and how to go on."""

    def __init__(self, state: Path | None, saved: int) -> None:
        super().__init__()
        self.state = state
        self.saved = saved

    def advice(self) -> str:
        if self.state is None:
            return "interrupted; nothing was saved (no --state FILE given): pass --state FILE to make a scan resumable"
        return (
            f"interrupted; {self.saved:,} finished partition{'' if self.saved == 1 else 's'} saved in {self.state}: "
            "run the same command with --resume to continue"
        )


@dataclass(slots=True)
class _Dataset:
    reader: DatasetReader
    state: DatasetState
    partitions: list[Partition]
    size: int | None = None  # bytes (files), read once
    signature: str | None = None


def scan_target(
    target: str,
    scanner: DatasetScanner,
    scanner_id: str,
    run: ScanRun,
    executor: Executor,
    local: InProcessExecutor,
    *,
    progress: Progress | None = None,
    on_dataset: OnDataset | None = None,
    checkpoint: Checkpoint | None = None,
) -> None:
    """Discover the target's datasets, then scan every partition not already checkpointed on the executor
    (a lone partition in this process), merging each partition's state into its dataset's."""
    shown = mask_url(target)
    options = scanner.options
    live_progress = executor.in_process  # sources opened here count bytes as they read them
    source_options = options.source_options_for(target)
    breaker = fresh_breaker(target, shown, source_options.get("retry_budget"))
    source = open_target(target, subject_field=options.subject_field, progress=progress if live_progress else None, **source_options)
    missing = NotScanned()  # partitions not scanned, reported once per dataset when the target is done
    try:
        local.runner.adopt(target, source, scanner, scanner_id)
        plans: list[_Dataset] = []
        for reader in source.datasets():
            plan = _Dataset(reader, scanner.new_state(shown, reader.name, reader.subject_field), [], reader.size())
            local.runner.adopt_reader(target, reader)
            if on_dataset is not None:
                on_dataset(reader.name, plan.size)
            try:
                # Planning may query the store (key ranges, _id bounds): it rides out an outage as reads do.
                plan.partitions = with_retries(reader.partitions, breaker, reader.reset)
            except (UserError, TransientError, GaveUp) as exc:
                missing.add(reader.name, str(exc), partition_estimate(reader, Partition(reader.name, {}), 1))
            if checkpoint is not None:
                plan.signature = reader.signature()
            plans.append(plan)
        for message in source.warnings():
            run.errors.append(ScanError(target=shown, message=message, kind="warning"))
        finished = checkpoint.finished(shown) if checkpoint is not None else {}
        counts = {plan.reader.name: len(plan.partitions) for plan in plans}
        retried: list[PartitionResult] = []  # scanned in the end, after the store failed: worth a warning
        down: list[str] = []  # why a worker gave the target up (its breaker opened)

        # Partition states are added up by the executor's Totals: here as they arrive, or where a cluster keeps
        # them (a merge tree of its own tasks). A dataset of several partitions starts from its empty state; the
        # only partition of a dataset (a small file) is its state: nothing to add up.
        totals = executor.totals()
        for plan in plans:
            if len(plan.partitions) != 1:
                totals.add(plan.reader.name, plan.state)

        def merge(plan: _Dataset, part: DatasetState | KeptState, malformed: list[Malformed]) -> None:
            totals.add(plan.reader.name, part)
            for dataset, line, reason, kind in malformed:
                if kind != "malformed" or run.malformed_listed < MAX_MALFORMED:
                    run.malformed_listed += kind == "malformed"
                    run.errors.append(ScanError(target=shown, dataset=dataset, line=line, message=reason, kind=kind))

        merged_keys: set[tuple[str, str]] = set()  # a partition is merged once, however often it was run

        def absorb(plan: _Dataset, job: PartitionJob, res: PartitionResult) -> None:
            if (res.dataset, res.key) in merged_keys:
                return
            if res.state is not None:
                merged_keys.add((res.dataset, res.key))
            if res.target_down and not down:
                down.append(res.error or "target given up")
            if res.state is None:
                missing.add(res.dataset, res.error or "failed", partition_estimate(plan.reader, job.partition, len(plan.partitions)))
                return
            if res.retries:
                retried.append(res)
            state, malformed = res.state, res.malformed
            if checkpoint is not None and res.stored is not None:
                checkpoint.write(shown, res.key, plan.signature, *res.stored)  # encoded where it was scanned
            elif checkpoint is not None:
                assert isinstance(state, DatasetState), "a state kept by an executor comes with its stored form"
                state, malformed = checkpoint.save(shown, res.key, plan.signature, state, malformed)
            merge(plan, state, malformed)
            if progress is not None and not live_progress:
                progress(_partition_bytes(plan, job.spec) or state.records)

        jobs: list[tuple[_Dataset, PartitionJob]] = []
        for plan in plans:
            for partition in plan.partitions:
                done = finished.get(checkpoint.partition_id(shown, partition.key)) if checkpoint is not None else None
                if done is None:
                    job = PartitionJob(target, partition.dataset, partition.spec, plan.reader.subject_field, options, scanner.key, scanner_id)
                    jobs.append((plan, job))
                    continue
                part, malformed, signature = done
                if signature != plan.signature:
                    assert checkpoint is not None
                    raise UserError(
                        f"{shown}: {shown_name(plan.reader.name)} changed since the scan in {checkpoint.path} was interrupted "
                        "(size or modification time); its saved counts no longer hold: start over with a new --state file"
                    )
                merge(plan, part, malformed)
        def given_up() -> str | None:
            """Why the target is given up (its breaker opened here or in a worker), or None."""
            return breaker.open_reason or (down[0] if down else None)

        batches = _batches(jobs)
        left = _run_batches(executor if len(batches) > 1 else local, batches, absorb, given_up)
        for plan, job in (pair for batch in left for pair in batch):
            reason = not_tried(given_up() or "target given up")
            missing.add(job.dataset, reason, partition_estimate(plan.reader, job.partition, len(plan.partitions)))
        sums = totals.results()
        for plan in plans:
            summed = sums.get(plan.reader.name)
            if summed is None:
                continue
            if summed.state is not None:
                plan.state = summed.state
            for _ in range(summed.lost):
                missing.add(plan.reader.name, summed.reason)
        for dataset, message in missing.messages(counts):
            run.errors.append(ScanError(target=shown, dataset=dataset, message=message))
        if retried:
            message = retried_warning(len(retried), sum(r.retries for r in retried), retried[0].retry_reason or "")
            run.errors.append(ScanError(target=shown, message=message, kind="warning"))
        for plan in plans:
            state = plan.state
            if options.subject_field and state.subject_field and state.records and not state.subjects:
                run.errors.append(
                    ScanError(target=shown, dataset=plan.reader.name, message=f"subject field {options.subject_field!r} not found; subjects not counted", kind="warning")
                )
                state.subject_field = None
            run.states.append(state)
    finally:
        source.close()


SMALL_BYTES = 1 << 20  # a file smaller than this is read with others in one job...
BATCH_BYTES = BLOCK_BYTES  # ...of at most this many bytes (one block)
BATCH_FILES = 1000  # ...and this many files


def _batches(jobs: list[tuple[_Dataset, PartitionJob]]) -> list[list[tuple[_Dataset, PartitionJob]]]:
    """Each partition a batch of its own, except whole small files, which go together (a folder of
    20,000 one-line files is 20 jobs, not 20,000)."""
    batches: list[list[tuple[_Dataset, PartitionJob]]] = []
    small: list[tuple[_Dataset, PartitionJob]] = []
    small_bytes = 0
    for plan, job in jobs:
        size = plan.size
        if size is None or size >= SMALL_BYTES or len(plan.partitions) != 1:
            batches.append([(plan, job)])
            continue
        if small and (small_bytes + size > BATCH_BYTES or len(small) >= BATCH_FILES):
            batches.append(small)
            small, small_bytes = [], 0
        small.append((plan, job))
        small_bytes += size
    if small:
        batches.append(small)
    return batches


def _partition_bytes(plan: _Dataset, spec: dict[str, Any]) -> int:
    """A partition's share of its dataset's bytes, for progress: a byte range, a row group, a whole file."""
    if "start" in spec:
        return int(spec["end"]) - int(spec["start"])
    return (plan.size or 0) // max(1, len(plan.partitions))


Batch = list[tuple[_Dataset, PartitionJob]]


def _run_batches(
    executor: Executor,
    batches: list[Batch],
    absorb: Callable[[_Dataset, PartitionJob, PartitionResult], None],
    given_up: Callable[[], str | None],
) -> list[Batch]:
    """Keep the executor about twice as busy as it has workers (bounded memory for 100,000 partitions); merge
    results as they come, in submission order among those that finished together. Once `given_up()` says
    the target is given up, no more batches are handed out (those queued and not started are withdrawn):
    the batches not run are returned, for the caller to report as not scanned."""
    window = 1 if executor.in_process else 2 * executor.workers
    in_flight: dict[Future[list[PartitionResult]], tuple[int, Batch]] = {}
    left: list[Batch] = []

    def drain(until: int) -> None:
        while len(in_flight) > until:
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=lambda f: in_flight[f][0]):
                _seq, batch = in_flight.pop(fut)
                for (plan, job), res in zip(batch, fut.result(), strict=True):
                    absorb(plan, job, res)
            if given_up() is not None:
                # Withdraw what no worker has started (running batches finish, fast: "not tried"). A cancelled
                # future is not "done" for wait() until its executor gets to it, so it leaves in_flight here.
                for fut in [f for f in in_flight if f.cancel()]:
                    left.append(in_flight.pop(fut)[1])

    for seq, batch in enumerate(batches):
        if given_up() is not None:
            left.extend(batches[seq:])
            break
        in_flight[executor.submit([job for _, job in batch])] = (seq, batch)
        drain(window - 1)
    drain(0)
    return left


def run_scan(
    targets: Sequence[str],
    options: ScanOptions,
    progress: Progress | None = None,
    on_dataset: OnDataset | None = None,
    executor: Executor | None = None,
) -> tuple[ScanResult, ScanRun]:
    """Scan targets with options; `executor` defaults to options.workers processes (one per core)."""
    if not targets:
        raise UserError("no target given; pass a file, a folder or a store URL")
    check_targets(list(targets))  # a malformed URL is one line before any work, not a traceback later
    if options.resume and not options.state:
        raise UserError("--resume needs --state FILE: the state file of the scan to continue")
    if options.state and options.subjects_out:
        raise UserError("--subjects-out cannot be combined with --state: the state file would have to keep personal data")
    if options.approx_subjects and options.subjects_out:
        raise UserError("--approx-subjects cannot be combined with --subjects-out: a sketch counts people but cannot list them; drop one")
    with spill_pool(options.merge_memory):
        return _run_scan(targets, options, progress, on_dataset, executor)


def _run_scan(
    targets: Sequence[str],
    options: ScanOptions,
    progress: Progress | None,
    on_dataset: OnDataset | None,
    executor: Executor | None,
) -> tuple[ScanResult, ScanRun]:
    key = fingerprint_key()
    if executor is None and options.executor not in EXECUTORS:
        raise UserError(f"--executor {options.executor}: unknown; choose one of {', '.join(EXECUTORS)}")
    local = executor if isinstance(executor, InProcessExecutor) else InProcessExecutor()
    owned = executor is None
    if executor is None:
        # Before any work: a missing Ray, an unreachable cluster or a password bound for a task is one line.
        executor = make_executor(options, list(targets), local.runner)
    checkpoint = None
    stopped = False
    try:
        if options.state:
            checkpoint = Checkpoint(options.state, options, list(targets), key, resume=options.resume)
            options.seed = checkpoint.seed  # a resumed scan hashes subjects exactly as the first run did
        ruleset = build_ruleset(options)
        scanner = DatasetScanner(ruleset, Hasher(options.seed), options, key)
        scanner_id = options_fingerprint(options, [], include_seed=True)
        run = ScanRun(started_at=now(), targets=[mask_url(t) for t in targets])
        if options.source_options.get("sample"):
            for t in targets:
                if "://" not in t:
                    run.errors.append(ScanError(target=t, kind="warning", message="--sample applies to stores; files are always read in full"))
        for target in targets:
            scan_target(target, scanner, scanner_id, run, executor, local, progress=progress, on_dataset=on_dataset, checkpoint=checkpoint)
    except KeyboardInterrupt:
        stopped = True
        if executor is not None:
            executor.shutdown(cancel=True)  # do not wait for running partitions; finished ones are checkpointed
        saved = checkpoint.total_saved() if checkpoint is not None else 0
        raise ScanInterrupted(Path(options.state) if options.state else None, saved) from None
    except BaseException:
        stopped = True
        if executor is not None:
            executor.shutdown(cancel=True)
        raise
    finally:
        if owned and not stopped and executor is not None:
            executor.shutdown()
        if local is not executor:
            local.shutdown()
        if checkpoint is not None:
            checkpoint.close()
    return result_from_run(run, ruleset), run
