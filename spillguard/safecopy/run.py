"""`copy()`: plan, refuse an exposed destination, copy Arrow batches through the policy, commit, prove.

Order of work, so that a refusal never leaves anything behind:
  1. policy loaded (unknown transforms, missing or short keys refused), source and destination opened;
  2. every dataset the policy names must exist; a destination that already holds one needs replace/append;
  3. a first batch of every dataset is read: fields the policy does not name, fields it names that do not
     exist, and type changes stop the copy here (exit 2) before anything is written;
  4. the destination is audited as an outsider would; open-read / open-metadata / weak-credentials refuse;
  5. batches are transformed and written; a new field appearing later halts and rolls the copy back;
  6. every dataset commits with its metadata (key ids, policy digest, never a key);
  7. the proof: the destination is scanned with the same rules, and its values are compared with the
     source identifiers by keyed 64-bit hashes.
"""

from __future__ import annotations

import contextlib
import queue
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyarrow as pa

from spillguard.detect.arrays import as_text
from spillguard.detect.flatten import flatten_table
from spillguard.errors import UserError
from spillguard.keys import Hasher
from spillguard.safecopy.checkpoint import CopyCheckpoint, SavedPart, part_id
from spillguard.safecopy.destinations import MODES, Destination, TableWriter, open_destination
from spillguard.safecopy.plan import MIN_GLOBAL_ID_LENGTH, DatasetPlan, IdentifierSets, member, missing_fields
from spillguard.safecopy.policy import ON_NEW, Policy, load_policy
from spillguard.safecopy.transforms import TransformStats, describe_key_use
from spillguard.safecopy.watermark import Watermark
from spillguard.safecopy.workers import PartitionOutput
from spillguard.sources import open_target
from spillguard.sources.base import DatasetReader, Partition
from spillguard.targets import mask_url

SECRET_CATEGORIES = frozenset({"secret", "password"})
REPORTED_CONFIDENCE = frozenset({"medium", "high"})


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True)
class DatasetCopy:
    source: str
    destination: str
    rows: int = 0
    malformed: list[dict[str, Any]] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)  # path -> transform as applied
    notes: dict[str, int] = field(default_factory=dict)
    mode: str = "create"
    watermark: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for how in self.fields.values():
            name = how.split("(", 1)[0]
            counts[name] = counts.get(name, 0) + 1
        return {
            "source": self.source, "destination": self.destination, "rows": self.rows,
            "malformed_records": len(self.malformed), "malformed": self.malformed[:100],
            "fields": self.fields, "transforms": counts, "notes": self.notes, "mode": self.mode,
            "watermark": self.watermark,
        }


@dataclass(slots=True)
class Verification:
    ran: bool = False
    secrets: list[dict[str, Any]] = field(default_factory=list)
    personal_data: list[dict[str, Any]] = field(default_factory=list)
    identifiers: list[dict[str, Any]] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.secrets or self.personal_data or self.identifiers or self.incomplete)

    def to_json(self) -> dict[str, Any]:
        return {"ran": self.ran, "ok": self.ok if self.ran else None, "secrets": self.secrets,
                "personal_data_in_kept_fields": self.personal_data, "source_identifiers_found": self.identifiers,
                "incomplete": self.incomplete}


@dataclass(slots=True)
class CopyResult:
    """What `spillguard copy --format json` prints; `exit_code` is 1 when the proof failed."""

    source: str
    destination: str
    started_at: str
    finished_at: str = ""
    mode: str = "create"
    policy_sha256: str = ""
    keys: dict[str, Any] = field(default_factory=dict)
    exposure: dict[str, Any] | None = None
    datasets: list[DatasetCopy] = field(default_factory=list)
    not_in_policy: list[str] = field(default_factory=list)
    verification: Verification = field(default_factory=Verification)
    watch: dict[str, Any] | None = None  # --watch-config: the file and the entry, added or already there
    checkpoint: dict[str, Any] | None = None  # --state: the file, the copy's run id, partitions done before a resume

    @property
    def exit_code(self) -> int:
        return 0 if not self.verification.ran or self.verification.ok else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1, "source": self.source, "destination": self.destination, "started_at": self.started_at,
            "finished_at": self.finished_at, "mode": self.mode, "policy_sha256": self.policy_sha256,
            "keys": self.keys, "exposure": self.exposure, "datasets": [d.to_json() for d in self.datasets],
            "not_in_policy": self.not_in_policy, "verification": self.verification.to_json(), "watch": self.watch,
            "checkpoint": self.checkpoint,
        }


