"""Exposure audit and watch: is a data store readable by anyone, what is at stake, and tell someone fast."""

from spillguard.audit.core import audit
from spillguard.audit.verdict import AuditResult, ExposureVerdict, exit_code_for
from spillguard.verdicts import EXPOSED, Verdict

__all__ = ["EXPOSED", "AuditResult", "ExposureVerdict", "Verdict", "audit", "exit_code_for"]
