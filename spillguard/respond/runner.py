"""Plan, execute and verify a playbook: the only place that journals and decides what runs.

Everything that can be wrong with the input is found by `open_response` before any action runs.
`execute_response` journals an intent before and an outcome after every step, skips steps an earlier
run finished, and re-executes steps that were in flight when it died (every action is idempotent).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spillguard.errors import UserError
from spillguard.keys import fingerprint_key
from spillguard.leaked import LeakedSet
from spillguard.respond.actions import Context, Verification
from spillguard.respond.journal import Journal
from spillguard.respond.playbook import Playbook, check_leaked, connect_all, load_playbook
from spillguard.respond.steps import Step, StepOutcome
from spillguard.respond.subjects import Subjects
from spillguard.sources.store import one_line

CUTOFF_PREFIX = "cut-off "


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True)
class ActionPlan:
    id: str
    kind: str
    target: str
    scope: str
    steps: list[Step]
    done_before: int = 0  # steps an earlier run finished (skipped)
    notes: list[str] = field(default_factory=list)  # masked: what the action could not attribute or act on

    @property
    def count(self) -> int:
        return sum(s.count for s in self.steps)

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.id, "kind": self.kind, "target": self.target, "scope": self.scope, "count": self.count,
                "steps": len(self.steps), "steps_done_before": self.done_before,
                "descriptions": [s.description for s in self.steps[:5]], "notes": self.notes}


@dataclass(slots=True)
class Response:
    playbook: Playbook
    ctx: Context
    actions: list[ActionPlan] = field(default_factory=list)
    outcomes: dict[str, list[StepOutcome]] = field(default_factory=dict)
    verifications: list[Verification] = field(default_factory=list)
    seconds: float = 0.0

    def close(self) -> None:
        self.playbook.close()
        if self.ctx.journal is not None:
            self.ctx.journal.close()

    def plan_dict(self) -> dict[str, Any]:
        return {"incident": self.ctx.incident, "scope": self.ctx.scope, "leaked_secrets": len(self.ctx.leaked),
                "affected_people": len(self.ctx.subjects), "actions": [a.as_dict() for a in self.actions]}

    def execute_dict(self) -> dict[str, Any]:
        out = self.plan_dict()
        for a in out["actions"]:
            res = self.outcomes.get(a["action"], [])
            a["done"] = sum(o.done for o in res)
            a["failed"] = sum(o.failed for o in res)
        out["seconds"] = round(self.seconds, 3)
        out["journal"] = str(self.playbook.journal)
        return out

    def verify_dict(self) -> dict[str, Any]:
        return {"incident": self.ctx.incident, "scope": self.ctx.scope,
                "still_active": sum(v.still_active for v in self.verifications),
                "actions": [{"action": v.action, "checked": v.checked, "still_active": v.still_active, "details": v.details}
                            for v in self.verifications]}


def _cutoff(journal: Journal | None, incident: str) -> str:
    """The incident's cut-off: fixed by its first execute, so reruns move nothing further."""
    if journal is not None:
        for e in journal.entries(incident):
            if e.kind == "open" and e.detail.startswith(CUTOFF_PREFIX):
                return e.detail[len(CUTOFF_PREFIX):]
    return _now()


def open_response(playbook_path: str | Path, *, scope: str | None = None, execute: bool = False,
                  journal_path: str | Path | None = None, actor: str = "spillguard") -> Response:
    """Load and check everything (playbook, leaked set, subjects, credentials, stores, tables, columns)."""
    key = fingerprint_key()
    pb = load_playbook(playbook_path, scope=scope)
    if journal_path is not None:
        pb.journal = Path(journal_path)
    needs_leaked = any(getattr(a, "kind", "") in ("sql-tokens", "integrations") and a.scope == "exact" for a in pb.actions)
    if pb.leaked is None and needs_leaked:
        raise UserError(f"{pb.path}: scope exact needs `leaked` (the file `scan --secrets-out` wrote)")
    leaked = LeakedSet.load(pb.leaked, key) if pb.leaked is not None else LeakedSet.empty()
    subjects = Subjects.load(key, pb.subjects, leaked)
    check_leaked(pb, leaked)
    try:
        connect_all(pb)
        journal = None
        if execute or pb.journal.exists():
            if not pb.journal.parent.is_dir():
                raise UserError(f"{pb.journal}: its folder does not exist; fix `journal` in the playbook")
            journal = Journal(pb.journal, key, actor=actor)
    except BaseException:
        pb.close()
        raise
    ctx = Context(pb.incident, pb.scope, leaked, subjects, journal, key, pb.limits, dry_run=not execute, actor=actor,  # type: ignore[arg-type]
                  cutoff=_cutoff(journal, pb.incident))
    return Response(pb, ctx)


