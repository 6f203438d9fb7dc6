"""The GDPR drafts: consequences and measures, the Art. 33 notification to the authority and the Art. 34
notices to people, worded from the category and verdict registries and the report's numbers."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from spillguard import categories as cq
from spillguard.report.counts import CategoryRow, Count, combine_disjoint
from spillguard.report.exposure import TargetExposure
from spillguard.report.times import human, iso, parse_time
from spillguard.verdicts import is_exposed, plain_exposure

if TYPE_CHECKING:
    from spillguard.report.document import Report

CONTACT_PLACEHOLDER = "[name, role, e-mail and phone of the data protection officer or other contact point]"


def consequence_rows(categories: list[CategoryRow]) -> list[dict[str, Any]]:
    return [
        {
            "category": c.category,
            "label": c.label,
            "risk": c.risk,
            "subjects": c.subjects,
            "special_category": c.special_category,
            "consequences": list(cq.category(c.category).consequences),
        }
        for c in categories
    ]


def measures(present: set[str], combos: list[dict[str, Any]], exposure: list[TargetExposure]) -> list[str]:
    out: list[str] = []
    for e in exposure:
        if any(w.ongoing for w in e.windows):
            unscanned = (
                "" if e.scanned else " It has not been scanned: scan it to learn what personal data it holds."
            )
            if is_exposed(e.current_verdict):
                state = f"is still exposed ({e.current_verdict}) at the last check, {human(e.last_checked)}"
            else:
                state = (
                    f"was exposed and is not confirmed closed (last check {human(e.last_checked)}: "
                    f"{e.current_verdict})"
                )
            out.append(
                f"URGENT: {e.target} {state}. Close it first: require authentication or block public access, "
                f"then confirm with `spillguard audit`.{unscanned}"
            )
    out += list(cq.GENERAL_MEASURES)
    for cat in sorted(present, key=lambda c: (-cq.risk_rank(c), c)):
        for m in cq.category(cat).measures:
            if m not in out:
                out.append(m)
    for c in combos:
        if c["measure"] not in out:
            out.append(c["measure"])
    return out




def art33(r: Report, generated: datetime) -> dict[str, Any]:
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
        f"{c.label}: {c.subjects.approx} people ({c.records.approx} records)"
        + (" — special category, Art. 9" if c.special_category else "")
        for c in sc["categories"]
    ]
    cons = []
    for c in sc["categories"]:
        for text in cq.category(c.category).consequences:
            cons.append(f"{c.label}: {text}")
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
                f"{human(e.windows[-1].end)} (last checked {human(e.last_checked)})."
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
            f"Earliest evidence in these inputs: {human(first_evidence)}. If the organisation became aware "
            f"then, the 72-hour deadline of Art. 33(1) ends {human(iso(deadline))}. "
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


def art34(r: Report) -> list[dict[str, Any]]:
    groups: dict[str, list[CategoryRow]] = defaultdict(list)
    for c in r.scope["categories"]:
        groups[c.group].append(c)
    exp = r.summary["exposure"]
    if exp["status"] in ("closed", "ongoing"):
        how = plain_exposure(exp["verdict"]) or "it could be reached over the internet without proper protection"
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
        cat_names = {c.category for c in cats}
        risk = cq.risk_of(cat_names)
        combos = [
            c for c in r.scope["combinations"] if set(c["categories"]) & cat_names and c["risk"] == "high"
        ]
        if combos:
            risk = "high"
        # The first consequence of a category is the one about the person; the rest concern the organisation.
        consequences = [cq.CATEGORIES[c.category].consequences[0] for c in cats if c.category in cq.CATEGORIES]
        consequences += [c["consequence"] for c in combos]
        advice: list[str] = []
        for c in cats:
            for a in cq.category(c.category).advice:
                if a not in advice and not a.startswith("No action"):
                    advice.append(a)
        if not advice:
            advice.append(
                "You do not need to do anything; we are telling you so that you know what happened."
            )
        if exp["status"] == "closed":
            measures = [
                f"We closed public access to the database on {human(exp['end'])} and checked that it is now protected."
            ]
        elif exp["status"] == "ongoing":
            measures = ["We are closing public access to the database and will check that it is protected."]
        else:
            measures = ["[Describe how the exposure was stopped and when.]"]
        for c in cats:
            if c.category in cq.CATEGORIES and cq.CATEGORIES[c.category].we_do not in measures:
                measures.append(cq.CATEGORIES[c.category].we_do)
        people = combine_disjoint([c.subjects for c in cats])
        cap = r.scope["people_affected"].high
        if cap is not None and people.high is not None and people.high > cap:
            # A group cannot hold more people than the breach itself.
            people = Count(people.low, max(cap, people.low or 0))
        out.append(
            {
                "group": gname,
                "title": group.title,
                "plain_title": group.plain_title,
                "categories": [c.category for c in cats],
                "labels": [c.label for c in cats],
                "people": people,
                "risk": risk,
                "required": risk == "high",
                "subject_line": f"Important: {group.plain_title} may have been exposed",
                "what_happened": what_happened,
                "what_data": "; ".join(c.label for c in cats) + ".",
                "consequences": consequences,
                "measures": measures,
                "advice": advice,
                "contact": r.contact or CONTACT_PLACEHOLDER,
            }
        )
    return out
