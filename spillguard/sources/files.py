"""Files and folders: JSON Lines (plain and Elasticsearch export shapes), JSON arrays and search
responses, CSV/TSV and Parquet, each optionally gzip- or zstd-compressed. Read in bounded blocks,
so memory does not grow with file size."""

from __future__ import annotations

import codecs
import csv
import errno
import io
import itertools
import mmap
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

import orjson
import pyarrow as pa

from spillguard.errors import UserError
from spillguard.sources.base import (
    BLOCK_BYTES,
    DatasetReader,
    MalformedSink,
    Partition,
    ReaderDefaults,
    SourceDefaults,
)
from spillguard.sources.records import (
    MAX_DEPTH,
    count_newlines,
    cut_deep,
    docs_to_tables,
    json_lines_to_tables,
    leading_value,
    parse_record,
    replace_not_utf8,
    report_not_utf8,
    small_json_lines,
    split_array,
    valid_utf8,
)
from spillguard.sources.tabular import CsvBlocks, csv_cut, text_safe

if TYPE_CHECKING:
    import pyarrow.parquet as pq

PART_BYTES = 64 << 20  # a big JSON Lines file is split into byte ranges of about this size
TOGETHER_BYTES = 1 << 20  # files up to this size may be parsed together with others (read_together)
_COMPRESSIONS = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}
_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}


def file_kind(path: Path) -> tuple[str, str | None] | None:
    """(format, compression) from the file name, or None when it is not a supported file."""
    return _kind_of_name(path.name)


def _kind_of_name(name: str) -> tuple[str, str | None] | None:
    if name.endswith("."):  # the suffixes as pathlib reads them, without building a Path per file
        return None
    suffixes = ["." + s.lower() for s in name.lstrip(".").split(".")[1:]]
    compression = None
    if suffixes and suffixes[-1] in _COMPRESSIONS:
        compression = _COMPRESSIONS[suffixes.pop()]
    if not suffixes or suffixes[-1] not in _FORMATS:
        return None
    return _FORMATS[suffixes[-1]], compression


_LINK_ERRORS = (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP)  # what pathlib's is_dir()/is_file() read as False


def _follows(test: Callable[[], bool]) -> bool:
    """A DirEntry type test that follows links: a broken link or a loop is neither a file nor a folder."""
    try:
        return test()
    except OSError as exc:
        if exc.errno in _LINK_ERRORS:
            return False
        raise


def _walk(folder: str, parts: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], os.DirEntry[str]]]:
    """Every entry under `folder` as (path parts below it, entry), in the order of sorted(Path.rglob("*")):
    names sorted in each folder, a folder before what it holds; links to folders listed, not followed.
    os.scandir knows each entry's type without a stat call."""
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        here = (*parts, entry.name)
        yield here, entry
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(entry.path, here)


class _CountingReader(io.RawIOBase):
    """Reports how many compressed bytes were consumed, for the progress bar."""

    def __init__(self, raw: IO[bytes], progress: Callable[[int], None] | None) -> None:
        self._raw = raw
        self._progress = progress
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._raw.readinto(b)
        if n:
            self.count += n
            if self._progress:
                self._progress(n)
        return n or 0


class _Decompressed(io.RawIOBase):
    """The bytes of a gzip or zstd stream. A stream that ends early or is corrupt ends here as if the file
    ended, and `cut` says why: every format keeps the records read before the cut, and the cut is reported
    once, as a truncated stream (the records after it are unknown)."""

    def __init__(self, chunks: Iterator[bytes], source: IO[bytes]) -> None:
        self._chunks = chunks
        self._source = source
        self._buf = b""
        self._pos = 0
        self._done = False
        self.cut: str | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        """Fills `b` as far as the stream goes, so that peek() sees a whole buffer (the format sniffing)."""
        filled = 0
        while filled < len(b):
            if self._pos >= len(self._buf) and (self._done or not self._next()):
                break
            n = min(len(b) - filled, len(self._buf) - self._pos)
            b[filled : filled + n] = self._buf[self._pos : self._pos + n]
            self._pos += n
            filled += n
        return filled

    def _next(self) -> bool:
        try:
            self._buf, self._pos = next(self._chunks), 0
        except StopIteration:
            self._done = True
        except (EOFError, OSError, zlib.error, ValueError) as exc:  # gzip: EOFError, BadGzipFile, zlib.error
            self._done = True
            self.cut = str(exc).strip().split("\n", 1)[0] or type(exc).__name__
        return not self._done

    def close(self) -> None:
        if not self.closed:
            self._source.close()
        super().close()


def _gzip_chunks(raw: IO[bytes]) -> Iterator[bytes]:
    import gzip

    with gzip.GzipFile(fileobj=raw) as gz:  # EOFError on a cut stream, BadGzipFile/zlib.error on damage
        while piece := gz.read(1 << 18):
            yield piece


