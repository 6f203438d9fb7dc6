"""The report model: everything the HTML, Markdown and JSON outputs say, computed once.

Renderers only format what is here, so a number is the same in the summary, the tables, the charts and
the notification drafts. Counting lives in `counts`, exposure windows in `exposure`, the GDPR drafts in
`gdpr`; `build_report` runs them in order.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from spillguard import categories as cq
from spillguard.errors import UserError
from spillguard.report import counts, exposure, gdpr
from spillguard.report.counts import CatCounts, CategoryRow, Count, SecretRow, combine_disjoint, scan_targets
from spillguard.report.diff import diff_scans
from spillguard.report.document import FINGERPRINTS_SHOWN, Report
from spillguard.report.exposure import TargetExposure
from spillguard.report.inputs import audit_observations, read_history, validate_audit, validate_scan
from spillguard.report.times import iso, parse_time
from spillguard.verdicts import is_exposed


def build_report(
    scans: list[dict[str, Any]],
    audits: list[dict[str, Any]] | tuple[dict[str, Any], ...] = (),
    history: str | None = None,
    baseline: dict[str, Any] | None = None,
    *,
    organisation: str | None = None,
    contact: str | None = None,
    now: datetime | None = None,
) -> Report:
    """Build the impact report from scan results, audit results and the watch history."""
    if not scans:
        raise UserError(
            "no scan result given; pass at least one file written by `spillguard scan --format json`"
        )
    scans = [validate_scan(s, f"scan #{i + 1}") for i, s in enumerate(scans)]
    audits = [validate_audit(a, f"audit #{i + 1}") for i, a in enumerate(audits)]
    if baseline is not None:
        baseline = validate_scan(baseline, "baseline scan")
    _refuse_overlapping_scans(scans)
    generated = (now or datetime.now(UTC)).astimezone(UTC)
    notes: list[str] = []

    stores, store_cats = counts.store_rows(scans)
    categories = counts.aggregate_categories(store_cats)
    notes += _bounded_notes(categories, store_cats)
    for st in stores:
        st["people_affected"] = counts.store_people(st, store_cats[st["target"]])
    people = combine_disjoint([st["people_affected"] for st in stores])
    if len([st for st in stores if st["people_affected"].high != 0]) > 1:
        notes.append(
            "Several stores are combined: the same person may appear in more than one store, so people counts "
            "over all stores are given as a range from the largest single store to the sum of all stores."
        )
    datasets = counts.dataset_rows(scans)
    fields = counts.field_rows(scans)
    secrets = counts.secrets_by_rule(scans, FINGERPRINTS_SHOWN)
    if len(scans) > 1 and secrets:
        notes.append(
            "Secret counts are summed over scan files; a secret present in two stores is counted twice."
        )

    windows, window_summary = _exposure(audits, history, stores)
    scope = exposure.breach_scope(stores, store_cats, fields)
    if scope["excluded"]:
        notes.append(
            "The notification drafts cover only the stores observed exposed ("
            + ", ".join(scope["stores"])
            + "); not included: "
            + ", ".join(f"{t} ({why})" for t, why in scope["excluded"].items())
            + "."
        )

    combos = counts.combinations(fields)
    measures = gdpr.measures({c.category for c in categories}, combos, windows)
    summary = _summary(scans, stores, store_cats, len(datasets), categories, people, secrets, scope, window_summary)
    errors = [dict(e) for s in scans for e in s.get("errors", [])]
    if errors:
        notes.append(
            f"The scans reported {len(errors)} error(s) (unreadable datasets or malformed records); the counts "
            "cover only what could be read. See the errors section."
        )

    report = Report(
        generated_at=iso(generated) or "",
        organisation=organisation,
        contact=contact,
        inputs=_inputs(scans, audits, history, baseline),
        summary=summary,
        scope=scope,
        categories=categories,
        stores=stores,
        datasets=datasets,
        fields=fields,
        secrets=secrets,
        exposure=windows,
        consequences=gdpr.consequence_rows(categories),
        combinations=combos,
        measures=measures,
        art33={},
        art34=[],
        notes=notes,
        errors=errors,
    )
    report.art33 = gdpr.art33(report, generated)
    report.art34 = gdpr.art34(report)
    if baseline is not None:
        report.diff = diff_scans(baseline, scans)
    return report


def _bounded_notes(categories: list[CategoryRow], store_cats: dict[str, dict[str, CatCounts]]) -> list[str]:
    return [
        f"{c.category}: at least one store has no subject field, so its people count is bounded by "
        "the number of values matched rather than counted."
        for c in categories
        if c.subjects.low is None or any(store_cats[t][c.category][0].low is None for t in c.stores)
    ]


def _exposure(
    audits: list[dict[str, Any]], history: str | None, stores: list[dict[str, Any]]
) -> tuple[list[TargetExposure], dict[str, Any]]:
    """Exposure windows of every observed store, each linked to the scanned store it is; their summary."""
    observations = audit_observations(audits)
    if history:
        observations += read_history(history)
    windows = exposure.exposure_windows(observations)
    by_key = {e.key: e for e in windows}
    by_target = {e.target: e for e in windows}
    for s in stores:
        e = by_target.get(s["target"]) or by_key.get(s["key"])
        if e is not None:
            e.scanned = True
            s["exposure"] = e
    summary = exposure.window_summary(
        [w for e in windows if e.scanned for w in e.windows],
        bool(observations),
        any(e.scanned for e in windows),
        confirmed_open=any(
            e.scanned and e.windows and e.windows[-1].ongoing and is_exposed(e.current_verdict) for e in windows
        ),
    )
    return windows, summary


def _summary(
    scans: list[dict[str, Any]],
    stores: list[dict[str, Any]],
    store_cats: dict[str, dict[str, CatCounts]],
    datasets: int,
    categories: list[CategoryRow],
    people: Count,
    secrets: list[SecretRow],
    scope: dict[str, Any],
    window_summary: dict[str, Any],
) -> dict[str, Any]:
    # The headline risk is the breach's: the data in the stores the drafts are about.
    overall_risk = cq.risk_of({c.category for c in scope["categories"]})
    if any(c["risk"] == "high" for c in scope["combinations"]):
        overall_risk = "high"
    return {
        "stores": len(stores),
        "targets": [s["target"] for s in stores],
        "datasets": datasets,
        "records_scanned": sum(s["records_scanned"] for s in stores),
        "records_affected": counts.records_affected(stores, store_cats),
        "subjects_scanned": None
        if any(s["subjects_scanned"] is None for s in stores)
        else sum(s["subjects_scanned"] for s in stores),
        "people_affected": people,
        "categories": len(categories),
        "special_categories": [c.category for c in categories if c.special_category],
        "secrets_distinct": sum(s.distinct for s in secrets),
        "risk": overall_risk,
        "exposure": window_summary,
        "scanned_from": min((s["started_at"] for s in scans), key=parse_time),
        "scanned_to": max((s["finished_at"] for s in scans), key=parse_time),
        "malformed_records": sum(int(s["summary"].get("malformed_records") or 0) for s in scans),
    }


def _inputs(
    scans: list[dict[str, Any]], audits: list[dict[str, Any]], history: str | None, baseline: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "scans": [
            {"started_at": s["started_at"], "finished_at": s["finished_at"], "targets": list(s["targets"])}
            for s in scans
        ],
        "audits": [{"checked_at": a["checked_at"], "targets": len(a["targets"])} for a in audits],
        "history": bool(history),
        "baseline": None
        if baseline is None
        else {"started_at": baseline["started_at"], "finished_at": baseline["finished_at"]},
    }


def _refuse_overlapping_scans(scans: list[dict[str, Any]]) -> None:
    seen: dict[str, int] = {}
    for i, scan in enumerate(scans):
        for t in scan_targets(scan):
            if t in seen:
                raise UserError(
                    f"scan #{seen[t] + 1} and scan #{i + 1} both cover {t}; pass only the newest scan of a store "
                    "(compare with an older one using --baseline OLD.json)"
                )
            seen[t] = i