@dataclass(slots=True)
class _Run:
    """What worker processes need to redo the parent's reading and transforming."""

    source: str
    source_options: dict[str, Any]
    policy: Policy
    on_new: str
    seed: int | None
    workers: int
    identifiers: IdentifierSets | None
    checkpoint: CopyCheckpoint | None = None


@dataclass(slots=True)
class _Job:
    reader: DatasetReader
    plan: DatasetPlan
    record: DatasetCopy
    mode: str = "create"
    mark: Watermark | None = None
    writer: TableWriter | None = None
    partitions: list[Partition] = field(default_factory=list)
    saved: dict[str, SavedPart] = field(default_factory=dict)  # a resumed copy's finished partitions
    published: bool = False  # a resumed copy had already made this dataset visible
    rows: int = 0
    totals: TransformStats = field(default_factory=TransformStats)

    @property
    def since(self) -> tuple[str, Any] | None:
        return (self.mark.field, self.mark.last) if self.mark is not None else None


class CopyHalted(UserError):
    """A field the policy does not cover, or a type change, showed up mid-copy: everything is rolled back."""


def first_table(reader: DatasetReader, partitions: list[Partition]) -> pa.Table | None:
    """The first non-empty batch of a dataset (read again by the copy: sources hold one connection)."""
    for part in partitions:
        gen = reader.read(part, lambda *_: None)
        try:
            for table in gen:
                if table.num_rows:
                    return table
        finally:
            gen.close()  # type: ignore[attr-defined]
            # A read stopped mid-stream (a COPY cut short) leaves the source's connection unusable: reconnect.
            reset = getattr(reader, "reset", None)
            if reset is not None:
                reset()
    return None


def pushed_down(partitions: list[Partition], since: tuple[str, Any] | None) -> list[Partition]:
    """Partitions that ask the source for records at or past the watermark (`since` in the spec): stores that
    can filter do (SQL WHERE, Elasticsearch range, MongoDB $gte), files ignore it; the exact cut is the same
    Arrow comparison either way (Watermark.select), so both paths copy the same records."""
    if since is None or since[1] is None:
        return partitions
    return [Partition(p.dataset, {**p.spec, "since": [since[0], since[1]]}) for p in partitions]


def _halt_message(problems: list[str], on_new_hint: bool) -> str:
    shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
    hint = " (or --on-new drop / --on-new null)" if on_new_hint else ""
    return f"copy halted before writing: {shown}. Add these fields to the policy{hint}"


