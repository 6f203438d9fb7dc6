"""The unit of work: a partition job, its result, and how one is run (with retries) wherever it runs.

A partition is scanned start to end into its own DatasetState, retried from its start when the
connection drops, and merged exactly into its dataset's totals by whoever submitted it. Jobs are
small and picklable so any executor (in-process, a process pool, a cluster) can run them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
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
from spillguard.sources.store import TransientError, one_line
from spillguard.targets import mask_url

RETRIES = 4
BACKOFF_S = 0.5
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
class PartitionResult:
    key: str
    dataset: str
    state: DatasetState | None  # None: the partition could not be scanned (see error)
    malformed: list[Malformed] = field(default_factory=list)
    error: str | None = None


def scan_partition(scanner: DatasetScanner, reader: DatasetReader, partition: Partition, shown: str, subject_field: str | None) -> PartitionResult:
    """Scan a partition into a fresh state; a dropped connection restarts the partition with backoff."""
    delay = BACKOFF_S
    for attempt in range(RETRIES + 1):
        malformed: list[Malformed] = []
        state = scanner.new_state(shown, partition.dataset, subject_field)

        def on_malformed(
            dataset: str, line: int | None, reason: str, kind: str = "malformed", _st: DatasetState = state, _m: list[Malformed] = malformed
        ) -> None:
            if kind == "malformed":
                _st.malformed += 1
            if len(_m) < MAX_MALFORMED or kind != "malformed":  # a cut stream or a warning is always reported
                _m.append((dataset, line, reason, kind))

        try:
            scanner.scan_partition(reader, partition, state, on_malformed)
        except TransientError as exc:
            if attempt == RETRIES:
                return PartitionResult(partition.key, partition.dataset, None, error=f"gave up after {RETRIES} retries: {exc}")
            reader.reset()
            time.sleep(delay)
            delay *= 2
            continue
        except UserError as exc:
            return PartitionResult(partition.key, partition.dataset, None, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - one broken dataset must not end the whole scan
            return PartitionResult(partition.key, partition.dataset, None, error=f"{type(exc).__name__}: {one_line(exc)}")
        return PartitionResult(partition.key, partition.dataset, state, malformed)
    raise AssertionError("unreachable")


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
            reader = self.reader(job)
        except UserError as exc:
            return PartitionResult(job.key, job.dataset, None, error=str(exc))
        if tables is not None:
            reader = _ReadAlready(reader.name, reader.subject_field, reader, tables)
        return scan_partition(scanner, reader, job.partition, mask_url(job.target), job.subject_field)

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
