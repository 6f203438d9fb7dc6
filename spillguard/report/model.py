"""The report model: everything the HTML, Markdown and JSON outputs say, computed once.

Renderers only format what is here, so a number is the same in the summary, the tables, the charts and
the notification drafts. People counts are `Count` ranges: exact within one scan, honest bounds when
several stores are combined (the same person may be in more than one store).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from spillguard.errors import UserError
from spillguard.report import consequences as cq
from spillguard.report.inputs import (
    EXPOSED_VERDICTS,
    Observation,
    audit_observations,
    read_history,
    target_key,
    validate_audit,
    validate_scan,
)

REPORT_VERSION = 1
MAX_SAMPLES = 3  # per finding: enough to recognise the data, not a second copy of it
MAX_FINGERPRINTS = 5
CONTACT_PLACEHOLDER = "[name, role, e-mail and phone of the data protection officer or other contact point]"


@dataclass(frozen=True, slots=True)
class Count:
    """A number of people (or records) known exactly, or only between two bounds."""

    low: int | None
    high: int | None

    @property
    def exact(self) -> bool:
        return self.low is not None and self.low == self.high

    @property
    def known(self) -> bool:
        return self.low is not None or self.high is not None

    def to_json(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "exact": self.exact}

    def __str__(self) -> str:
        if not self.known:
            return "unknown"
        if self.exact:
            return f"{self.low:,}"
        if self.high is None:
            return f"at least {self.low:,}"
        if self.low is None:
            return f"at most {self.high:,}"
        return f"{self.low:,}–{self.high:,}"

    @property
    def approx(self) -> str:
        """The phrase a notification uses: one number, or 'between X and Y'."""
        if not self.known:
            return "an unknown number of"
        if self.exact:
            return f"{self.low:,}"
        if self.high is None:
            return f"at least {self.low:,}"
        if self.low is None:
            return f"up to {self.high:,}"
        return f"between {self.low:,} and {self.high:,}"


def combine_disjoint(counts: list[Count]) -> Count:
    """People in several stores: at least the largest store, at most the sum."""
    lows = [c.low for c in counts if c.low is not None]
    highs = [c.high for c in counts]
    low = max(lows) if lows else None
    high = None if any(h is None for h in highs) or not highs else sum(h for h in highs if h is not None)
    nonzero = [c for c in counts if c.high != 0]
    if len(nonzero) == 1:  # only one store holds this category: its count stands exactly
        return nonzero[0]
    return Count(low, high)


def parse_time(value: str) -> datetime:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise UserError(
            f"timestamp {value!r} in the inputs is not ISO 8601; regenerate the input file"
        ) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class ExposureWindow:
    start: str
    end: str | None  # None while the store is still exposed at the last observation
    verdict: str  # the worst exposed verdict seen inside the window
    start_known: bool  # False when the store was already exposed at the first observation
    closed_by: str | None
    last_seen_exposed: str
    hours: float  # to the end, or to the last observation when ongoing

    @property
    def ongoing(self) -> bool:
        return self.end is None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["ongoing"] = self.ongoing
        return d


@dataclass(slots=True)
class TargetExposure:
    target: str
    key: str
    first_checked: str
    last_checked: str
    current_verdict: str
    windows: list[ExposureWindow]
    sources: list[str]
    scanned: bool  # whether a scan in this report covers the same store

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["windows"] = [w.to_json() for w in self.windows]
        return d


@dataclass(slots=True)
class Report:
    """The whole report; `to_json()` is exactly what `spillguard report --format json` prints."""

    generated_at: str
    organisation: str | None
    contact: str | None
    inputs: dict[str, Any]
    summary: dict[str, Any]
    scope: dict[str, Any]  # the stores, people and data the notification drafts are about
    categories: list[dict[str, Any]]
    stores: list[dict[str, Any]]
    datasets: list[dict[str, Any]]
    fields: list[dict[str, Any]]
    secrets: list[dict[str, Any]]
    exposure: list[TargetExposure]
    consequences: list[dict[str, Any]]
    combinations: list[dict[str, Any]]
    measures: list[str]
    art33: dict[str, Any]
    art34: list[dict[str, Any]]
    notes: list[str]
    errors: list[dict[str, Any]]
    diff: dict[str, Any] | None = None
    timeline: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        def conv(v: Any) -> Any:
            if isinstance(v, Count):
                return v.to_json()
            if isinstance(v, TargetExposure | ExposureWindow):
                return v.to_json()
            if isinstance(v, dict):
                return {k: conv(x) for k, x in v.items()}
            if isinstance(v, list | tuple):
                return [conv(x) for x in v]
            return v

        out: dict[str, Any] = {"version": REPORT_VERSION}
        for name in self.__slots__:  # type: ignore[attr-defined]
            if name == "timeline":
                continue
            out[name] = conv(getattr(self, name))
        return out


# ---------------------------------------------------------------- exposure windows


def exposure_windows(observations: list[Observation]) -> list[TargetExposure]:
    """Group observations per store and cut them into exposed windows.

    A window opens at the first exposed observation (or transition into an exposed verdict) and closes
    at the first 'protected' observation after it; one still open at the last observation is ongoing.
    Like `spillguard watch`, only a confirmed 'protected' ends an exposure: 'unreachable' or 'error' may
    be the watcher's own network, so the store is not known to be closed.
    """
    by_key: dict[str, list[tuple[datetime, Observation]]] = defaultdict(list)
    for o in observations:
        by_key[target_key(o.target)].append((parse_time(o.at), o))
    out: list[TargetExposure] = []
    for key, rows in by_key.items():
        rows.sort(key=lambda r: (r[0], r[1].source))
        windows: list[ExposureWindow] = []
        open_start: datetime | None = None
        open_verdict = ""
        last_exposed: datetime | None = None
        start_known = True
        first = rows[0][0]
        for i, (at, o) in enumerate(rows):
            if o.verdict in EXPOSED_VERDICTS:
                if open_start is None:
                    open_start, open_verdict, start_known = at, o.verdict, i > 0
                elif _worse(o.verdict, open_verdict):
                    open_verdict = o.verdict
                last_exposed = at
            elif open_start is not None and o.verdict == "protected":
                assert last_exposed is not None
                windows.append(
                    ExposureWindow(
                        iso(open_start) or "",
                        iso(at),
                        open_verdict,
                        start_known,
                        o.verdict,
                        iso(last_exposed) or "",
                        round((at - open_start).total_seconds() / 3600, 2),
                    )
                )
                open_start = None
        last_at, last_obs = rows[-1]
        if open_start is not None:
            assert last_exposed is not None
            windows.append(
                ExposureWindow(
                    iso(open_start) or "",
                    None,
                    open_verdict,
                    start_known,
                    None,
                    iso(last_exposed) or "",
                    round((last_at - open_start).total_seconds() / 3600, 2),
                )
            )
        out.append(
            TargetExposure(
                target=rows[-1][1].target,
                key=key,
                first_checked=iso(first) or "",
                last_checked=iso(last_at) or "",
                current_verdict=last_obs.verdict,
                windows=windows,
                sources=sorted({o.source for _, o in rows}),
                scanned=False,
            )
        )
    out.sort(key=lambda t: t.key)
    return out


_VERDICT_SEVERITY = {"open-read": 3, "weak-credentials": 2, "open-metadata": 1}


def _worse(a: str, b: str) -> bool:
    return _VERDICT_SEVERITY.get(a, 0) > _VERDICT_SEVERITY.get(b, 0)


# ---------------------------------------------------------------- counting helpers


def _cat_count(entry: dict[str, Any] | None, key: str) -> int | None:
    if not entry:
        return 0
    v = entry.get(key)
    return int(v) if v is not None else None


def _bounded(parts: list[int | None], cap: int | None) -> Count:
    """Distinct people over several findings of one scope: at least the largest, at most the sum (capped)."""
    known = [p for p in parts if p is not None]
    if not parts:
        return Count(0, 0)
    low = max(known) if known else None
    high: int | None = None if len(known) < len(parts) else sum(known)
    if cap is not None:
        high = cap if high is None else min(high, cap)
    if low is not None and high is not None and len(parts) == 1:
        return Count(low, low)
    return Count(low, high)


# ---------------------------------------------------------------- build


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

    # --- per store (target) counts
    stores: list[dict[str, Any]] = []
    store_cat_counts: dict[str, dict[str, CatCounts]] = {}
    for scan in scans:
        targets = _scan_targets(scan)
        single = len(targets) == 1
        for target in targets:
            ds = [d for d in scan.get("datasets", []) if d.get("target") == target]
            fs = [
                f for f in scan["findings"] if f.get("target") == target or (single and not f.get("target"))
            ]
            records = (
                sum(int(d.get("records_scanned") or 0) for d in ds)
                if ds or not single
                else int(scan["summary"].get("records_scanned") or 0)
            )
            subj_parts = [d.get("subjects_scanned") for d in ds]
            subjects: int | None
            if single and scan["summary"].get("subjects_scanned") is not None:
                subjects = int(scan["summary"]["subjects_scanned"])
            elif subj_parts and all(p is not None for p in subj_parts):
                subjects = sum(int(p) for p in subj_parts if p is not None)
            else:
                subjects = None
            cats: dict[str, CatCounts] = {}
            if single:
                # The scan's own summary is exact: distinct people per category over the whole store.
                for cat, entry in scan["summary"].get("categories", {}).items():
                    s = _cat_count(entry, "subjects")
                    r = _cat_count(entry, "records") or 0
                    # Without a subject field people cannot be counted; values matched bound them from above.
                    s_count = Count(None, _cat_count(entry, "values")) if s is None else Count(s, s)
                    cats[cat] = (s_count, Count(r, r), int((entry or {}).get("values") or 0))
            else:
                by_cat: dict[str, list[dict[str, Any]]] = defaultdict(list)
                for f in fs:
                    by_cat[f["category"]].append(f)
                for cat, items in by_cat.items():
                    cats[cat] = (
                        _bounded([_opt_int(f.get("subjects_matched")) for f in items], subjects),
                        _bounded([int(f["records_matched"]) for f in items], records),
                        sum(int(f["values_matched"]) for f in items),
                    )
            store_cat_counts[target] = cats
            stores.append(
                {
                    "target": target,
                    "key": target_key(target),
                    "scan_finished_at": scan["finished_at"],
                    "datasets": len(ds) or len({f["dataset"] for f in fs}),
                    "records_scanned": records,
                    "subjects_scanned": subjects,
                    # Exact totals over all categories, when the scan covered this store alone.
                    "subjects_affected": _opt_int(scan["summary"].get("subjects_affected"))
                    if single and scan["summary"].get("subjects_exact", True)
                    else None,
                    "records_affected": _opt_int(scan["summary"].get("records_affected")) if single else None,
                    "findings": len(fs),
                    "categories": {c: {"subjects": v[0], "records": v[1]} for c, v in sorted(cats.items())},
                    "risk": cq.risk_of({c for c, v in cats.items() if v[1].high != 0}),
                    "exposure": None,
                }
            )

    categories = _aggregate_categories(store_cat_counts)
    for c in categories:
        if c["subjects"].low is None or any(
            store_cat_counts[t][c["category"]][0].low is None for t in c["stores"]
        ):
            notes.append(
                f"{c['category']}: at least one store has no subject field, so its people count is bounded by "
                "the number of values matched rather than counted."
            )
    for st in stores:
        st["people_affected"] = _store_people(st, store_cat_counts[st["target"]])
    people = combine_disjoint([st["people_affected"] for st in stores])
    if len([st for st in stores if st["people_affected"].high != 0]) > 1:
        notes.append(
            "Several stores are combined: the same person may appear in more than one store, so people counts "
            "over all stores are given as a range from the largest single store to the sum of all stores."
        )

    # --- datasets and fields
    datasets = _datasets(scans)
    fields = [
        {
            "target": f.get("target") or _scan_targets(scan)[0],
            "dataset": f["dataset"],
            "field": f["field"],
            "category": f["category"],
            "rule": f["rule"],
            "confidence": f.get("confidence", "high"),
            "records_scanned": f.get("records_scanned"),
            "records_matched": int(f["records_matched"]),
            "values_matched": int(f["values_matched"]),
            "values_distinct": f.get("values_distinct"),
            "subjects_matched": f.get("subjects_matched"),
            "samples": [str(x) for x in (f.get("samples") or [])[:MAX_SAMPLES]],
        }
        for scan in scans
        for f in scan["findings"]
    ]
    fields.sort(
        key=lambda r: (r["target"], r["dataset"], -cq.RISK_RANK.get(_cat_risk(r["category"]), 0), r["field"])
    )

    secrets = _secrets(scans)
    if len(scans) > 1 and secrets:
        notes.append(
            "Secret counts are summed over scan files; a secret present in two stores is counted twice."
        )

    # --- exposure
    observations = audit_observations(audits)
    if history:
        observations += read_history(history)
    exposure = exposure_windows(observations)
    by_key = {e.key: e for e in exposure}
    by_target = {e.target: e for e in exposure}
    for s in stores:
        e = by_target.get(s["target"]) or by_key.get(s["key"])
        if e is not None:
            e.scanned = True
            s["exposure"] = e
    scanned_windows = [w for e in exposure if e.scanned for w in e.windows]
    window_summary = _window_summary(
        scanned_windows,
        bool(observations),
        any(e.scanned for e in exposure),
        confirmed_open=any(
            e.scanned and e.windows and e.windows[-1].ongoing and e.current_verdict in EXPOSED_VERDICTS
            for e in exposure
        ),
    )
    scope = _breach_scope(stores, store_cat_counts, fields)
    if scope["excluded"]:
        notes.append(
            "The notification drafts cover only the stores observed exposed ("
            + ", ".join(scope["stores"])
            + "); not included: "
            + ", ".join(f"{t} ({why})" for t, why in scope["excluded"].items())
            + "."
        )

    # --- consequences, measures, notices
    present = {c["category"] for c in categories}
    cons = [
        {
            "category": c["category"],
            "label": c["label"],
            "risk": c["risk"],
            "subjects": c["subjects"],
            "special_category": c["special_category"],
            "consequences": list(cq.CATEGORIES[c["category"]].consequences)
            if c["category"] in cq.CATEGORIES
            else [],
        }
        for c in categories
    ]
    combos = _combinations(fields)
    measures = _measures(present, combos, exposure)
    # The headline risk is the breach's: the data in the stores the drafts are about.
    overall_risk = cq.risk_of({c["category"] for c in scope["categories"]})
    if any(c["risk"] == "high" for c in scope["combinations"]):
        overall_risk = "high"

    records_affected = _records_affected(stores, store_cat_counts)
    summary = {
        "stores": len(stores),
        "targets": [s["target"] for s in stores],
        "datasets": len(datasets),
        "records_scanned": sum(s["records_scanned"] for s in stores),
        "records_affected": records_affected,
        "subjects_scanned": None
        if any(s["subjects_scanned"] is None for s in stores)
        else sum(s["subjects_scanned"] for s in stores),
        "people_affected": people,
        "categories": len(categories),
        "special_categories": [c["category"] for c in categories if c["special_category"]],
        "secrets_distinct": sum(s["distinct"] for s in secrets),
        "risk": overall_risk,
        "exposure": window_summary,
        "scanned_from": min((s["started_at"] for s in scans), key=parse_time),
        "scanned_to": max((s["finished_at"] for s in scans), key=parse_time),
        "malformed_records": sum(int(s["summary"].get("malformed_records") or 0) for s in scans),
    }
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
        inputs={
            "scans": [
                {
                    "started_at": s["started_at"],
                    "finished_at": s["finished_at"],
                    "targets": list(s["targets"]),
                }
                for s in scans
            ],
            "audits": [{"checked_at": a["checked_at"], "targets": len(a["targets"])} for a in audits],
            "history": bool(history),
            "baseline": None
            if baseline is None
            else {"started_at": baseline["started_at"], "finished_at": baseline["finished_at"]},
        },
        summary=summary,
        scope=scope,
        categories=categories,
        stores=stores,
        datasets=datasets,
        fields=fields,
        secrets=secrets,
        exposure=exposure,
        consequences=cons,
        combinations=combos,
        measures=measures,
        art33={},
        art34=[],
        notes=notes,
        errors=errors,
    )
    report.art33 = _art33(report, generated)
    report.art34 = _art34(report)
    if baseline is not None:
        from spillguard.report.diff import diff_scans

        report.diff = diff_scans(baseline, scans)
    return report


# per store and category: people, records, values matched
CatCounts = tuple[Count, Count, int]


def _aggregate_categories(store_cats: dict[str, dict[str, CatCounts]]) -> list[dict[str, Any]]:
    """Categories over a set of stores, highest risk first."""
    present = {c for cats in store_cats.values() for c, v in cats.items() if (v[1].high or 0) > 0 or v[2] > 0}
    out = []
    for cat in sorted(present, key=lambda c: (-cq.RISK_RANK[_cat_risk(c)], c)):
        per_store = [(t, cats[cat]) for t, cats in store_cats.items() if cat in cats]
        impact = cq.CATEGORIES.get(cat)
        out.append(
            {
                "category": cat,
                "label": impact.label if impact else cat,
                "risk": impact.risk if impact else "medium",
                "group": impact.group if impact else "contact",
                "special_category": bool(impact and impact.special_category),
                "subjects": combine_disjoint([v[0] for _, v in per_store]),
                # Records of different stores are different records, so they add up.
                "records": Count(
                    sum(v[1].low or 0 for _, v in per_store),
                    None
                    if any(v[1].high is None for _, v in per_store)
                    else sum(v[1].high or 0 for _, v in per_store),
                ),
                "values": sum(v[2] for _, v in per_store),
                "stores": [t for t, _ in per_store],
            }
        )
    return out


def _store_people(store: dict[str, Any], cats: dict[str, CatCounts]) -> Count:
    """People with any personal data in one store: at least the largest category, at most the sum (capped)."""
    if store.get("subjects_affected") is not None:
        return Count(store["subjects_affected"], store["subjects_affected"])
    subj = [v[0] for v in cats.values() if (v[1].high or 0) > 0 or v[2] > 0]
    if not subj:
        return Count(0, 0)
    lows = [c.low for c in subj if c.low is not None]
    highs = [c.high for c in subj]
    high = None if any(h is None for h in highs) else sum(h for h in highs if h is not None)
    if store["subjects_scanned"] is not None:
        high = store["subjects_scanned"] if high is None else min(high, store["subjects_scanned"])
    return Count(max(lows) if lows else None, high)


def _breach_scope(
    stores: list[dict[str, Any]], store_cats: dict[str, dict[str, CatCounts]], fields: list[dict[str, Any]]
) -> dict[str, Any]:
    """The stores a notification is about: those observed exposed; without exposure data, every store.

    A store the audit or watcher saw protected throughout is not part of the breach, so its people are not
    counted in the Art. 33/34 drafts (they stay in the inventory tables).
    """
    status = {}
    for st in stores:
        e = st["exposure"]
        status[st["target"]] = "unknown" if e is None else "exposed" if e.windows else "not-exposed"
        st["exposure_status"] = status[st["target"]]
    exposed = [t for t, v in status.items() if v == "exposed"]
    if exposed:
        basis, chosen = "exposed", exposed
    elif any(v == "unknown" for v in status.values()):
        basis, chosen = "unknown", [t for t, v in status.items() if v == "unknown"]
    else:
        basis, chosen = "none-observed", list(status)
    excluded = {
        t: "observed protected" if v == "not-exposed" else "no audit or watch data"
        for t, v in status.items()
        if t not in chosen
    }
    sub_cats = {t: store_cats[t] for t in chosen}
    by_target = {st["target"]: st for st in stores}
    return {
        "basis": basis,
        "stores": chosen,
        "excluded": excluded,
        "people_affected": combine_disjoint([by_target[t]["people_affected"] for t in chosen]),
        "records_affected": _records_affected([by_target[t] for t in chosen], sub_cats),
        "categories": _aggregate_categories(sub_cats),
        "combinations": _combinations([f for f in fields if f["target"] in chosen]),
    }


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


def _cat_risk(cat: str) -> str:
    return cq.CATEGORIES[cat].risk if cat in cq.CATEGORIES else "medium"


def _scan_targets(scan: dict[str, Any]) -> list[str]:
    targets = [str(t) for t in scan.get("targets", [])]
    for f in scan["findings"]:
        if f.get("target") and f["target"] not in targets:
            targets.append(str(f["target"]))
    return targets or ["(unnamed target)"]


def _refuse_overlapping_scans(scans: list[dict[str, Any]]) -> None:
    seen: dict[str, int] = {}
    for i, scan in enumerate(scans):
        for t in _scan_targets(scan):
            if t in seen:
                raise UserError(
                    f"scan #{seen[t] + 1} and scan #{i + 1} both cover {t}; pass only the newest scan of a store "
                    "(compare with an older one using --baseline OLD.json)"
                )
            seen[t] = i


def _datasets(scans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for scan in scans:
        single_target = _scan_targets(scan)[0] if len(_scan_targets(scan)) == 1 else None
        declared = {(d.get("target") or single_target, d["dataset"]): d for d in scan.get("datasets", [])}
        found: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for f in scan["findings"]:
            found[(f.get("target") or single_target or "", f["dataset"])].append(f)
        for key in sorted(set(declared) | set(found), key=lambda k: (str(k[0]), k[1])):
            d = declared.get(key, {})
            fs = found.get(key, [])
            records = d.get("records_scanned")
            if records is None and fs:
                records = max(int(f.get("records_scanned") or 0) for f in fs)
            subjects = d.get("subjects_scanned")
            by_cat: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for f in fs:
                by_cat[f["category"]].append(f)
            cats = {
                c: {
                    "subjects": _bounded([_opt_int(f.get("subjects_matched")) for f in items], subjects),
                    "records": _bounded([int(f["records_matched"]) for f in items], records),
                }
                for c, items in sorted(by_cat.items())
            }
            out.append(
                {
                    "target": key[0],
                    "dataset": key[1],
                    "records_scanned": records,
                    "subject_field": d.get("subject_field"),
                    "subjects_scanned": subjects,
                    "fields": len({f["field"] for f in fs}),
                    "categories": cats,
                    "risk": cq.risk_of(set(by_cat)) if by_cat else "none",
                }
            )
    return out


def _secrets(scans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for scan in scans:
        for s in scan.get("secrets") or []:
            key = (str(s["rule"]), str(s.get("category", "secret")))
            m = merged.setdefault(
                key, {"rule": key[0], "category": key[1], "distinct": 0, "fingerprints": []}
            )
            m["distinct"] += int(s.get("distinct") or 0)
            for fp in s.get("fingerprints") or []:
                # Only keyed fingerprints ever reach the report; anything else could be a raw secret.
                if isinstance(fp, str) and fp.startswith("hmac-") and fp not in m["fingerprints"]:
                    m["fingerprints"].append(fp)
    out = sorted(merged.values(), key=lambda m: (-m["distinct"], m["rule"]))
    for m in out:
        m["fingerprints_total"] = len(m["fingerprints"])
        m["fingerprints"] = m["fingerprints"][:MAX_FINGERPRINTS]
    return out


def _combinations(fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Combinations found in one dataset: the data really sits together there."""
    per_ds: dict[tuple[str, str], set[str]] = defaultdict(set)
    for f in fields:
        per_ds[(f["target"], f["dataset"])].add(f["category"])
    found: dict[str, dict[str, Any]] = {}
    for (target, dataset), cats in sorted(per_ds.items()):
        for combo in cq.combinations_in(cats):
            entry = found.setdefault(
                combo.consequence,
                {
                    "categories": sorted(combo.categories | (combo.any_of & cats)),
                    "risk": combo.risk,
                    "consequence": combo.consequence,
                    "measure": combo.measure,
                    "datasets": [],
                },
            )
            entry["categories"] = sorted(set(entry["categories"]) | (combo.any_of & cats))
            entry["datasets"].append(f"{target} / {dataset}")
    return list(found.values())


