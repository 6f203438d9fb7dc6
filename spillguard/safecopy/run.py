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
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from spillguard.detect.arrays import as_text
from spillguard.detect.flatten import flatten_table
from spillguard.errors import UserError
from spillguard.keys import Hasher
from spillguard.safecopy.destinations import MODES, Destination, TableWriter, open_destination
from spillguard.safecopy.plan import MIN_GLOBAL_ID_LENGTH, DatasetPlan, IdentifierSets, member, missing_fields
from spillguard.safecopy.policy import ON_NEW, Policy, load_policy
from spillguard.safecopy.transforms import describe_key_use
from spillguard.safecopy.watermark import CopyState, Watermark
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

    @property
    def exit_code(self) -> int:
        return 0 if not self.verification.ran or self.verification.ok else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1, "source": self.source, "destination": self.destination, "started_at": self.started_at,
            "finished_at": self.finished_at, "mode": self.mode, "policy_sha256": self.policy_sha256,
            "keys": self.keys, "exposure": self.exposure, "datasets": [d.to_json() for d in self.datasets],
            "not_in_policy": self.not_in_policy, "verification": self.verification.to_json(),
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


@dataclass(slots=True)
class _Job:
    reader: DatasetReader
    plan: DatasetPlan
    record: DatasetCopy
    mode: str = "create"
    mark: Watermark | None = None
    writer: TableWriter | None = None


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
    workers: int = 1,
    **source_options: Any,
) -> CopyResult:
    """Copy the datasets a policy names from `source` to `destination`, transformed; see the module doc.

    `since` names a watermark field (a dataset's `watermark` in the policy overrides it); with `state`, a run
    copies only records past the last run's watermark and appends them. `workers` > 1 reads and transforms
    partitions in that many processes; the parent writes."""
    if mode not in MODES:
        raise UserError(f"mode must be one of {', '.join(MODES)}")
    pol = policy if isinstance(policy, Policy) else load_policy(policy)
    on_new = on_new or pol.on_new or "halt"
    if on_new not in ON_NEW:
        raise UserError(f"--on-new must be one of {', '.join(ON_NEW)}")
    result = CopyResult(mask_url(source), mask_url(destination), _now(), mode=mode, policy_sha256=pol.digest,
                        keys=describe_key_use(pol))
    seed = secrets.randbits(63)
    hasher = Hasher(seed)
    identifiers = IdentifierSets(hasher) if verify else None
    plans = {name: DatasetPlan(ds, pol, on_new, identifiers) for name, ds in pol.datasets.items()}
    watermarks = {name: f for name, ds in pol.datasets.items() if (f := ds.watermark or since)}
    copy_state = None
    if watermarks:
        if state is None:
            raise UserError("--since (or a policy watermark) needs --state FILE, where the last copied watermark is kept")
        copy_state = CopyState.load(state, mask_url(destination))

    src = open_target(source, **source_options)
    dest: Destination | None = None
    jobs: list[_Job] = []
    try:
        readers = {r.name: r for r in src.datasets()}
        missing = [n for n in pol.datasets if n not in readers]
        if missing:
            known = ", ".join(sorted(readers)[:10]) or "none"
            raise UserError(f"{pol.path}: dataset(s) {', '.join(missing)} not found in {result.source} (it has: {known})")
        result.not_in_policy = sorted(n for n in readers if n not in pol.datasets)
        dest = open_destination(destination, fmt)
        marks = {n: copy_state.watermark(n, f) for n, f in watermarks.items()} if copy_state else {}
        # A dataset copied before with a watermark is continued: its new records are appended.
        modes = {n: "append" if n in marks and marks[n].last is not None else mode for n in pol.datasets}
        if "create" in modes.values():
            taken = [ds.to for n, ds in pol.datasets.items() if modes[n] == "create" and dest.exists(ds.to)]
            if taken:
                raise UserError(f"{dest.target} already holds {', '.join(taken)}; use --replace or --append")

        problems: list[str] = []
        for name, ds in pol.datasets.items():
            reader, plan = readers[name], plans[name]
            first = first_table(reader, reader.partitions())
            if first is not None:
                d = plan.check(first.schema)
                problems += [f"{name}: new field {p!r}" for p in d.new]
                problems += [f"{name}: {p!r} is {seen}, the policy says {declared}" for p, declared, seen in d.changed]
                problems += [f"{name}: policy field {p!r} does not exist at the source" for p in missing_fields(ds, first.schema)]
            jobs.append(_Job(reader, plan, DatasetCopy(name, dest.dataset_name(ds.to)), mode=modes[name], mark=marks.get(name)))
        if problems:
            raise UserError(_halt_message(problems, on_new == "halt" and any("new field" in p for p in problems)))

        result.exposure = _check_exposure(dest, allow_exposed_destination, audit_timeout)
        _copy_all(jobs, dest, pol, result, _Run(source, source_options, pol, on_new, seed if verify else None, workers, identifiers))
        if copy_state is not None:
            copy_state.save({job.record.source: job.mark for job in jobs if job.mark is not None})
    except BaseException:
        for job in jobs:
            if job.writer is not None:
                with contextlib.suppress(Exception):
                    job.writer.abort()
        if dest is not None:
            with contextlib.suppress(Exception):
                dest.finish(False)
        raise
    finally:
        src.close()
    try:
        if verify:
            assert identifiers is not None
            result.verification = _verify(dest, jobs, identifiers, source_options.get("connect_timeout"), workers)
    finally:
        dest.close()
    result.finished_at = _now()
    return result