def _zstd_chunks(raw: IO[bytes]) -> Iterator[bytes]:
    """Frame by frame, so that input ending inside a frame is seen (zstandard's stream reader ends such
    a stream silently). Input goes in 16 KB at a time, which bounds the output of one call."""
    import zstandard

    decompressor = zstandard.ZstdDecompressor()
    frame = decompressor.decompressobj()
    inside = False  # bytes of the current frame were fed and its end was not reached
    while data := raw.read(1 << 14):
        while data:
            try:
                out = frame.decompress(data)
            except zstandard.ZstdError as exc:
                raise ValueError(f"corrupt zstd data ({exc})") from None
            inside = True
            if out:
                yield out
            if frame.eof:  # several frames one after another (pzstd, appended files)
                data, frame, inside = frame.unused_data, decompressor.decompressobj(), False
            else:
                data = b""
    if inside:
        raise EOFError("zstd data ends inside a frame")


class StoredFile(Protocol):
    """Where a data file's bytes are: a local path, or an object in a bucket (`sources/s3.py`). Every format
    reads through this, so a file is partitioned and read the same way wherever it is kept."""

    @property
    def shown(self) -> str:
        """How messages name it."""
        ...

    @property
    def path(self) -> str | None:
        """A local path native readers (Arrow) may open themselves; None when remote."""
        ...

    @property
    def remote(self) -> bool:
        """Reading costs requests: planning makes no extra pass over the bytes (line counting)."""
        ...

    def spec(self) -> dict[str, Any]:
        """What identifies this file (and its version) in a partition's spec."""
        ...

    def at(self, spec: dict[str, Any]) -> StoredFile:
        """The file as a partition's spec pinned it; an error when that version is gone."""
        ...

    def open(self, until: int | None = None) -> IO[bytes]:
        """The bytes, binary and seekable. `until`: about where reading will stop (a byte range's end), so a
        remote file fetches no further ahead; reading on past it still works."""
        ...

    def size(self) -> int: ...

    def signature(self) -> str:
        """What changes when the content changes (size and mtime; size and ETag)."""
        ...


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A file on a local or mounted file system."""

    local: Path

    @property
    def remote(self) -> bool:
        return False

    @property
    def shown(self) -> str:
        return str(self.local)

    @property
    def path(self) -> str | None:
        return str(self.local)

    def spec(self) -> dict[str, Any]:
        return {"path": str(self.local)}

    def at(self, spec: dict[str, Any]) -> StoredFile:
        return self

    def open(self, until: int | None = None) -> IO[bytes]:
        return open(self.local, "rb")  # noqa: SIM115 - closed by the caller

    def size(self) -> int:
        return self.local.stat().st_size

    def signature(self) -> str:
        st = self.local.stat()
        return f"{st.st_size}:{st.st_mtime_ns}"


def _open_stream(file: StoredFile, compression: str | None, progress: Callable[[int], None] | None) -> io.BufferedReader:
    raw: IO[bytes] = file.open()
    counted = io.BufferedReader(_CountingReader(raw, progress), buffer_size=1 << 20)
    if compression is None:
        return counted
    chunks = _gzip_chunks(counted) if compression == "gzip" else _zstd_chunks(counted)
    # Buffered for peek(): the format sniffing (array, lines, indented objects) looks ahead.
    return io.BufferedReader(_Decompressed(chunks, counted), buffer_size=1 << 20)


class _Utf16(io.RawIOBase):
    """A UTF-16 file (known by its byte-order mark) as UTF-8, which every reader here expects."""

    def __init__(self, inner: io.BufferedReader) -> None:
        self.inner = inner
        self._decoder = codecs.getincrementaldecoder("utf-16")("replace")
        self._buf = b""
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while self._pos >= len(self._buf):
            raw = self.inner.read1(1 << 20)
            self._buf, self._pos = self._decoder.decode(raw, not raw).encode(), 0
            if not raw and not self._buf:
                return 0
        n = min(len(b), len(self._buf) - self._pos)
        b[:n] = self._buf[self._pos : self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        if not self.closed:
            self.inner.close()
        super().close()


def _cut_of(fh: IO[bytes]) -> str | None:
    """Why a compressed stream ended early, or None when it ended where it should (or is not compressed)."""
    raw = getattr(fh, "raw", None)
    if isinstance(raw, _Utf16):
        return _cut_of(raw.inner)
    return raw.cut if isinstance(raw, _Decompressed) else None


def _restart(text: bytes, final: bool, tries: int = 100) -> int | None:
    """Where the elements of a damaged array parse again: the first `{` after a comma from which the
    rest reads as whole elements (not ending the array early, as an object nested in the broken
    element would). None when there is no such place."""
    start = 0
    for _ in range(tries):
        comma = text.find(b",", start)
        if comma < 0:
            return None
        start = comma + 1
        brace = comma + 1 + len(text[comma + 1 : comma + 65]) - len(text[comma + 1 : comma + 65].lstrip())
        if text[brace : brace + 1] != b"{":
            continue
        lines, count, used, closed = split_array(text[brace:], final)
        if not count or (closed and text[brace + used :].strip()):
            continue
        if parse_record(lines.split(b"\n", 1)[0])[1] is None:
            return brace
    return None


def _as_utf8(fh: io.BufferedReader) -> io.BufferedReader:
    """The text without a UTF-8 byte-order mark; a UTF-16 text (with its mark) transcoded to UTF-8."""
    head = fh.peek(3)[:3]
    if head == b"\xef\xbb\xbf":
        fh.read(3)
    elif head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return io.BufferedReader(_Utf16(fh), buffer_size=1 << 20)
    return fh


def _within_range(malformed: MalformedSink, start: int) -> MalformedSink:
    """A sink for a byte range whose first line's number is unknown (remote files are not pre-counted):
    a line is named by the range's first byte and its line within the range."""

    def sink(dataset: str, line: int | None, reason: str, kind: str = "malformed") -> None:
        where = f"byte range from {start:,}, its line {line:,}: " if line is not None else f"byte range from {start:,}: "
        malformed(dataset, None, where + reason, kind)

    return sink


