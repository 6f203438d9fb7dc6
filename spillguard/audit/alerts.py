"""A watch alert as a notification: the headline, the people at stake, the chat card and the e-mail text.

An alert is a plain dict (see `watch.build_alert`): the masked target URL, verdicts, stakes and evidence,
never a credential. Sinks deliver that dict unchanged as the message's `fields`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from spillguard.notify import Fact, Message


def headline(alert: dict[str, Any]) -> str:
    who = alert.get("name") or alert["target"]
    old = alert.get("old_verdict") or "unknown"
    event = alert["event"]
    if event == "reminder":
        return f"{who} is still {alert['new_verdict']} (exposed since {alert.get('first_exposed_at')})"
    if event == "recovered":
        return f"{who} recovered: {old} → {alert['new_verdict']}"
    return f"{who}: {old} → {alert['new_verdict']}"


def stakes_line(alert: dict[str, Any]) -> str:
    s = alert.get("stakes")
    if not s:
        return "at stake: unknown (no inventory for this target)"
    cats = ", ".join(f"{k} ({v.get('subjects') if v.get('subjects') is not None else v.get('records')})"
                     for k, v in sorted(s.get("categories", {}).items()))  # fmt: skip
    people = s.get("subjects")
    return f"at stake: {people if people is not None else 'unknown'} people, {s.get('records')} records; {cats or 'no personal data found'}"


def alert_key(alert: dict[str, Any], since: str | None = None) -> str:
    """One notification, one key. A change of verdict is identified by when the new verdict began (`since`),
    so the alert retried on a later cycle after a failed delivery keeps its key; each reminder is its own."""
    when = alert.get("at") if alert["event"] == "reminder" or since is None else since
    parts = (alert["event"], alert["target"], alert.get("old_verdict"), alert["new_verdict"], when)
    return "watch-" + hashlib.sha256("\x1f".join(str(p or "") for p in parts).encode()).hexdigest()[:32]


def alert_message(alert: dict[str, Any], since: str | None = None) -> Message:
    """The alert as a notification; `since` is when the target's current verdict began (see `alert_key`)."""
    title = headline(alert)
    stakes = stakes_line(alert)
    body = (
        f"{title}\n\n{stakes}\nfirst seen exposed: {alert.get('first_exposed_at') or '-'}\n"
        f"checked at: {alert['at']}\n\nevidence:\n{json.dumps(alert.get('evidence', {}), indent=2, default=str)}\n"
    )
    facts = (
        Fact("target", alert["target"]),
        Fact("verdict", f"{alert.get('old_verdict') or 'unknown'} → {alert['new_verdict']}", short=True),
        Fact("first seen exposed", str(alert.get("first_exposed_at") or "-"), short=True),
        Fact("at stake", stakes),
        Fact("evidence", str(alert.get("evidence", {}).get("reason", ""))),
    )
    return Message(
        subject=title,
        body=body,
        fields=alert,
        key=alert_key(alert, since),
        at=alert.get("at"),
        urgent=bool(alert["event"] in ("exposed", "reminder") or alert.get("new_exposed")),
        facts=facts,
        variables={
            "event": alert["event"],
            "target": alert["target"],
            "old_verdict": alert.get("old_verdict") or "",
            "new_verdict": alert["new_verdict"],
        },
    )
