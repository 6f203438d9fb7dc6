"""The engine library's own correctness on what spillguard asks of it.

Vectorscan 5.4.9 (Debian bookworm's package, which this build links) misses matches of a database holding few rules
whose pattern starts with a multi-line `^` alternative, depending on where in the buffer the match falls: the `ipv4`
rule alone misses an address after 32 or more short values. 5.4.12 finds them all. The test is an expected failure on
5.4.9 only (strict: it fails when the library no longer misses them, so the marker goes) and must pass on any other
version the project is built against. BENCHMARKS.md, "Native core, ninth steps".
"""

from __future__ import annotations

import pyarrow as pa
import pytest

import spillguard._native as _native
from spillguard.detect.engine import RuleSet
from spillguard.detect.matcher import scan_text
from spillguard.rules import select_rules

_KNOWN_BAD = _native.vectorscan_version().startswith("5.4.9")


@pytest.mark.xfail(_KNOWN_BAD, strict=True, reason="Vectorscan 5.4.9 misses matches of small databases (see docstring)")
def test_a_single_rule_database_finds_every_address_whatever_comes_before() -> None:
    ruleset = RuleSet(select_rules(only=["ipv4"]))
    database = ruleset._compile(tuple(ruleset.value_rule_ids))
    found, expected = [], []
    for filler in ("x1", "abc", "1234567", "1" * 101):
        for count in range(1, 120, 7):
            _, values = scan_text(database, pa.array([filler] * count + ["4.9.6.218"]))
            expected.append([count])
            found.append(values.tolist())
    assert found == expected
