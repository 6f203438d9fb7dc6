"""Where a safe copy is written: one module per store, chosen by the destination URL or path.

    FILE_DESTINATIONS  file format -> "module:Class" (stores: the `destination` column of spillguard.targets.SCHEMES)
    open_destination(target, fmt=None) -> Destination

A destination writes each dataset through a `TableWriter` that changes nothing visible until
`commit()`: SQL stores write inside a transaction (MySQL into a staging table renamed at commit),
files into a temporary file renamed at commit. `abort()` leaves the destination as it was, except on
Elasticsearch, whose index is deleted again on abort (replacing an index there is not atomic).

A checkpointed copy (`--state`) opens writers with its run id: each partition is then made durable by
`checkpoint(part id, order)`, together with a marker the writer's `done()` reads back on `--resume`
(SQL: a stage table and a marker row in one transaction; files: a part file renamed into `<file>.parts/`).
Elasticsearch keeps no marker (`markers` False): its documents get ids derived from the partition, so a
partition written twice is the same documents, and the state file says which partitions are done.
`commit()` publishes (stage renamed into place, parts joined), once: `published()` tells a resumed copy
that a dataset already is. `abort()` then keeps committed partitions; `discard()` drops them (a halt).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from spillguard.errors import UserError
from spillguard.targets import SCHEMES, is_url, mask_url, normalized_url, parse_url

# Stores are the `destination` column of the one target registry (spillguard.targets.SCHEMES); file formats,
# chosen by a path's suffix or --format, are listed here.
FILE_DESTINATIONS: dict[str, str] = {
    "jsonl": "spillguard.safecopy.destinations.files:JsonLinesDestination",
    "parquet": "spillguard.safecopy.destinations.files:ParquetDestination",
}
FILE_FORMATS = tuple(FILE_DESTINATIONS)
MODES = ("create", "replace", "append")


class TableWriter(Protocol):
    rows: int
    markers: bool  # checkpointed: whether done() is the truth (else the state file is, writes being idempotent)

    def write(self, table: pa.Table) -> None: ...

    def checkpoint(self, pid: str, order: int) -> None:
        """Checkpointed copies: make the rows written since the last checkpoint durable, as partition `pid`
        (the `order`-th of its dataset), with its marker."""
        ...

    def done(self) -> set[str]:
        """Checkpointed copies: the partitions this run already committed (read when the writer opened)."""
        ...

    def discard(self) -> None:
        """Checkpointed copies: drop every partition committed so far (the copy halted)."""
        ...

    def commit(self, meta: dict[str, Any]) -> None:
        """Make the dataset visible, with the copy's metadata (key ids, policy digest; never a key)."""
        ...

    def abort(self) -> None: ...


class Destination(Protocol):
    target: str  # as shown: credentials masked
    scan_target: str  # what the proof scan reads (may hold credentials: never shown)
    audit_url: str | None  # what the exposure audit probes; None for local files

    def exists(self, name: str) -> bool: ...

    def open(self, name: str, mode: str, run: str | None = None, resume: bool = False) -> TableWriter:
        """A writer for dataset `name`; with `run`, checkpointed (`resume`: keep what that run committed)."""
        ...

    def published(self, name: str, run: str) -> bool:
        """Whether the checkpointed copy `run` already made `name` visible, with its metadata."""
        ...

    def dataset_name(self, name: str) -> str:
        """The name a scan of the destination gives the dataset written as `name`."""
        ...

    def scan_plan(self, names: list[str]) -> tuple[list[str], dict[str, Any]]:
        """(targets, source options) that make a scan read exactly the datasets written as `names`."""
        ...

    def finish(self, commit: bool) -> None:
        """After every writer committed (True) or one aborted (False): end what the store shares."""
        ...

    def close(self) -> None: ...


def open_destination(target: str, fmt: str | None = None, **options: Any) -> Destination:
    if is_url(target):
        row = parse_url(target).scheme
        spec = row.destination
        if spec is None:
            known = ", ".join(sorted(f"{s}://" for s, r in SCHEMES.items() if r.destination))
            raise UserError(f"{mask_url(target)}: cannot copy to '{row.scheme}://'; use a folder or .jsonl/.parquet path, or one of {known}")
        target = normalized_url(target)  # a password with '@' or '#' reaches the driver whole
    else:
        suffix = Path(target).suffix.lower().lstrip(".")
        fmt_name = fmt or {"ndjson": "jsonl", "pq": "parquet"}.get(suffix, suffix if suffix in FILE_FORMATS else "")
        if not fmt_name:
            raise UserError(f"{target}: a folder destination needs --format jsonl or --format parquet")
        if fmt and suffix in FILE_FORMATS and suffix != fmt:
            raise UserError(f"{target}: the file name says {suffix} but --format says {fmt}")
        spec = FILE_DESTINATIONS[fmt_name]
    module_name, class_name = spec.split(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)(target, **options)  # type: ignore[no-any-return]


__all__ = ["FILE_DESTINATIONS", "FILE_FORMATS", "MODES", "Destination", "TableWriter", "open_destination"]
