"""Scan orchestration: targets -> datasets -> partitions -> batches -> engine -> exact totals."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from spillguard.detect.engine import RuleSet
from spillguard.detect.fingerprint import fingerprint, fingerprint_key
from spillguard.detect.flatten import Leaf, flatten_table, normalise_path
from spillguard.detect.hashing import Hasher, as_text, unique_sorted
from spillguard.detect.masking import mask_identifiers, mask_value
from spillguard.detect.state import (
    MAX_FINGERPRINTS,
    MAX_SAMPLES,
    DatasetState,
    FindingState,
    KeySet,
    RowSet,
    at_least,
    confidence_for,
)
from spillguard.errors import UserError
from spillguard.model import CATEGORIES, CategorySummary, Finding, ScanError, ScanResult
from spillguard.rules import select_rules
from spillguard.sources import Partition, mask_url, open_target

# Field names that identify a person, most specific first.
SUBJECT_FIELDS = (
    "user_id", "userid", "account_id", "customer_id", "subscriber_id", "member_id", "person_id",
    "patient_id", "client_id", "owner_id", "uid", "user.id", "customer.id", "account.id",
    "email", "e_mail", "email_address", "user.email", "username", "login",
)
SECRET_CATEGORIES = ("secret", "password")
SUMMARY_CONFIDENCE = "medium"
_NO_HASHES = np.zeros(0, np.uint64)


def subject_namespace(state: DatasetState) -> str:
    """What a dataset's subject ids are: hashes from `user_id` and from `email` never coincide."""
    return normalise_path(state.subject_field or "").rsplit(".", 1)[-1]


def union_by_namespace(sets: Iterable[tuple[str, KeySet]]) -> int:
    """Distinct subjects: exact within each kind of id, added up across kinds (see the warning)."""
    groups: dict[str, list[KeySet]] = {}
    for namespace, keys in sets:
        groups.setdefault(namespace, []).append(keys)
    return sum(KeySet.union_count(g) for g in groups.values())


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True)
class ScanOptions:
    rule_files: Sequence[str | Path] = ()
    only: Sequence[str] | None = None
    exclude: Sequence[str] | None = None
    subject_field: str | None = None
    show_samples: bool = False
    subjects_out: bool = False
    seed: int = field(default_factory=lambda: secrets.randbits(63))
    source_options: dict[str, Any] = field(default_factory=dict)
    workers: int | None = None  # worker processes over partitions; None = one per core
    state: str | Path | None = None  # checkpoint file (SQLite) for --resume
    resume: bool = False
    target_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per target URL (from --config)


