"""Counting people, records and secrets over one or several scans: exact within a scan, honest bounds across.

People counts are `Count` ranges: exact within one scan, bounded when several stores are combined (the
same person may be in more than one store). The rows other pillars read (people per category, secrets by
rule) are typed; the rest stay JSON-shaped dicts.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from spillguard import categories as cq
from spillguard.report.inputs import target_key

MAX_SAMPLES = 3  # per finding: enough to recognise the data, not a second copy of it


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


# per store and category: people, records, values matched
CatCounts = tuple[Count, Count, int]


@dataclass(slots=True)
class CategoryRow:
    """People and records of one category over a set of stores (the field order is the JSON's)."""

    category: str
    label: str
    risk: str
    group: str
    special_category: bool
    subjects: Count
    records: Count
    values: int
    stores: list[str]


@dataclass(slots=True)
class SecretRow:
    """Distinct secrets of one rule over every scan, with the keyed fingerprints a responder revokes by."""

    rule: str
    category: str
    distinct: int
    fingerprints: list[str]  # the first `fingerprints_shown` of them
    fingerprints_total: int


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


def bounded(parts: list[int | None], cap: int | None) -> Count:
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


def opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


def _cat_count(entry: dict[str, Any] | None, key: str) -> int | None:
    if not entry:
        return 0
    v = entry.get(key)
    return int(v) if v is not None else None


def scan_targets(scan: dict[str, Any]) -> list[str]:
    targets = [str(t) for t in scan.get("targets", [])]
    for f in scan["findings"]:
        if f.get("target") and f["target"] not in targets:
            targets.append(str(f["target"]))
    return targets or ["(unnamed target)"]


def store_rows(scans: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, dict[str, CatCounts]]]:
    """One row per scanned store, and per store the counts of each category found in it."""
    stores: list[dict[str, Any]] = []
    store_cat_counts: dict[str, dict[str, CatCounts]] = {}
    for scan in scans:
        targets = scan_targets(scan)
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
            subjects = _store_subjects(scan, ds, single)
            cats = _single_scan_categories(scan) if single else _finding_categories(fs, subjects, records)
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
                    "subjects_affected": opt_int(scan["summary"].get("subjects_affected"))
                    if single and scan["summary"].get("subjects_exact", True)
                    else None,
                    "records_affected": opt_int(scan["summary"].get("records_affected")) if single else None,
                    "findings": len(fs),
                    "categories": {c: {"subjects": v[0], "records": v[1]} for c, v in sorted(cats.items())},
                    "risk": cq.risk_of({c for c, v in cats.items() if v[1].high != 0}),
                    "exposure": None,
                }
            )
    return stores, store_cat_counts


def _store_subjects(scan: dict[str, Any], ds: list[dict[str, Any]], single: bool) -> int | None:
    subj_parts = [d.get("subjects_scanned") for d in ds]
    if single and scan["summary"].get("subjects_scanned") is not None:
        return int(scan["summary"]["subjects_scanned"])
    if subj_parts and all(p is not None for p in subj_parts):
        return sum(int(p) for p in subj_parts if p is not None)
    return None


def _single_scan_categories(scan: dict[str, Any]) -> dict[str, CatCounts]:
    """The scan's own summary is exact: distinct people per category over the whole store."""
    cats: dict[str, CatCounts] = {}
    for cat, entry in scan["summary"].get("categories", {}).items():
        s = _cat_count(entry, "subjects")
        r = _cat_count(entry, "records") or 0
        # Without a subject field people cannot be counted; values matched bound them from above.
        s_count = Count(None, _cat_count(entry, "values")) if s is None else Count(s, s)
        cats[cat] = (s_count, Count(r, r), int((entry or {}).get("values") or 0))
    return cats


def _finding_categories(fs: list[dict[str, Any]], subjects: int | None, records: int) -> dict[str, CatCounts]:
    """A store that shares its scan with others: bounds from its findings."""
    by_cat: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for f in fs:
        by_cat[f["category"]].append(f)
    return {
        cat: (
            bounded([opt_int(f.get("subjects_matched")) for f in items], subjects),
            bounded([int(f["records_matched"]) for f in items], records),
            sum(int(f["values_matched"]) for f in items),
        )
        for cat, items in by_cat.items()
    }


def aggregate_categories(store_cats: dict[str, dict[str, CatCounts]]) -> list[CategoryRow]:
    """Categories over a set of stores, highest risk first."""
    present = {c for cats in store_cats.values() for c, v in cats.items() if (v[1].high or 0) > 0 or v[2] > 0}
    out = []
    for cat in sorted(present, key=lambda c: (-cq.risk_rank(c), c)):
        per_store = [(t, cats[cat]) for t, cats in store_cats.items() if cat in cats]
        info = cq.category(cat)
        out.append(
            CategoryRow(
                category=cat,
                label=info.label,
                risk=info.risk,
                group=info.group,
                special_category=info.special_category,
                subjects=combine_disjoint([v[0] for _, v in per_store]),
                # Records of different stores are different records, so they add up.
                records=Count(
                    sum(v[1].low or 0 for _, v in per_store),
                    None
                    if any(v[1].high is None for _, v in per_store)
                    else sum(v[1].high or 0 for _, v in per_store),
                ),
                values=sum(v[2] for _, v in per_store),
                stores=[t for t, _ in per_store],
            )
        )
    return out


def store_people(store: dict[str, Any], cats: dict[str, CatCounts]) -> Count:
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


def records_affected(stores: list[dict[str, Any]], cats: dict[str, dict[str, CatCounts]]) -> Count:
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


def field_rows(scans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every finding as a table row, highest risk first within a dataset, samples capped."""
    fields = [
        {
            "target": f.get("target") or scan_targets(scan)[0],
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
    fields.sort(key=lambda r: (r["target"], r["dataset"], -cq.risk_rank(r["category"]), r["field"]))
    return fields


def dataset_rows(scans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for scan in scans:
        single_target = scan_targets(scan)[0] if len(scan_targets(scan)) == 1 else None
        declared: dict[tuple[str | None, str], dict[str, Any]] = {
            (d.get("target") or single_target, d["dataset"]): d for d in scan.get("datasets", [])
        }
        found: dict[tuple[str | None, str], list[dict[str, Any]]] = defaultdict(list)
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
                    "subjects": bounded([opt_int(f.get("subjects_matched")) for f in items], subjects),
                    "records": bounded([int(f["records_matched"]) for f in items], records),
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



def secrets_by_rule(scans: list[dict[str, Any]], fingerprints_shown: int) -> list[SecretRow]:
    merged: dict[tuple[str, str], tuple[int, list[str]]] = {}
    for scan in scans:
        for s in scan.get("secrets") or []:
            key = (str(s["rule"]), str(s.get("category", "secret")))
            distinct, prints = merged.get(key, (0, []))
            for fp in s.get("fingerprints") or []:
                # Only keyed fingerprints ever reach the report; anything else could be a raw secret.
                if isinstance(fp, str) and fp.startswith("hmac-") and fp not in prints:
                    prints.append(fp)
            merged[key] = (distinct + int(s.get("distinct") or 0), prints)
    rows = [SecretRow(rule, cat, d, p[:fingerprints_shown], len(p)) for (rule, cat), (d, p) in merged.items()]
    return sorted(rows, key=lambda m: (-m.distinct, m.rule))


def combinations(fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
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