def _json_error(exc: Exception) -> str:
    """ijson's message without the excerpt of the file that yajl appends to it: that excerpt is the
    file's content (e-mails, tokens), and error messages end up in reports and state files."""
    return str(exc).strip().split("\n", 1)[0].strip() or type(exc).__name__


def _still_whole(fileno: int, size: int) -> None:
    """An OSError when the file no longer holds `size` bytes (cut shorter while it was read): checked before mapped
    pages are touched, since touching one that is gone kills the process (SIGBUS)."""
    if os.fstat(fileno).st_size < size:
        raise OSError(errno.EIO, "the file was cut shorter while it was read")


def _range_lines_mapped(fileno: int, bounds: list[int]) -> list[int]:
    """The line number each range between `bounds` begins on, counting over each range mapped in turn. A file now
    shorter than the bounds is an OSError before its range is mapped (the caller then reads it), never a page gone."""
    starts = [1]
    # Pages mapped in one call (MAP_POPULATE, Linux) rather than one fault at a time: a third of the time.
    mode = {"flags": mmap.MAP_SHARED | mmap.MAP_POPULATE, "prot": mmap.PROT_READ} if hasattr(mmap, "MAP_POPULATE") else {"access": mmap.ACCESS_READ}
    for start, end in itertools.pairwise(bounds):
        _still_whole(fileno, end)
        skip = start % mmap.ALLOCATIONGRANULARITY
        with mmap.mmap(fileno, end - start + skip, offset=start - skip, **mode) as mapped, memoryview(mapped) as view:
            starts.append(starts[-1] + count_newlines(view[skip:]))
    return starts


_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)


def _map_from(fh: IO[bytes]) -> mmap.mmap | None:
    """The whole file mapped read-only (read ahead sequentially), or None where it cannot be mapped (empty, a pipe,
    a file system without mapping): the caller reads it instead."""
    try:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return None
        mm = mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_READ)
    except (OSError, ValueError, OverflowError, MemoryError, io.UnsupportedOperation):  # (a 32-bit address space)
        return None
    if hasattr(mmap, "MADV_SEQUENTIAL"):
        mm.madvise(mmap.MADV_SEQUENTIAL)
    return mm


def _range_lines_read(fh: IO[bytes], bounds: list[int]) -> list[int]:
    """_range_lines_mapped for a file that cannot be mapped: read into one reused buffer."""
    starts = [1]
    chunk = bytearray(BLOCK_BYTES)
    for start, end in itertools.pairwise(bounds):
        newlines, left = 0, end - start
        while left > 0:
            view = memoryview(chunk)[: min(left, BLOCK_BYTES)]
            got = fh.readinto(view)  # type: ignore[attr-defined]
            if not got:
                break
            newlines += count_newlines(view[:got])
            left -= got
        starts.append(starts[-1] + newlines)
    return starts