def copy(
    source: str,
    destination: str,
    *,
    policy: str | Path | Policy,
    mode: str = "create",
    on_new: str | None = None,
    allow_exposed_destination: bool = False,
    fmt: str | None = None,
    verify: bool = True,
    audit_timeout: float = 5.0,
    since: str | None = None,
    state: str | Path | None = None,
    resume: bool = False,
    workers: int = 1,
    watch_config: str | Path | None = None,
    **source_options: Any,
) -> CopyResult:
    """Copy the datasets a policy names from `source` to `destination`, transformed; see the module doc.

    `state` checkpoints every finished partition (and keeps watermarks between runs); `resume` continues the
    copy a state file recorded as interrupted. `since` names a watermark field (a dataset's `watermark` in
    the policy overrides it): a run copies only records past the last run's watermark and appends them.
    `workers` > 1 reads and transforms partitions in that many processes; the parent writes.
    `watch_config` adds the destination to that spillguard.toml's watch list once the copy is committed."""
    if mode not in MODES:
        raise UserError(f"mode must be one of {', '.join(MODES)}")
    if resume and state is None:
        raise UserError("--resume needs --state FILE: the state file of the copy to continue")
    pol = policy if isinstance(policy, Policy) else load_policy(policy)
    on_new = on_new or pol.on_new or "halt"
    if on_new not in ON_NEW:
        raise UserError(f"--on-new must be one of {', '.join(ON_NEW)}")
    result = CopyResult(mask_url(source), mask_url(destination), _now(), mode=mode, policy_sha256=pol.digest,
                        keys=describe_key_use(pol))
    seed = secrets.randbits(63)
    identifiers = IdentifierSets(Hasher(seed)) if verify else None
    plans = {name: DatasetPlan(ds, pol, on_new, identifiers) for name, ds in pol.datasets.items()}
    watermarks = {name: f for name, ds in pol.datasets.items() if (f := ds.watermark or since)}
    if watermarks and state is None:
        raise UserError("--since (or a policy watermark) needs --state FILE, where the last copied watermark is kept")
    checkpoint = CopyCheckpoint(state, mask_url(destination)) if state is not None else None
    try:
        pending = checkpoint.pending(resume) if checkpoint is not None else None
        src = open_target(source, **source_options)
    except BaseException:
        if checkpoint is not None:
            checkpoint.close()
        raise
    dest: Destination | None = None
    jobs: list[_Job] = []
    started = False
    watch_file: Path | None = None
    try:
        readers = {r.name: r for r in src.datasets()}
        missing = [n for n in pol.datasets if n not in readers]
        if missing:
            known = ", ".join(sorted(readers)[:10]) or "none"
            raise UserError(f"{pol.path}: dataset(s) {', '.join(missing)} not found in {result.source} (it has: {known})")
        result.not_in_policy = sorted(n for n in readers if n not in pol.datasets)
        dest = open_destination(destination, fmt)
        if watch_config is not None:
            from spillguard.safecopy.watchlist import prepare_watch

            watch_file = prepare_watch(watch_config, dest)
        assert checkpoint is not None or not watermarks
        marks = {n: Watermark(f, checkpoint.watermark(n, f)) for n, f in watermarks.items()} if checkpoint else {}
        saved = {n: checkpoint.saved(n) for n in pol.datasets} if checkpoint is not None and pending else {}
        # A dataset copied before with a watermark is continued: its new records are appended.
        modes = {n: "append" if n in marks and marks[n].last is not None else mode for n in pol.datasets}
        if "create" in modes.values() and not pending:
            # A resumed copy checked its datasets when it began; the ones it wrote to may exist by now.
            taken = [ds.to for n, ds in pol.datasets.items() if modes[n] == "create" and dest.exists(ds.to)]
            if taken:
                raise UserError(f"{dest.target} already holds {', '.join(taken)}; use --replace or --append")

        problems: list[str] = []
        for name, ds in pol.datasets.items():
            reader, plan = readers[name], plans[name]
            partitions = reader.partitions()
            first = first_table(reader, partitions)
            if first is not None:
                d = plan.check(first.schema)
                problems += [f"{name}: new field {p!r}" for p in d.new]
                problems += [f"{name}: {p!r} is {seen}, the policy says {declared}" for p, declared, seen in d.changed]
                problems += [f"{name}: policy field {p!r} does not exist at the source" for p in missing_fields(ds, first.schema)]
                if name in marks and marks[name].field not in first.column_names:
                    raise UserError(f"{name}: watermark field {marks[name].field!r} is not a top-level field of its records; "
                                    "name one with --since, or per dataset with `watermark` in the policy")
            job = _Job(reader, plan, DatasetCopy(name, dest.dataset_name(ds.to)), mode=modes[name], mark=marks.get(name),
                       saved=saved.get(name, {}))
            job.partitions = pushed_down(partitions, job.since)
            jobs.append(job)
        if problems:
            raise UserError(_halt_message(problems, on_new == "halt" and any("new field" in p for p in problems)))

        result.exposure = _check_exposure(dest, allow_exposed_destination, audit_timeout)
        if checkpoint is not None:
            checkpoint.start(_identity(result, pol, on_new, fmt, verify, source_options, jobs), resume, seed)
            started = True
            if identifiers is not None:
                identifiers.hasher = Hasher(checkpoint.seed)  # a resumed copy hashes as the interrupted one did
            seed = checkpoint.seed
            if checkpoint.resumed:
                planned = checkpoint.partitions()
                for job in jobs:
                    job.partitions = [Partition(job.record.source, spec) for spec in planned.get(job.record.source, [])]
            for job in jobs:
                job.published = bool(job.saved) and dest.published(pol.datasets[job.record.source].to, checkpoint.run_id)
        run = _Run(source, source_options, pol, on_new, seed if verify else None, workers, identifiers, checkpoint)
        _copy_all(jobs, dest, pol, result, run)
        if checkpoint is not None:
            checkpoint.finish({job.record.source: (job.mark.field, job.mark.seen if job.mark.seen is not None else job.mark.last)
                               for job in jobs if job.mark is not None})
    except CopyHalted:
        for job in jobs:
            if job.writer is not None:
                with contextlib.suppress(Exception):
                    job.writer.discard()
        if dest is not None:
            with contextlib.suppress(Exception):
                dest.finish(False)
        if checkpoint is not None and started:
            checkpoint.abandon()
        raise
    except BaseException as exc:
        for job in jobs:
            if job.writer is not None:
                with contextlib.suppress(Exception):
                    job.writer.abort()
        if dest is not None:
            with contextlib.suppress(Exception):
                dest.finish(False)
        if checkpoint is not None and started and isinstance(exc, KeyboardInterrupt):
            raise CopyInterrupted(checkpoint.path, checkpoint.parts_saved()) from None
        raise
    finally:
        src.close()
        if checkpoint is not None:
            checkpoint.close()
    try:
        if verify:
            assert identifiers is not None
            result.verification = _verify(dest, jobs, identifiers, source_options.get("connect_timeout"), workers)
    finally:
        dest.close()
    if watch_file is not None:
        from spillguard.safecopy.watchlist import add_to_watch

        result.watch = add_to_watch(watch_file, dest)
    result.finished_at = _now()
    return result