def _measures(present: set[str], combos: list[dict[str, Any]], exposure: list[TargetExposure]) -> list[str]:
    out: list[str] = []
    for e in exposure:
        if any(w.ongoing for w in e.windows):
            unscanned = (
                "" if e.scanned else " It has not been scanned: scan it to learn what personal data it holds."
            )
            if e.current_verdict in EXPOSED_VERDICTS:
                state = f"is still exposed ({e.current_verdict}) at the last check, {_human(e.last_checked)}"
            else:
                state = (
                    f"was exposed and is not confirmed closed (last check {_human(e.last_checked)}: "
                    f"{e.current_verdict})"
                )
            out.append(
                f"URGENT: {e.target} {state}. Close it first: require authentication or block public access, "
                f"then confirm with `spillguard audit`.{unscanned}"
            )
    out += list(cq.GENERAL_MEASURES)
    for cat in sorted(present, key=lambda c: (-cq.RISK_RANK[_cat_risk(c)], c)):
        if cat in cq.CATEGORIES:
            for m in cq.CATEGORIES[cat].measures:
                if m not in out:
                    out.append(m)
    for c in combos:
        if c["measure"] not in out:
            out.append(c["measure"])
    return out


def _records_affected(stores: list[dict[str, Any]], cats: dict[str, dict[str, CatCounts]]) -> Count:
    """Records holding any personal data: per store between the largest category and the sum (capped)."""
    parts = []
    for s in stores:
        if s.get("records_affected") is not None:
            parts.append(Count(s["records_affected"], s["records_affected"]))
            continue
        recs = [v[1] for v in cats[s["target"]].values()]
        if not recs:
            parts.append(Count(0, 0))
            continue
        low = max(r.low or 0 for r in recs)
        high = None if any(r.high is None for r in recs) else sum(r.high or 0 for r in recs)
        high = min(high, s["records_scanned"]) if high is not None else s["records_scanned"]
        parts.append(Count(low, high))
    # Records of different stores are different records, so these add up.
    return Count(sum(p.low or 0 for p in parts), sum(p.high or 0 for p in parts))


