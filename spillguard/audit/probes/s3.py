"""S3 buckets (and S3-compatible stores): what an outsider without credentials can list and read.

Read-only, a handful of requests: an unsigned ListObjectsV2, unsigned one-byte GETs of a few objects (found by
that listing, named by an inventory or the config, or found by an authenticated listing when the machine has
AWS credentials), and, with credentials, the bucket's ACL and policy as evidence (grants to AllUsers or
AuthenticatedUsers, policy statements for Principal "*", GetBucketPolicyStatus). The verdict comes from what
the anonymous requests achieved: an object read is `open-read`, a listing alone `open-metadata`, nothing
`protected`; a public ACL or policy is reported beside it (a public access block may neutralise it).
"""

from __future__ import annotations

import json
from typing import Any

from spillguard.audit.probes.base import ProbeContext, ProbeOutcome, Unreachable, mask_dataset_name
from spillguard.s3 import Location, client, credentials_label, describe, error_code, is_unreachable, location
from spillguard.targets import Target
from spillguard.verdicts import Verdict

MAX_READ_TRIES = 5  # objects an anonymous read is tried on
MAX_LISTED = 100  # keys one listing asks for
MAX_SHOWN = 20  # object names in the evidence (masked)
PUBLIC_GROUPS = {
    "http://acs.amazonaws.com/groups/global/AllUsers": "AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers": "AuthenticatedUsers",
}


def _call(fn: Any, target: Target, **kwargs: Any) -> tuple[Any, str | None]:
    """(response, None) or (None, error code); no answer at all raises Unreachable."""
    try:
        return fn(**kwargs), None
    except Exception as exc:  # noqa: BLE001 - every refusal is evidence, not a failure of the probe
        if is_unreachable(exc):
            raise Unreachable(f"{target.host}:{target.port}: {describe(exc)}") from exc
        return None, error_code(exc) or type(exc).__name__


def public_grants(acl: dict[str, Any] | None, what: str) -> list[str]:
    """Grants of an ACL to everyone or to every AWS account, as `what: GROUP PERMISSION`."""
    out = []
    for grant in (acl or {}).get("Grants", []):
        group = PUBLIC_GROUPS.get((grant.get("Grantee") or {}).get("URI", ""))
        if group:
            out.append(f"{what}: {group} {grant.get('Permission')}")
    return out


def public_statements(policy_text: str | None) -> list[str]:
    """Allow statements of a bucket policy whose principal is everyone, as `ACTIONS on RESOURCES`."""
    if not policy_text:
        return []
    try:
        doc = json.loads(policy_text)
    except ValueError:
        return []
    out = []
    statements = doc.get("Statement", [])
    for st in statements if isinstance(statements, list) else [statements]:
        principal = st.get("Principal")
        aws = principal.get("AWS") if isinstance(principal, dict) else None
        everyone = principal == "*" or aws == "*" or (isinstance(aws, list) and "*" in aws)
        if st.get("Effect") == "Allow" and everyone:
            actions = st.get("Action", [])
            resources = st.get("Resource", [])
            actions = actions if isinstance(actions, list) else [actions]
            resources = resources if isinstance(resources, list) else [resources]
            condition = " (with conditions)" if st.get("Condition") else ""
            out.append(f"{', '.join(map(str, actions))} on {', '.join(map(str, resources))}{condition}")
    return out


