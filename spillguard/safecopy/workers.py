"""`--workers N`: partitions read and transformed in worker processes, written by the parent.

A worker opens the source itself (as scan workers do), applies the dataset's plan to every batch of its
partition (`transform_partition`, which the parent runs itself with one worker) and sends the transformed
batches back as Arrow IPC, with what it learnt: fields handled by
`on_new`, transform notes, watermark, malformed records, and the keyed hashes of source identifiers
(the same hash seed in every worker, so the proof compares like with like). The parent alone writes,
so destinations keep their one-transaction guarantees.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from spillguard.errors import UserError
from spillguard.keys import Hasher
from spillguard.safecopy.plan import DatasetPlan, IdentifierSets
from spillguard.safecopy.policy import Policy
from spillguard.safecopy.transforms import TransformStats
from spillguard.safecopy.watermark import Watermark
from spillguard.sources import open_target
from spillguard.sources.base import Partition


@dataclass(slots=True)
class PartitionTask:
    source: str
    source_options: dict[str, Any]
    policy: Policy
    on_new: str
    dataset: str
    spec: dict[str, Any]
    seed: int | None  # identifier hashing (None: no proof)
    watermark: tuple[str, Any] | None = None


@dataclass(slots=True)
class PartitionOutput:
    batches: list[bytes] = field(default_factory=list)
    rows: int = 0
    halt: list[str] = field(default_factory=list)
    error: str | None = None
    auto: dict[str, str] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)
    malformed: list[dict[str, Any]] = field(default_factory=list)
    seen: Any = None
    by_path: dict[str, np.ndarray] = field(default_factory=dict)
    long_values: np.ndarray | None = None


_sources: dict[str, Any] = {}


def transform_partition(reader: Any, plan: DatasetPlan, partition: Partition, watermark: tuple[str, Any] | None,
                        hasher: Hasher | None, out: PartitionOutput) -> Iterator[pa.Table]:
    """The transformed batches of one partition; what it learnt goes into `out` once the partition is read
    (transform notes, on-new fields, malformed records, highest watermark, identifier hashes), or `out.halt`
    when a field the policy does not cover or a type change shows up. The same here and in workers."""
    plan.stats = TransformStats()
    ids = plan.identifiers = IdentifierSets(hasher) if hasher is not None else None
    mark = Watermark(*watermark) if watermark else None
    dataset = partition.dataset

    def malformed(_dataset: str, line: int | None, reason: str, kind: str = "malformed") -> None:
        out.malformed.append({"line": line, "reason": reason, **({"kind": kind} if kind != "malformed" else {})})

    for table in reader.read(partition, malformed):
        d = plan.check(table.schema)
        if d:
            out.halt = [f"{dataset}: new field {p!r}" for p in d.new]
            out.halt += [f"{dataset}: {p!r} is {s}, the policy says {c}" for p, c, s in d.changed]
            return
        if mark is not None:
            table = mark.select(table, dataset)
        result = plan.apply(table)
        out.rows += result.num_rows
        yield result
    out.auto, out.notes = dict(plan.auto), dict(plan.stats.notes)
    out.seen = mark.seen if mark is not None else None
    if ids is not None:
        out.by_path, out.long_values = ids.frozen()


def _reader(task: PartitionTask) -> Any:
    source = _sources.get(task.source)
    if source is None:
        source = open_target(task.source, **task.source_options)
        _sources[task.source] = source
    opener = getattr(source, "dataset", None)
    if opener is not None:
        return opener(task.dataset)
    for reader in source.datasets():
        if reader.name == task.dataset:
            return reader
    raise UserError(f"{source.target}: dataset {task.dataset!r} disappeared during the copy")


def run_partition(task: PartitionTask) -> PartitionOutput:
    """Worker entry point: never raises, so the parent can roll back and report one clear line."""
    out = PartitionOutput()
    try:
        reader = _reader(task)
        plan = DatasetPlan(task.policy.datasets[task.dataset], task.policy, task.on_new, None)
        hasher = Hasher(task.seed) if task.seed is not None else None
        for result in transform_partition(reader, plan, Partition(task.dataset, task.spec), task.watermark, hasher, out):
            sink = io.BytesIO()
            with ipc.new_stream(sink, result.schema) as writer:
                writer.write_table(result)
            out.batches.append(sink.getvalue())
    except UserError as exc:
        out.error = str(exc)
    return out


def tables_of(output: PartitionOutput) -> list[pa.Table]:
    return [ipc.open_stream(b).read_all() for b in output.batches]