def _window_summary(
    windows: list[ExposureWindow], have_observations: bool, matched: bool, confirmed_open: bool = True
) -> dict[str, Any]:
    if not windows:
        if not have_observations:
            status = "unknown"
            text = "No audit or watch history was given, so the exposure window is not established."
        elif not matched:
            status = "unknown"
            text = "The audit/watch inputs cover none of the scanned stores, so the exposure window is not established."
        else:
            status = "not-exposed"
            text = "No scanned store was observed exposed in the audit/watch inputs."
        return {
            "status": status,
            "start": None,
            "end": None,
            "ongoing": False,
            "start_known": False,
            "hours": None,
            "verdict": None,
            "text": text,
            "plain": None,
        }
    start_w = min(windows, key=lambda w: w.start)
    ongoing = any(w.ongoing for w in windows)
    end = None if ongoing else max(w.end or "" for w in windows)
    end_dt = parse_time(end) if end else parse_time(max(w.last_seen_exposed for w in windows))
    hours = round((end_dt - parse_time(start_w.start)).total_seconds() / 3600, 1)
    since = "since at least" if not start_w.start_known else "from"
    verdict = max((w.verdict for w in windows), key=lambda v: _VERDICT_SEVERITY.get(v, 0))
    day_start = parse_time(start_w.start).strftime("%-d %B %Y")
    if ongoing:
        state = "still exposed at the last check" if confirmed_open else "not confirmed closed"
        text = (
            f"Scanned stores exposed {since} {_human(start_w.start)}; {state} "
            f"(last seen exposed {_human(iso(end_dt))})."
        )
        plain = f"It was reachable {'since at least' if not start_w.start_known else 'since'} {day_start}."
    else:
        text = (
            f"Scanned stores exposed {since} {_human(start_w.start)} until {_human(end)} ({hours:,} hours)."
        )
        plain = (
            f"It was reachable {'from at least' if not start_w.start_known else 'from'} {day_start} until "
            f"{end_dt.strftime('%-d %B %Y')}."
        )
    return {
        "status": "ongoing" if ongoing else "closed",
        "start": start_w.start,
        "end": end,
        "ongoing": ongoing,
        "start_known": start_w.start_known,
        "hours": hours,
        "verdict": verdict,
        "text": text,
        "plain": plain,
    }


