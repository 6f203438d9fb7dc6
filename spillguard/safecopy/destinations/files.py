"""JSON Lines and Parquet destinations: a folder (one file per dataset, `<to>.jsonl` / `<to>.parquet`)
or one file path for a single dataset. Files are written owner-only (0600) under a temporary name and
renamed into place at commit. The copy's metadata goes into Parquet's key-value metadata, and for
JSON Lines into `<file>.copy-meta` beside it (a name scans do not read)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from spillguard.errors import UserError
from spillguard.safecopy.destinations.sql import align

META_KEY = b"spillguard.copy"


def _owner_only(path: Path) -> IO[bytes]:
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "wb")


class _FileWriter:
    ext = ""

    def __init__(self, dest: FileDestination, name: str, mode: str) -> None:
        self.dest = dest
        self.path = dest.path_of(name)
        self.mode = mode
        self.rows = 0
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self.fh: IO[bytes] | None = _owner_only(self.tmp)

    def abort(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()


class JsonLinesWriter(_FileWriter):
    def write(self, table: pa.Table) -> None:
        assert self.fh is not None
        rows = table.to_pylist()
        if rows:
            self.fh.write(b"\n".join(orjson.dumps(r, default=str) for r in rows) + b"\n")
        self.rows += len(rows)

    def commit(self, meta: dict[str, Any]) -> None:
        assert self.fh is not None
        self.fh.close()
        self.fh = None
        if self.mode == "append" and self.path.exists():
            with open(self.path, "ab") as out, open(self.tmp, "rb") as src:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            self.tmp.unlink()
        else:
            os.replace(self.tmp, self.path)
        meta_path = self.path.with_name(self.path.name + ".copy-meta")
        with _owner_only(meta_path) as fh:
            fh.write(orjson.dumps(meta, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2))


class ParquetWriter(_FileWriter):
    def __init__(self, dest: FileDestination, name: str, mode: str) -> None:
        if mode == "append":
            raise UserError(f"{dest.path_of(name)}: Parquet files cannot be appended to; use --replace or another folder")
        super().__init__(dest, name, mode)
        self.writer: pq.ParquetWriter | None = None
        self.schema: pa.Schema | None = None

    def write(self, table: pa.Table) -> None:
        assert self.fh is not None
        # A field null in every row of the first batch is typed by the first batch that has a value: text.
        table = pa.Table.from_arrays(
            [c if not pa.types.is_null(c.type) else pa.nulls(len(c), pa.string()) for c in table.columns],
            names=table.column_names,
        )
        if self.schema is None:
            self.schema = table.schema
            self.writer = pq.ParquetWriter(self.fh, self.schema, compression="zstd")
        else:
            table, added = align(table, self.schema)
            if added:
                raise UserError(f"{self.path}: field(s) {', '.join(f.name for f in added)} appeared mid-copy; "
                                "Parquet needs every column from the start: copy to JSON Lines or a database")
        assert self.writer is not None
        self.writer.write_table(table)
        self.rows += table.num_rows

    def commit(self, meta: dict[str, Any]) -> None:
        assert self.fh is not None
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.fh, pa.schema([]))
        self.writer.add_key_value_metadata({META_KEY: orjson.dumps(meta, option=orjson.OPT_SORT_KEYS)})
        self.writer.close()
        self.fh.close()
        self.fh = None
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
            self.writer = None
        super().abort()


class FileDestination:
    fmt = ""
    writer: type[_FileWriter] = _FileWriter

    def __init__(self, target: str, **_options: Any) -> None:
        self.target = target
        self.audit_url = None
        path = Path(target)
        self.single = path.suffix.lower().lstrip(".") in ("jsonl", "ndjson", "parquet", "pq")
        self.root = path.parent if self.single else path
        self.file = path if self.single else None
        if not self.root.exists():
            if self.single:
                raise UserError(f"{target}: folder {self.root} does not exist; create it first")
            self.root.mkdir(mode=0o700, parents=True)
        if not self.root.is_dir():
            raise UserError(f"{target}: not a folder; give a folder or a .{self.fmt} file path")
        self.scan_target = str(self.root)
        self.opened = 0

    def path_of(self, name: str) -> Path:
        if self.file is not None:
            return self.file
        return self.root / f"{name.replace('/', '_')}.{self.fmt}"

    def exists(self, name: str) -> bool:
        return self.path_of(name).exists()

    def open(self, name: str, mode: str) -> _FileWriter:
        self.opened += 1
        if self.file is not None and self.opened > 1:
            raise UserError(f"{self.target}: one file holds one dataset; give a folder to copy several")
        return self.writer(self, name, mode)

    def dataset_name(self, name: str) -> str:
        return self.path_of(name).name

    def scan_plan(self, names: list[str]) -> tuple[list[str], dict[str, Any]]:
        return [str(self.path_of(n)) for n in names], {}

    def finish(self, commit: bool) -> None:
        pass

    def close(self) -> None:
        pass


class JsonLinesDestination(FileDestination):
    fmt = "jsonl"
    writer = JsonLinesWriter


class ParquetDestination(FileDestination):
    fmt = "parquet"
    writer = ParquetWriter
