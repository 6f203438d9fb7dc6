"""From merged dataset states to the scan result: findings with confidence, per-category totals of people
and records (each counted once), distinct secrets, and the affected-people list."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from spillguard.categories import SECRET_CATEGORIES
from spillguard.detect.engine import RuleSet
from spillguard.detect.flatten import normalise_path
from spillguard.detect.freetext import EXTRA_HINT
from spillguard.detect.sketch import PRECISION, REGISTERS, RELATIVE_ERROR, HllSketch
from spillguard.detect.state import DatasetState, KeySet, RowSet, at_least, confidence_for
from spillguard.keys import MAX_FINGERPRINTS
from spillguard.model import CATEGORIES, CategorySummary, Finding, ScanError, ScanResult
from spillguard.scan.names import shown_name

SUMMARY_CONFIDENCE = "medium"


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True)
class ScanRun:
    """Everything a scan produced, before it is turned into the JSON result."""

    started_at: str
    targets: list[str]
    states: list[DatasetState] = field(default_factory=list)
    errors: list[ScanError] = field(default_factory=list)
    malformed_listed: int = 0  # malformed-record entries in errors (capped; all are counted)


def subject_namespace(state: DatasetState) -> str:
    """What a dataset's subject ids are: hashes from `user_id` and from `email` never coincide."""
    return normalise_path(shown_name(state.subject_field or "")).rsplit(".", 1)[-1]


def union_by_namespace(sets: Iterable[tuple[str, KeySet | HllSketch]]) -> int:
    """Distinct subjects: exact within each kind of id, added up across kinds (see the warning)."""
    groups: dict[str, list[KeySet | HllSketch]] = {}
    for namespace, keys in sets:
        groups.setdefault(namespace, []).append(keys)
    return sum(KeySet.union_count(g) for g in groups.values())


@dataclass(slots=True)
class _CategoryTotals:
    subjects: list[tuple[str, KeySet | HllSketch]] = field(default_factory=list)
    rows: list[RowSet] = field(default_factory=list)
    values: int = 0
    has_subjects: bool = False


@dataclass(slots=True)
class Inventory:
    findings: list[Finding]
    categories: dict[str, CategorySummary]
    datasets: list[dict[str, Any]]
    secrets: list[dict[str, Any]]
    subjects_affected: int | None
    records_affected: int


def finalize(states: Iterable[DatasetState], ruleset: RuleSet) -> Inventory:
    rules = {r.id: r for r in ruleset.rules}
    findings: list[Finding] = []
    per_cat: dict[str, _CategoryTotals] = {}
    datasets: list[dict[str, Any]] = []
    secrets_by_rule: dict[str, dict[str, Any]] = {}
    for st in states:
        dataset = shown_name(st.dataset)
        datasets.append(
            {
                "target": st.target,
                "dataset": dataset,
                "records_scanned": st.records,
                "subject_field": shown_name(st.subject_field) if st.subject_field else st.subject_field,
                "subjects_scanned": st.subjects_scanned(),
                "malformed_records": st.malformed,
            }
        )
        for (path, rule_id), fs in sorted(st.findings.items(), key=lambda item: (shown_name(item[0][0]), item[0])):
            rule = rules[rule_id]
            nonnull = max(st.nonnull.get(path, 0), 1)
            share = fs.values_matched / nonnull
            conf = confidence_for(
                specific=rule.specific, value_rule=rule.is_value_rule, named=fs.named, requires_field=rule.requires_field, share=share,
                text=rule.text is not None,
            )
            subjects = len(fs.subjects) if st.subject_field else None
            distinct = len(fs.distinct) if rule.category in SECRET_CATEGORIES else None
            findings.append(
                Finding(
                    dataset=dataset, field=shown_name(path), category=rule.category, rule=rule.id, confidence=conf,  # type: ignore[arg-type]
                    records_scanned=st.records, records_matched=fs.records_matched, values_matched=fs.values_matched,
                    subjects_matched=subjects, samples=list(fs.samples), target=st.target, values_distinct=distinct,
                    subjects_approx=subjects is not None and isinstance(fs.subjects, HllSketch),
                )
            )
            if rule.category in SECRET_CATEGORIES:
                entry = secrets_by_rule.setdefault(rule.id, {"rule": rule.id, "category": rule.category, "chunks": [], "fingerprints": []})
                entry["chunks"].append(fs.distinct)
                for f in fs.fingerprints:
                    if f not in entry["fingerprints"] and len(entry["fingerprints"]) < MAX_FINGERPRINTS:
                        entry["fingerprints"].append(f)
            if at_least(conf, SUMMARY_CONFIDENCE):
                cat = per_cat.setdefault(rule.category, _CategoryTotals())
                cat.rows.append(fs.rows)
                cat.values += fs.values_matched
                if st.subject_field:
                    cat.has_subjects = True
                    cat.subjects.append((subject_namespace(st), fs.subjects))
    categories = {
        c: CategorySummary(
            subjects=union_by_namespace(per_cat[c].subjects) if per_cat[c].has_subjects else None,
            records=RowSet.union_count(per_cat[c].rows),
            values=per_cat[c].values,
        )
        for c in CATEGORIES
        if c in per_cat
    }
    secrets_out = [
        {"rule": e["rule"], "category": e["category"], "distinct": KeySet.union_count(e["chunks"]), "fingerprints": e["fingerprints"]}
        for e in secrets_by_rule.values()
    ]
    # People and records with any personal data or secret, each counted once however many categories they have.
    any_subjects = [ks for c in per_cat.values() for ks in c.subjects]
    return Inventory(
        findings=findings,
        categories=categories,
        datasets=datasets,
        secrets=secrets_out,
        subjects_affected=union_by_namespace(any_subjects) if any(c.has_subjects for c in per_cat.values()) else None,
        records_affected=RowSet.union_count(r for c in per_cat.values() for r in c.rows),
    )


