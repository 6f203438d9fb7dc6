"""The unit of work: a partition job, its result, and how one is run (with retries) wherever it runs.

A partition is scanned start to end into its own DatasetState, retried from its start when the store
fails transiently (within the target's retry budget and circuit breaker, spillguard/sources/retry.py),
and merged exactly into its dataset's totals by whoever submitted it. Jobs are small and picklable so
any executor (in-process, a process pool, a cluster) can run them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from spillguard.detect.state import DatasetState
from spillguard.errors import UserError
from spillguard.keys import Hasher
from spillguard.scan.accumulate import DatasetScanner, build_ruleset
from spillguard.scan.options import ScanOptions
from spillguard.sources import Partition, Source, open_target
from spillguard.sources.base import DatasetReader, MalformedSink, ReaderDefaults
from spillguard.sources.retry import Breaker, Delivering, GaveUp, breaker_for, with_retries
from spillguard.sources.store import one_line
from spillguard.targets import mask_url

MAX_MALFORMED = 1000  # malformed records listed per partition; all are counted

Malformed = tuple[str, int | None, str, str]  # (dataset, line or position, reason, kind: "malformed" | "truncated" | "warning")


@dataclass(slots=True)
class PartitionJob:
    """Everything a worker needs to scan one partition; small and picklable."""

    target: str  # may carry a password: kept in memory only, never logged or stored
    dataset: str
    spec: dict[str, Any]
    subject_field: str | None
    options: ScanOptions
    key_bytes: bytes | None = None  # the fingerprint key, so workers fingerprint secrets as the parent does
    scanner_id: str = ""  # equal for jobs that can share one DatasetScanner (same rules, options and seed)

    @property
    def partition(self) -> Partition:
        return Partition(self.dataset, self.spec)

    @property
    def key(self) -> str:
        return self.partition.key


@dataclass(slots=True)
class KeptState:
    """A partition's state left where it was computed (a Ray object), to be added up there by its executor's
    Totals (scan/executors.py); the scanning process sees only how many records it holds."""

    records: int
    handle: Any = None  # the executor's reference to the state (filled in by the scanning process)


@dataclass(slots=True)
class PartitionResult:
    key: str
    dataset: str
    state: DatasetState | KeptState | None  # None: the partition could not be scanned (see error)
    malformed: list[Malformed] = field(default_factory=list)
    error: str | None = None
    target_down: bool = False  # the target's breaker is open: its partitions not yet scanned are not tried
    retries: int = 0  # times the partition was started over after a transient failure
    retry_reason: str | None = None  # the first of those failures
    # With --state, from an executor that keeps states: the partition as the state file keeps it (StateCodec's
    # document and arrays), encoded where it was scanned; `state` and `malformed` are then in that stored form.
    stored: tuple[bytes, bytes] | None = None


def scan_partition(
    scanner: DatasetScanner,
    reader: DatasetReader | Callable[[], DatasetReader],
    partition: Partition,
    shown: str,
    subject_field: str | None,
    breaker: Breaker,
) -> PartitionResult:
    """Scan a partition into a fresh state; a transient failure restarts it, within the target's retry
    budget (spillguard/sources/retry.py). `reader` may be a callable that opens the reader: a worker's
    first connection can meet a restarting store too."""
    opened: list[DatasetReader] = [] if callable(reader) else [reader]
    held_from = len(scanner.held) if scanner.held is not None else 0  # a batch of small files is counted later

    def attempt() -> PartitionResult:
        if not opened:
            assert callable(reader)
            opened.append(reader())
        if scanner.held is not None:
            del scanner.held[held_from:]  # what a failed attempt read is not counted
        malformed: list[Malformed] = []
        state = scanner.new_state(shown, partition.dataset, subject_field)

        def on_malformed(dataset: str, line: int | None, reason: str, kind: str = "malformed") -> None:
            if kind == "malformed":
                state.malformed += 1
            if len(malformed) < MAX_MALFORMED or kind != "malformed":  # a cut stream or a warning is always reported
                malformed.append((dataset, line, reason, kind))

        scanner.scan_partition(Delivering(opened[0], breaker), partition, state, on_malformed)
        return PartitionResult(partition.key, partition.dataset, state, malformed)

    def reset() -> None:
        if opened:
            opened[0].reset()

    retried: list[str] = []
    try:
        result = with_retries(attempt, breaker, reset, lambda exc: retried.append(one_line(exc)))
    except GaveUp as exc:
        result = PartitionResult(partition.key, partition.dataset, None, error=str(exc), target_down=exc.target_down)
    except UserError as exc:
        result = PartitionResult(partition.key, partition.dataset, None, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - one broken dataset must not end the whole scan
        result = PartitionResult(partition.key, partition.dataset, None, error=f"{type(exc).__name__}: {one_line(exc)}")
    if result.state is None and scanner.held is not None:
        del scanner.held[held_from:]
    result.retries, result.retry_reason = len(retried), retried[0] if retried else None
    return result


@dataclass(slots=True)
class _ReadAlready(ReaderDefaults):
    """A dataset reader whose partition's records were read already, with others (read_together)."""

    name: str
    subject_field: str | None
    inner: DatasetReader
    tables: list[pa.Table]

    def partitions(self) -> list[Partition]:
        return self.inner.partitions()

    def read(self, partition: Partition, malformed: MalformedSink) -> Iterator[pa.Table]:
        yield from self.tables


