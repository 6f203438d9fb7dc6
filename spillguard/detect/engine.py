"""The detection engine: Arrow columns in, per-rule matched value indices out.

Value rules run together in one Vectorscan database over each column joined into one buffer
("\n" between values), so a column costs one pass whatever the number of rules. Python runs only
on candidates: validators (Luhn, mod 97, phonenumbers, ...) and overlap resolution inside values
that more than one rule hit. Field-only rules run vectorised checks on columns whose name matches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import hyperscan
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spillguard.detect.checks import run_check
from spillguard.detect.flatten import normalise_path
from spillguard.detect.hashing import as_text, string_buffers
from spillguard.rules import Rule
from spillguard.rules.validators import VALIDATORS

_CACHE_LIMIT = 200_000


@dataclass(slots=True)
class FieldPlan:
    """Which rules apply to one field path, decided once per path."""

    allowed_value_rules: np.ndarray  # bool per value rule index
    named_rules: frozenset[int]  # rule indices (into RuleSet.rules) whose field pattern matches
    check_rules: list[int]


@dataclass(slots=True)
class ColumnHits:
    """Value indices hit per rule index, plus the matched spans for values that needed them."""

    by_rule: dict[int, np.ndarray] = field(default_factory=dict)
    spans: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)  # (rule, value) -> first span


class RuleSet:
    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = list(rules)
        self.value_rule_ids = [i for i, r in enumerate(self.rules) if r.is_value_rule]
        self._value_pos = {rid: k for k, rid in enumerate(self.value_rule_ids)}
        self._priority = np.array([r.priority for r in self.rules], dtype=np.int64)
        self._needs_python = np.array([r.validator is not None for r in self.rules], dtype=bool)
        self._validate_cache: dict[tuple[int, str], bool] = {}
        self._db: hyperscan.Database | None = None
        if self.value_rule_ids:
            db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            exprs = [self.rules[i].hyperscan_expression() for i in self.value_rule_ids]
            flags = [
                hyperscan.HS_FLAG_MULTILINE | (hyperscan.HS_FLAG_CASELESS if self.rules[i].ignore_case else 0)
                for i in self.value_rule_ids
            ]
            try:
                db.compile(expressions=exprs, ids=list(self.value_rule_ids), elements=len(exprs), flags=flags)
            except hyperscan.error as exc:
                # Find the culprit so the user sees which rule file to fix.
                for rid, expr, flag in zip(self.value_rule_ids, exprs, flags, strict=True):
                    try:
                        hyperscan.Database().compile(expressions=[expr], ids=[rid], elements=1, flags=[flag])
                    except hyperscan.error as one:
                        from spillguard.errors import UserError

                        r = self.rules[rid]
                        raise UserError(f"{r.source}: rule {r.id!r}: pattern not supported by the engine ({one})") from None
                raise
            self._db = db
        self._scratch = hyperscan.Scratch(self._db) if self._db is not None else None
        self.plan = lru_cache(maxsize=65536)(self._plan)

    # -- planning -------------------------------------------------------------------------
    def _plan(self, path: str) -> FieldPlan:
        norm = normalise_path(path)
        allowed = np.zeros(len(self.rules), dtype=bool)
        named: set[int] = set()
        checks: list[int] = []
        for i, rule in enumerate(self.rules):
            matches_name = rule.field_matches(norm)
            if matches_name:
                named.add(i)
            if rule.field_excluded(norm):
                continue
            if rule.is_value_rule:
                allowed[i] = matches_name or not rule.requires_field
            elif matches_name and rule.check:
                checks.append(i)
        return FieldPlan(allowed, frozenset(named), checks)

    # -- scanning -------------------------------------------------------------------------
    def _raw_hits(self, text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """(rule index, value index) of every Vectorscan match end in a string column."""
        n = len(text)
        if self._db is None or n == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        filled = pc.fill_null(text, "") if text.null_count else text
        joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, n], pa.int32()), filled), "\n")
        j_off, j_data = string_buffers(joined)
        data = j_data[j_off[0] : j_off[1]].tobytes() + b"\n"
        offsets, _ = string_buffers(filled)
        starts = offsets[:-1] - offsets[0] + np.arange(n, dtype=np.int64)
        ids: list[int] = []
        ends: list[int] = []
        add_id, add_end = ids.append, ends.append

        def on_match(rule_id: int, _from: int, to: int, _flags: int, _ctx: object) -> None:
            add_id(rule_id)
            add_end(to)

        self._db.scan(data, match_event_handler=on_match, scratch=self._scratch)
        if not ids:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        rule_idx = np.asarray(ids, dtype=np.int64)
        # The match ends one past the delimiter it consumed; the delimiter's position is inside the value
        # or is the separator right after it, both of which belong to that value.
        value_idx = np.searchsorted(starts, np.asarray(ends, dtype=np.int64) - 2, side="right") - 1
        return rule_idx, np.clip(value_idx, 0, n - 1)

    def _validate(self, rule_id: int, text: str, value: str, start: int) -> bool:
        rule = self.rules[rule_id]
        if rule.validator is None:
            return True
        # Context-sensitive validators see the surroundings, so the cache key must include them.
        key = (rule_id, text) if rule.validator != "ipv4" else (rule_id, value[max(0, start - 16) : start + len(text) + 12])
        hit = self._validate_cache.get(key)
        if hit is None:
            hit = VALIDATORS[rule.validator](text, value, start)
            if len(self._validate_cache) > _CACHE_LIMIT:
                self._validate_cache.clear()
            self._validate_cache[key] = hit
        return hit

    def resolve_value(self, value: str, rule_ids: Sequence[int]) -> list[tuple[int, int, int]]:
        """Validated, non-overlapping (rule, start, end) spans in one value; most specific rule wins."""
        spans: list[tuple[int, int, int, int]] = []
        for rid in rule_ids:
            rule = self.rules[rid]
            assert rule.value_re is not None
            for m in rule.value_re.finditer(value):
                if self._validate(rid, m.group(0), value, m.start()):
                    spans.append((-rule.priority, -(m.end() - m.start()), m.start(), rid))
        spans.sort()
        kept: list[tuple[int, int, int]] = []
        for _neg_pri, neg_len, start, rid in spans:
            end = start - neg_len
            if all(end <= s or start >= e for _, s, e in kept):
                kept.append((rid, start, end))
        kept.sort(key=lambda k: k[1])
        return kept

    def scan_column(self, values: pa.Array, plan: FieldPlan, want_spans: bool = False) -> ColumnHits:
        hits = ColumnHits()
        text = as_text(values) if self._db is not None else values
        rule_idx, value_idx = self._raw_hits(text) if self._db is not None else (np.zeros(0, np.int64),) * 2
        if rule_idx.size:
            keep = plan.allowed_value_rules[rule_idx]
            rule_idx, value_idx = rule_idx[keep], value_idx[keep]
        if rule_idx.size:
            nrules = len(self.rules)
            pairs = np.unique(value_idx * nrules + rule_idx)
            value_idx, rule_idx = pairs // nrules, pairs % nrules
            # Values hit by one rule that needs no validator are final; the rest go through Python.
            per_value = np.bincount(value_idx, minlength=len(values))
            needs = self._needs_python[rule_idx] | (per_value[value_idx] > 1)
            if want_spans:
                needs[:] = True
            final_rules = [rule_idx[~needs]]
            final_values = [value_idx[~needs]]
            if needs.any():
                cand_values, cand_rules = value_idx[needs], rule_idx[needs]
                uniq, inverse = np.unique(cand_values, return_inverse=True)
                strings = text.take(pa.array(uniq)).to_pylist()
                groups: dict[int, list[int]] = {}
                for pos, rid in zip(inverse.tolist(), cand_rules.tolist(), strict=True):
                    groups.setdefault(pos, []).append(rid)
                out_r: list[int] = []
                out_v: list[int] = []
                for pos, rids in groups.items():
                    value = strings[pos]
                    if value is None:
                        continue
                    vi = int(uniq[pos])
                    seen: set[int] = set()
                    for rid, s, e in self.resolve_value(value, rids):
                        if rid not in seen:
                            seen.add(rid)
                            out_r.append(rid)
                            out_v.append(vi)
                            hits.spans[(rid, vi)] = (s, e)
                final_rules.append(np.asarray(out_r, dtype=np.int64))
                final_values.append(np.asarray(out_v, dtype=np.int64))
            all_r = np.concatenate(final_rules)
            all_v = np.concatenate(final_values)
            order = np.argsort(all_r, kind="stable")
            all_r, all_v = all_r[order], all_v[order]
            bounds = np.flatnonzero(np.diff(all_r)) + 1
            for r_chunk, v_chunk in zip(np.split(all_r, bounds), np.split(all_v, bounds), strict=True):
                if r_chunk.size:
                    hits.by_rule[int(r_chunk[0])] = np.sort(v_chunk)
        if plan.check_rules:
            for rid in plan.check_rules:
                rule = self.rules[rid]
                assert rule.check is not None
                mask = run_check(rule.check, values, rule.check_min, rule.check_max)
                # The most specific rule wins: a value already claimed by a value rule of the same
                # category (an Atza| token under access_token) is not counted again by the generic rule.
                for other, idx in hits.by_rule.items():
                    if self.rules[other].category == rule.category and idx.size:
                        mask[idx] = False
                idx = np.flatnonzero(mask)
                if idx.size:
                    hits.by_rule[rid] = idx
        return hits