class DatasetScanner:
    """Feeds one dataset's batches through the engine into a DatasetState."""

    def __init__(self, ruleset: RuleSet, hasher: Hasher, options: ScanOptions, key: bytes | None) -> None:
        self.ruleset = ruleset
        self.hasher = hasher
        self.options = options
        self.key = key

    def new_state(self, target: str, dataset: str, subject_field: str | None) -> DatasetState:
        return DatasetState(target=target, dataset=dataset, subject_field=subject_field)

    def _pick_subject(self, leaves: list[Leaf], state: DatasetState) -> Leaf | None:
        top = {leaf.path: leaf for leaf in leaves if leaf.rows is None}
        if state.subject_field:
            return top.get(state.subject_field)
        by_norm = {normalise_path(p): leaf for p, leaf in top.items()}
        for name in SUBJECT_FIELDS:
            if name in by_norm:
                state.subject_field = by_norm[name].path
                return by_norm[name]
        return None

    def scan_partition(self, reader: Any, partition: Partition, state: DatasetState, on_malformed: Callable[[str, int | None, str], None]) -> DatasetState:
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
        subject_leaf = self._pick_subject(leaves, state)
        subj: np.ndarray | None = None
        if state.subject_field is not None:
            subj = self.hasher.hash_strings(subject_leaf.values) if subject_leaf is not None else np.zeros(n, np.uint64)
            known = subj[subj != 0]
            if known.size:
                state.add_subjects(known)
        email_leaf = None
        any_rows: list[np.ndarray] = []
        for leaf in leaves:
            values = leaf.values
            nonnull = len(values) - values.null_count
            state.nonnull[leaf.path] = state.nonnull.get(leaf.path, 0) + nonnull
            if nonnull == 0:
                continue
            plan = self.ruleset.plan(leaf.path)
            if not plan.allowed_value_rules.any() and not plan.check_rules:
                continue
            hits = self.ruleset.scan_column(values, plan)
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
        if self.options.subjects_out and subject_leaf is not None and any_rows:
            self._remember_subjects(state, subj, subject_leaf, email_leaf, unique_sorted(np.concatenate(any_rows)))

    def _keep_examples(self, fs: FindingState, rule: Any, rid: int, idx: np.ndarray, values: pa.Array, spans: dict) -> None:
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

    def _remember_subjects(self, state: DatasetState, subj: np.ndarray | None, subject_leaf: Leaf, email_leaf: Leaf | None, rows: np.ndarray) -> None:
        assert subj is not None
        hashes = subj[rows]
        new = np.array([h not in state.subject_display and h != 0 for h in hashes.tolist()], dtype=bool)
        if not new.any():
            return
        rows, hashes = rows[new], hashes[new]
        ids = as_text(subject_leaf.values.take(pa.array(rows))).to_pylist()
        emails = as_text(email_leaf.values.take(pa.array(rows))).to_pylist() if email_leaf is not None else [None] * len(ids)
        for h, sid, em in zip(hashes.tolist(), ids, emails, strict=True):
            state.subject_display[h] = (sid, em)


def finalize(
    states: Iterable[DatasetState], ruleset: RuleSet
) -> tuple[list[Finding], dict[str, CategorySummary], list[dict[str, Any]], list[dict[str, Any]], dict[str, int | None]]:
    rules = {r.id: r for r in ruleset.rules}
    findings: list[Finding] = []
    per_cat: dict[str, dict[str, Any]] = {}
    datasets: list[dict[str, Any]] = []
    secrets_by_rule: dict[str, dict[str, Any]] = {}
    for st in states:
        datasets.append(
            {
                "target": st.target,
                "dataset": mask_identifiers(st.dataset),
                "records_scanned": st.records,
                "subject_field": st.subject_field,
                "subjects_scanned": st.subjects_scanned(),
                "malformed_records": st.malformed,
            }
        )
        for (path, rule_id), fs in sorted(st.findings.items()):
            rule = rules[rule_id]
            nonnull = max(st.nonnull.get(path, 0), 1)
            share = fs.values_matched / nonnull
            conf = confidence_for(
                specific=rule.specific, value_rule=rule.is_value_rule, named=fs.named, requires_field=rule.requires_field, share=share
            )
            subjects = len(fs.subjects) if st.subject_field else None
            distinct = len(fs.distinct) if rule.category in SECRET_CATEGORIES else None
            findings.append(
                Finding(
                    dataset=mask_identifiers(st.dataset), field=mask_identifiers(path), category=rule.category, rule=rule.id, confidence=conf,  # type: ignore[arg-type]
                    records_scanned=st.records, records_matched=fs.records_matched, values_matched=fs.values_matched,
                    subjects_matched=subjects, samples=list(fs.samples), target=st.target, values_distinct=distinct,
                )
            )
            if rule.category in SECRET_CATEGORIES:
                entry = secrets_by_rule.setdefault(rule.id, {"rule": rule.id, "category": rule.category, "chunks": [], "fingerprints": []})
                entry["chunks"].append(fs.distinct)
                for f in fs.fingerprints:
                    if f not in entry["fingerprints"] and len(entry["fingerprints"]) < MAX_FINGERPRINTS:
                        entry["fingerprints"].append(f)
            if at_least(conf, SUMMARY_CONFIDENCE):
                cat = per_cat.setdefault(rule.category, {"subjects": [], "rows": [], "values": 0, "has_subjects": False})
                cat["rows"].append(fs.rows)
                cat["values"] += fs.values_matched
                if st.subject_field:
                    cat["has_subjects"] = True
                    cat["subjects"].append((subject_namespace(st), fs.subjects))
    categories = {
        c: CategorySummary(
            subjects=union_by_namespace(per_cat[c]["subjects"]) if per_cat[c]["has_subjects"] else None,
            records=RowSet.union_count(per_cat[c]["rows"]),
            values=per_cat[c]["values"],
        )
        for c in CATEGORIES
        if c in per_cat
    }
    secrets_out = [
        {"rule": e["rule"], "category": e["category"], "distinct": KeySet.union_count(e["chunks"]), "fingerprints": e["fingerprints"]}
        for e in secrets_by_rule.values()
    ]
    # People and records with any personal data or secret, each counted once however many categories they have.
    any_subjects = [ks for c in per_cat.values() for ks in c["subjects"]]
    affected = {
        "subjects": union_by_namespace(any_subjects) if any(c["has_subjects"] for c in per_cat.values()) else None,
        "records": RowSet.union_count(r for c in per_cat.values() for r in c["rows"]),
    }
    return findings, categories, datasets, secrets_out, affected


