"""Detection and accumulation: one dataset's Arrow tables -> rule hits per leaf -> exact, mergeable counts.

`detect_table` finds what every rule hits in a table and counts nothing, so other pillars (a safe copy)
can reuse it; `DatasetScanner` adds those hits up into a `DatasetState`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from spillguard.detect.engine import ColumnHits, FieldPlan, RuleSet
from spillguard.detect.fingerprint import fingerprint
from spillguard.detect.flatten import Leaf, flatten_table, normalise_path
from spillguard.detect.hashing import Hasher, as_text, unique_sorted
from spillguard.detect.masking import mask_value
from spillguard.detect.state import MAX_FINGERPRINTS, MAX_SAMPLES, DatasetState, FindingState
from spillguard.rules import Rule, select_rules
from spillguard.scan.options import ScanOptions
from spillguard.sources.base import DatasetReader, MalformedSink, Partition

# Field names that identify a person, most specific first.
SUBJECT_FIELDS = (
    "user_id", "userid", "account_id", "customer_id", "subscriber_id", "member_id", "person_id",
    "patient_id", "client_id", "owner_id", "uid", "user.id", "customer.id", "account.id",
    "email", "e_mail", "email_address", "user.email", "username", "login",
)
SECRET_CATEGORIES = ("secret", "password")
_NO_HASHES = np.zeros(0, np.uint64)


def build_ruleset(options: ScanOptions) -> RuleSet:
    return RuleSet(select_rules(options.rule_files, options.only, options.exclude))


@dataclass(slots=True)
class LeafHits:
    """What the rules found in one leaf (a column or an array's elements) of one table."""

    leaf: Leaf
    plan: FieldPlan
    hits: ColumnHits  # value indices (into leaf.values) per rule index, and spans where computed


def detect_table(ruleset: RuleSet, leaves: list[Leaf], *, want_spans: bool = False) -> Iterator[LeafHits]:
    """Run every applicable rule over every non-empty leaf of a flattened table; counts nothing."""
    for leaf in leaves:
        if len(leaf.values) == leaf.values.null_count:
            continue
        plan = ruleset.plan(leaf.path)
        if not plan.allowed_value_rules.any() and not plan.check_rules:
            continue
        hits = ruleset.scan_column(leaf.values, plan, want_spans=want_spans)
        if hits.by_rule:
            yield LeafHits(leaf, plan, hits)


def pick_subject(leaves: list[Leaf], state: DatasetState) -> Leaf | None:
    """The leaf naming the person a record is about: the configured field, else the first of SUBJECT_FIELDS
    (the choice is kept in the state so every later batch of the dataset uses the same field)."""
    top = {leaf.path: leaf for leaf in leaves if leaf.rows is None}
    if state.subject_field:
        return top.get(state.subject_field)
    by_norm = {normalise_path(p): leaf for p, leaf in top.items()}
    for name in SUBJECT_FIELDS:
        if name in by_norm:
            state.subject_field = by_norm[name].path
            return by_norm[name]
    return None


class DatasetScanner:
    """Feeds one dataset's batches through the engine into a DatasetState."""

    def __init__(self, ruleset: RuleSet, hasher: Hasher, options: ScanOptions, key: bytes | None) -> None:
        self.ruleset = ruleset
        self.hasher = hasher
        self.options = options
        self.key = key

    def new_state(self, target: str, dataset: str, subject_field: str | None) -> DatasetState:
        return DatasetState(target=target, dataset=dataset, subject_field=subject_field)

    def scan_partition(self, reader: DatasetReader, partition: Partition, state: DatasetState, on_malformed: MalformedSink) -> DatasetState:
        # Record positions are counted per partition of a target's dataset: the bitmap key names both.
        part_id = f"{state.target}\x1f{partition.key}"
        offset = 0
        for table in reader.read(partition, on_malformed):
            self.process(table, state, part_id, offset)
            offset += table.num_rows
        return state

    def process(self, table: pa.Table, state: DatasetState, part_id: str = "", offset: int = 0) -> None:
        n = table.num_rows
        if n == 0:
            return
        leaves = flatten_table(table)
        state.records += n
        subject_leaf = pick_subject(leaves, state)
        subj: np.ndarray | None = None
        if state.subject_field is not None:
            subj = self.hasher.hash_strings(subject_leaf.values) if subject_leaf is not None else np.zeros(n, np.uint64)
            known = subj[subj != 0]
            if known.size:
                state.add_subjects(known)
        for leaf in leaves:
            state.nonnull[leaf.path] = state.nonnull.get(leaf.path, 0) + len(leaf.values) - leaf.values.null_count
        email_leaf = None
        any_rows: list[np.ndarray] = []
        for found in detect_table(self.ruleset, leaves):
            leaf, plan, hits = found.leaf, found.plan, found.hits
            values = leaf.values
            for rid, idx in hits.by_rule.items():
                rule = self.ruleset.rules[rid]
                rows = idx if leaf.rows is None else leaf.rows[idx]
                # Indices of a top-level column are already unique and sorted; array elements are not.
                uniq_rows = rows if leaf.rows is None else unique_sorted(rows)
                key = (leaf.path, rule.id)
                fs = state.findings.get(key)
                if fs is None:
                    fs = state.findings[key] = FindingState(leaf.path, rule.id, rule.category, rid in plan.named_rules)
                subjects = None
                if subj is not None:
                    subjects = subj[uniq_rows]
                    subjects = subjects[subjects != 0]
                secret = rule.category in SECRET_CATEGORIES
                # Distinct values matter for credentials (how many tokens to revoke); elsewhere people count.
                if secret:  # every value matched (a token column): no copy
                    distinct = self.hasher.hash_strings(values if idx.size == len(values) else values.take(pa.array(idx)))
                else:
                    distinct = _NO_HASHES
                fs.add(int(idx.size), part_id, uniq_rows.astype(np.int64) + offset, subjects, distinct)
                if self.options.show_samples or (secret and self.key is not None):
                    self._keep_examples(fs, rule, rid, idx, values, hits.spans)
                if rule.category == "email" and leaf.rows is None and email_leaf is None and rid in plan.named_rules:
                    email_leaf = leaf
                if self.options.subjects_out:
                    any_rows.append(uniq_rows)
        if self.options.subjects_out and subject_leaf is not None and subj is not None and any_rows:
            self._remember_subjects(state, subj, subject_leaf, email_leaf, unique_sorted(np.concatenate(any_rows)))

    def _keep_examples(
        self, fs: FindingState, rule: Rule, rid: int, idx: np.ndarray, values: pa.Array, spans: dict[tuple[int, int], tuple[int, int]]
    ) -> None:
        want_samples = self.options.show_samples and len(fs.samples) < MAX_SAMPLES
        want_prints = rule.category in SECRET_CATEGORIES and self.key is not None and len(fs.fingerprints) < MAX_FINGERPRINTS
        if not (want_samples or want_prints):
            return
        limit = MAX_FINGERPRINTS if want_prints else MAX_SAMPLES
        texts = as_text(values.take(pa.array(idx[: limit * 4]))).to_pylist()
        for vi, value in zip(idx[: len(texts)].tolist(), texts, strict=False):
            if value is None:
                continue
            span = spans.get((rid, vi))
            if span is None and rule.value_re is not None:
                m = rule.value_re.search(value)
                span = (m.start(), m.end()) if m else None
            text = value[span[0] : span[1]] if span else value
            if want_samples and len(fs.samples) < MAX_SAMPLES:
                masked = mask_value(rule.category, text)
                if masked not in fs.samples:
                    fs.samples.append(masked)
            if want_prints and self.key is not None and len(fs.fingerprints) < MAX_FINGERPRINTS:
                fp = fingerprint(self.key, text)
                if fp not in fs.fingerprints:
                    fs.fingerprints.append(fp)

    def _remember_subjects(
        self, state: DatasetState, subj: np.ndarray, subject_leaf: Leaf, email_leaf: Leaf | None, rows: np.ndarray
    ) -> None:
        hashes = subj[rows]
        new = np.array([h not in state.subject_display and h != 0 for h in hashes.tolist()], dtype=bool)
        if not new.any():
            return
        rows, hashes = rows[new], hashes[new]
        ids = as_text(subject_leaf.values.take(pa.array(rows))).to_pylist()
        emails = as_text(email_leaf.values.take(pa.array(rows))).to_pylist() if email_leaf is not None else [None] * len(ids)
        for h, sid, em in zip(hashes.tolist(), ids, emails, strict=True):
            state.subject_display[h] = (sid, em)
