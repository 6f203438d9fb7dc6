"""Detection and accumulation: one dataset's Arrow tables -> rule hits per leaf -> exact, mergeable counts.

`detect_table` finds what every rule hits in a table and counts nothing, so other pillars (a safe copy)
can reuse it; `DatasetScanner` adds those hits up into a `DatasetState`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from spillguard.categories import SECRET_CATEGORIES
from spillguard.detect.arrays import as_text, indices, take, unique_sorted
from spillguard.detect.engine import ColumnHits, FieldPlan, RuleSet
from spillguard.detect.flatten import Leaf, flatten_table, normalise_path
from spillguard.detect.masking import mask_value
from spillguard.detect.state import MAX_SAMPLES, DatasetState, FindingState
from spillguard.keys import MAX_FINGERPRINTS, Hasher, fingerprint
from spillguard.leaked import SecretsOut
from spillguard.rules import Rule, select_rules
from spillguard.scan.options import ScanOptions
from spillguard.sources.base import DatasetReader, MalformedSink, Partition

# Field names that identify a person, most specific first.
SUBJECT_FIELDS = (
    "user_id", "userid", "account_id", "customer_id", "subscriber_id", "member_id", "person_id",
    "patient_id", "client_id", "owner_id", "uid", "user.id", "customer.id", "account.id",
    "email", "e_mail", "email_address", "user.email", "username", "login",
)
_NO_HASHES = np.zeros(0, np.uint64)


def _named_secrets(rule: Rule, rid: int, idx: np.ndarray, values: pa.Array, spans: dict[tuple[int, int], tuple[int, int]]) -> pa.Array:
    """The `secret` group of each matched value. Such rules always take the engine's exact path, which kept the
    spans: slicing them is no extra pass over the column."""
    texts = as_text(take(values, idx)).to_pylist()
    out: list[str | None] = []
    for vi, text in zip(idx.tolist(), texts, strict=True):
        span = spans.get((rid, vi))
        if span is None and text is not None and rule.value_re is not None:
            m = rule.value_re.search(text)
            span = rule.span(m) if m else None
        out.append(text[span[0] : span[1]] if text is not None and span is not None else text)
    return pa.array(out, pa.string())


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
        if not plan.allowed_value_rules.any() and not plan.check_rules and not plan.text_rules:
            continue
        hits = ruleset.scan_column(leaf.values, plan, want_spans=want_spans)
        if hits.by_rule or hits.unchecked.size:
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


@dataclass(slots=True)
class Segment:
    """Rows [start, start + rows) of a table, belonging to one partition's state (`offset`: position of
    the first of them in the partition); plus what processing learns about them."""

    state: DatasetState
    part_id: str
    offset: int
    start: int
    rows: int
    subject_leaf: Leaf | None = None
    subj: np.ndarray | None = None  # subject hash per row of the segment (0: none)
    email_leaf: Leaf | None = None
    any_rows: list[np.ndarray] = field(default_factory=list)


class DatasetScanner:
    """Feeds one dataset's batches through the engine into a DatasetState."""

    def __init__(self, ruleset: RuleSet, hasher: Hasher, options: ScanOptions, key: bytes | None) -> None:
        self.ruleset = ruleset
        self.hasher = hasher
        self.options = options
        self.key = key
        self.secrets_out: SecretsOut | None = None
        if options.secrets_out and key is not None:
            self.secrets_out = SecretsOut(key, options.secrets_hmac_key_env)
        self.held: list[tuple[pa.Table, Segment]] | None = None  # tables kept for one pass (see hold())

    def new_state(self, target: str, dataset: str, subject_field: str | None) -> DatasetState:
        return DatasetState(target=target, dataset=dataset, subject_field=subject_field)

    def scan_partition(self, reader: DatasetReader, partition: Partition, state: DatasetState, on_malformed: MalformedSink) -> DatasetState:
        # Record positions are counted per partition of a target's dataset: the bitmap key names both.
        part_id = f"{state.target}\x1f{partition.key}"
        offset = 0
        for table in reader.read(partition, on_malformed):
            self.accept(table, state, part_id, offset)
            offset += table.num_rows
        self.ruleset.flush_spent()
        return state

    def accept(self, table: pa.Table, state: DatasetState, part_id: str, offset: int) -> None:
        """One table of a partition: processed at once, or kept while holding (see hold())."""
        if self.held is None:
            self.process(table, state, part_id, offset)
        else:
            self.held.append((table, Segment(state, part_id, offset, 0, table.num_rows)))

    def hold(self) -> None:
        """Keep the tables of the partitions scanned from now on, for one pass over all of them: many small
        files cost one engine pass instead of one each. Their states are complete after release()."""
        self.held = []

    def release(self) -> None:
        """Process what was held: tables of one schema concatenated, each file's rows counted as its own."""
        held, self.held = self.held or [], None
        by_schema: dict[pa.Schema, list[tuple[pa.Table, Segment]]] = {}
        for table, seg in held:
            if table.num_rows:
                by_schema.setdefault(table.schema, []).append((table, seg))
        for group in by_schema.values():
            start = 0
            for table, seg in group:
                seg.start = start
                start += table.num_rows
            tables = [table for table, _ in group]
            self.process_segments(tables[0] if len(tables) == 1 else pa.concat_tables(tables), [seg for _, seg in group])
        self.ruleset.flush_spent()

    def process(self, table: pa.Table, state: DatasetState, part_id: str = "", offset: int = 0) -> None:
        self.process_segments(table, [Segment(state, part_id, offset, 0, table.num_rows)])

    def process_segments(self, table: pa.Table, segments: list[Segment]) -> None:
        """Count a table whose consecutive row ranges belong to different partitions (many small files read
        as one table): detection runs once over all rows, the counts go to each range's own state, exactly
        as if each range had been processed alone."""
        n = table.num_rows
        segments = [seg for seg in segments if seg.rows]
        if n == 0 or not segments:
            return
        leaves = flatten_table(table)
        starts = np.array([seg.start for seg in segments], np.int64)
        hashed: dict[str, np.ndarray] = {}
        for seg in segments:
            state = seg.state
            state.records += seg.rows
            seg.subject_leaf = pick_subject(leaves, state)
            if state.subject_field is not None:
                if seg.subject_leaf is None:
                    seg.subj = np.zeros(seg.rows, np.uint64)
                else:
                    path = seg.subject_leaf.path
                    if path not in hashed:
                        hashed[path] = self.hasher.hash_strings(seg.subject_leaf.values)
                    seg.subj = hashed[path][seg.start : seg.start + seg.rows]
                known = seg.subj[seg.subj != 0]
                if known.size:
                    state.add_subjects(known)
        for leaf in leaves:
            if len(segments) == 1:
                counts = [len(leaf.values) - leaf.values.null_count]
            else:
                valid = np.asarray(leaf.values.is_valid(), dtype=bool)
                value_rows = np.flatnonzero(valid) if leaf.rows is None else leaf.rows[valid]
                counts = np.bincount(np.searchsorted(starts, value_rows, side="right") - 1, minlength=len(segments)).tolist()
            for seg, count in zip(segments, counts, strict=True):
                seg.state.nonnull[leaf.path] = seg.state.nonnull.get(leaf.path, 0) + int(count)
        for found in detect_table(self.ruleset, leaves):
            leaf, plan, hits = found.leaf, found.plan, found.hits
            values = leaf.values
            if hits.unchecked.size:  # said once per scan by the inventory (exit 3: names and addresses not checked)
                rows = hits.unchecked if leaf.rows is None else leaf.rows[hits.unchecked]
                per_segment = np.bincount(np.searchsorted(starts, rows, side="right") - 1, minlength=len(segments))
                for seg, count in zip(segments, per_segment.tolist(), strict=True):
                    if count:
                        seg.state.unchecked[leaf.path] = seg.state.unchecked.get(leaf.path, 0) + int(count)
            for rid, idx in hits.by_rule.items():
                rule = self.ruleset.rules[rid]
                rows = idx if leaf.rows is None else leaf.rows[idx]  # ascending: elements follow their records
                cuts = [0, len(rows)] if len(segments) == 1 else [*np.searchsorted(rows, starts).tolist(), len(rows)]
                for k, seg in enumerate(segments):
                    a, b = cuts[k], cuts[k + 1]
                    if a < b:
                        self._count(seg, leaf, plan, rule, rid, idx[a:b], rows[a:b] - seg.start, values, hits)
        for seg in segments:
            if self.options.subjects_out and seg.subject_leaf is not None and seg.subj is not None and seg.any_rows:
                self._remember_subjects(seg, unique_sorted(np.concatenate(seg.any_rows)))

    def _count(
        self, seg: Segment, leaf: Leaf, plan: FieldPlan, rule: Rule, rid: int, idx: np.ndarray, rows: np.ndarray,
        values: pa.Array, hits: ColumnHits,
    ) -> None:
        """Add one rule's hits on one leaf within one segment (`rows` relative to the segment)."""
        state = seg.state
        # Indices of a top-level column are already unique and sorted; array elements are not.
        uniq_rows = rows if leaf.rows is None else unique_sorted(rows)
        key = (leaf.path, rule.id)
        fs = state.findings.get(key)
        if fs is None:
            fs = state.findings[key] = FindingState(leaf.path, rule.id, rule.category, rid in plan.named_rules)
        subjects = None
        if seg.subj is not None:
            subjects = seg.subj[uniq_rows]
            subjects = subjects[subjects != 0]
        secret = rule.category in SECRET_CATEGORIES
        # Distinct values matter for credentials (how many tokens to revoke); elsewhere people count.
        if secret and rule.secret_group:  # `password = ...` in log lines: distinct credentials, not distinct lines
            distinct = self.hasher.hash_strings(_named_secrets(rule, rid, idx, values, hits.spans))
        elif secret:  # every value matched (a token column): no copy
            distinct = self.hasher.hash_strings(values if idx.size == len(values) else take(values, idx))
        else:
            distinct = _NO_HASHES
        fs.add(int(idx.size), seg.part_id, uniq_rows.astype(np.int64) + seg.offset, subjects, distinct)
        if secret and self.secrets_out is not None:  # every leaked credential's digests, for `respond`
            self.secrets_out.collect(state, rule, leaf, idx, seg.subject_leaf)
        if self.options.show_samples or (secret and self.key is not None):
            self._keep_examples(fs, rule, rid, idx, values, hits.spans)
        if rule.category == "email" and leaf.rows is None and seg.email_leaf is None and rid in plan.named_rules:
            seg.email_leaf = leaf
        if self.options.subjects_out:
            seg.any_rows.append(uniq_rows)

    def _keep_examples(
        self, fs: FindingState, rule: Rule, rid: int, idx: np.ndarray, values: pa.Array, spans: dict[tuple[int, int], tuple[int, int]]
    ) -> None:
        want_samples = self.options.show_samples and len(fs.samples) < MAX_SAMPLES
        want_prints = rule.category in SECRET_CATEGORIES and self.key is not None and len(fs.fingerprints) < MAX_FINGERPRINTS
        if not (want_samples or want_prints):
            return
        limit = MAX_FINGERPRINTS if want_prints else MAX_SAMPLES
        texts = as_text(take(values, idx[: limit * 4])).to_pylist()
        for vi, value in zip(idx[: len(texts)].tolist(), texts, strict=False):
            if value is None:
                continue
            span = spans.get((rid, vi))
            if span is None and rule.value_re is not None:
                m = rule.value_re.search(value)
                span = rule.span(m) if m else None
            text = value[span[0] : span[1]] if span else value
            if want_samples and len(fs.samples) < MAX_SAMPLES:
                masked = mask_value(rule.category, text)
                if masked not in fs.samples:
                    fs.samples.append(masked)
            if want_prints and self.key is not None and len(fs.fingerprints) < MAX_FINGERPRINTS:
                fp = fingerprint(self.key, text)
                if fp not in fs.fingerprints:
                    fs.fingerprints.append(fp)

    def _remember_subjects(self, seg: Segment, rows: np.ndarray) -> None:
        state, subj = seg.state, seg.subj
        assert subj is not None and seg.subject_leaf is not None
        hashes = subj[rows]
        new = np.array([h not in state.subject_display and h != 0 for h in hashes.tolist()], dtype=bool)
        if not new.any():
            return
        rows, hashes = rows[new], hashes[new]
        at = indices(rows + seg.start)  # the segment's rows within the whole table
        ids = as_text(seg.subject_leaf.values.take(at)).to_pylist()
        emails = as_text(seg.email_leaf.values.take(at)).to_pylist() if seg.email_leaf is not None else [None] * len(ids)
        for h, sid, em in zip(hashes.tolist(), ids, emails, strict=True):
            state.subject_display[h] = (sid, em)
