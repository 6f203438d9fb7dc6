"""Files and folders: JSON Lines (plain and Elasticsearch export shapes), JSON arrays and search
responses, CSV/TSV and Parquet, each optionally gzip- or zstd-compressed. Read in bounded blocks,
so memory does not grow with file size."""

from __future__ import annotations

import csv
import io
import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from spillguard.errors import UserError
from spillguard.sources.base import MalformedSink, Partition, ReaderDefaults, SourceDefaults
from spillguard.sources.records import docs_to_tables, json_lines_to_tables

PART_BYTES = 64 << 20  # a big JSON Lines file is split into byte ranges of about this size
BLOCK_BYTES = 8 << 20  # 8 MB of text per Arrow parse: big enough to amortise, small enough to keep RSS flat
_COMPRESSIONS = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}
_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}


def file_kind(path: Path) -> tuple[str, str | None] | None:
    """(format, compression) from the file name, or None when it is not a supported file."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = None
    if suffixes and suffixes[-1] in _COMPRESSIONS:
        compression = _COMPRESSIONS[suffixes.pop()]
    if not suffixes or suffixes[-1] not in _FORMATS:
        return None
    return _FORMATS[suffixes[-1]], compression


class _CountingReader(io.RawIOBase):
    """Reports how many compressed bytes were consumed, for the progress bar."""

    def __init__(self, raw: IO[bytes], progress: Callable[[int], None] | None) -> None:
        self._raw = raw
        self._progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._raw.readinto(b)
        if n and self._progress:
            self._progress(n)
        return n or 0


def _open_stream(path: Path, compression: str | None, progress: Callable[[int], None] | None) -> IO[bytes]:
    raw: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed by the caller through the wrapper
    counted = io.BufferedReader(_CountingReader(raw, progress), buffer_size=1 << 20)
    if compression == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=counted)  # type: ignore[return-value]
    if compression == "zstd":
        import zstandard

        # Buffered for peek(): the format sniffing (array, lines, indented objects) looks ahead.
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(counted, read_size=1 << 20), buffer_size=1 << 20)  # type: ignore[arg-type]
    return counted


def _json_error(exc: Exception) -> str:
    """ijson's message without the excerpt of the file that yajl appends to it: that excerpt is the
    file's content (e-mails, tokens), and error messages end up in reports and state files."""
    return str(exc).strip().split("\n", 1)[0].strip() or type(exc).__name__