def _authenticated(loc: Location, target: Target, ctx: ProbeContext, evidence: dict[str, Any]) -> list[str]:
    """With the machine's credentials: the bucket's ACL and policy as evidence, and keys to try reading."""
    signed = client(loc, connect_timeout=ctx.timeout, read_timeout=ctx.timeout)
    acl, acl_error = _call(signed.get_bucket_acl, target, Bucket=loc.bucket)
    if acl_error is None:
        evidence["public_acl"] = public_grants(acl, "bucket")
    else:
        evidence["acl_error"] = acl_error
    status, status_error = _call(signed.get_bucket_policy_status, target, Bucket=loc.bucket)
    if status_error is None:
        evidence["policy_public"] = bool((status or {}).get("PolicyStatus", {}).get("IsPublic"))
    policy, policy_error = _call(signed.get_bucket_policy, target, Bucket=loc.bucket)
    if policy_error is None:
        evidence["public_policy_statements"] = public_statements((policy or {}).get("Policy"))
    elif policy_error != "NoSuchBucketPolicy":
        evidence["policy_error"] = policy_error
    block, block_error = _call(signed.get_public_access_block, target, Bucket=loc.bucket)
    if block_error is None:
        evidence["public_access_block"] = (block or {}).get("PublicAccessBlockConfiguration")
    page, list_error = _call(signed.list_objects_v2, target, Bucket=loc.bucket, Prefix=loc.prefix, MaxKeys=MAX_LISTED)
    if list_error is not None:
        evidence["authenticated_list_error"] = list_error
        return []
    keys = [str(o["Key"]) for o in (page or {}).get("Contents", []) if not str(o["Key"]).endswith("/")]
    for key in keys[:MAX_READ_TRIES]:
        acl, _ = _call(signed.get_object_acl, target, Bucket=loc.bucket, Key=key)
        evidence.setdefault("public_acl", []).extend(public_grants(acl, f"object {mask_dataset_name(key)}"))
    return keys


def probe(target: Target, ctx: ProbeContext) -> ProbeOutcome:
    loc = location(target.url)
    anon = client(loc, anonymous=True, connect_timeout=ctx.timeout, read_timeout=ctx.timeout)
    evidence: dict[str, Any] = {"bucket": loc.bucket}
    if loc.key:
        evidence["prefix"] = mask_dataset_name(loc.key)
    page, list_error = _call(anon.list_objects_v2, target, Bucket=loc.bucket, Prefix=loc.prefix, MaxKeys=MAX_LISTED)
    if list_error == "NoSuchBucket":
        evidence["reason"] = "no such bucket at this endpoint (its name could be claimed by anyone)"
        return ProbeOutcome(Verdict.ERROR, evidence, tls=target.tls)
    listed: list[str] = []
    evidence["anonymous_list"] = list_error is None
    if list_error is None:
        listed = [str(o["Key"]) for o in (page or {}).get("Contents", []) if not str(o["Key"]).endswith("/")]
        evidence["objects_listed"] = len(listed)
        evidence["listing_truncated"] = bool((page or {}).get("IsTruncated"))
        evidence["objects"] = [mask_dataset_name(k) for k in listed[:MAX_SHOWN]]
    else:
        evidence["anonymous_list_error"] = list_error
    label = credentials_label()
    found: list[str] = []
    if label is not None:
        evidence["credentials"] = label  # which identity looked at the ACL and policy (masked)
        found = _authenticated(loc, target, ctx, evidence)
    candidates: list[str] = []
    for key in [*listed, *(h for name in ctx.dataset_hints for h in (loc.prefix + name, name)), *found]:
        if key and not key.endswith("/") and key not in candidates:
            candidates.append(key)
    readable = None
    tried = 0
    for key in candidates[:MAX_READ_TRIES]:
        tried += 1
        _, read_error = _call(anon.get_object, target, Bucket=loc.bucket, Key=key, Range="bytes=0-0")
        if read_error in (None, "InvalidRange"):  # InvalidRange: an empty object, and the read was allowed
            readable = key
            break
    evidence["anonymous_reads_tried"] = tried
    public = bool(evidence.get("public_acl")) or bool(evidence.get("policy_public")) or bool(evidence.get("public_policy_statements"))
    if readable is not None:
        evidence["anonymous_read"] = mask_dataset_name(readable)
        evidence["reason"] = "an object is readable without credentials"
        verdict = Verdict.OPEN_READ
    elif list_error is None:
        evidence["reason"] = "anyone can list the bucket's objects without credentials" + (
            "; the objects tried refused anonymous reads" if tried else "")
        verdict = Verdict.OPEN_METADATA
    else:
        evidence["reason"] = "listing and reading refused without credentials" + (
            "; the ACL or policy grants public access that requests do not get (a public access block or a "
            "condition)" if public else "")
        if not tried:
            evidence["reason"] += "; no object key was known to try a read (give credentials or an inventory)"
        verdict = Verdict.PROTECTED
    return ProbeOutcome(verdict, evidence, tls=target.tls)
