"""What an exposure exposes: match scan inventories to audit targets and sum up people and categories."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spillguard.errors import UserError
from spillguard.targets import store_key


@dataclass(slots=True)
class Inventory:
    path: str
    doc: dict[str, Any]

    @property
    def targets(self) -> list[str]:
        return [str(t) for t in self.doc.get("targets", [])]

    @property
    def finished_at(self) -> str:
        return str(self.doc.get("finished_at") or "")


def load_inventory(path: str | Path) -> Inventory:
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise UserError(
            f"inventory {p}: no such file; give the JSON written by `spillguard scan --format json`"
        ) from None
    except (OSError, ValueError) as exc:
        raise UserError(
            f"inventory {p}: not readable JSON ({exc}); give a `spillguard scan --format json` file"
        ) from None
    if not isinstance(doc, dict) or doc.get("version") != 1 or not isinstance(doc.get("findings"), list):
        raise UserError(
            f"inventory {p}: not a version-1 scan inventory; write one with `spillguard scan --format json`"
        )
    return Inventory(str(p), doc)


def matches(inventory_target: str, key: str) -> bool:
    """An inventory target covers the audited store when both name the same store (`store_key`)."""
    return store_key(inventory_target) == key


def stakes_for(key: str, inventories: Iterable[Inventory]) -> dict[str, Any] | None:
    """Stakes of one target from the newest inventory that covers it; None when none does."""
    covering = [inv for inv in inventories if any(matches(t, key) for t in inv.targets)]
    if not covering:
        return None
    inv = max(covering, key=lambda i: i.finished_at)
    matching = [t for t in inv.targets if matches(t, key)]
    summary = inv.doc.get("summary") or {}
    if len(matching) == len(inv.targets):
        # The whole inventory is this target: its summary counts people exactly once.
        whole: dict[str, dict[str, Any]] = {
            k: {
                "subjects": v.get("subjects"),
                "records": int(v.get("records") or 0),
                "values": int(v.get("values") or 0),
            }
            for k, v in (summary.get("categories") or {}).items()
        }
        return {
            "subjects": summary.get("subjects_scanned") if whole else 0,
            "records": int(summary.get("records_scanned") or 0),
            "categories": whole,
        }
    # A multi-target inventory: rebuild this target's share from its findings. One person found in two
    # fields must not count twice, so per category we take the largest field, a lower bound.
    findings = [f for f in inv.doc.get("findings", []) if f.get("target") in matching]
    categories: dict[str, dict[str, Any]] = {}
    records_by_dataset: dict[str, int] = {}
    for f in findings:
        cat = categories.setdefault(f["category"], {"subjects": None, "records": 0, "values": 0})
        if f.get("subjects_matched") is not None:
            cat["subjects"] = max(cat["subjects"] or 0, int(f["subjects_matched"]))
        cat["records"] = max(cat["records"], int(f.get("records_matched") or 0))
        cat["values"] += int(f.get("values_matched") or 0)
        ds = f"{f.get('target')}|{f.get('dataset')}"
        records_by_dataset[ds] = max(records_by_dataset.get(ds, 0), int(f.get("records_scanned") or 0))
    subjects = [c["subjects"] for c in categories.values() if c["subjects"] is not None]
    return {
        "subjects": max(subjects) if subjects else (0 if not categories else None),
        "records": sum(records_by_dataset.values()),
        "categories": categories,
    }


def dataset_hints(key: str, inventories: Iterable[Inventory]) -> list[str]:
    """Dataset names the inventories saw on this target, for stores that cannot list their own."""
    names: list[str] = []
    for inv in inventories:
        matching = [t for t in inv.targets if matches(t, key)]
        for f in inv.doc.get("findings", []):
            ds = f.get("dataset")
            if f.get("target") in matching and ds and ds not in names:
                names.append(str(ds))
    return names
