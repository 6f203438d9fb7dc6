"""Partitions run in parallel worker processes, each finished one checkpointed so a scan can resume.

A partition is the unit of everything here: it is scanned start to end into its own DatasetState,
retried from its start when the store fails transiently (within the target's retry budget, see
spillguard/sources/retry.py), written to the state file in one transaction
when it finishes, and merged exactly into its dataset's totals. A resumed scan loads the finished
partitions from the state file and runs only the rest; because the subject hasher's seed is kept
in the state file too, the merged counts equal an uninterrupted run's.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import signal
import sqlite3
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from spillguard.detect.state import DatasetState
from spillguard.errors import UserError
from spillguard.sources import Partition, mask_url, open_target

if TYPE_CHECKING:
    from spillguard.scanner import DatasetScanner, ScanOptions
    from spillguard.sources.retry import Breaker

MAX_MALFORMED = 1000
# Options that must not be written anywhere (fingerprint, state file) or that do not change results.
_NOT_FINGERPRINTED = {"password", "progress", "max_rps", "connect_timeout", "read_timeout", "retry_budget"}

Malformed = tuple[str, int | None, str]


@dataclass(slots=True)
class PartitionJob:
    """Everything a worker process needs to scan one partition; small and picklable."""

    target: str  # may carry a password: kept in memory only, never logged or stored
    dataset: str
    spec: dict[str, Any]
    subject_field: str | None
    options: ScanOptions
    key_bytes: bytes | None = None  # the fingerprint key, so workers fingerprint secrets as the parent does

    @property
    def key(self) -> str:
        return Partition(self.dataset, self.spec).key


@dataclass(slots=True)
class PartitionResult:
    key: str
    dataset: str
    state: DatasetState | None
    malformed: list[Malformed] = field(default_factory=list)
    error: str | None = None
    size: int = 0
    target_down: bool = False  # the target's breaker is open: its partitions not yet scanned are not tried
    retries: int = 0  # times the partition was started over after a transient failure
    retry_reason: str | None = None  # the first of those failures


def default_workers() -> int:
    """One worker per core this process may run on (taskset, cpusets), not per core of the machine."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity API (macOS)
        return max(1, os.cpu_count() or 1)


def source_options_for(options: ScanOptions, target: str) -> dict[str, Any]:
    """Scan-wide source options, overridden by the target's own (from the config file)."""
    merged = {**options.source_options, **options.target_options.get(target, {}), "seed": options.seed}
    for key in ("include", "exclude"):
        both = list(options.source_options.get(key) or []) + list(options.target_options.get(target, {}).get(key) or [])
        if both:
            merged[key] = both
    return merged


# -- merging ---------------------------------------------------------------------------------------
# -- one partition, with retries --------------------------------------------------------------------
def scan_partition(
    scanner: DatasetScanner, reader: Any, partition: Partition, shown: str, subject_field: str | None, breaker: Breaker
) -> PartitionResult:
    """Scan a partition into a fresh state; a transient failure restarts it, within the target's retry
    budget. `reader` may be a callable that opens the reader (a worker's first connection can fail too)."""
    from spillguard.sources.retry import Delivering, GaveUp, with_retries
    from spillguard.sources.store import one_line

    opened: list[Any] = [] if callable(reader) else [reader]

    def attempt() -> PartitionResult:
        if not opened:
            opened.append(reader())
        malformed: list[Malformed] = []
        state = scanner.new_state(shown, partition.dataset, subject_field)

        def on_malformed(dataset: str, line: int | None, reason: str) -> None:
            state.malformed += 1
            if len(malformed) < MAX_MALFORMED:
                malformed.append((dataset, line, reason))

        scanner.scan_partition(Delivering(opened[0], breaker), partition, state, on_malformed)
        return PartitionResult(partition.key, partition.dataset, state, malformed)

    def reset() -> None:
        if opened and hasattr(opened[0], "reset"):
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
    result.retries, result.retry_reason = len(retried), retried[0] if retried else None
    return result


# -- worker processes -------------------------------------------------------------------------------
_worker_scanners: dict[str, DatasetScanner] = {}
_worker_sources: dict[str, Any] = {}


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


def _scanner_for(options: ScanOptions, key: bytes | None) -> DatasetScanner:
    from spillguard.detect.hashing import Hasher
    from spillguard.scanner import DatasetScanner, build_ruleset

    fp = options_fingerprint(options, [], include_seed=True)
    scanner = _worker_scanners.get(fp)
    if scanner is None:
        # Same seed in every worker: subject hashes from different processes must agree.
        scanner = DatasetScanner(build_ruleset(options), Hasher(options.seed), options, key)
        _worker_scanners[fp] = scanner
    return scanner


def _reader_for(job: PartitionJob) -> Any:
    source = _worker_sources.get(job.target)
    if source is None:
        source = open_target(job.target, subject_field=job.options.subject_field, progress=None, **source_options_for(job.options, job.target))
        _worker_sources[job.target] = source
    opener = getattr(source, "dataset", None)
    if opener is not None:
        return opener(job.dataset)
    for reader in source.datasets():
        if reader.name == job.dataset:
            return reader
    raise UserError(f"{mask_url(job.target)}: dataset {job.dataset!r} disappeared during the scan")


