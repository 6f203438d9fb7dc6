"""Respond: from a scan of the exposed copy to revoked credentials, ended sessions, unlinked
integrations and a tamper-evident journal that proves each step (issue 11)."""

from spillguard.respond.actions import Action, Context, Limits, Verification
from spillguard.respond.journal import Journal, JournalCheck
from spillguard.respond.steps import Step, StepOutcome, step_key

__all__ = ["Action", "Context", "Journal", "JournalCheck", "Limits", "Step", "StepOutcome", "Verification", "step_key"]
