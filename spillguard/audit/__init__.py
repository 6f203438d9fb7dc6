"""Exposure audit and watch: is a data store readable by anyone, what is at stake, and tell someone fast.

The names below load on first use, so registering the `audit` command loads no probe machinery."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spillguard.lazy import lazy_exports
from spillguard.verdicts import EXPOSED, Verdict

if TYPE_CHECKING:
    from spillguard.audit.core import audit
    from spillguard.audit.verdict import AuditResult, ExposureVerdict, exit_code_for

__getattr__ = lazy_exports(__name__, {
    "audit": "core", "AuditResult": "verdict", "ExposureVerdict": "verdict", "exit_code_for": "verdict",
})  # fmt: skip

__all__ = ["EXPOSED", "AuditResult", "ExposureVerdict", "Verdict", "audit", "exit_code_for"]