def result_from_run(run: ScanRun, ruleset: RuleSet) -> ScanResult:
    inv = finalize(run.states, ruleset)
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
    unchecked = sorted({f"{shown_name(st.dataset)}: {shown_name(path)}" for st in run.states for path in st.unchecked})
    if unchecked:
        values = sum(sum(st.unchecked.values()) for st in run.states)
        run.errors.append(
            ScanError(
                target=", ".join(run.targets), kind="unchecked",
                message=f"{values:,} free-text value{'' if values == 1 else 's'} in {', '.join(unchecked[:5])}"
                f"{f' and {len(unchecked) - 5} more fields' if len(unchecked) > 5 else ''} not checked for names and postal "
                f"addresses: {EXTRA_HINT}, or skip them with --except person_name_text,postal_address_text",
            )
        )
    for e in run.errors:
        if e.dataset:
            e.dataset = shown_name(e.dataset)
    approx = any(isinstance(st.subjects, HllSketch) for st in run.states if st.subject_field)
    return ScanResult(
        started_at=run.started_at,
        finished_at=now(),
        targets=run.targets,
        findings=inv.findings,
        records_scanned=sum(st.records for st in run.states),
        subjects_scanned=union_by_namespace(all_subjects) if subjects_any else None,
        categories=inv.categories,
        errors=run.errors,
        datasets=inv.datasets,
        malformed_records=sum(st.malformed for st in run.states),
        subjects_affected=inv.subjects_affected,
        subjects_exact=len(namespaces) <= 1 and not approx,
        subjects_approx=approx_summary() if approx else None,
        records_affected=inv.records_affected,
        secrets=inv.secrets,
    )


def approx_summary() -> dict[str, Any]:
    """What --approx-subjects counts say about themselves: method, size and relative (standard) error."""
    return {"method": "hyperloglog", "precision": PRECISION, "registers": REGISTERS, "relative_error": round(RELATIVE_ERROR, 5)}


def affected_subjects(run: ScanRun, result: ScanResult) -> list[dict[str, Any]]:
    """Per affected person: subject id, categories exposed, contact e-mail where the record holds one."""
    qualifying = {(f.target, f.dataset, f.field, f.rule) for f in result.findings if at_least(f.confidence, SUMMARY_CONFIDENCE)}
    people: dict[int, dict[str, Any]] = {}
    for st in run.states:
        if not st.subject_field:
            continue
        for (path, rule_id), fs in st.findings.items():
            if (st.target, shown_name(st.dataset), shown_name(path), rule_id) not in qualifying or not fs.subjects:
                continue
            for h in fs.subjects.array().tolist():
                sid, email = st.subject_display.get(h, (None, None))
                entry = people.setdefault(h, {"subject": sid, "email": email, "categories": set(), "datasets": set()})
                entry["categories"].add(fs.category)
                entry["datasets"].add(st.dataset)
                if entry["email"] is None and email:
                    entry["email"] = email
    out = [
        {
            "subject": entry["subject"],
            "email": entry["email"],
            "categories": [c for c in CATEGORIES if c in entry["categories"]],
            "datasets": sorted(entry["datasets"]),
        }
        for entry in people.values()
    ]
    out.sort(key=lambda e: str(e["subject"]))
    return out
