"""JSON Lines and Parquet destinations: a folder (one file per dataset, `<to>.jsonl` / `<to>.parquet`)
or one file path for a single dataset. Files are written owner-only (0600) under a temporary name and
renamed into place at commit. The copy's metadata goes into Parquet's key-value metadata, and for
JSON Lines into `<file>.copy-meta` beside it (a name scans do not read)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
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
    """Plain: one temporary file renamed into place at commit. Staged (`run` given, a checkpointed copy): each
    partition is its own file in `<file>.parts/`, written under a temporary name and renamed when the
    partition is done (the rename is the marker); publishing joins them, in partition order, into the file."""

    ext = ""

    def __init__(self, dest: FileDestination, name: str, mode: str, run: str | None = None, resume: bool = False) -> None:
        self.dest = dest
        self.path = dest.path_of(name)
        self.mode = mode
        self.rows = 0
        self.run = run
        self.markers = True
        self.parts = self.path.with_name(self.path.name + ".parts")
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self.fh: IO[bytes] | None = None
        self._done: set[str] = set()
        if run:
            if resume and self.parts.is_dir():
                self._done = {p.name.split("-", 1)[1].split(".", 1)[0] for p in self.parts.glob(f"*.{dest.fmt}")}
            if not self._done:
                shutil.rmtree(self.parts, ignore_errors=True)
            self.parts.mkdir(mode=0o700, exist_ok=True)
        else:
            self.fh = _owner_only(self.tmp)

    def done(self) -> set[str]:
        return set(self._done)

    def _sink(self) -> IO[bytes]:
        """Where the next rows go: the copy's temporary file, or the current partition's."""
        if self.fh is None:
            self.tmp = self.parts / f".part-{os.getpid()}.tmp"
            self.fh = _owner_only(self.tmp)
        return self.fh

    def _close_sink(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None

    def checkpoint(self, pid: str, order: int) -> None:
        self._sink()  # an empty partition still leaves its (empty) part: the marker
        self._close_sink()
        os.replace(self.tmp, self.parts / f"{order:06d}-{pid}.{self.dest.fmt}")
        self._done.add(pid)

    def part_files(self) -> list[Path]:
        return sorted(self.parts.glob(f"*.{self.dest.fmt}"))

    def _publish(self, build: Callable[[Path], None]) -> None:
        """Build the file under a temporary name, note its inode, rename it into place, drop the parts. A copy
        killed after the rename finds the noted inode at the file's place on --resume and does not build twice."""
        marker = self.parts / "PUBLISHED"
        if marker.exists():
            noted = orjson.loads(marker.read_bytes())
            if noted.get("run") == self.run and self.path.exists() and self.path.stat().st_ino == noted.get("ino"):
                return
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        build(tmp)
        with _owner_only(marker) as fh:
            fh.write(orjson.dumps({"run": self.run, "ino": tmp.stat().st_ino}))
        os.replace(tmp, self.path)

    def _finish(self, meta: dict[str, Any] | None) -> None:
        if meta is not None:
            meta_path = self.path.with_name(self.path.name + ".copy-meta")
            with _owner_only(meta_path) as fh:
                fh.write(orjson.dumps(meta, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2))
        if self.run:
            shutil.rmtree(self.parts, ignore_errors=True)

    def abort(self) -> None:
        self._close_sink()
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()

    def discard(self) -> None:
        self.abort()
        if self.run:
            shutil.rmtree(self.parts, ignore_errors=True)


class JsonLinesWriter(_FileWriter):
    def write(self, table: pa.Table) -> None:
        rows = table.to_pylist()
        if rows:
            self._sink().write(b"\n".join(orjson.dumps(r, default=str) for r in rows) + b"\n")
        self.rows += len(rows)

    def commit(self, meta: dict[str, Any]) -> None:
        if self.run:
            def build(tmp: Path) -> None:
                with _owner_only(tmp) as out:
                    sources = ([self.path] if self.mode == "append" and self.path.exists() else []) + self.part_files()
                    for src_path in sources:
                        with open(src_path, "rb") as src:
                            shutil.copyfileobj(src, out, 1 << 20)

            self._publish(build)
            self._finish(meta)
            return
        self._close_sink()
        if self.mode == "append" and self.path.exists():
            with open(self.path, "ab") as out, open(self.tmp, "rb") as src:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            self.tmp.unlink()
        else:
            os.replace(self.tmp, self.path)
        self._finish(meta)