@dataclass(slots=True)
class ScanRun:
    """Everything a scan produced, before it is turned into the JSON result."""

    started_at: str
    targets: list[str]
    states: list[DatasetState] = field(default_factory=list)
    errors: list[ScanError] = field(default_factory=list)


def build_ruleset(options: ScanOptions) -> RuleSet:
    return RuleSet(select_rules(options.rule_files, options.only, options.exclude))


def scan_target(
    target: str,
    scanner: DatasetScanner,
    run: ScanRun,
    *,
    progress: Callable[[int], None] | None = None,
    on_dataset: Callable[[str, int | None], None] | None = None,
    executor: Any = None,
    checkpoint: Any = None,
) -> None:
    """Discover the target's datasets, then scan every partition not already checkpointed, in worker
    processes when an executor is given, merging each partition's state into its dataset's."""
    from spillguard.parallel import PartitionJob, PartitionResult, scan_partition, source_options_for
    from spillguard.sources.retry import (
        GaveUp,
        NotScanned,
        TransientError,
        fresh_breaker,
        not_tried,
        partition_estimate,
        retried_warning,
        with_retries,
    )

    shown = mask_url(target)
    options = scanner.options
    breaker = fresh_breaker(target, shown, source_options_for(options, target).get("retry_budget"))
    source = open_target(
        target, subject_field=options.subject_field, progress=progress if executor is None else None, **source_options_for(options, target)
    )
    missing = NotScanned()  # partitions not scanned, reported once per dataset when the target is done
    try:
        plans: list[tuple[Any, DatasetState, list[Partition]]] = []
        for reader in source.datasets():
            state = scanner.new_state(shown, reader.name, getattr(reader, "subject_field", None))
            if on_dataset is not None:
                on_dataset(reader.name, reader.size() if hasattr(reader, "size") else None)
            try:
                # Planning may query the store (key ranges, _id bounds): it rides out an outage as reads do.
                parts = with_retries(reader.partitions, breaker, getattr(reader, "reset", lambda: None))
            except (UserError, TransientError, GaveUp) as exc:
                missing.add(reader.name, str(exc), partition_estimate(reader, Partition(reader.name, {}), 1))
                parts = []
            plans.append((reader, state, parts))
        for message in source.warnings() if hasattr(source, "warnings") else ():
            run.errors.append(ScanError(target=shown, message=message, kind="warning"))
        finished = checkpoint.finished(shown) if checkpoint is not None else {}
        counts = {reader.name: len(parts) for reader, _state, parts in plans}
        retried: list[PartitionResult] = []  # scanned in the end, after the store failed: worth a warning

        def absorb(state: DatasetState, res: PartitionResult, reader: Any, partition: Partition) -> None:
            if res.retries and res.state is not None:
                retried.append(res)
            if res.state is None:
                missing.add(res.dataset, res.error or "failed", partition_estimate(reader, partition, counts.get(res.dataset, 1)))
                return
            if checkpoint is not None:
                checkpoint.save(shown, res.key, res.state, res.malformed)
            _merge(state, res.state, res.malformed)
            if progress is not None and executor is not None:
                progress(res.size or res.state.records)

        def _merge(state: DatasetState, part: DatasetState, malformed: list) -> None:
            state.merge(part)
            for dataset, line, reason in malformed:
                if sum(1 for e in run.errors if e.kind == "malformed") < 1000:
                    run.errors.append(ScanError(target=shown, dataset=dataset, line=line, message=reason, kind="malformed"))

        pending: list[tuple[Any, DatasetState, Partition]] = []
        for reader, state, parts in plans:
            for partition in parts:
                done = finished.get(partition.key)
                if done is not None:
                    _merge(state, *done)
                else:
                    pending.append((reader, state, partition))
        if breaker.open_reason is not None and executor is not None:  # the target died while being planned
            for reader, _state, partition in pending:
                estimate = partition_estimate(reader, partition, counts.get(partition.dataset, 1))
                missing.add(partition.dataset, not_tried(breaker.open_reason), estimate)
            pending = []
        if executor is None or len(pending) <= 1:
            # Once the target's breaker opens, the partitions left fail at once as "not tried".
            for reader, state, partition in pending:
                res = scan_partition(scanner, reader, partition, shown, getattr(reader, "subject_field", None), breaker)
                absorb(state, res, reader, partition)
        else:
            from concurrent.futures import FIRST_COMPLETED, wait

            futures: dict[Any, tuple[Any, DatasetState, Partition]] = {}
            for reader, state, partition in pending:
                job = PartitionJob(
                    target, partition.dataset, partition.spec, getattr(reader, "subject_field", None), options, scanner.key
                )
                futures[executor.submit(_run_job, job)] = (reader, state, partition)
            not_done = set(futures)
            try:
                while not_done:
                    done_now, not_done = wait(not_done, return_when=FIRST_COMPLETED)
                    for fut in done_now:
                        reader, state, partition = futures[fut]
                        res = fut.result()
                        absorb(state, res, reader, partition)
                        if res.target_down:
                            # A worker gave the target up: hand out none of its partitions still queued.
                            for other in [f for f in not_done if f.cancel()]:
                                not_done.discard(other)
                                reader, state, partition = futures[other]
                                estimate = partition_estimate(reader, partition, counts.get(partition.dataset, 1))
                                missing.add(partition.dataset, not_tried(res.error or "target given up"), estimate)
            except BaseException:
                for fut in not_done:
                    fut.cancel()
                raise
        for dataset, message in missing.messages(counts):
            run.errors.append(ScanError(target=shown, dataset=dataset, message=message))
        if retried:
            message = retried_warning(len(retried), sum(r.retries for r in retried), retried[0].retry_reason or "")
            run.errors.append(ScanError(target=shown, message=message, kind="warning"))
        for reader, state, _parts in plans:
            if options.subject_field and state.subject_field and state.records and not state.subjects:
                run.errors.append(
                    ScanError(target=shown, dataset=reader.name, message=f"subject field {options.subject_field!r} not found; subjects not counted", kind="warning")
                )
                state.subject_field = None
            run.states.append(state)
    finally:
        source.close()


