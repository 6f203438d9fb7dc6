"""From a dataset's policy to what happens to each Arrow batch: field paths, coverage, type families,
and the transform of a whole (possibly nested) table.

Paths are the ones scans report: `address.city` inside objects, `devices[].mac` inside arrays of
objects, `tags[]` for arrays of scalars. A rule on a path covers everything below it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from spillguard.detect.arrays import as_text, unique_sorted
from spillguard.errors import UserError
from spillguard.keys import Hasher
from spillguard.safecopy.policy import IDENTIFIER_TRANSFORMS, DatasetPolicy, FieldRule, Policy
from spillguard.safecopy.transforms import Transform, TransformStats, build_transform

# Shorter identifier values are compared only within their own field: "42" is a count somewhere else.
MIN_GLOBAL_ID_LENGTH = 6


def family(t: pa.DataType) -> str | None:
    """The type family a policy's `types` table names; None for all-null columns (no evidence yet)."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_null(t):
        return None
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t):
        return "timestamp"
    return "text"


def leaf_paths(schema: pa.Schema) -> dict[str, str | None]:
    """Every leaf path of a schema with its type family, in schema order."""
    out: dict[str, str | None] = {}

    def walk(t: pa.DataType, path: str) -> None:
        if pa.types.is_struct(t):
            for i in range(t.num_fields):
                walk(t.field(i).type, f"{path}.{t.field(i).name}")
            if t.num_fields == 0:
                out[path] = None
        elif pa.types.is_list(t) or pa.types.is_large_list(t):
            walk(t.value_type, f"{path}[]")
        else:
            out[path] = family(t)

    for f in schema:
        walk(f.type, f.name)
    return out


def compatible(declared: str, seen: str | None) -> bool:
    return seen is None or seen == declared or (declared == "number" and seen == "integer")


@dataclass(slots=True)
class Drift:
    """Fields the policy does not name, and fields whose type family changed, in one dataset."""

    new: list[str] = field(default_factory=list)
    changed: list[tuple[str, str, str]] = field(default_factory=list)  # path, declared, seen

    def __bool__(self) -> bool:
        return bool(self.new or self.changed)


def drift(dataset: DatasetPolicy, schema: pa.Schema) -> Drift:
    d = Drift()
    for path, fam in leaf_paths(schema).items():
        if dataset.rule_for(path) is None:
            d.new.append(path)
        declared = dataset.types.get(path)
        if declared is not None and not compatible(declared, fam):
            d.changed.append((path, declared, fam or "null"))
    return d


def missing_fields(dataset: DatasetPolicy, schema: pa.Schema) -> list[str]:
    """Policy paths that name nothing in the source (a typo, or a column since removed)."""
    present: set[str] = set()
    for path in leaf_paths(schema):
        probe: str | None = path
        while probe:
            present.add(probe)
            probe = probe[:-2] if probe.endswith("[]") else (probe.rsplit(".", 1)[0] if "." in probe else None)
    return [p for p, r in dataset.fields.items() if p not in present and not r.optional]


