"""Column hits as a finding reads them (scan/accumulate.py), for tests that compare two ways of scanning a column.

A value the scan resolved in Python keeps its span; one taken as matched or by its owner does not, and a finding
then reads the rule's first match in the value. Which way a value went may depend on what the engine measured
(owners are kept or dropped by their cost), so comparisons go through this reading, not the raw spans.
"""

from __future__ import annotations

import pyarrow as pa

from spillguard.detect.engine import ColumnHits
from spillguard.rules import Rule


def read_hits(hits: ColumnHits, values: pa.Array, rules: list[Rule]) -> tuple[dict[int, list[int]], dict[tuple[int, int], tuple[int, int] | None]]:
    """The values hit per rule, and where each hit is: the span the engine kept, else the rule's first match."""
    texts = values.to_pylist()
    where = {}
    for rid, idx in hits.by_rule.items():
        rule = rules[rid]
        for vi in idx.tolist():
            span = hits.spans.get((rid, vi))
            if span is None and rule.value_re is not None:
                m = rule.value_re.search(texts[vi])
                span = rule.span(m) if m else None
            where[(rid, vi)] = span
    return {k: v.tolist() for k, v in sorted(hits.by_rule.items()) if v.size}, where