class CopyInterrupted(KeyboardInterrupt):
    """Ctrl-C during a checkpointed copy: says what was saved and how to go on."""

    def __init__(self, state: Path, saved: int) -> None:
        super().__init__()
        self.state = state
        self.saved = saved

    def advice(self) -> str:
        return (f"interrupted; {self.saved:,} finished partition{'' if self.saved == 1 else 's'} saved in {self.state}: "
                "run the same command with --resume to continue")


# Source options that do not change what is copied (a resume may differ in them).
_NOT_IN_IDENTITY = {"password", "progress", "max_rps", "connect_timeout", "read_timeout", "retry_budget"}


def _identity(result: CopyResult, pol: Policy, on_new: str, fmt: str | None, verify: bool,
              source_options: dict[str, Any], jobs: list[_Job]) -> dict[str, Any]:
    """What a resumed copy must have in common with the interrupted one (masked, digests and ids only)."""
    return {
        "source": result.source, "destination": result.destination, "policy_sha256": pol.digest,
        "keys": {n: k["key_id"] for n, k in result.keys.items()},
        "options": {"mode": result.mode, "on_new": on_new, "fmt": fmt, "verify": verify,
                    "source": {k: v for k, v in sorted(source_options.items()) if k not in _NOT_IN_IDENTITY},
                    "since": {job.record.source: list(job.since) if job.since else None for job in jobs}},
        # A file's size and time: its saved partitions must still mean the same records.
        "signatures": {job.record.source: job.reader.signature() for job in jobs},
        # Kept, not compared: a resumed copy reuses these bounds (a store's statistics may have moved since).
        "partitions": {job.record.source: [p.spec for p in job.partitions] for job in jobs},
    }


