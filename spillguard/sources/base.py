"""The two-method contract every store adapter implements: list datasets, read a dataset's records.

Sources know nothing of rules. They hand the engine batches of records as Arrow tables whose
columns may be nested (structs, lists); the engine flattens them to dotted paths itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from spillguard.errors import UserError

# Text parsed per block (a file's bytes, a store's rows as JSON or COPY text, a small-file batch, an object's GET),
# and so the rows detection takes per call: big enough that a call's fixed work per column (numpy and Arrow calls,
# the matcher's set-up) is small beside it (8 MB blocks ran 1.5 % more instructions on the demo users; 32 MB gained
# nothing more in paired runs and held 50 MB more), small enough that resident memory stays flat (BENCHMARKS.md).
BLOCK_BYTES = 16 << 20


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
    partition can be checkpointed, resumed, or shipped to another machine. A copy with a watermark adds
    `since: [field, value]` (see `since_bound`); stores that can filter read only records at or past it.
    """

    dataset: str
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        import orjson

        return self.dataset + "#" + orjson.dumps(self.spec, option=orjson.OPT_SORT_KEYS).decode()


def since_bound(spec: dict[str, Any]) -> tuple[str, Any] | None:
    """(field, lower bound) a store may filter on for a copy's `since` (`field >= bound`), or None.

    Pushed down reads need only be a superset: the copy cuts exactly with the same Arrow comparison for
    every source. A text value is cut to its first 10 characters: any prefix of a text is a lower bound of
    it, and for a time ("2024-05-01T10:11:12", "2024-05-01 10:11:12") it is the start of its day, which a
    typed column (timestamp, DATETIME, a date field) compares correctly whichever way its rows are written."""
    since = spec.get("since")
    if not since:
        return None
    fld, value = since
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    return str(fld), value[:10] if isinstance(value, str) else value


class DatasetReader(Protocol):
    """One dataset (a file, a table, an index, a key pattern) of a source."""

    name: str
    subject_field: str | None  # the field identifying a person here, when the configuration names one

    def partitions(self) -> list[Partition]:
        """How this dataset splits into independent work units (one is fine)."""
        ...

    def read(self, partition: Partition, malformed: MalformedSink) -> Iterator[pa.Table]:
        """Yield the partition's records as Arrow tables (nested columns allowed)."""
        ...

    def size(self) -> int | None:
        """Bytes to read (files), for progress and ETA; None when not known up front (stores)."""
        ...

    def signature(self) -> str | None:
        """What changes when the dataset's content changes (a file's size and mtime), so a resumed scan can
        refuse a changed input; None when partition bounds say enough (stores key partitions by them)."""
        ...

    def reset(self) -> None:
        """Drop whatever a failed read left behind (a broken connection) before a partition is retried."""
        ...


class Source(Protocol):
    target: str  # how the target is shown: credentials always masked

    def datasets(self) -> Iterator[DatasetReader]: ...

    def dataset(self, name: str) -> DatasetReader:
        """The dataset called `name` (as `datasets()` names it), without listing the others again."""
        ...

    def warnings(self) -> list[str]:
        """What the source saw but did not read, with why (a broken link); nothing lost, but worth saying."""
        ...

    def close(self) -> None: ...


class ReaderDefaults:
    """Defaults of the optional parts of `DatasetReader`, for readers to inherit."""

    __slots__ = ()

    def size(self) -> int | None:
        return None

    def signature(self) -> str | None:
        return None

    def reset(self) -> None:
        return None


class SourceDefaults:
    """Defaults of the optional parts of `Source`: `dataset(name)` from one listing, kept (so that looking
    up every dataset of a 20,000-file folder stays linear), and no warnings."""

    target: str
    _by_name: dict[str, DatasetReader] | None = None

    def datasets(self) -> Iterator[DatasetReader]:
        raise NotImplementedError

    def dataset(self, name: str) -> DatasetReader:
        if self._by_name is None:
            self._by_name = {reader.name: reader for reader in self.datasets()}
        try:
            return self._by_name[name]
        except KeyError:
            raise UserError(f"{self.target}: dataset {name!r} disappeared during the scan; scan again") from None

    def warnings(self) -> list[str]:
        return []

    def close(self) -> None:
        return None