@dataclass(slots=True)
class FileDataset(ReaderDefaults):
    path: Path
    name: str
    fmt: str
    compression: str | None
    subject_field: str | None = None
    progress: Callable[[int], None] | None = None

    def partitions(self) -> list[Partition]:
        """Big uncompressed JSON Lines files split into byte ranges and Parquet files into row groups, so
        that workers share one file (and a resumed scan skips the finished parts); the rest is one unit."""
        whole = [Partition(self.name, {"path": str(self.path)})]
        if self.fmt == "jsonl" and self.compression is None and self.size() > 2 * PART_BYTES:
            return self._byte_ranges()
        if self.fmt == "parquet" and not self.compression:
            try:
                groups = pq.ParquetFile(self.path).num_row_groups
            except (pa.ArrowInvalid, OSError):
                return whole  # read() reports it
            if groups > 1:
                return [Partition(self.name, {"path": str(self.path), "row_group": i}) for i in range(groups)]
        return whole

    def _byte_ranges(self) -> list[Partition]:
        size = self.size()
        n = -(-size // PART_BYTES)
        bounds = [size * i // n for i in range(n + 1)]
        parts = []
        newlines = 0
        with open(self.path, "rb") as fh:
            for start, end in itertools.pairwise(bounds):
                # Line numbers stay exact: count the newlines before each range once, at memchr speed.
                parts.append(Partition(self.name, {"path": str(self.path), "start": start, "end": end, "line": newlines + 1}))
                newlines += fh.read(end - start).count(b"\n")
        return parts

    def size(self) -> int:
        return self.path.stat().st_size

    def signature(self) -> str:
        st = self.path.stat()
        return f"{st.st_size}:{st.st_mtime_ns}"

    def read(self, partition: Partition, malformed: MalformedSink) -> Iterator[pa.Table]:
        spec = partition.spec
        try:
            if self.fmt == "parquet":
                yield from self._parquet(spec.get("row_group"))
            elif self.fmt in ("csv", "tsv"):
                yield from self._csv(malformed)
            elif "start" in spec:
                yield from self._json_range(int(spec["start"]), int(spec["end"]), int(spec["line"]), malformed)
            else:
                yield from self._json(malformed)
        except OSError as exc:
            raise UserError(f"{self.path}: cannot read ({exc.strerror or exc})") from None

    # -- JSON --------------------------------------------------------------------------------
    def _json(self, malformed: MalformedSink) -> Iterator[pa.Table]:
        with _open_stream(self.path, self.compression, self.progress) as fh:
            head = fh.peek(64) if hasattr(fh, "peek") else b""
            first = head.lstrip()[:1]
            if self.fmt == "json" and first == b"[":
                yield from self._json_document(fh, "item", malformed)
                return
            if first == b"{" and not self._looks_like_lines(fh) and (self.fmt == "json" or self._pretty_printed(fh)):
                yield from self._json_document(fh, None, malformed)
                return
            yield from self._json_lines(fh, malformed)

    def _looks_like_lines(self, fh: IO[bytes]) -> bool:
        import orjson

        head = fh.peek(1 << 20)
        line = head.split(b"\n", 1)[0]
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            return False
        return True

    @staticmethod
    def _pretty_printed(fh: IO[bytes]) -> bool:
        """A lone `{` on the first line: indented objects one after another, as `jq .` writes them."""
        return fh.peek(1 << 16).split(b"\n", 1)[0].strip() == b"{"

    def _json_lines(self, fh: IO[bytes], malformed: MalformedSink) -> Iterator[pa.Table]:
        line_no = 1
        rest = b""
        while True:
            pieces: list[bytes] = []
            size = 0
            broken = None
            read = getattr(fh, "read1", fh.read)  # read1: what is decompressed so far, so a truncated stream loses little
            while size < BLOCK_BYTES:
                try:
                    piece = read(1 << 20)
                except (EOFError, OSError, ValueError) as exc:
                    broken = exc
                    break
                if not piece:
                    break
                pieces.append(piece)
                size += len(piece)
            block = b"".join(pieces)
            if broken is not None:
                # A truncated or corrupt compressed file: keep every complete line read so far.
                malformed(self.name, None, f"compressed data ends early or is corrupt ({broken}); the rest of the file is not read")
                if block:
                    block = rest + block
                    cut = block.rfind(b"\n")
                    if cut >= 0:
                        yield from json_lines_to_tables(block[: cut + 1], line_no, self.name, malformed)
                rest = b""
                break
            if not block:
                break
            block = rest + block
            cut = block.rfind(b"\n")
            if cut < 0:
                rest = block  # a single line longer than the block: keep reading
                continue
            complete, rest = block[: cut + 1], block[cut + 1 :]
            yield from json_lines_to_tables(complete, line_no, self.name, malformed)
            line_no += complete.count(b"\n")
        if rest.strip():
            yield from json_lines_to_tables(rest, line_no, self.name, malformed)

    def _json_range(self, start: int, end: int, line_no: int, malformed: MalformedSink) -> Iterator[pa.Table]:
        """The lines that begin in [start, end): a line straddling `start` belongs to the range before."""
        with open(self.path, "rb") as fh:
            if start > 0:
                fh.seek(start - 1)
                if fh.read(1) != b"\n":
                    fh.readline()  # the tail of the previous range's last line
                    line_no += 1
            offset = fh.tell()  # file offset of buf[0]
            buf = b""
            while offset < end:
                chunk = fh.read(BLOCK_BYTES)
                if self.progress and chunk:
                    self.progress(len(chunk))
                buf += chunk
                cut = buf.rfind(b"\n")
                if not chunk:  # end of file: a last line without a newline
                    complete, buf = buf, b""
                elif cut < 0:
                    continue
                else:
                    complete, buf = buf[: cut + 1], buf[cut + 1 :]
                stop = end - offset
                if len(complete) > stop:
                    # keep the lines that start before `end`: up to the newline ending the line at end-1
                    nl = complete.find(b"\n", stop - 1)
                    complete = complete[: nl + 1] if nl >= 0 else complete
                    buf = b""
                    offset = end
                else:
                    offset += len(complete)
                if complete and not complete.isspace():
                    yield from json_lines_to_tables(complete, line_no, self.name, malformed)
                line_no += complete.count(b"\n")
                if not chunk:
                    break

    def _json_document(self, fh: IO[bytes], prefix: str | None, malformed: MalformedSink) -> Iterator[pa.Table]:
        import ijson
        import orjson

        if prefix is not None:
            items = self._until_broken(ijson.items(fh, prefix, use_float=True), malformed)
            yield from docs_to_tables(self._objects_only(items, malformed), self.name, malformed)
            return
        # One object (a record, or a search response {"hits": {"hits": [...]}}), parsed whole by orjson;
        # or several concatenated ones, as `jq .` writes them, streamed one at a time.
        values: Iterator[Any]
        if self._pretty_printed(fh):
            values = self._indented_values(fh, malformed)
        else:
            data = fh.read()
            try:
                values = iter([orjson.loads(data)])
            except orjson.JSONDecodeError:
                values = self._until_broken(ijson.items(io.BytesIO(data), "", multiple_values=True, use_float=True), malformed)
        yield from docs_to_tables(self._records_of(values, malformed), self.name, malformed)

    def _indented_values(self, fh: IO[bytes], malformed: MalformedSink) -> Iterator[Any]:
        """Indented objects one after another (`jq .`): a top-level object opens at the start of a line and
        everything inside it is indented, so the stream is cut before each line that starts with `{` and
        every piece is parsed alone. A broken object is one malformed record, named by its first line; the
        objects after it are read as usual. (A raw newline never occurs inside a JSON string.)"""
        import orjson

        read = getattr(fh, "read1", fh.read)
        pending: list[bytes] = []  # the object read so far; joined only when a cut arrives (big objects stay linear)
        line = 1  # the line `pending` starts on
        while True:
            piece = read(1 << 20)
            cut = b"\n{" in piece or (piece[:1] == b"{" and pending and pending[-1].endswith(b"\n"))
            if piece and not cut:
                pending.append(piece)
                continue
            texts = b"".join([*pending, piece]).split(b"\n{")
            texts[1:] = [b"{" + t for t in texts[1:]]
            pending = [texts.pop()] if piece else []  # the last piece may go on in the next read
            for text in texts:
                if text.strip():
                    try:
                        yield orjson.loads(text)
                    except orjson.JSONDecodeError as exc:
                        malformed(self.name, line, f"invalid JSON object ({exc.msg})")
                line += text.count(b"\n") + 1
            if not piece:
                return

    def _until_broken(self, values: Iterator[Any], malformed: MalformedSink) -> Iterator[Any]:
        """The values parsed before the first syntax error, which is reported: the records read so far count."""
        import ijson

        try:
            yield from values
        except (ijson.JSONError, ValueError) as exc:
            malformed(self.name, None, f"invalid JSON document, rest of file skipped ({_json_error(exc)})")

    def _records_of(self, values: Iterator[Any], malformed: MalformedSink) -> Iterator[dict[str, Any]]:
        for i, value in enumerate(values, 1):
            hits = value.get("hits") if isinstance(value, dict) else None
            if isinstance(hits, dict) and isinstance(hits.get("hits"), list):
                yield from self._objects_only(iter(hits["hits"]), malformed)
            elif isinstance(value, dict):
                yield value
            else:
                malformed(self.name, i, f"top-level value {i} is a {type(value).__name__}, not an object")

    def _objects_only(self, items: Iterator[Any], malformed: MalformedSink) -> Iterator[dict[str, Any]]:
        for i, item in enumerate(items, 1):
            if isinstance(item, dict):
                yield item
            else:
                malformed(self.name, i, f"array element {i} is a {type(item).__name__}, not an object")

    # -- CSV / TSV ---------------------------------------------------------------------------
    def _csv(self, malformed: MalformedSink) -> Iterator[pa.Table]:
        delimiter = "\t" if self.fmt == "tsv" else ","
        with _open_stream(self.path, self.compression, None) as head_fh:
            header_line = io.TextIOWrapper(head_fh, encoding="utf-8", errors="replace", newline="").readline()
        names = next(csv.reader([header_line], delimiter=delimiter), [])
        if not names:
            return
        # Every column as text: type inference per block would disagree between blocks.
        convert = pcsv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=True)

        def on_invalid(row: Any) -> str:
            # Arrow numbers CSV records, not physical lines (a quoted value may span lines): say which.
            where = f"CSV record {row.number}: " if row.number and row.number > 0 else ""
            malformed(self.name, None, f"{where}expected {row.expected_columns} columns, found {row.actual_columns}")
            return "skip"

        parse = pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, invalid_row_handler=on_invalid)
        with _open_stream(self.path, self.compression, self.progress) as fh:
            reader = pcsv.open_csv(fh, read_options=pcsv.ReadOptions(block_size=BLOCK_BYTES, use_threads=False), parse_options=parse, convert_options=convert)
            for batch in reader:
                yield pa.Table.from_batches([batch])

    # -- Parquet -----------------------------------------------------------------------------
    def _parquet(self, row_group: int | None = None) -> Iterator[pa.Table]:
        if self.compression:
            raise UserError(f"{self.path}: compressed Parquet files are not supported; Parquet compresses internally, decompress the file first")
        try:
            pf = pq.ParquetFile(self.path)
        except pa.ArrowInvalid as exc:
            raise UserError(f"{self.path}: not a readable Parquet file ({exc})") from None
        done = 0
        total = self.size()
        groups = range(pf.num_row_groups) if row_group is None else [int(row_group)]
        for i in groups:
            for batch in pf.iter_batches(batch_size=16384, row_groups=[i]):  # ~the size of a JSON block
                yield pa.Table.from_batches([batch])
            if self.progress and row_group is None:
                step = int(total * (i + 1) / pf.num_row_groups) - done
                done += step
                self.progress(step)


