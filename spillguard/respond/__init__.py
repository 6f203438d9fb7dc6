"""Respond: from a scan of the exposed copy to revoked credentials, ended sessions, unlinked
integrations and a tamper-evident journal that proves each step (issue 11)."""

from spillguard.respond.actions import Action, Context, Limits, Step, StepOutcome, Verification, step_key
from spillguard.respond.journal import Journal, JournalCheck

__all__ = ["Action", "Context", "Journal", "JournalCheck", "Limits", "Step", "StepOutcome", "Verification", "step_key"]
