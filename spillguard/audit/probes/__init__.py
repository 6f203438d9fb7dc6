"""One probe per protocol: `probe(target, ctx) -> ProbeOutcome`, acting as an anonymous outsider, read-only.

Which module probes which store kind is a column of the target registry (`spillguard.targets.SCHEMES`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from spillguard.audit.probes.base import ProbeContext, ProbeOutcome, Unreachable
from spillguard.targets import probe_module

Probe = Callable[..., ProbeOutcome]


def probe_for(protocol: str) -> Probe:
    # Imported lazily so a missing optional client only breaks its own protocol.
    return importlib.import_module(probe_module(protocol)).probe  # type: ignore[no-any-return]


__all__ = ["Probe", "ProbeContext", "ProbeOutcome", "Unreachable", "probe_for"]