class FileSource(SourceDefaults):
    """A file or a folder of files given by path."""

    def __init__(self, target: str, **options: Any) -> None:
        self.target = target
        self.root = Path(target)
        self.subject_field: str | None = options.get("subject_field")
        self.progress: Callable[[int], None] | None = options.get("progress")
        self.broken_links: list[Path] = []  # data files in the folder that are links to nothing: not read, reported
        self.folder_links: list[Path] = []  # links to folders: not followed (loops, double counts), reported
        self._found: list[Path] | None = None  # the folder is walked once, for datasets() and total_bytes() alike
        if not self.root.exists():
            raise UserError(f"{target}: no such file or folder")
        if self.root.is_file() and file_kind(self.root) is None:
            raise UserError(
                f"{target}: unknown file type; supported: .jsonl .ndjson .json .csv .tsv .parquet, optionally .gz or .zst"
            )
        if self.root.is_file() and not os.access(self.root, os.R_OK):
            raise UserError(f"{target}: permission denied")

    def _files(self) -> list[Path]:
        if self.root.is_file():
            return [self.root]
        if self._found is not None:
            return self._found
        found = []
        for p in sorted(self.root.rglob("*")):
            if p.is_symlink() and p.is_dir():
                self.folder_links.append(p.relative_to(self.root))
                continue
            if file_kind(p) is None:
                continue
            if p.is_file():
                found.append(p)
            elif p.is_symlink() and not p.exists():
                self.broken_links.append(p.relative_to(self.root))
        if not found:
            unread = [f"{link} (broken symbolic link)" for link in self.broken_links]
            unread += [f"{link} (link to a folder, not followed)" for link in self.folder_links]
            shown = f"; not read: {', '.join(unread[:5])}{', ...' if len(unread) > 5 else ''}" if unread else ""
            raise UserError(
                f"{self.target}: no data files in this folder; spillguard reads .jsonl .ndjson .json .csv .tsv .parquet (optionally .gz or .zst){shown}"
            )
        self._found = found
        return found

    def datasets(self) -> Iterator[FileDataset]:
        for path in self._files():
            kind = file_kind(path)
            assert kind is not None
            name = str(path.relative_to(self.root)) if self.root.is_dir() else path.name
            yield FileDataset(path, name, kind[0], kind[1], self.subject_field, self.progress)

    def warnings(self) -> list[str]:
        broken = [f"{link}: broken symbolic link, not read" for link in self.broken_links]
        return broken + [f"{link}: symbolic link to a folder, not followed; scan it as a target of its own" for link in self.folder_links]

    def total_bytes(self) -> int:
        return sum(p.stat().st_size for p in self._files())

    def close(self) -> None:
        pass

