"""The two-method contract every store adapter implements: list datasets, read a dataset's records.

Sources know nothing of rules. They hand the engine batches of records as Arrow tables whose
columns may be nested (structs, lists); the engine flattens them to dotted paths itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa


class MalformedSink(Protocol):
    """Called by a source for every record it had to skip: (dataset, line or position, reason).

    `kind` is "malformed" for one record not scanned (the default); "truncated" when a stream was cut, so
    the records after the cut are unknown; "warning" when a record was scanned with a repair (bytes that
    are not UTF-8 replaced) and nothing was lost."""

    def __call__(self, dataset: str, line: int | None, reason: str, kind: str = "malformed") -> None: ...


@dataclass(slots=True)
class Partition:
    """A small serialisable unit of work: one slice of one dataset.

    `spec` holds only JSON-compatible values (key ranges, slice ids, file offsets) so that a
    partition can be checkpointed, resumed, or shipped to another machine.
    """

    dataset: str
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        import orjson

        return self.dataset + "#" + orjson.dumps(self.spec, option=orjson.OPT_SORT_KEYS).decode()


class DatasetReader(Protocol):
    name: str
    subject_field: str | None

    def partitions(self) -> list[Partition]:
        """How this dataset splits into independent work units (one is fine)."""
        ...

    def read(self, partition: Partition, malformed: MalformedSink) -> Iterator[pa.Table]:
        """Yield the partition's records as Arrow tables (nested columns allowed)."""
        ...


class Source(Protocol):
    target: str  # how the target is shown: credentials always masked

    def datasets(self) -> Iterator[DatasetReader]: ...

    def close(self) -> None: ...
