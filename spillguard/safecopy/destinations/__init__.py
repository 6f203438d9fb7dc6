"""Where a safe copy is written: one module per store, chosen by the destination URL or path.

    DESTINATIONS   scheme -> "module:Class" (the one registry; modules import only when used)
    open_destination(target, fmt=None) -> Destination

A destination writes each dataset through a `TableWriter` that changes nothing visible until
`commit()`: SQL stores write inside a transaction (MySQL into a staging table renamed at commit),
files into a temporary file renamed at commit. `abort()` leaves the destination as it was, except on
Elasticsearch, whose index is deleted again on abort (replacing an index there is not atomic).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from spillguard.errors import UserError
from spillguard.sources import mask_url

DESTINATIONS: dict[str, str] = {
    "postgresql": "spillguard.safecopy.destinations.postgres:PostgresDestination",
    "postgres": "spillguard.safecopy.destinations.postgres:PostgresDestination",
    "mysql": "spillguard.safecopy.destinations.mysql:MySQLDestination",
    "mariadb": "spillguard.safecopy.destinations.mysql:MySQLDestination",
    "sqlite": "spillguard.safecopy.destinations.sqlite:SQLiteDestination",
    "elasticsearch+http": "spillguard.safecopy.destinations.elasticsearch:ElasticsearchDestination",
    "elasticsearch+https": "spillguard.safecopy.destinations.elasticsearch:ElasticsearchDestination",
    "opensearch+http": "spillguard.safecopy.destinations.elasticsearch:ElasticsearchDestination",
    "opensearch+https": "spillguard.safecopy.destinations.elasticsearch:ElasticsearchDestination",
    "jsonl": "spillguard.safecopy.destinations.files:JsonLinesDestination",
    "parquet": "spillguard.safecopy.destinations.files:ParquetDestination",
}
FILE_FORMATS = ("jsonl", "parquet")
MODES = ("create", "replace", "append")


class TableWriter(Protocol):
    rows: int

    def write(self, table: pa.Table) -> None: ...

    def commit(self, meta: dict[str, Any]) -> None:
        """Make the dataset visible, with the copy's metadata (key ids, policy digest; never a key)."""
        ...

    def abort(self) -> None: ...


class Destination(Protocol):
    target: str  # as shown: credentials masked
    scan_target: str  # what the proof scan reads (may hold credentials: never shown)
    audit_url: str | None  # what the exposure audit probes; None for local files

    def exists(self, name: str) -> bool: ...

    def open(self, name: str, mode: str) -> TableWriter: ...

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
    if "://" in target:
        scheme = target.split("://", 1)[0].lower()
    else:
        suffix = Path(target).suffix.lower().lstrip(".")
        scheme = fmt or {"ndjson": "jsonl", "pq": "parquet"}.get(suffix, suffix if suffix in FILE_FORMATS else "")
        if not scheme:
            raise UserError(f"{target}: a folder destination needs --format jsonl or --format parquet")
        if fmt and suffix in FILE_FORMATS and suffix != fmt:
            raise UserError(f"{target}: the file name says {suffix} but --format says {fmt}")
    spec = DESTINATIONS.get(scheme)
    if spec is None:
        known = ", ".join(sorted(f"{s}://" for s in DESTINATIONS if s not in FILE_FORMATS))
        raise UserError(f"{mask_url(target)}: cannot copy to '{scheme}'; use a folder or .jsonl/.parquet path, or one of {known}")
    module_name, class_name = spec.split(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)(target, **options)  # type: ignore[no-any-return]


__all__ = ["DESTINATIONS", "FILE_FORMATS", "MODES", "Destination", "TableWriter", "open_destination"]
