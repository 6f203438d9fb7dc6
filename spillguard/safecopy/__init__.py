"""Safe copy: analytics copies that hold keyed pseudonyms instead of identifiers and no secrets,
written only to destinations an outsider cannot read, and proven by a scan afterwards.

    copy(source, destination, *, policy, mode="create", on_new=None, allow_exposed_destination=False,
         since=None, state=None, resume=False, workers=1, watch_config=None, ...)
        -> CopyResult (exit_code 1 when the proof failed)
    propose_policy(source, scan=None) -> str   (the TOML `spillguard policy init` writes)
    load_policy(path) -> Policy
"""

from spillguard.safecopy.policy import Policy, load_policy
from spillguard.safecopy.propose import propose_policy
from spillguard.safecopy.run import CopyResult, Verification, copy

__all__ = ["CopyResult", "Policy", "Verification", "copy", "load_policy", "propose_policy"]