@dataclass(slots=True)
class FileDataset(ReaderDefaults):
    file: StoredFile
    name: str
    fmt: str
    compression: str | None
    subject_field: str | None = None
    progress: Callable[[int], None] | None = None

    def partitions(self) -> list[Partition]:
        """Big uncompressed JSON Lines files split into byte ranges and Parquet files into row groups, so
        that workers share one file (and a resumed scan skips the finished parts); the rest is one unit."""
        spec = self.file.spec()
        whole = [Partition(self.name, spec)]
        if self.fmt == "jsonl" and self.compression is None and self.size() > 2 * PART_BYTES and not self._utf16():
            return self._byte_ranges()
        if self.fmt == "parquet" and not self.compression:
            try:
                groups = self._parquet_file(self.file).num_row_groups
            except (pa.ArrowInvalid, OSError):
                return whole  # read() reports it
            if groups > 1:
                return [Partition(self.name, {**spec, "row_group": i}) for i in range(groups)]
        return whole

    def _utf16(self) -> bool:
        with self.file.open() as fh:
            return fh.read(2) in (b"\xff\xfe", b"\xfe\xff")  # transcoded as one stream: byte ranges would cut characters

    def _byte_ranges(self) -> list[Partition]:
        size = self.size()
        n = -(-size // PART_BYTES)
        bounds = [size * i // n for i in range(n + 1)]
        spec = self.file.spec()
        if self.file.remote:
            # Counting lines would read the whole object once more at planning: malformed lines of a range
            # are named by the range's first byte and their line within it instead.
            return [Partition(self.name, {**spec, "start": start, "end": end}) for start, end in itertools.pairwise(bounds)]
        # Line numbers stay exact: the newlines before each range are counted once, at memchr speed, over the range
        # mapped in memory (no copy; one range mapped at a time, so few pages count as resident), or read into one
        # reused buffer where the file cannot be mapped.
        with self.file.open() as fh:
            try:
                starts = _range_lines_mapped(fh.fileno(), bounds)
            except (OSError, ValueError, io.UnsupportedOperation):
                fh.seek(0)
                starts = _range_lines_read(fh, bounds)
        return [Partition(self.name, {**spec, "start": start, "end": end, "line": line})
                for (start, end), line in zip(itertools.pairwise(bounds), starts, strict=False)]

    def size(self) -> int:
        return self.file.size()

    def read_together(self, others: list[tuple[DatasetReader, Partition]]) -> list[list[pa.Table] | None]:
        """The tables of many small whole files at once (this one's kind first), as reading each alone
        would give them; None for a file to be read alone. Plain JSON Lines files are parsed as one buffer
        (one Arrow parse instead of one per file); anything unusual, damaged or unreadable is None."""
        out: list[list[pa.Table] | None] = [None] * len(others)
        texts: list[bytes] = []
        at: list[int] = []
        for k, (reader, partition) in enumerate(others):
            if not (isinstance(reader, FileDataset) and reader.fmt == "jsonl" and reader.compression is None
                    and not {"start", "row_group"} & set(partition.spec)):
                continue
            try:
                with reader.file.at(partition.spec).open() as fh:
                    text = fh.read(TOGETHER_BYTES + 1)
            except Exception:  # noqa: BLE001 - read alone, which says what is wrong
                continue
            if len(text) > TOGETHER_BYTES or text[:3] == b"\xef\xbb\xbf" or text[:2] in (b"\xff\xfe", b"\xfe\xff"):
                continue
            texts.append(text)
            at.append(k)
        for k, table in zip(at, small_json_lines(texts), strict=True):
            if table is not None:
                out[k] = [table] if table.num_rows else []
                reader = others[k][0]
                if isinstance(reader, FileDataset) and reader.progress:
                    reader.progress(reader.size())
        return out

    def signature(self) -> str:
        return self.file.signature()

    def read(self, partition: Partition, malformed: MalformedSink) -> Iterator[pa.Table]:
        spec = partition.spec
        try:
            file = self.file.at(spec)
            if file.size() == 0:
                return  # an empty file holds no records, whatever its format
            if self.fmt == "parquet":
                yield from self._parquet(file, spec.get("row_group"), malformed)
            elif "start" in spec:
                start, line = int(spec["start"]), spec.get("line")
                if line is None:  # a remote range: its first line's number is not known, lines count from 1 in it
                    malformed = _within_range(malformed, start)
                yield from self._json_range(file, start, int(spec["end"]), int(line or 1), malformed, in_file=line is not None)
            else:
                with _as_utf8(_open_stream(file, self.compression, self.progress)) as fh:
                    yield from (self._csv(fh, malformed) if self.fmt in ("csv", "tsv") else self._json(fh, malformed, file))
                    cut = _cut_of(fh)
                if cut is not None:
                    malformed(self.name, None, f"compressed data ends early or is corrupt ({cut}); the records after the cut are unknown", "truncated")
        except OSError as exc:
            raise UserError(f"{self.file.shown}: cannot read ({exc.strerror or exc})") from None

    # -- JSON --------------------------------------------------------------------------------
    def _json(self, fh: io.BufferedReader, malformed: MalformedSink, file: StoredFile | None = None) -> Iterator[pa.Table]:
        first = fh.peek(64).lstrip()[:1]
        if self.fmt == "json" and first == b"[":
            yield from self._json_array(fh, malformed)
            return
        if first == b"{" and not self._looks_like_lines(fh) and (self.fmt == "json" or self._pretty_printed(fh)):
            yield from self._json_document(fh, malformed)
            return
        counted = fh.raw
        if file is not None and not file.remote and isinstance(counted, _CountingReader):  # a plain local file
            with file.open() as raw:
                mapped = _map_from(raw)
                if mapped is not None:
                    already = counted.count  # what sniffing the format read is on the progress bar already

                    def progress(n: int) -> None:
                        nonlocal already
                        if self.progress and n > already:
                            self.progress(n - already)
                        already = max(already - n, 0)

                    with mapped:
                        yield from self._json_range_mapped(mapped, raw, 0, len(mapped), 1, malformed, True, progress)
                    return
        yield from self._json_lines(fh, malformed)

    def _looks_like_lines(self, fh: io.BufferedReader) -> bool:
        head = fh.peek(1 << 20)
        line = head.split(b"\n", 1)[0]
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            return False
        return True

    @staticmethod
    def _pretty_printed(fh: io.BufferedReader) -> bool:
        """A lone `{` on the first line: indented objects one after another, as `jq .` writes them."""
        return fh.peek(1 << 16).split(b"\n", 1)[0].strip() == b"{"

    def _json_lines(self, fh: io.BufferedReader, malformed: MalformedSink) -> Iterator[pa.Table]:
        line_no = 1
        rest = b""
        while True:
            pieces: list[bytes] = []
            size = 0
            while size < BLOCK_BYTES:  # read1: what is decompressed so far, so a cut stream loses little
                piece = fh.read1(1 << 20)
                if not piece:
                    break
                pieces.append(piece)
                size += len(piece)
            if not pieces:
                break
            block = rest + b"".join(pieces)
            cut = block.rfind(b"\n")
            if cut < 0:
                rest = block  # a single line longer than the block: keep reading
                continue
            complete, rest = block[: cut + 1], block[cut + 1 :]
            yield from json_lines_to_tables(complete, line_no, self.name, malformed)
            line_no += count_newlines(complete)
        if rest.strip() and _cut_of(fh) is None:  # a line cut by a truncated stream is part of the cut
            yield from json_lines_to_tables(rest, line_no, self.name, malformed)

    def _json_range(
        self, file: StoredFile, start: int, end: int, line_no: int, malformed: MalformedSink, in_file: bool = True
    ) -> Iterator[pa.Table]:
        """The lines that begin in [start, end): a line straddling `start` belongs to the range before. `line_no`
        numbers the line holding `start` in the file (`in_file`), or the range's first line (a remote range)."""
        if not file.remote:
            with file.open() as fh:
                mapped = _map_from(fh)
                if mapped is not None:
                    with mapped:
                        yield from self._json_range_mapped(mapped, fh, start, end, line_no, malformed, in_file)
                    return
        with file.open(until=end + (1 << 16)) as fh:  # + the usual tail of the range's last line
            if start > 0:
                fh.seek(start - 1)
                if fh.read(1) != b"\n":
                    fh.readline()  # the tail of the previous range's last line
                    line_no += in_file
            elif fh.read(3) != b"\xef\xbb\xbf":
                fh.seek(0)
            offset = fh.tell()  # file offset of buf[0]
            buf = b""
            while offset < end:
                chunk = fh.read1(BLOCK_BYTES)  # one read: a remote file fetches no further than the range needs
                if self.progress and chunk:
                    self.progress(len(chunk))
                cut = chunk.rfind(b"\n")  # buf (the tail after the last newline so far) holds none
                if not chunk:  # end of file: a last line without a newline
                    complete, buf = buf, b""
                elif cut < 0:
                    buf += chunk
                    continue
                else:  # the complete lines copied once (a block read whole is not copied)
                    complete = b"".join((buf, memoryview(chunk)[: cut + 1])) if buf else chunk[: cut + 1]
                    buf = chunk[cut + 1 :]
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
                line_no += count_newlines(complete)
                if not chunk:
                    break

    def _json_range_mapped(
        self,
        mm: mmap.mmap,
        fh: IO[bytes],
        start: int,
        end: int,
        line_no: int,
        malformed: MalformedSink,
        in_file: bool,
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[pa.Table]:
        """_json_range over the file mapped in memory: each block of complete lines is parsed where it lies in the
        page cache (no copy into a read buffer, no joining of a block's tail with the next). Pages already parsed
        are unmapped as the range goes on, so resident memory stays about one block. A file cut shorter meanwhile
        stops the range with an error before any page that is gone is touched: the size is checked whenever
        reading resumes, and a block's tables are all made before the first is handed on."""
        size = len(mm)
        pos = start
        if start > size:
            return
        if start > 0:
            if mm[start - 1] != 10:  # the tail of the previous range's last line
                nl = mm.find(b"\n", start)
                pos = size if nl < 0 else nl + 1
                line_no += in_file
        elif mm[:3] == b"\xef\xbb\xbf":
            pos = 3
        report = progress or self.progress
        if report and pos == 3 and start == 0:
            report(3)  # the byte-order mark: a whole file's bytes are on the progress bar once each
        done = pos - pos % mmap.PAGESIZE  # pages below this are dropped from the mapping once parsed
        with memoryview(mm) as view:
            while pos < end and pos < size:
                _still_whole(fh.fileno(), size)
                stop = min(pos + BLOCK_BYTES, size)
                cut = size - 1 if stop == size else mm.rfind(b"\n", pos, stop)
                if cut < 0:  # a line longer than a block
                    cut = mm.find(b"\n", stop)
                    cut = size - 1 if cut < 0 else cut
                if cut >= end:  # the lines that begin before the range's end
                    cut = mm.find(b"\n", end - 1)
                    cut = size - 1 if cut < 0 else cut
                with view[pos : cut + 1] as block:
                    tables = list(json_lines_to_tables(block, line_no, self.name, malformed))
                    line_no += count_newlines(block)
                    if report:
                        report(len(block))
                pos = cut + 1
                upto = pos - pos % mmap.PAGESIZE
                if upto > done and _DONTNEED is not None:
                    mm.madvise(_DONTNEED, done, upto - done)
                    done = upto
                yield from tables
                del tables

    def _json_array(self, fh: io.BufferedReader, malformed: MalformedSink) -> Iterator[pa.Table]:
        """A top-level array, read in blocks: its elements are cut apart vectorised and read as JSON lines,
        so a broken element costs that element (named by its index) and the elements after it are read."""
        fh.read(fh.peek(64).index(b"[") + 1)
        index = 1  # of the next element
        buf = b""
        while True:
            pieces: list[bytes] = []
            size = 0
            while size < BLOCK_BYTES and (piece := fh.read1(1 << 20)):
                pieces.append(piece)
                size += len(piece)
            piece = b"".join(pieces)
            buf += piece
            lines, count, used, closed = split_array(buf, not piece)
            if count == 0 and len(buf) > 4 * BLOCK_BYTES:
                # No element ends within 32 MB: brackets do not balance. Read on from where elements parse again.
                restart = _restart(buf, final=False)
                if restart is None:
                    malformed(self.name, index, f"array element {index}: brackets do not balance; the rest of the array is not read")
                    return
                malformed(self.name, index, f"array element {index}: brackets do not balance; read on {restart:,} bytes later")
                buf, index = buf[restart:], index + 1
                continue
            if count:
                yield from self._elements(lines, index, malformed)
                index += count
                buf = buf[used:]
            if closed:
                if buf.strip():
                    malformed(self.name, index, f"array element {index - 1}: brackets do not balance; {len(buf):,} bytes after the array's end are not read")
                return
            if not piece:
                return

    def _elements(self, lines: bytes, first: int, malformed: MalformedSink) -> Iterator[pa.Table]:
        """Array elements as JSON lines; an element that fails may have swallowed the ones after it
        (an unbalanced bracket or quote): they are read again from where elements parse."""
        failed: list[tuple[int, str]] = []

        def note(dataset: str, line: int | None, reason: str, kind: str = "malformed") -> None:
            if kind == "malformed" and line is not None:
                failed.append((line, reason))
            else:
                malformed(dataset, line, reason, kind)

        yield from json_lines_to_tables(lines, first, self.name, note)
        texts = lines.split(b"\n") if failed else []
        for line, reason in failed:
            text = texts[line - first]
            value = leading_value(text)
            if isinstance(value, dict):  # a whole object, then text that is not JSON: the object counts
                yield from docs_to_tables([value], self.name, malformed)
                malformed(self.name, line, f"array element {line}: {reason} after the object; that text is not read")
            else:
                malformed(self.name, line, f"array element {line}: {reason}")
            restart = _restart(text, final=True)
            if restart is not None:
                rest, _, _, _ = split_array(text[restart:], True)
                yield from self._elements(rest, line + 1, malformed)

    def _json_document(self, fh: io.BufferedReader, malformed: MalformedSink) -> Iterator[pa.Table]:
        # One object (a record, or a search response {"hits": {"hits": [...]}}), parsed whole by orjson;
        # or several concatenated ones, as `jq .` writes them, streamed one at a time.
        values: Iterator[Any]
        if self._pretty_printed(fh):
            values = self._indented_values(fh, malformed)
        else:
            data = fh.read()
            if not valid_utf8(data):
                data, lines = replace_not_utf8(data, 1)
                report_not_utf8(self.name, lines, malformed)
            data = cut_deep(data, MAX_DEPTH + 3)  # + the levels of a search response around its hits
            value, why = parse_record(data)
            if why is None:
                values = iter([value])
            else:
                import ijson

                values = self._until_broken(ijson.items(io.BytesIO(data), "", multiple_values=True, use_float=True), malformed)
        yield from docs_to_tables(self._records_of(values, malformed), self.name, malformed)

    def _indented_values(self, fh: io.BufferedReader, malformed: MalformedSink) -> Iterator[Any]:
        """Indented objects one after another (`jq .`): a top-level object opens at the start of a line and
        everything inside it is indented, so the stream is cut before each line that starts with `{` and
        every piece is parsed alone. A broken object is one malformed record, named by its first line; the
        objects after it are read as usual. (A raw newline never occurs inside a JSON string.)"""
        pending: list[bytes] = []  # the object read so far; joined only when a cut arrives (big objects stay linear)
        line = 1  # the line `pending` starts on
        not_utf8: list[int] = []
        while True:
            piece = fh.read1(1 << 20)
            cut = b"\n{" in piece or (piece[:1] == b"{" and pending and pending[-1].endswith(b"\n"))
            if piece and not cut:
                pending.append(piece)
                continue
            texts = b"".join([*pending, piece]).split(b"\n{")
            texts[1:] = [b"{" + t for t in texts[1:]]
            pending = [texts.pop()] if piece else []  # the last piece may go on in the next read
            for text in texts:
                if not valid_utf8(text):
                    text, lines = replace_not_utf8(text, line)
                    not_utf8 += lines
                if text.strip():
                    value, why = parse_record(text)
                    if why is None:
                        yield value
                    else:
                        malformed(self.name, line, f"invalid JSON object ({why})")
                line += text.count(b"\n") + 1
            if not piece:
                report_not_utf8(self.name, not_utf8, malformed)
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
                for j, hit in enumerate(hits["hits"], 1):
                    if isinstance(hit, dict):
                        yield hit
                    else:
                        malformed(self.name, i, f"search hit {j} is a {type(hit).__name__}, not an object")
            elif isinstance(value, dict):
                yield value
            else:
                malformed(self.name, i, f"top-level value {i} is a {type(value).__name__}, not an object")

    # -- CSV / TSV ---------------------------------------------------------------------------
    def _csv(self, fh: io.BufferedReader, malformed: MalformedSink) -> Iterator[pa.Table]:
        """CSV read in blocks that end at a row boundary. Each block's quotes are checked vectorised first;
        a block that passes goes to Arrow's reader whole, a damaged one (an unterminated quote, a quote
        inside an unquoted value) is read row by row, so the damage costs the rows it touches, which are
        named, and no value lands under another column."""
        delimiter = b"\t" if self.fmt == "tsv" else b","
        header = fh.peek(1 << 20).split(b"\n", 1)[0]
        fh.read(len(header) + 1)
        names = next(csv.reader([header.rstrip(b"\r").decode("utf-8", "replace")], delimiter=delimiter.decode()), [])
        if not names:
            return
        blocks = CsvBlocks(self.name, names, delimiter, malformed)
        carry = b""
        while True:
            piece = fh.read1(BLOCK_BYTES)
            buf = carry + piece
            if not buf:
                break
            cut, clean = csv_cut(buf, delimiter, at_end=not piece, limit=4 * BLOCK_BYTES)
            if cut:
                yield from blocks.read(buf[:cut], clean)
            carry = buf[cut:]
            if not piece:
                break
        blocks.finish()

    # -- Parquet -----------------------------------------------------------------------------
    @staticmethod
    def _parquet_file(file: StoredFile) -> pq.ParquetFile:
        """Arrow opens a local file itself; a remote one is read through its seekable stream (ranged reads), on this
        thread: an Arrow I/O thread reading a Python stream takes the GIL, and one doing so at interpreter exit
        aborts the process (apache/arrow#34314)."""
        import pyarrow.parquet as pq  # loaded by the first Parquet file: JSON and CSV scans do without it

        if file.path is not None:
            return pq.ParquetFile(file.path)
        return pq.ParquetFile(file.open(), pre_buffer=False)

    def _parquet(self, file: StoredFile, row_group: int | None, malformed: MalformedSink) -> Iterator[pa.Table]:
        if self.compression:
            raise UserError(f"{file.shown}: compressed Parquet files are not supported; Parquet compresses internally, decompress the file first")
        try:
            pf = self._parquet_file(file)
        except pa.ArrowInvalid as exc:
            raise UserError(f"{file.shown}: not a readable Parquet file ({exc})") from None
        done = 0
        total = self.size()
        repaired: list[str] = []
        groups = range(pf.num_row_groups) if row_group is None else [int(row_group)]
        for i in groups:
            rows = 0
            # ~the size of a JSON block; a remote file's columns are decoded on this thread (see _parquet_file)
            for batch in pf.iter_batches(batch_size=16384, row_groups=[i], use_threads=file.path is not None):
                rows += batch.num_rows
                yield text_safe(pa.Table.from_batches([batch]), repaired)
            missing = pf.metadata.row_group(i).num_rows - rows
            for _ in range(missing):  # damaged pages can decode to fewer rows than the footer promises
                malformed(self.name, None, f"row group {i}: {missing:,} of its {rows + missing:,} rows could not be read (damaged pages)")
            if self.progress and row_group is None:
                step = int(total * (i + 1) / pf.num_row_groups) - done
                done += step
                self.progress(step)
        if repaired:
            cols = ", ".join(dict.fromkeys(repaired))
            malformed(self.name, None, f"binary column(s) {cols}: bytes that are not UTF-8 were scanned as U+FFFD", "warning")


class FileSource(SourceDefaults):
    """A file or a folder of files given by path. Options are the stores' (`StoreOptions`): include and
    exclude globs and per-dataset subject fields apply to file names (relative to the folder, or the bare
    file name); the rest (sample, timeouts, views) mean nothing for files and are accepted."""

    def __init__(self, target: str, **options: Any) -> None:
        from spillguard.sources.store import StoreOptions

        self.target = target
        self.root = Path(target)
        self.progress: Callable[[int], None] | None = options.pop("progress", None)
        self.options = StoreOptions.from_kwargs(options)
        self.subject_field: str | None = self.options.subject_field
        self.broken_links: list[Path] = []  # data files in the folder that are links to nothing: not read, reported
        self.folder_links: list[Path] = []  # links to folders: not followed (loops, double counts), reported
        self.special: list[Path] = []  # FIFOs, sockets, devices named like data files: not read, reported
        self._found: list[Path] | None = None  # the folder is walked once
        self._names: list[str] = []  # each found file's name relative to the folder
        if not self.root.exists():
            raise UserError(f"{target}: no such file or folder")
        if not self.root.is_file() and not self.root.is_dir():
            raise UserError(f"{target}: not a regular file or a folder (a FIFO, socket or device); save the data to a file and scan that")
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
        for parts, entry in _walk(str(self.root)):
            if entry.is_symlink() and _follows(entry.is_dir):
                self.folder_links.append(Path(*parts))
                continue
            if _kind_of_name(entry.name) is None:
                continue
            if _follows(entry.is_file):
                found.append(Path(entry.path))
                self._names.append(os.path.join(*parts))
            elif entry.is_symlink() and not os.path.exists(entry.path):
                self.broken_links.append(Path(*parts))
            elif not _follows(entry.is_dir):
                self.special.append(Path(*parts))
        if not found:
            unread = [f"{link} (broken symbolic link)" for link in self.broken_links]
            unread += [f"{link} (link to a folder, not followed)" for link in self.folder_links]
            unread += [f"{path} (not a regular file)" for path in self.special]
            shown = f"; not read: {', '.join(unread[:5])}{', ...' if len(unread) > 5 else ''}" if unread else ""
            raise UserError(
                f"{self.target}: no data files in this folder; spillguard reads .jsonl .ndjson .json .csv .tsv .parquet (optionally .gz or .zst){shown}"
            )
        self._found = found
        return found

    def datasets(self) -> Iterator[FileDataset]:
        files = self._files()
        names = self._names if self.root.is_dir() else [self.root.name]  # relative to the folder
        for path, name in zip(files, names, strict=True):
            kind = file_kind(path)
            assert kind is not None
            if self.options.wanted(name, path.name):
                yield FileDataset(LocalFile(path), name, kind[0], kind[1], self.options.subject_for(name, path.name), self.progress)

    def dataset(self, name: str) -> FileDataset:
        """The file `datasets()` calls `name`, without walking the folder again: a worker process that
        scans some files of a 20,000-file folder finds each by its name (one stat, not a listing)."""
        path = self.root / name if self.root.is_dir() else self.root
        kind = _kind_of_name(path.name)
        if kind is None or (not self.root.is_dir() and name != self.root.name) or not path.is_file():
            raise UserError(f"{self.target}: dataset {name!r} disappeared during the scan; scan again")
        return FileDataset(LocalFile(path), name, kind[0], kind[1], self.options.subject_for(name, path.name), self.progress)

    def warnings(self) -> list[str]:
        broken = [f"{link}: broken symbolic link, not read" for link in self.broken_links]
        special = [f"{path}: not a regular file (a FIFO, socket or device), not read" for path in self.special]
        return broken + special + [f"{link}: symbolic link to a folder, not followed; scan it as a target of its own" for link in self.folder_links]

    def close(self) -> None:
        pass