def _copy_parallel(jobs: list[_Job], dest: Destination, pol: Policy, run: _Run) -> None:
    """Every partition of every dataset to the worker pool, at most 2 per worker in flight (bounded memory)."""
    from concurrent.futures import FIRST_COMPLETED, Future, wait

    from spillguard.safecopy.workers import PartitionTask, run_partition, tables_of
    from spillguard.scan.executors import worker_pool

    tasks: list[tuple[_Job, PartitionTask]] = []
    for job in jobs:
        job.writer = dest.open(pol.datasets[job.record.source].to, job.mode)
        mark = (job.mark.field, job.mark.last) if job.mark is not None else None
        for part in job.reader.partitions():
            tasks.append((job, PartitionTask(run.source, run.source_options, run.policy, run.on_new, job.record.source,
                                             part.spec, run.seed, mark)))
    pool = worker_pool(run.workers)
    pending: dict[Future[Any], _Job] = {}
    try:
        queue = iter(tasks)
        while True:
            while len(pending) < 2 * run.workers:
                nxt = next(queue, None)
                if nxt is None:
                    break
                pending[pool.submit(run_partition, nxt[1])] = nxt[0]
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                job = pending.pop(fut)
                out = fut.result()
                if out.error:
                    raise UserError(out.error)
                if out.halt:
                    raise _rolled_back(out.halt, any("new field" in h for h in out.halt))
                assert job.writer is not None
                for table in tables_of(out):
                    job.writer.write(table)
                job.record.malformed += out.malformed
                for path, how in out.auto.items():
                    job.plan.auto.setdefault(path, how)
                for note, n in out.notes.items():
                    job.plan.stats.add(note, n)
                if job.mark is not None and out.seen is not None and (job.mark.seen is None or out.seen > job.mark.seen):
                    job.mark.seen = out.seen
                if run.identifiers is not None:
                    for path, hashes in out.by_path.items():
                        run.identifiers.by_path.setdefault(path, []).append(hashes)
                    if out.long_values is not None:
                        run.identifiers.long_values.append(out.long_values)
    finally:
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


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


def _rolled_back(problems: list[str], new: bool) -> UserError:
    return UserError(_halt_message(problems, new).replace("before writing", "and rolled back"))


def _copy_all(jobs: list[_Job], dest: Destination, pol: Policy, result: CopyResult, run: _Run) -> None:
    if run.workers > 1:
        _copy_parallel(jobs, dest, pol, run)
    for job in jobs:
        if job.writer is not None:
            continue  # written by the workers
        record = job.record

        def malformed(dataset: str, line: int | None, reason: str, kind: str = "malformed",
                      record: DatasetCopy = record) -> None:
            # A truncated stream or a repaired record is said so; a plain skipped record keeps the short form.
            record.malformed.append({"line": line, "reason": reason, **({"kind": kind} if kind != "malformed" else {})})

        job.writer = dest.open(pol.datasets[record.source].to, job.mode)
        for part in job.reader.partitions():
            for table in job.reader.read(part, malformed):
                d = job.plan.check(table.schema)
                if d:
                    problems = [f"{record.source}: new field {p!r}" for p in d.new]
                    problems += [f"{record.source}: {p!r} is {s}, the policy says {c}" for p, c, s in d.changed]
                    raise _rolled_back(problems, bool(d.new))
                if job.mark is not None:
                    table = job.mark.select(table, record.source)
                job.writer.write(job.plan.apply(table))
    for job in jobs:
        record, plan = job.record, job.plan
        for path, rule in plan.dataset.fields.items():
            record.fields[path] = rule.describe()
        for path, how in plan.auto.items():
            record.fields[path] = f"{how} (on-new)"
        record.notes = dict(plan.stats.notes)
        assert job.writer is not None
        record.rows = job.writer.rows
        if job.mark is not None:
            record.watermark = {"field": job.mark.field, "after": job.mark.last, "up_to": job.mark.seen}
        record.mode = job.mode
        meta = {
            "tool": "spillguard copy", "source": result.source, "dataset": record.source, "copied_at": _now(),
            "policy_sha256": pol.digest, "keys": describe_key_use(pol), "fields": record.fields, "rows": record.rows,
            "malformed_records": len(record.malformed),
        }
        if result.exposure and result.exposure.get("allowed_by_flag"):
            meta["exposed_destination_allowed"] = result.exposure["verdict"]
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