def _check_exposure(dest: Destination, allowed: bool, timeout: float) -> dict[str, Any] | None:
    if dest.audit_url is None:
        return None  # local files: created owner-only
    from spillguard.audit import audit

    verdict = audit([dest.audit_url], timeout=timeout).targets[0]
    info = {"verdict": str(verdict.verdict), "allowed_by_flag": False, "reason": verdict.evidence.get("reason")}
    if verdict.exposed:
        if not allowed:
            raise UserError(
                f"{dest.target} is exposed ({verdict.verdict}: {verdict.evidence.get('reason', 'see spillguard audit')}); "
                "protect it first, or pass --allow-exposed-destination (recorded with the copy)"
            )
        info["allowed_by_flag"] = True
    return info


def _rolled_back(problems: list[str], new: bool) -> CopyHalted:
    return CopyHalted(_halt_message(problems, new).replace("before writing", "and rolled back"))


def _absorb(job: _Job, part: SavedPart, run: _Run) -> None:
    """A finished partition's counts into its dataset's (written now, or saved by an interrupted run)."""
    job.rows += part.rows
    job.record.malformed += part.malformed
    for path, how in part.auto.items():
        job.plan.auto.setdefault(path, how)
    for note, n in part.notes.items():
        job.totals.add(note, n)
    if job.mark is not None and part.seen is not None and (job.mark.seen is None or part.seen > job.mark.seen):
        job.mark.seen = part.seen
    if run.identifiers is not None:
        for path, hashes in part.by_path.items():
            run.identifiers.by_path.setdefault(path, []).append(hashes)
        if part.long_values is not None:
            run.identifiers.long_values.append(part.long_values)


def _finished(job: _Job, pid: str, order: int, out: PartitionOutput, run: _Run) -> None:
    """A partition written: checkpointed (state and destination marker in the order that keeps them true)."""
    if out.halt:
        raise _rolled_back(out.halt, any("new field" in h for h in out.halt))
    part = SavedPart(out.rows, out.notes, out.auto, out.malformed, out.seen, out.by_path, out.long_values)
    ckpt = run.checkpoint
    if ckpt is not None:
        assert job.writer is not None
        if job.writer.markers:  # the destination's marker is the truth: the state must know the partition first
            ckpt.save(job.record.source, pid, part)
            job.writer.checkpoint(pid, order)
        else:  # idempotent writes: the state says done only once the documents are in
            job.writer.checkpoint(pid, order)
            ckpt.save(job.record.source, pid, part)
    _absorb(job, part, run)


def _todo(jobs: list[_Job], dest: Destination, pol: Policy, run: _Run) -> list[tuple[_Job, int, Partition]]:
    """Open the writers and list the partitions still to copy; a resumed copy's finished ones are absorbed."""
    todo = []
    ckpt = run.checkpoint
    for job in jobs:
        done: set[str] = set()
        if not job.published:
            job.writer = dest.open(pol.datasets[job.record.source].to, job.mode,
                                   ckpt.run_id if ckpt is not None else None, bool(job.saved))
            if ckpt is not None:
                done = job.writer.done() if job.writer.markers else set(job.saved)
                if done - set(job.saved):
                    raise UserError(f"--state {ckpt.path}: the destination holds partitions of {job.record.source} this "
                                    "state file does not know; it cannot be resumed: copy again with --replace and a new --state file")
        for order, part in enumerate(job.partitions):
            pid = part_id(part.key)
            if job.published or pid in done:
                _absorb(job, job.saved[pid], run)
            else:
                todo.append((job, order, part))
    return todo


def _copy_parallel(todo: list[tuple[_Job, int, Partition]], run: _Run) -> None:
    """Every partition still to copy to the worker pool, at most 2 per worker in flight (bounded memory)."""
    from concurrent.futures import FIRST_COMPLETED, Future, wait

    from spillguard.safecopy.workers import PartitionTask, run_partition, tables_of
    from spillguard.scan.executors import worker_pool

    pool = worker_pool(run.workers)
    pending: dict[Future[Any], tuple[_Job, int, Partition]] = {}
    try:
        queue = iter(todo)
        while True:
            while len(pending) < 2 * run.workers:
                nxt = next(queue, None)
                if nxt is None:
                    break
                job, _, part = nxt
                task = PartitionTask(run.source, run.source_options, run.policy, run.on_new, job.record.source,
                                     part.spec, run.seed, job.since)
                pending[pool.submit(run_partition, task)] = nxt
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                job, order, part = pending.pop(fut)
                out = fut.result()
                if out.error:
                    raise UserError(out.error)
                if not out.halt:
                    assert job.writer is not None
                    for table in tables_of(out):
                        job.writer.write(table)
                _finished(job, part_id(part.key), order, out, run)
    finally:
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


