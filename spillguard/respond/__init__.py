"""Respond: from a scan of the exposed copy to revoked credentials, ended sessions, unlinked
integrations and a tamper-evident journal that proves each step (issue 11).

The names below load on first use (`spillguard/__init__.py` loads this package at every start)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spillguard.lazy import lazy_exports

if TYPE_CHECKING:
    from spillguard.respond.actions import Action, Context, Limits, Verification
    from spillguard.respond.journal import Journal, JournalCheck
    from spillguard.respond.steps import Step, StepOutcome, step_key

__getattr__ = lazy_exports(__name__, {
    "Action": "actions", "Context": "actions", "Limits": "actions", "Verification": "actions",
    "Journal": "journal", "JournalCheck": "journal", "Step": "steps", "StepOutcome": "steps", "step_key": "steps",
})  # fmt: skip

__all__ = ["Action", "Context", "Journal", "JournalCheck", "Limits", "Step", "StepOutcome", "Verification", "step_key"]