@dataclass(slots=True)
class IdentifierSets:
    """Keyed 64-bit hashes of the source values of identifier fields (hmac, mask): the proof after the
    copy checks that none of them appears in the destination. Values themselves are never kept."""

    hasher: Hasher
    by_path: dict[str, list[np.ndarray]] = field(default_factory=dict)
    long_values: list[np.ndarray] = field(default_factory=list)

    def add(self, path: str, values: pa.Array) -> None:
        text = as_text(values)
        if text.null_count == len(text):
            return
        h = self.hasher.hash_strings(text)
        lengths = np.asarray(pa.compute.fill_null(pa.compute.utf8_length(text), 0))
        keep = h != 0
        self.by_path.setdefault(path, []).append(unique_sorted(h[keep]))
        self.long_values.append(unique_sorted(h[keep & (lengths >= MIN_GLOBAL_ID_LENGTH)]))

    def frozen(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Sorted unique hashes per path and over all paths (sorted: membership by binary search)."""
        per = {p: unique_sorted(np.concatenate(v)) for p, v in self.by_path.items()}
        glob = unique_sorted(np.concatenate(self.long_values)) if self.long_values else np.zeros(0, np.uint64)
        return per, glob


def member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """values in sorted_set, by binary search (numpy 2's hash-based isin is ~100x slower on 64-bit hashes)."""
    if sorted_set.size == 0:
        return np.zeros(values.size, bool)
    idx = np.minimum(np.searchsorted(sorted_set, values), sorted_set.size - 1)
    found: np.ndarray = sorted_set[idx] == values
    return found


class DatasetPlan:
    """Applies one dataset's rules to batches; new fields are resolved by `on_new` before this runs."""

    def __init__(self, dataset: DatasetPolicy, policy: Policy, on_new: str, identifiers: IdentifierSets | None) -> None:
        self.dataset = dataset
        self.policy = policy
        self.on_new = on_new
        self.identifiers = identifiers
        self.stats = TransformStats()
        self._built: dict[str, Transform] = {}
        self.auto: dict[str, str] = {}  # path -> transform applied by on_new (drop/null), for the summary
        for rule in dataset.fields.values():
            if rule.transform != "drop":
                self._transform(rule)  # options and keys are checked before anything is read

    def _transform(self, rule: FieldRule) -> Transform:
        fn = self._built.get(rule.path)
        if fn is None:
            fn = build_transform(rule, self.policy)
            self._built[rule.path] = fn
        return fn

    def check(self, schema: pa.Schema) -> Drift:
        """Fields the copy cannot decide about: new (when on_new is halt) and changed types (always)."""
        d = drift(self.dataset, schema)
        if self.on_new != "halt":
            for path in d.new:
                self.auto.setdefault(path, self.on_new)
            d.new = []
        return d

    def rule(self, path: str) -> FieldRule | None:
        rule = self.dataset.rule_for(path)
        if rule is None and path in self.auto:
            return FieldRule(path, self.auto[path])
        return rule

    def apply(self, table: pa.Table) -> pa.Table:
        table = table.combine_chunks()
        names, arrays = [], []
        for name, column in zip(table.column_names, table.columns, strict=True):
            arr = column.chunk(0) if column.num_chunks == 1 else pa.concat_arrays(column.chunks) if column.num_chunks else pa.array([], column.type)
            out = self._apply(arr, name)
            if out is not None:
                names.append(name)
                arrays.append(out)
        return pa.Table.from_arrays(arrays, names=names) if names else pa.table({"_": pa.nulls(table.num_rows)}).drop(["_"])

    def _apply(self, arr: pa.Array, path: str) -> pa.Array | None:
        rule = self.dataset.fields.get(path)
        if rule is None and path in self.auto:
            rule = FieldRule(path, self.auto[path])
        t = arr.type
        if rule is not None:
            if rule.transform == "drop":
                return None
            nested = pa.types.is_struct(t) or pa.types.is_list(t) or pa.types.is_large_list(t)
            if nested and rule.transform not in ("keep", "null"):
                raise UserError(
                    f"{self.policy.path}: datasets.{self.dataset.name}: {path!r} holds objects or arrays; "
                    f"{rule.transform} applies to its leaf fields (e.g. {path}.FIELD or {path}[]), or use keep/drop/null"
                )
            if self.identifiers is not None and rule.transform in IDENTIFIER_TRANSFORMS:
                self.identifiers.add(path, arr)
            if pa.types.is_null(t) and rule.transform != "keep":
                return arr  # nothing to transform yet; the type is decided by a later batch
            return self._transform(rule)(arr, self.stats)
        if pa.types.is_struct(t):
            children, fields = [], []
            for i in range(t.num_fields):
                child = arr.field(i)
                if arr.offset or len(child) != len(arr):
                    child = child.slice(arr.offset, len(arr))
                out = self._apply(child, f"{path}.{t.field(i).name}")
                if out is not None:
                    children.append(out)
                    fields.append(pa.field(t.field(i).name, out.type))
            if not children:
                return None
            return pa.StructArray.from_arrays(children, fields=fields, mask=arr.is_null() if arr.null_count else None)
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            values = arr.values
            out = self._apply(values, f"{path}[]")
            if out is None:
                return None
            cls = pa.LargeListArray if pa.types.is_large_list(t) else pa.ListArray
            return cls.from_arrays(arr.offsets, out, mask=arr.is_null() if arr.null_count else None)
        if pa.types.is_null(t):
            return arr  # a field that is null everywhere in this batch: nothing to decide about
        raise UserError(f"{self.dataset.name}: field {path!r} is not in the policy")  # check() runs first
