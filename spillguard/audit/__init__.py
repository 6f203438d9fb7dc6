"""Exposure audit and watch: is a data store readable by anyone, what is at stake, and tell someone fast."""

from spillguard.audit.core import audit
from spillguard.audit.verdict import EXPOSED, AuditResult, ExposureVerdict, Verdict, exit_code_for

__all__ = ["EXPOSED", "AuditResult", "ExposureVerdict", "Verdict", "audit", "exit_code_for"]