def _human(ts: str | None) -> str:
    if not ts:
        return "an unknown time"
    return parse_time(ts).strftime("%d %b %Y %H:%M UTC")


# ---------------------------------------------------------------- GDPR drafts


def _art33(r: Report, generated: datetime) -> dict[str, Any]:
    s = r.summary
    sc = r.scope
    exp = s["exposure"]
    exposed_stores = [e for e in r.exposure if e.scanned and e.windows]
    if exposed_stores:
        verdicts = sorted({w.verdict for e in exposed_stores for w in e.windows})
        nature = (
            f"Breach of confidentiality. {len(exposed_stores)} data store(s) holding personal data "
            f"({', '.join(e.target for e in exposed_stores)}) could be reached from the internet without proper "
            f"authentication (observed: {', '.join(verdicts)}). {exp['text']}"
        )
    else:
        nature = (
            f"Personal data was found in {len(sc['stores'])} data store(s) ({', '.join(sc['stores'])}). "
            f"{exp['text']} [Describe how the data was exposed or disclosed.]"
        )
    nature += " Whether third parties accessed the data is being established from access logs."
    subjects = [
        f"{c['label']}: {c['subjects'].approx} people ({c['records'].approx} records)"
        + (" — special category, Art. 9" if c["special_category"] else "")
        for c in sc["categories"]
    ]
    cons = []
    for c in sc["categories"]:
        for text in cq.CATEGORIES[c["category"]].consequences if c["category"] in cq.CATEGORIES else ():
            cons.append(f"{c['label']}: {text}")
    for combo in sc["combinations"]:
        cons.append(combo["consequence"])
    # Awareness is a fact only the controller knows; the draft offers the earliest evidence as a bound.
    # A watcher that saw the exposure start is evidence the organisation could have known from then on.
    evidence = [parse_time(s["scanned_from"])]
    evidence += [parse_time(w.start) for e in r.exposure if e.scanned for w in e.windows if w.start_known]
    first_evidence = iso(min(evidence)) or ""
    deadline = parse_time(first_evidence) + timedelta(hours=72)
    taken = []
    for e in r.exposure:
        if e.scanned and e.windows and not e.windows[-1].ongoing:
            taken.append(
                f"Public access to {e.target} was closed; the store answered '{e.current_verdict}' from "
                f"{_human(e.windows[-1].end)} (last checked {_human(e.last_checked)})."
            )
    if not taken:
        taken.append("[List the measures already taken, with dates.]")
    return {
        "nature": nature,
        "subjects_total": sc["people_affected"],
        "records_total": sc["records_affected"],
        "categories_of_subjects": "Customers and users whose records are held in the stores listed "
        "[adjust: customers, employees, beta testers, ...].",
        "categories_of_data": subjects,
        "contact": r.contact or CONTACT_PLACEHOLDER,
        "contact_missing": r.contact is None,
        "consequences": cons,
        "measures_taken": taken,
        "measures": r.measures,
        "timing": (
            f"Earliest evidence in these inputs: {_human(first_evidence)}. If the organisation became aware "
            f"then, the 72-hour deadline of Art. 33(1) ends {_human(iso(deadline))}. "
            "[State when you became aware and, if later than 72 hours, the reasons for the delay.]"
        ),
        "first_evidence": first_evidence,
        "deadline_if_aware_at_first_evidence": iso(deadline),
        "phases": (
            "This is an initial notification under Art. 33(4). Still being established: whether and by whom the "
            "data was accessed during the exposure, and the final number of people after removing duplicates "
            "across stores. Further information will follow without undue delay."
        ),
        "generated_at": iso(generated),
    }


