"""Exposure windows: when each store was readable by outsiders, cut from audit runs and the watch history."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from spillguard.report.counts import (
    CatCounts,
    aggregate_categories,
    combinations,
    combine_disjoint,
    records_affected,
)
from spillguard.report.inputs import Observation, target_key
from spillguard.report.times import human, iso, parse_time
from spillguard.verdicts import Verdict, is_exposed, worse, worst


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
            if is_exposed(o.verdict):
                if open_start is None:
                    open_start, open_verdict, start_known = at, o.verdict, i > 0
                elif worse(o.verdict, open_verdict):
                    open_verdict = o.verdict
                last_exposed = at
            elif open_start is not None and o.verdict == Verdict.PROTECTED:
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



def window_summary(
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
    verdict = worst(w.verdict for w in windows)
    day_start = parse_time(start_w.start).strftime("%-d %B %Y")
    if ongoing:
        state = "still exposed at the last check" if confirmed_open else "not confirmed closed"
        text = (
            f"Scanned stores exposed {since} {human(start_w.start)}; {state} "
            f"(last seen exposed {human(iso(end_dt))})."
        )
        plain = f"It was reachable {'since at least' if not start_w.start_known else 'since'} {day_start}."
    else:
        text = (
            f"Scanned stores exposed {since} {human(start_w.start)} until {human(end)} ({hours:,} hours)."
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



def breach_scope(
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
        "records_affected": records_affected([by_target[t] for t in chosen], sub_cats),
        "categories": aggregate_categories(sub_cats),
        "combinations": combinations([f for f in fields if f["target"] in chosen]),
    }