def plan_response(resp: Response) -> Response:
    """Read-only: every action's steps with exact counts; steps an earlier run finished are marked."""
    journal = resp.ctx.journal
    for action in resp.playbook.actions:
        steps = action.plan(resp.ctx)
        done = sum(1 for s in steps if journal is not None and journal.done(s.key))
        resp.actions.append(ActionPlan(action.id, action.kind, getattr(action, "target", ""), action.scope, steps, done,
                                       list(getattr(action, "notes", []))))
    return resp


def _safe_error(exc: BaseException) -> str:
    # Driver errors can quote row values (a raw-token key in a constraint message): first line, no DETAIL.
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return one_line(Exception(text))[:200]


def execute_response(resp: Response) -> Response:
    ctx = resp.ctx
    journal = ctx.journal
    if journal is None or ctx.dry_run:
        raise UserError("nothing changes without --execute")
    started = time.perf_counter()
    if not any(e.kind == "open" for e in journal.entries(ctx.incident)):
        journal.append("open", incident=ctx.incident, scope=ctx.scope, detail=CUTOFF_PREFIX + ctx.cutoff,
                       result=f"playbook {resp.playbook.path.name}")
    in_flight = journal.in_flight(ctx.incident)
    by_id = {a.id: a for a in resp.playbook.actions}
    for plan in resp.actions:
        action = by_id[plan.id]
        journal.append("plan", incident=ctx.incident, action=plan.id, target=plan.target, scope=plan.scope, count=plan.count,
                       detail="; ".join([f"{len(plan.steps):,} steps, {plan.done_before:,} finished before", *plan.notes])[:500])
        results = resp.outcomes.setdefault(plan.id, [])
        for step in plan.steps:
            if journal.done(step.key):
                continue
            journal.intent(step, incident=ctx.incident, target=plan.target, scope=plan.scope)
            try:
                outcome = action.execute(ctx, step)
            except Exception as exc:  # noqa: BLE001 - a failed step is journaled and reported, the rest go on
                outcome = StepOutcome(0, step.count, _safe_error(exc))
            if step.key in in_flight and not outcome.detail.endswith("(rerun)"):
                outcome.detail += " (rerun)"
            journal.outcome(step, outcome, incident=ctx.incident, target=plan.target, scope=plan.scope)
            results.append(outcome)
    planned = {s.key for p in resp.actions for s in p.steps}
    for entry in journal.entries(ctx.incident):
        # In flight when the last run died and nothing of it left now: its change was committed before the crash.
        if entry.kind == "intent" and entry.step_key in in_flight and entry.step_key not in planned:
            in_flight.discard(entry.step_key)
            journal.append("outcome", incident=ctx.incident, step_key=entry.step_key, action=entry.action, target=entry.target,
                           scope=entry.scope, count=entry.count, done=0, result="done",
                           detail="in flight when the last run stopped; none of its items is left now (its own "
                                  "count is unknown: the store's state, not this entry, is the proof)")
    resp.seconds = time.perf_counter() - started
    return resp


def verify_response(resp: Response) -> Response:
    ctx = resp.ctx
    for action in resp.playbook.actions:
        try:
            v = action.verify(ctx)
        except Exception as exc:  # noqa: BLE001 - an unverifiable action counts as not verified
            v = Verification(action.id, 0, 1, [f"could not verify: {_safe_error(exc)}"])
        resp.verifications.append(v)
        if ctx.journal is not None:
            ctx.journal.append("verify", incident=ctx.incident, action=action.id, target=getattr(action, "target", ""),
                               scope=action.scope, count=v.checked, failed=v.still_active,
                               result="still active" if v.still_active else "inactive", detail="; ".join(v.details)[:500])
    return resp