def _run_job(job: Any) -> Any:
    from spillguard.parallel import run_job

    return run_job(job)


def result_from_run(run: ScanRun, ruleset: RuleSet) -> ScanResult:
    findings, categories, datasets, secrets_out, affected = finalize(run.states, ruleset)
    subjects_any = any(st.subject_field for st in run.states)
    all_subjects = [(subject_namespace(st), st.subjects) for st in run.states if st.subject_field]
    namespaces = sorted({ns for ns, _ in all_subjects})
    if len(namespaces) > 1:
        run.errors.append(
            ScanError(
                target=", ".join(run.targets), kind="warning",
                message=f"datasets identify people by different fields ({', '.join(namespaces)}): totals add them up and "
                "may count one person more than once; name one field with --subject-field or per dataset in spillguard.toml",
            )
        )
    for e in run.errors:
        if e.dataset:
            e.dataset = mask_identifiers(e.dataset)
    return ScanResult(
        started_at=run.started_at,
        finished_at=_now(),
        targets=run.targets,
        findings=findings,
        records_scanned=sum(st.records for st in run.states),
        subjects_scanned=union_by_namespace(all_subjects) if subjects_any else None,
        categories=categories,
        errors=run.errors,
        datasets=datasets,
        malformed_records=sum(st.malformed for st in run.states),
        subjects_affected=affected["subjects"],
        subjects_exact=len(namespaces) <= 1,
        records_affected=affected["records"],
        secrets=secrets_out,
    )


