"""Incremental copies: only records whose watermark field (`updated_at`, `@timestamp`) is past the last
copied value, that value kept in a state file (0600) after each committed run.

The state holds one watermark value per dataset (a time or a counter, never a record's content). Rows are
filtered with Arrow kernels after reading; the source is still read whole (no pushed-down predicate yet).
Deleted source rows are not propagated: a `--replace` run rebuilds the copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from spillguard.detect.arrays import as_text
from spillguard.errors import UserError
from spillguard.outfiles import private_file

STATE_VERSION = 1


@dataclass(slots=True)
class Watermark:
    """The watermark of one dataset: the field, the last value copied before, the highest seen now."""

    field: str
    last: Any = None
    seen: Any = None

    def _column(self, table: pa.Table, dataset: str) -> pa.Array:
        if self.field not in table.column_names:
            raise UserError(f"{dataset}: watermark field {self.field!r} is not a top-level field of the records")
        col = table.column(self.field)
        arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
            return arr
        # Times compare as ISO text (what JSON sources give and what strftime writes): same order.
        return as_text(arr)

    def select(self, table: pa.Table, dataset: str) -> pa.Table:
        """The records past the last watermark (all of them on a first run); tracks the highest value."""
        col = self._column(table, dataset)
        if self.last is not None:
            last = self.last
            if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                last = str(last)
            keep = pc.fill_null(pc.greater(col, pa.scalar(last)), False)
            table = table.filter(keep)
            col = col.filter(keep)
        top = pc.max(col).as_py()
        if top is not None and (self.seen is None or top > self.seen):
            self.seen = top
        return table


@dataclass(slots=True)
class CopyState:
    path: Path
    destination: str
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path, destination: str) -> CopyState:
        p = Path(path)
        if not p.exists():
            return cls(p, destination)
        try:
            doc = orjson.loads(p.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise UserError(f"{p}: not a readable copy state ({exc}); delete it to copy everything again") from None
        if doc.get("version") != STATE_VERSION:
            raise UserError(f"{p}: copy state version {doc.get('version')!r} is not supported; delete it to start over")
        if doc.get("destination") != destination:
            raise UserError(f"{p}: this state belongs to the copy to {doc.get('destination')}, not {destination}; use another --state")
        return cls(p, destination, dict(doc.get("datasets") or {}))

    def watermark(self, dataset: str, fld: str) -> Watermark:
        entry = self.datasets.get(dataset) or {}
        if entry and entry.get("field") != fld:
            raise UserError(f"{self.path}: {dataset} was copied with watermark {entry.get('field')!r}, not {fld!r}; use another --state")
        return Watermark(fld, entry.get("last"))

    def save(self, marks: dict[str, Watermark]) -> None:
        for name, mark in marks.items():
            last = mark.seen if mark.seen is not None else mark.last
            self.datasets[name] = {"field": mark.field, "last": last}
        doc = {"version": STATE_VERSION, "destination": self.destination, "datasets": self.datasets}
        with private_file(self.path) as fh:  # a crash mid-write leaves the previous watermarks, never half a file
            fh.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS, default=str))