def run_job(job: PartitionJob) -> PartitionResult:
    """Worker entry point."""
    from spillguard.sources.retry import breaker_for

    try:
        scanner = _scanner_for(job.options, job.key_bytes)
    except UserError as exc:
        return PartitionResult(job.key, job.dataset, None, error=str(exc))
    partition = Partition(job.dataset, job.spec)
    shown = mask_url(job.target)
    breaker = breaker_for(job.target, shown, source_options_for(job.options, job.target).get("retry_budget"))
    opened: list[Any] = []

    def open_reader() -> Any:  # inside the retries: a store restarting when this worker first connects
        opened.append(_reader_for(job))
        return opened[-1]

    result = scan_partition(scanner, open_reader, partition, shown, job.subject_field, breaker)
    reader = opened[-1] if opened else None
    if result.state is not None and hasattr(reader, "size"):
        # Progress is in bytes for files: a whole file, a byte range, or a row group's share.
        spec = job.spec
        if "start" in spec:
            result.size = int(spec["end"]) - int(spec["start"])
        elif "row_group" in spec:
            result.size = int(reader.size() or 0) // max(1, _row_groups(reader))
        elif len(spec) <= 1:
            result.size = int(reader.size() or 0)
    return result


def _row_groups(reader: Any) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(reader.path).num_row_groups


def make_executor(workers: int) -> Executor:
    import multiprocessing

    # fork where available: spawn and forkserver re-run the caller's __main__ in every worker, which
    # breaks scripts without a main guard. Forked workers never touch (or finalise: they leave through
    # os._exit) the parent's open connections; each opens its own.
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init)


# -- checkpoints ------------------------------------------------------------------------------------
# Bumped whenever hashing or counting changes, so that a state file never mixes partitions counted two ways.
STATE_FORMAT = 2  # 2: hashes of values followed by empty ones in a batch were cut one byte short


def options_fingerprint(options: ScanOptions, targets: list[str], *, include_seed: bool = False) -> str:
    """What must be equal for checkpointed partitions to be reusable: rules, fields, sampling, targets."""
    rule_digests = []
    for f in options.rule_files:
        try:
            rule_digests.append(hashlib.sha256(Path(f).read_bytes()).hexdigest())
        except OSError:
            rule_digests.append(str(f))
    src = {k: v for k, v in options.source_options.items() if k not in _NOT_FINGERPRINTED}
    per_target = {mask_url(t): {k: v for k, v in o.items() if k not in _NOT_FINGERPRINTED} for t, o in options.target_options.items()}
    doc = {
        "rules": rule_digests,
        "only": sorted(options.only or []),
        "exclude": sorted(options.exclude or []),
        "subject_field": options.subject_field,
        "show_samples": options.show_samples,
        "source": src,
        "per_target": per_target,
        "targets": [mask_url(t) for t in targets],
        "seed": options.seed if include_seed else None,
        "state_format": STATE_FORMAT,
    }
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:32]


class Checkpoint:
    """The state file: one row per finished partition, holding its pickled DatasetState.

    Created owner-only (it holds keyed hashes and masked samples, never raw values) and in WAL mode
    so a crash or kill -9 at any moment leaves every committed partition readable.
    """

    def __init__(self, path: str | Path, options: ScanOptions, targets: list[str], *, resume: bool) -> None:
        self.path = Path(path)
        existed = self.path.exists() and self.path.stat().st_size > 0
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.chmod(self.path, 0o600)
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS scan (fingerprint TEXT PRIMARY KEY, seed INTEGER NOT NULL, started_at TEXT NOT NULL)")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS partition (fingerprint TEXT NOT NULL, target TEXT NOT NULL, key TEXT NOT NULL, "
                "state BLOB NOT NULL, finished_at TEXT NOT NULL, PRIMARY KEY (fingerprint, target, key))"
            )
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{self.path}: not a spillguard state file ({exc})") from None
        self.fingerprint = options_fingerprint(options, targets)
        rows = self.db.execute("SELECT fingerprint, seed FROM scan").fetchall()
        stored = dict(rows)
        if existed and rows and not resume:
            raise UserError(f"{self.path}: state file of an earlier scan exists; pass --resume to continue it or choose a new --state file")
        if resume and rows and self.fingerprint not in stored:
            raise UserError(
                f"{self.path}: this state file belongs to a scan with other targets or options (or an older spillguard); "
                "resume with the same command line or use a new --state file"
            )
        if self.fingerprint in stored:
            self.seed = int(stored[self.fingerprint])
        else:
            self.seed = options.seed
            self.db.execute(
                "INSERT INTO scan VALUES (?, ?, datetime('now'))", (self.fingerprint, options.seed)
            )

    def finished(self, target: str) -> dict[str, tuple[DatasetState, list[Malformed]]]:
        out: dict[str, tuple[DatasetState, list[Malformed]]] = {}
        for key, blob in self.db.execute(
            "SELECT key, state FROM partition WHERE fingerprint = ? AND target = ?", (self.fingerprint, target)
        ):
            out[key] = pickle.loads(blob)
        return out

    def save(self, target: str, key: str, state: DatasetState, malformed: list[Malformed]) -> None:
        # Personal data (subject display names) never goes to disk; everything else is hashes and counts.
        clean = replace(state, subject_display={})
        blob = pickle.dumps((clean, malformed), protocol=pickle.HIGHEST_PROTOCOL)
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(
                "INSERT OR REPLACE INTO partition VALUES (?, ?, ?, ?, datetime('now'))", (self.fingerprint, target, key, blob)
            )

    def close(self) -> None:
        self.db.close()