def affected_subjects(run: ScanRun, result: ScanResult) -> list[dict[str, Any]]:
    """Per affected person: subject id, categories exposed, contact e-mail where the record holds one."""
    qualifying = {(f.target, f.dataset, f.field, f.rule) for f in result.findings if at_least(f.confidence, SUMMARY_CONFIDENCE)}
    people: dict[int, dict[str, Any]] = {}
    for st in run.states:
        if not st.subject_field:
            continue
        for (path, rule_id), fs in st.findings.items():
            if (st.target, mask_identifiers(st.dataset), mask_identifiers(path), rule_id) not in qualifying or not fs.subjects:
                continue
            for h in fs.subjects.array().tolist():
                sid, email = st.subject_display.get(h, (None, None))
                entry = people.setdefault(h, {"subject": sid, "email": email, "categories": set(), "datasets": set()})
                entry["categories"].add(fs.category)
                entry["datasets"].add(st.dataset)
                if entry["email"] is None and email:
                    entry["email"] = email
    out = []
    for entry in people.values():
        out.append(
            {
                "subject": entry["subject"],
                "email": entry["email"],
                "categories": [c for c in CATEGORIES if c in entry["categories"]],
                "datasets": sorted(entry["datasets"]),
            }
        )
    out.sort(key=lambda e: str(e["subject"]))
    return out


def run_scan(targets: Sequence[str], options: ScanOptions, progress: Callable[[int], None] | None = None, on_dataset: Callable[[str, int | None], None] | None = None) -> tuple[ScanResult, ScanRun]:
    if not targets:
        raise UserError("no target given; pass a file, a folder or a store URL")
    from spillguard.parallel import Checkpoint, default_workers, make_executor

    checkpoint = None
    if options.resume and not options.state:
        raise UserError("--resume needs --state FILE: the state file of the scan to continue")
    if options.state:
        if options.subjects_out:
            raise UserError("--subjects-out cannot be combined with --state: the state file would have to keep personal data")
        checkpoint = Checkpoint(options.state, options, list(targets), resume=options.resume)
        options.seed = checkpoint.seed  # a resumed scan hashes subjects exactly as the first run did
    ruleset = build_ruleset(options)
    key = fingerprint_key()
    scanner = DatasetScanner(ruleset, Hasher(options.seed), options, key)
    run = ScanRun(started_at=_now(), targets=[mask_url(t) for t in targets])
    if options.source_options.get("sample"):
        for t in targets:
            if "://" not in t:
                run.errors.append(ScanError(target=t, kind="warning", message="--sample applies to stores; files are always read in full"))
    workers = options.workers or default_workers()
    executor = make_executor(workers) if workers > 1 else None
    try:
        for target in targets:
            scan_target(target, scanner, run, progress=progress, on_dataset=on_dataset, executor=executor, checkpoint=checkpoint)
    except BaseException:
        if executor is not None:
            # Ctrl-C or a fatal error: do not wait for running partitions; finished ones are checkpointed.
            executor.shutdown(wait=False, cancel_futures=True)
            executor = None
        raise
    finally:
        if executor is not None:
            executor.shutdown(wait=True)
        if checkpoint is not None:
            checkpoint.close()
    return result_from_run(run, ruleset), run
