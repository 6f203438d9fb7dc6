"""Incremental copies: only records whose watermark field (`updated_at`, `@timestamp`) is past the last
copied value, that value kept in the state file (checkpoint.py) after each committed run.

Stores that can filter are asked for records at or past the watermark (run.pushed_down); the exact cut
is this Arrow comparison, for every source, so a pushed-down read and a filtered whole read copy the same
records. Deleted source rows are not propagated: a `--replace` run rebuilds the copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from spillguard.detect.arrays import as_text
from spillguard.errors import UserError


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
