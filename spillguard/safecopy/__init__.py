"""Safe copy: analytics copies that hold keyed pseudonyms instead of identifiers and no secrets,
written only to destinations an outsider cannot read, and proven by a scan afterwards.

    copy(source, destination, *, policy, mode="create", on_new=None, allow_exposed_destination=False,
         since=None, state=None, resume=False, workers=1, watch_config=None, ...)
        -> CopyResult (exit_code 1 when the proof failed)
    propose_policy(source, scan=None) -> str   (the TOML `spillguard policy init` writes)
    load_policy(path) -> Policy

The names load on first use, so registering the `copy` command loads no copy machinery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spillguard.lazy import lazy_exports

if TYPE_CHECKING:
    from spillguard.safecopy.policy import Policy, load_policy
    from spillguard.safecopy.propose import propose_policy
    from spillguard.safecopy.run import CopyResult, Verification, copy

__getattr__ = lazy_exports(__name__, {
    "Policy": "policy", "load_policy": "policy", "propose_policy": "propose",
    "CopyResult": "run", "Verification": "run", "copy": "run",
})  # fmt: skip

__all__ = ["CopyResult", "Policy", "Verification", "copy", "load_policy", "propose_policy"]