class JobRunner:
    """Runs jobs where it lives (the scanning process or a worker): opens each target once, builds each
    scanner once, and finds a job's dataset by name without listing the target again."""

    def __init__(self) -> None:
        self.scanners: dict[str, DatasetScanner] = {}
        self.sources: dict[str, Source] = {}
        self.readers: dict[tuple[str, str], DatasetReader] = {}
        self.opened: list[Source] = []  # the sources this runner opened, and so closes

    def adopt(self, target: str, source: Source, scanner: DatasetScanner, scanner_id: str) -> None:
        """Use a source and scanner the caller has open already (in-process runs)."""
        self.sources[target] = source
        self.scanners[scanner_id] = scanner

    def adopt_reader(self, target: str, reader: DatasetReader) -> None:
        """Use a dataset reader the caller listed already (it may know more than `dataset(name)` would)."""
        self.readers[(target, reader.name)] = reader

    def scanner(self, job: PartitionJob) -> DatasetScanner:
        scanner = self.scanners.get(job.scanner_id)
        if scanner is None:
            # Same seed in every worker: subject hashes from different processes must agree.
            scanner = DatasetScanner(build_ruleset(job.options), Hasher(job.options.seed), job.options, job.key_bytes)
            self.scanners[job.scanner_id] = scanner
        return scanner

    def reader(self, job: PartitionJob) -> DatasetReader:
        listed = self.readers.get((job.target, job.dataset))
        if listed is not None:
            return listed
        source = self.sources.get(job.target)
        if source is None:
            source = open_target(job.target, subject_field=job.options.subject_field, progress=None, **job.options.source_options_for(job.target))
            self.sources[job.target] = source
            self.opened.append(source)
        return source.dataset(job.dataset)

    def run(self, job: PartitionJob, tables: list[pa.Table] | None = None) -> PartitionResult:
        """Scan one partition; `tables`: its records read already (read_together), else it is read here."""
        try:
            scanner = self.scanner(job)
        except UserError as exc:
            return PartitionResult(job.key, job.dataset, None, error=str(exc))
        shown = mask_url(job.target)
        breaker = breaker_for(job.target, shown, job.options.source_options_for(job.target).get("retry_budget"))

        def open_reader() -> DatasetReader:  # inside the retries: a store restarting when this worker first connects
            reader = self.reader(job)
            return reader if tables is None else _ReadAlready(reader.name, reader.subject_field, reader, tables)

        return scan_partition(scanner, open_reader, job.partition, shown, job.subject_field, breaker)

    def read_together(self, jobs: list[PartitionJob]) -> list[list[pa.Table] | None]:
        """The records of small partitions whose reader can read many at once (files parsed as one buffer);
        None for the others. Not with --subjects-out: which e-mail is shown for a person may follow a file's
        own field order, which a shared parse does not keep."""
        if jobs[0].options.subjects_out:
            return [None] * len(jobs)
        pairs: list[tuple[DatasetReader, Partition]] = []
        for job in jobs:
            try:
                pairs.append((self.reader(job), job.partition))
            except UserError:
                return [None] * len(jobs)  # run() reports it, job by job
        together = getattr(pairs[0][0], "read_together", None)
        return together(pairs) if together is not None else [None] * len(jobs)

    def run_batch(self, jobs: list[PartitionJob]) -> list[PartitionResult]:
        """Several small partitions of one scan: each read (with its own retries and errors) as run() would,
        then all counted in one engine pass."""
        results = self._run_batch(jobs)
        if jobs and jobs[0].options.approx_subjects:
            for result in results:  # where the partitions were scanned: 16 KiB a set travels, not its keys
                if isinstance(result.state, DatasetState):
                    result.state.sketch_subjects()
        return results

    def _run_batch(self, jobs: list[PartitionJob]) -> list[PartitionResult]:
        if len(jobs) == 1:
            return [self.run(jobs[0])]
        scanner = self.scanner(jobs[0])
        try:
            tables = self.read_together(jobs)
        except Exception:  # noqa: BLE001 - reading together is only a shortcut: each job reads alone instead
            tables = [None] * len(jobs)
        scanner.hold()
        try:
            results = [self.run(job, read) for job, read in zip(jobs, tables, strict=True)]
            scanner.release()
        except Exception:  # noqa: BLE001 - a failure in the shared pass: scan them one by one, errors per partition
            scanner.held = None
            return [self.run(job) for job in jobs]
        finally:
            scanner.held = None
        return results

    def close(self) -> None:
        for source in self.opened:
            source.close()
        self.opened.clear()
        self.sources.clear()
        self.readers.clear()