def _art34(r: Report) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in r.scope["categories"]:
        groups[c["group"]].append(c)
    exp = r.summary["exposure"]
    if exp["status"] in ("closed", "ongoing"):
        how = {
            "open-read": "anyone on the internet could read it without a password",
            "weak-credentials": "it was protected only by a default or easily guessed password",
            "open-metadata": "anyone on the internet could see what it contained, without a password",
        }.get(exp["verdict"], "it could be reached over the internet without proper protection")
        what_happened = (
            f"A database we use held a copy of some of your information, and {how}. {exp['plain']} "
            "[Say why in one sentence, e.g. a configuration mistake.]"
        )
    else:
        what_happened = (
            "We found some of your information in a database where it should not have been accessible. "
            "[Describe in one or two sentences how it was exposed and when.]"
        )
    out = []
    for gname, cats in sorted(
        groups.items(), key=lambda g: cq.RISK_GROUPS[g[0]].order if g[0] in cq.RISK_GROUPS else 99
    ):
        group = cq.RISK_GROUPS.get(gname, cq.RiskGroup(gname, gname, 99))
        cat_names = {c["category"] for c in cats}
        risk = cq.risk_of(cat_names)
        combos = [
            c for c in r.scope["combinations"] if set(c["categories"]) & cat_names and c["risk"] == "high"
        ]
        if combos:
            risk = "high"
        # The first consequence of a category is the one about the person; the rest concern the organisation.
        consequences = [
            cq.CATEGORIES[c["category"]].consequences[0] for c in cats if c["category"] in cq.CATEGORIES
        ]
        consequences += [c["consequence"] for c in combos]
        advice: list[str] = []
        for c in cats:
            for a in cq.CATEGORIES[c["category"]].advice:
                if a not in advice and not a.startswith("No action"):
                    advice.append(a)
        if not advice:
            advice.append(
                "You do not need to do anything; we are telling you so that you know what happened."
            )
        if exp["status"] == "closed":
            measures = [
                f"We closed public access to the database on {_human(exp['end'])} and checked that it is now protected."
            ]
        elif exp["status"] == "ongoing":
            measures = ["We are closing public access to the database and will check that it is protected."]
        else:
            measures = ["[Describe how the exposure was stopped and when.]"]
        for c in cats:
            if c["category"] in cq.CATEGORIES and cq.CATEGORIES[c["category"]].we_do not in measures:
                measures.append(cq.CATEGORIES[c["category"]].we_do)
        people = combine_disjoint([c["subjects"] for c in cats])
        cap = r.scope["people_affected"].high
        if cap is not None and people.high is not None and people.high > cap:
            # A group cannot hold more people than the breach itself.
            people = Count(people.low, max(cap, people.low or 0))
        out.append(
            {
                "group": gname,
                "title": group.title,
                "plain_title": group.plain_title,
                "categories": [c["category"] for c in cats],
                "labels": [c["label"] for c in cats],
                "people": people,
                "risk": risk,
                "required": risk == "high",
                "subject_line": f"Important: {group.plain_title} may have been exposed",
                "what_happened": what_happened,
                "what_data": "; ".join(c["label"] for c in cats) + ".",
                "consequences": consequences,
                "measures": measures,
                "advice": advice,
                "contact": r.contact or CONTACT_PLACEHOLDER,
            }
        )
    return out
