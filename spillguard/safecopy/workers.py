"""`--workers N`: partitions read and transformed in worker processes, written by the parent.

A worker opens the source itself (as scan workers do), applies the dataset's plan to every batch of its
partition and sends the transformed batches back as Arrow IPC, with what it learnt: fields handled by
`on_new`, transform notes, watermark, malformed records, and the keyed hashes of source identifiers
(the same hash seed in every worker, so the proof compares like with like). The parent alone writes,
so destinations keep their one-transaction guarantees.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from spillguard.errors import UserError
from spillguard.keys import Hasher
from spillguard.safecopy.plan import DatasetPlan, IdentifierSets
from spillguard.safecopy.policy import Policy
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
    halt: list[str] = field(default_factory=list)
    error: str | None = None
    auto: dict[str, str] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)
    malformed: list[dict[str, Any]] = field(default_factory=list)
    seen: Any = None
    by_path: dict[str, np.ndarray] = field(default_factory=dict)
    long_values: np.ndarray | None = None


_sources: dict[str, Any] = {}


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
        ids = IdentifierSets(Hasher(task.seed)) if task.seed is not None else None
        plan = DatasetPlan(task.policy.datasets[task.dataset], task.policy, task.on_new, ids)
        mark = Watermark(*task.watermark) if task.watermark else None

        def malformed(_dataset: str, line: int | None, reason: str, kind: str = "malformed") -> None:
            out.malformed.append({"line": line, "reason": reason, **({"kind": kind} if kind != "malformed" else {})})

        for table in reader.read(Partition(task.dataset, task.spec), malformed):
            d = plan.check(table.schema)
            if d:
                out.halt = [f"{task.dataset}: new field {p!r}" for p in d.new]
                out.halt += [f"{task.dataset}: {p!r} is {s}, the policy says {c}" for p, c, s in d.changed]
                return out
            if mark is not None:
                table = mark.select(table, task.dataset)
            result = plan.apply(table)
            sink = io.BytesIO()
            with ipc.new_stream(sink, result.schema) as writer:
                writer.write_table(result)
            out.batches.append(sink.getvalue())
        out.auto, out.notes = dict(plan.auto), dict(plan.stats.notes)
        out.seen = mark.seen if mark is not None else None
        if ids is not None:
            out.by_path, out.long_values = ids.frozen()
    except UserError as exc:
        out.error = str(exc)
    return out


def tables_of(output: PartitionOutput) -> list[pa.Table]:
    return [ipc.open_stream(b).read_all() for b in output.batches]
