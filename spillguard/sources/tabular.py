"""CSV blocks and binary columns made safe for the engine: rows cut at row boundaries, quotes checked
vectorised before Arrow parses a block, damaged rows read one by one, bytes that are not UTF-8 replaced
and reported. The clean path stays whole-block Arrow; Python only touches damaged blocks."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from spillguard.sources.base import MalformedSink
from spillguard.sources.records import count_newlines, valid_utf8

_MAX_ROW_LINES = 64  # a quoted value spanning more physical lines than this is taken for an unterminated quote


def csv_cut(buf: bytes, delimiter: bytes, at_end: bool, limit: int) -> tuple[int, bool]:
    """(where the complete rows of `buf` end, whether their quotes are well-formed).

    A row ends at a newline with an even number of quotes before it. The quotes are well-formed when
    every opening quote starts a value (after a delimiter, a newline or an escaping quote) and every
    closing quote ends one (before a delimiter, a line end or an escaping quote); then Arrow's reader
    and a strict reader agree on every row. (0, True) asks for more bytes."""
    arr = np.frombuffer(buf, np.uint8)
    quotes = np.flatnonzero(arr == 34)
    newlines = np.flatnonzero(arr == 10)
    if at_end:
        cut, balanced = len(buf), quotes.size % 2 == 0
    else:
        ends = newlines[np.searchsorted(quotes, newlines) % 2 == 0]
        if ends.size:
            cut, balanced = int(ends[-1]) + 1, True
        elif len(buf) > limit:  # no row ends within the limit: a quote that never closes
            cut, balanced = (int(newlines[-1]) + 1 if newlines.size else len(buf)), False
        else:
            return 0, True
    if not balanced:
        return cut, False
    quotes = quotes[quotes < cut]
    if not quotes.size:
        return cut, True
    sep = delimiter[0]
    closing, opening = quotes[1::2], quotes[0::2]
    after = arr[np.minimum(closing + 1, cut - 1)]
    before = arr[np.maximum(opening - 1, 0)]
    ok_close = (closing + 1 >= cut) | (after == sep) | (after == 10) | (after == 13) | (after == 34)
    ok_open = (opening == 0) | (before == sep) | (before == 10) | (before == 34)
    return cut, bool(ok_close.all() and ok_open.all())


class CsvBlocks:
    """Blocks of complete CSV rows (after the header) turned into tables of text columns."""

    def __init__(self, dataset: str, names: list[str], delimiter: bytes, malformed: MalformedSink) -> None:
        self.dataset = dataset
        self.names = names
        self.delimiter = delimiter
        self.malformed = malformed
        self.line = 2  # physical line of the block's first byte (the header is line 1)
        self.record = 1  # CSV record number of the block's first row (Arrow counts records, not lines)
        self.not_utf8: list[int] = []  # lines whose bytes that are not UTF-8 were replaced
        # Every column as text: type inference per block would disagree between blocks.
        self.convert = pcsv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=True)

    def read(self, block: bytes, clean: bool) -> Iterator[pa.Table]:
        if clean and not valid_utf8(block):
            block = self._replace_invalid(block)
        table = self._arrow(block) if clean else None
        if table is None:
            table = self._rows(block)
        self.line += count_newlines(block)
        if table.num_rows:
            yield table

    def finish(self) -> None:
        if self.not_utf8:
            shown = ", ".join(map(str, self.not_utf8[:5])) + (f" and {len(self.not_utf8) - 5:,} more" if len(self.not_utf8) > 5 else "")
            self.malformed(
                self.dataset, self.not_utf8[0],
                f"line {shown}: bytes that are not UTF-8 were scanned as U+FFFD; if the file is Latin-1 or UTF-16, convert it to UTF-8",
                "warning",
            )

    def _replace_invalid(self, block: bytes) -> bytes:
        lines = block.split(b"\n")
        for i, line in enumerate(lines):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                self.not_utf8.append(self.line + i)
                lines[i] = line.decode("utf-8", "replace").encode()
        return b"\n".join(lines)

    def _arrow(self, block: bytes) -> pa.Table | None:
        base = self.record
        bad: list[str] = []  # reported once the block is read: a block Arrow gives up on is read row by row instead

        def on_invalid(row: pcsv.InvalidRow) -> str:
            bad.append(f"CSV record {base + row.number - 1}: expected {row.expected_columns} columns, found {row.actual_columns}")
            return "skip"

        parse = pcsv.ParseOptions(delimiter=self.delimiter.decode(), newlines_in_values=True, invalid_row_handler=on_invalid)
        read = pcsv.ReadOptions(column_names=self.names, use_threads=False, block_size=max(len(block) + 1, 1 << 16))
        try:
            table = pcsv.read_csv(io.BytesIO(block), read_options=read, parse_options=parse, convert_options=self.convert)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        for why in bad:
            self.malformed(self.dataset, None, why)
        self.record += table.num_rows + len(bad)
        return table

    def _rows(self, block: bytes) -> pa.Table:
        """A damaged block, row by row: a row is one line, or the few lines a quoted value spans when its
        quotes then balance and parse strictly; any other line is one malformed row, and reading goes on
        with the next line, so an unterminated quote costs its own row only."""
        lines = block.split(b"\n")
        columns: list[list[str | None]] = [[] for _ in self.names]
        delimiter = self.delimiter.decode()
        i = 0
        while i < len(lines):
            if not lines[i].strip(b"\r"):
                i += 1
                continue
            j, quotes = i, lines[i].count(b'"')
            if quotes % 2 and self._strict(lines[i]) is not None:
                quotes = 0  # a quote inside an unquoted value (`5" screen`): literal, as every CSV reader takes it
            while quotes % 2 and j + 1 < len(lines) and j - i < _MAX_ROW_LINES:
                j += 1
                quotes += lines[j].count(b'"')
            raw = b"\n".join(lines[i : j + 1]).rstrip(b"\r")
            where = self.line + i
            if quotes % 2:
                self._bad(where, "a quote that is never closed")
                i += 1
                continue
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                self.not_utf8.append(where)
            try:
                rows = list(csv.reader(io.StringIO(raw.decode("utf-8", "replace"), newline=""), delimiter=delimiter, strict=True))
            except csv.Error as exc:
                self._bad(where, f"{exc}")
                i += 1
                continue
            if len(rows) != 1 or len(rows[0]) != len(self.names):
                found = len(rows[0]) if len(rows) == 1 else f"{len(rows)} rows"
                self._bad(where, f"expected {len(self.names)} columns, found {found}")
                i += 1 if j > i else j + 1 - i
                continue
            for col, value in zip(columns, rows[0], strict=True):
                col.append(value if value != "" else None)
            self.record += 1
            i = j + 1
        return pa.Table.from_arrays([pa.array(c, pa.string()) for c in columns], names=self.names)

    def _strict(self, raw: bytes) -> list[str] | None:
        """The fields of one line read strictly, or None when it does not end its quotes or has the wrong width."""
        try:
            rows = list(csv.reader(io.StringIO(raw.rstrip(b"\r").decode("utf-8", "replace"), newline=""), delimiter=self.delimiter.decode(), strict=True))
        except csv.Error:
            return None
        return rows[0] if len(rows) == 1 and len(rows[0]) == len(self.names) else None

    def _bad(self, line: int, why: str) -> None:
        self.malformed(self.dataset, line, f"CSV record {self.record} (line {line}): {why}; not scanned")
        self.record += 1


def text_safe(table: pa.Table, repaired: list[str]) -> pa.Table:
    """Binary columns (Parquet BYTE_ARRAY without a UTF-8 annotation) as text the engine can read: valid
    UTF-8 as it is, other bytes replaced by U+FFFD, value by value; `repaired` gets the columns that needed it."""
    for i, field in enumerate(table.schema):
        if not (pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type)):
            continue
        col = table.column(i).combine_chunks()
        text = col.view(pa.large_string() if pa.types.is_large_binary(field.type) else pa.string())
        try:
            text.validate(full=True)
        except pa.ArrowInvalid:
            repaired.append(field.name)
            text = pa.array([None if v is None else v.decode("utf-8", "replace") for v in col.to_pylist()], pa.string())
        table = table.set_column(i, field.name, text)
    return table
