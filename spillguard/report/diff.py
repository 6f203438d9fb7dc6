"""What changed between two scans: findings that appeared or went away, and people counts up or down."""

from __future__ import annotations

from typing import Any

from spillguard.report.inputs import target_key
from spillguard.report.times import parse_time

FindingKey = tuple[str, str, str, str]  # target, dataset, field, rule


def _findings(scans: list[dict[str, Any]]) -> dict[FindingKey, dict[str, Any]]:
    out: dict[FindingKey, dict[str, Any]] = {}
    for scan in scans:
        default_target = scan["targets"][0] if len(scan.get("targets", [])) == 1 else ""
        for f in scan["findings"]:
            key = (
                target_key(str(f.get("target") or default_target)),
                str(f["dataset"]),
                str(f["field"]),
                str(f["rule"]),
            )
            out[key] = f
    return out


def _categories(scans: list[dict[str, Any]]) -> dict[str, dict[str, int | None]]:
    """Per category: people (summed over scans when several are given) and records."""
    out: dict[str, dict[str, int | None]] = {}
    for scan in scans:
        for cat, entry in scan["summary"].get("categories", {}).items():
            cur = out.setdefault(cat, {"subjects": 0, "records": 0})
            subj = (entry or {}).get("subjects")
            cur["subjects"] = (
                None if subj is None or cur["subjects"] is None else int(cur["subjects"]) + int(subj)
            )
            cur["records"] = int(cur["records"] or 0) + int((entry or {}).get("records") or 0)
    return out


def _row(key: FindingKey, f: dict[str, Any]) -> dict[str, Any]:
    return {
        "target": str(f.get("target") or key[0]),
        "dataset": key[1],
        "field": key[2],
        "rule": key[3],
        "category": f["category"],
        "records_matched": int(f["records_matched"]),
        "subjects_matched": f.get("subjects_matched"),
    }


def _delta(old: int | None, new: int | None) -> int | None:
    return None if old is None or new is None else new - old


def diff_scans(baseline: dict[str, Any], scans: list[dict[str, Any]]) -> dict[str, Any]:
    """Compare an older scan (baseline) with the current scans of the report."""
    # Only stores scanned both times can be compared; a store scanned for the first time did not "gain" data.
    base_keys = {target_key(t) for t in baseline.get("targets", [])}
    current = [s for s in scans if any(target_key(t) in base_keys for t in s.get("targets", []))]
    cur_keys = {target_key(t) for s in current for t in s.get("targets", [])}
    only_current = sorted(t for s in scans for t in s.get("targets", []) if target_key(t) not in base_keys)
    only_baseline = sorted(t for t in baseline.get("targets", []) if target_key(t) not in cur_keys)
    old, new = _findings([baseline]), _findings(current)
    appeared = [_row(k, new[k]) for k in sorted(new.keys() - old.keys())]
    gone = [_row(k, old[k]) for k in sorted(old.keys() - new.keys())]
    changed = []
    for k in sorted(old.keys() & new.keys()):
        o, n = old[k], new[k]
        if (o["records_matched"], o.get("subjects_matched")) != (
            n["records_matched"],
            n.get("subjects_matched"),
        ):
            row = _row(k, n)
            row["records_before"] = int(o["records_matched"])
            row["subjects_before"] = o.get("subjects_matched")
            row["records_change"] = int(n["records_matched"]) - int(o["records_matched"])
            row["subjects_change"] = _delta(o.get("subjects_matched"), n.get("subjects_matched"))
            changed.append(row)
    oc, nc = _categories([baseline]), _categories(current)
    categories = []
    for cat in sorted(oc.keys() | nc.keys()):
        o = oc.get(cat, {"subjects": 0, "records": 0})
        n = nc.get(cat, {"subjects": 0, "records": 0})
        change = _delta(o["subjects"], n["subjects"])
        if cat not in oc:
            direction = "new"
        elif cat not in nc or (n["subjects"] == 0 and n["records"] == 0):
            direction = "gone"
        elif change is None:
            direction = "unknown"
        else:
            direction = "up" if change > 0 else "down" if change < 0 else "same"
        categories.append(
            {
                "category": cat,
                "subjects_before": o["subjects"],
                "subjects_after": n["subjects"],
                "subjects_change": change,
                "records_before": o["records"],
                "records_after": n["records"],
                "records_change": _delta(o["records"], n["records"]),
                "direction": direction,
            }
        )
    return {
        "baseline": {
            "started_at": baseline["started_at"],
            "finished_at": baseline["finished_at"],
            "targets": list(baseline.get("targets", [])),
        },
        "current": {
            "finished_at": max((s["finished_at"] for s in scans), key=parse_time),
            "targets": [t for s in scans for t in s.get("targets", [])],
        },
        "appeared": appeared,
        "gone": gone,
        "changed": changed,
        "categories": categories,
        "summed_over_scans": len(current) > 1,
        "not_compared": {"only_in_current": only_current, "only_in_baseline": only_baseline},
    }
