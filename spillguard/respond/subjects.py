"""The affected people of an incident, as keyed subject hashes only.

Loaded from `scan --subjects-out` (CSV or JSON Lines: the `subject` column) and from the subjects
recorded beside leaked secrets; ids are hashed on load with the install's keyed subject hash and the
raw values dropped. A store's user column is matched by hashing it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from spillguard.detect.arrays import unique_sorted
from spillguard.errors import UserError
from spillguard.keys import subject_hasher
from spillguard.leaked import LeakedSet


@dataclass(slots=True)
class Subjects:
    hashes: np.ndarray  # sorted unique uint64 keyed subject hashes
    key: bytes
    ids: list[str] = field(default_factory=list)  # raw ids from the subjects file, in memory only (HTTP actions per user)

    @classmethod
    def empty(cls, key: bytes) -> Subjects:
        return cls(np.zeros(0, np.uint64), key)

    @classmethod
    def load(cls, key: bytes, path: str | Path | None = None, leaked: LeakedSet | None = None) -> Subjects:
        chunks = [np.zeros(0, np.uint64)]
        ids: list[str] = []
        if path is not None:
            found = _read_ids(Path(path))
            found = pc.unique(pc.filter(found, pc.not_equal(pc.fill_null(found, ""), "")))
            found = found.take(pc.array_sort_indices(found))
            chunks.append(subject_hasher(key).hash_strings(found))
            ids = found.to_pylist()
        if leaked is not None:
            chunks.append(leaked.subjects())
        h = unique_sorted(np.concatenate(chunks))
        return cls(h[h != 0], key, ids)

    def __len__(self) -> int:
        return int(self.hashes.size)

    def hash(self, values: pa.Array) -> np.ndarray:
        return subject_hasher(self.key).hash_strings(values)

    def contains(self, values: pa.Array) -> np.ndarray:
        """Which store values (user ids as the scanned copy held them) belong to affected people."""
        if not len(values):
            return np.zeros(0, bool)
        h = self.hash(values)
        if not self.hashes.size:
            return np.zeros(h.size, bool)
        # Binary search in the sorted hashes: numpy 2's np.isin hashes both sides first (several times slower).
        at = np.minimum(np.searchsorted(self.hashes, h), self.hashes.size - 1)
        return np.asarray(self.hashes[at] == h)  # 0 (a null) is never among the hashes


def _read_ids(path: Path) -> pa.Array:
    """The `subject` column as text (nulls where a line names nobody)."""
    if path.suffix.lower() == ".csv":
        return _read_csv_ids(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _missing(path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the subjects file ({exc}); give the file `scan --subjects-out` wrote") from None
    ids: list[str | None] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            sid = orjson.loads(line)["subject"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise UserError(f"{path}:{n}: not a subjects line (JSON object with `subject`); give the file `scan --subjects-out` wrote") from None
        ids.append(None if sid is None else str(sid))
    return pa.array(ids, pa.string())


def _missing(path: Path) -> UserError:
    return UserError(f"{path}: no such subjects file; write one with `spillguard scan … --subjects-out {path}`")


def _read_csv_ids(path: Path) -> pa.Array:
    """Arrow's CSV reader: a million people in a fraction of a second (csv.DictReader took seconds)."""
    import pyarrow.csv as pcsv

    if not path.is_file():
        raise _missing(path)
    try:
        table = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
            column_types={"subject": pa.string()}, include_columns=["subject"], strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowKeyError, OSError) as exc:
        if "subject" in str(exc) and ("include" in str(exc) or "not" in str(exc)):
            raise UserError(f"{path}: no `subject` column; give the CSV `scan --subjects-out` wrote") from None
        raise UserError(f"{path}: cannot read the subjects file ({str(exc).splitlines()[0]}); give the file "
                        "`scan --subjects-out` wrote") from None
    return table.column("subject").combine_chunks()