class _WriteBehind:
    """A one-process copy's writes and partition checkpoints, run in order by one thread while the next rows are
    read and transformed: the destination's server works while the source's does (pg_dump | psql overlaps them
    the same way). At most two calls wait (bounded memory). The first error stops the calls after it and is
    raised in the copying thread at its next call or at close; close(ok=False) skips what waits, after the
    call in progress ends."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Callable[..., None], tuple[Any, ...]] | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._skip = False
        self._thread = threading.Thread(target=self._run, name="spillguard-write-behind", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None and not self._skip:
                try:
                    item[0](*item[1])
                except BaseException as exc:  # noqa: BLE001 - handed to the copying thread
                    self._error = exc

    def call(self, fn: Callable[..., None], *args: Any) -> None:
        self._raise()
        self._queue.put((fn, args))

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def close(self, ok: bool) -> None:
        self._skip = not ok
        self._queue.put(None)
        self._thread.join()
        if ok:
            self._raise()


class _WrittenBehind:
    """A TableWriter whose writes and checkpoints run on a _WriteBehind, in the order they are made."""

    def __init__(self, writer: TableWriter, behind: _WriteBehind) -> None:
        self._writer, self._behind = writer, behind

    def write(self, table: pa.Table) -> None:
        self._behind.call(self._writer.write, table)

    def checkpoint(self, pid: str, order: int) -> None:
        self._behind.call(self._writer.checkpoint, pid, order)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


def _copy_serial(todo: list[tuple[_Job, int, Partition]], run: _Run) -> None:
    from spillguard.safecopy.workers import transform_partition

    hasher = run.identifiers.hasher if run.identifiers is not None else None
    # Writers whose connection may be used from another thread write behind the reading. The state file
    # (--state, SQLite) stays in this thread and is saved before the destination's marker is queued: the order
    # _finished keeps for writers whose markers are the truth, the only ones written behind with --state.
    jobs = {id(job): job for job, _, _ in todo}
    writers = {key: job.writer for key, job in jobs.items()}
    behind = None
    if todo and all(w is not None and getattr(w, "write_behind", False) and (run.checkpoint is None or w.markers)
                    for w in writers.values()):
        behind = _WriteBehind()
        for key, job in jobs.items():
            job.writer = cast(TableWriter, _WrittenBehind(cast(TableWriter, writers[key]), behind))
    try:
        for job, order, part in todo:
            out = PartitionOutput()
            assert job.writer is not None
            for table in transform_partition(job.reader, job.plan, part, job.since, hasher, out):
                job.writer.write(table)
            _finished(job, part_id(part.key), order, out, run)
    except BaseException:
        if behind is not None:
            behind.close(ok=False)
        raise
    finally:
        for key, job in jobs.items():
            job.writer = writers[key]
    if behind is not None:
        behind.close(ok=True)


def _copy_all(jobs: list[_Job], dest: Destination, pol: Policy, result: CopyResult, run: _Run) -> None:
    todo = _todo(jobs, dest, pol, run)
    if run.checkpoint is not None:
        total = sum(len(job.partitions) for job in jobs)
        result.checkpoint = {"state": str(run.checkpoint.path), "run": run.checkpoint.run_id, "resumed": run.checkpoint.resumed,
                             "partitions": total, "partitions_done_before": total - len(todo)}
    if run.workers > 1 and len(todo) > 1:
        _copy_parallel(todo, run)
    else:
        _copy_serial(todo, run)
    for job in jobs:
        record, plan = job.record, job.plan
        for path, rule in plan.dataset.fields.items():
            record.fields[path] = rule.describe()
        for path, how in plan.auto.items():
            record.fields[path] = f"{how} (on-new)"
        record.notes = dict(job.totals.notes)
        record.rows = job.rows
        if job.mark is not None:
            record.watermark = {"field": job.mark.field, "after": job.mark.last, "up_to": job.mark.seen}
        record.mode = job.mode
        meta = {
            "tool": "spillguard copy", "source": result.source, "dataset": record.source, "copied_at": _now(),
            "policy_sha256": pol.digest, "keys": describe_key_use(pol), "fields": record.fields, "rows": record.rows,
            "malformed_records": len(record.malformed),
        }
        if run.checkpoint is not None:
            meta["run"] = run.checkpoint.run_id
        if result.exposure and result.exposure.get("allowed_by_flag"):
            meta["exposed_destination_allowed"] = result.exposure["verdict"]
        if job.writer is not None:
            job.writer.commit(meta)
        result.datasets.append(record)
    dest.finish(True)


def _verify(dest: Destination | None, jobs: list[_Job], identifiers: IdentifierSets, timeout: float | None, workers: int = 1) -> Verification:
    import spillguard

    assert dest is not None
    v = Verification(ran=True)
    names = [job.plan.dataset.to for job in jobs]
    by_dest = {job.record.destination: job for job in jobs}
    targets, options = dest.scan_plan(names)
    if timeout:
        options["connect_timeout"] = timeout
    scan = spillguard.scan(targets, workers=workers, **options)
    for err in scan.errors:
        if err.kind != "warning":
            v.incomplete.append(f"{err.dataset or err.target}: {err.message}")
    for f in scan.findings:
        job = by_dest.get(f.dataset)
        if job is None or f.confidence not in REPORTED_CONFIDENCE:
            continue
        entry = {"dataset": f.dataset, "field": f.field, "category": f.category, "rule": f.rule,
                 "records": f.records_matched, "confidence": f.confidence}
        if f.category in SECRET_CATEGORIES:
            v.secrets.append(entry)
            continue
        rule = job.plan.rule(f.field)
        allowed = rule is not None and f.category in (rule.options.get("allow") or [])
        if (rule is None or rule.transform in ("keep", "redact")) and not allowed:
            v.personal_data.append({**entry, "transform": rule.transform if rule else "none"})
    per_path, long_values = identifiers.frozen()
    if per_path or long_values.size:
        v.identifiers = _identifier_matches(dest, by_dest, targets, options, identifiers.hasher, per_path, long_values)
    return v


def _identifier_matches(
    dest: Destination, by_dest: dict[str, _Job], targets: list[str], options: dict[str, Any], hasher: Hasher,
    per_path: dict[str, np.ndarray], long_values: np.ndarray,
) -> list[dict[str, Any]]:
    """(dataset, field, count) of destination values whose keyed hash equals a source identifier's."""
    found: dict[tuple[str, str], int] = {}
    for target in targets:
        src = open_target(target, **options)
        try:
            for reader in src.datasets():
                if reader.name not in by_dest:
                    continue
                for part in reader.partitions():
                    for table in reader.read(part, lambda *_: None):
                        for leaf in flatten_table(table):
                            text = as_text(leaf.values)
                            h = hasher.hash_strings(text)
                            hit = np.zeros(h.size, bool)
                            own = per_path.get(leaf.path)
                            if own is not None:
                                hit |= member(h, own)
                            if long_values.size:
                                lengths = np.asarray(pa.compute.fill_null(pa.compute.utf8_length(text), 0))
                                hit |= member(h, long_values) & (lengths >= MIN_GLOBAL_ID_LENGTH)
                            hit &= h != 0
                            n = int(hit.sum())
                            if n:
                                key = (reader.name, leaf.path)
                                found[key] = found.get(key, 0) + n
        finally:
            src.close()
    return [{"dataset": d, "field": p, "values": n} for (d, p), n in sorted(found.items())]