def _text_for_nulls(table: pa.Table) -> pa.Table:
    # A field null in every row of a batch is typed by the first batch that has a value: text.
    return pa.Table.from_arrays(
        [c if not pa.types.is_null(c.type) else pa.nulls(len(c), pa.string()) for c in table.columns],
        names=table.column_names,
    )


class ParquetWriter(_FileWriter):
    def __init__(self, dest: FileDestination, name: str, mode: str, run: str | None = None, resume: bool = False) -> None:
        if mode == "append":
            raise UserError(f"{dest.path_of(name)}: Parquet files cannot be appended to; use --replace or another folder")
        super().__init__(dest, name, mode, run, resume)
        self.writer: pq.ParquetWriter | None = None
        self.schema: pa.Schema | None = None

    def write(self, table: pa.Table) -> None:
        table = _text_for_nulls(table)
        if self.writer is None or self.schema is None:
            self.schema = table.schema
            self.writer = pq.ParquetWriter(self._sink(), self.schema, compression="zstd")
        else:
            table, added = align(table, self.schema)
            if added:
                raise UserError(f"{self.path}: field(s) {', '.join(f.name for f in added)} appeared mid-copy; "
                                "Parquet needs every column from the start: copy to JSON Lines or a database")
        self.writer.write_table(table)
        self.rows += table.num_rows

    def _close_writer(self, meta: dict[str, Any] | None = None) -> None:
        if self.writer is None:
            self.writer = pq.ParquetWriter(self._sink(), pa.schema([]))
        if meta is not None:
            self.writer.add_key_value_metadata({META_KEY: orjson.dumps(meta, option=orjson.OPT_SORT_KEYS)})
        self.writer.close()
        self.writer = None
        self.schema = None

    def checkpoint(self, pid: str, order: int) -> None:
        self._close_writer()
        super().checkpoint(pid, order)

    def commit(self, meta: dict[str, Any]) -> None:
        if self.run:
            def build(tmp: Path) -> None:
                parts = [pq.ParquetFile(p) for p in self.part_files()]
                try:
                    schemas = [f.schema_arrow for f in parts if len(f.schema_arrow)]
                    schema = pa.unify_schemas(schemas) if schemas else pa.schema([])
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    raise UserError(f"{self.path}: a field changed type between partitions; declare it in the policy's "
                                    "types table or generalise it") from None
                with _owner_only(tmp) as out:
                    writer = pq.ParquetWriter(out, schema, compression="zstd")
                    for f in parts:
                        for i in range(f.num_row_groups):
                            writer.write_table(align(f.read_row_group(i), schema)[0])
                    writer.add_key_value_metadata({META_KEY: orjson.dumps(meta, option=orjson.OPT_SORT_KEYS)})
                    writer.close()

            self._publish(build)
            self._finish(None)
            return
        self._close_writer(meta)
        self._close_sink()
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

    def open(self, name: str, mode: str, run: str | None = None, resume: bool = False) -> _FileWriter:
        self.opened += 1
        if self.file is not None and self.opened > 1:
            raise UserError(f"{self.target}: one file holds one dataset; give a folder to copy several")
        return self.writer(self, name, mode, run, resume)

    def published(self, name: str, run: str) -> bool:
        """Whether the copy `run` already renamed its file into place (and finished: its parts are gone)."""
        marker = self.path_of(name).with_name(self.path_of(name).name + ".parts") / "PUBLISHED"
        return False if marker.exists() else self._meta_run(name) == run

    def _meta_run(self, name: str) -> str | None:
        path = self.path_of(name)
        try:
            if self.fmt == "parquet":
                raw = (pq.read_metadata(path).metadata or {}).get(META_KEY)
            else:
                raw = path.with_name(path.name + ".copy-meta").read_bytes()
            run = orjson.loads(raw).get("run") if raw else None
        except (OSError, ValueError, pa.ArrowException):
            return None
        return str(run) if run else None

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
