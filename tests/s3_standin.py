"""An S3 API server for tests: moto's S3 backend, served on a loopback port, with access control as S3 enforces it.

No real S3 can run here; moto's server speaks the S3 API (listing, ranged GETs, If-Match, ACLs, bucket
policies, policy status, public access blocks) but lets every caller in. This stand-in closes that gap:

* signed requests are checked by moto's own IAM layer: the access key must belong to the one IAM user the
  stand-in creates (its key and secret are printed on start), and the SigV4 signature must match
  (InvalidAccessKeyId, SignatureDoesNotMatch otherwise);
* unsigned (anonymous) requests are judged from the bucket's stored configuration, as S3 does: an explicit
  Deny of a bucket policy statement for Principal "*" wins; then an Allow for "*", or a grant to AllUsers in
  the bucket ACL (listing, reading the ACL) or the object's ACL (reading the object); a public access block
  drops public ACLs (IgnorePublicAcls) or public policies (RestrictPublicBuckets). Statements with
  conditions are not evaluated (they never open anything here). Anonymous writes are refused. moto judges an
  anonymous HEAD by an action S3 does not have (s3:HeadObject); the stand-in asks it the equivalent GET.

Run: `python -m tests.s3_standin PORT`; it prints one JSON line {"port", "access_key_id", "secret_access_key"}
when it listens. Requests are served one at a time (moto's auth switch is process-wide).
"""

from __future__ import annotations

import fnmatch
import json
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, unquote

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
OWNER = "spillguard-test-owner"
# subresource of a GET on a bucket -> (action, ACL permission that grants it; None: only a policy does)
BUCKET_READS: dict[str, tuple[str, str | None]] = {
    "": ("s3:ListBucket", "READ"),
    "acl": ("s3:GetBucketAcl", "READ_ACP"),
    "policy": ("s3:GetBucketPolicy", None),
    "policyStatus": ("s3:GetBucketPolicyStatus", None),
    "location": ("s3:GetBucketLocation", None),
}
OBJECT_READS: dict[str, tuple[str, str | None]] = {"": ("s3:GetObject", "READ"), "acl": ("s3:GetObjectAcl", "READ_ACP")}
LIST_PARAMS = {"list-type", "prefix", "delimiter", "max-keys", "continuation-token", "start-after", "marker",
               "encoding-type", "fetch-owner"}  # fmt: skip


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _public_principal(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, dict):
        return "*" in _as_list(principal.get("AWS", []))
    return False


def policy_effect(policy: bytes | str | None, action: str, resource: str) -> str | None:
    """'Deny', 'Allow' or None: what a bucket policy says to an anonymous caller about one action on one resource."""
    if not policy:
        return None
    doc = json.loads(policy)
    effects = set()
    for st in _as_list(doc.get("Statement", [])):
        if not _public_principal(st.get("Principal")) or st.get("Condition"):
            continue
        actions = [a.lower() for a in _as_list(st.get("Action", []))]
        resources = _as_list(st.get("Resource", []))
        if any(fnmatch.fnmatchcase(action.lower(), a) for a in actions) and any(fnmatch.fnmatchcase(resource, r) for r in resources):
            effects.add(st.get("Effect"))
    return "Deny" if "Deny" in effects else "Allow" if "Allow" in effects else None


def acl_grants(acl: Any, permission: str) -> bool:
    """Whether an ACL grants `permission` (or FULL_CONTROL) to AllUsers."""
    if acl is None:
        return False
    for grant in acl.grants:
        if any(g.uri == ALL_USERS for g in grant.grantees) and (permission in grant.permissions or "FULL_CONTROL" in grant.permissions):
            return True
    return False


def anonymous_allowed(backend: Any, method: str, path: str, query: dict[str, list[str]]) -> bool | None:
    """Whether S3 would serve an unsigned request; None when the bucket does not exist (moto answers that)."""
    bucket_name, _, key = path.lstrip("/").partition("/")
    if not bucket_name:
        return False  # ListBuckets needs an identity
    bucket = backend.buckets.get(bucket_name)
    if bucket is None:
        return None
    if method not in ("GET", "HEAD"):
        return False
    sub = [q for q in query if q not in LIST_PARAMS and q not in ("versionId", "partNumber")]
    if len(sub) > 1:
        return False
    table = OBJECT_READS if key else BUCKET_READS
    found = table.get(sub[0] if sub else "")
    if found is None:
        return False
    action, permission = found
    block = bucket.public_access_block
    resource = f"arn:aws:s3:::{bucket_name}" + (f"/{unquote(key)}" if key else "")
    effect = policy_effect(bucket.policy, action, resource)
    if effect == "Deny":
        return False
    if effect == "Allow" and not (block and block.restrict_public_buckets):
        return True
    if permission is None or (block and block.ignore_public_acls):
        return False
    if not key:
        return acl_grants(bucket.acl, permission)
    obj = bucket.keys.get(unquote(key))
    return obj is None or acl_grants(obj.acl, permission)  # a missing key: S3 says 403 or 404 by ListBucket; moto says 404


DENIED = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message>'
          b"<RequestId>standin</RequestId></Error>")  # fmt: skip


class AccessControl:
    """WSGI middleware in front of moto: anonymous requests judged from the bucket's configuration, signed ones
    checked by moto's IAM layer."""

    def __init__(self, app: Callable[..., Iterable[bytes]], backend: Any) -> None:
        self.app = app
        self.backend = backend
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        from moto import settings

        signed = "HTTP_AUTHORIZATION" in environ or "X-Amz-Signature" in environ.get("QUERY_STRING", "")
        with self.lock:
            if not signed:
                query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
                allowed = anonymous_allowed(self.backend, environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/"), query)
                if allowed is False:
                    start_response("403 Forbidden", [("Content-Type", "application/xml"), ("Content-Length", str(len(DENIED)))])
                    return [DENIED]
            previous = settings.INITIAL_NO_AUTH_ACTION_COUNT
            head = not signed and environ["REQUEST_METHOD"] == "HEAD"
            if not signed:
                settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")  # judged above; moto's IAM layer needs a signature
            if head:
                # moto judges an anonymous HEAD by "s3:HeadObject", an action S3 does not have (HEAD needs
                # s3:GetObject): ask it as the GET it stands for, and send the headers only.
                environ = {**environ, "REQUEST_METHOD": "GET"}
            try:
                body = list(self.app(environ, start_response))
                return [] if head else body
            finally:
                settings.INITIAL_NO_AUTH_ACTION_COUNT = previous


def build() -> tuple[AccessControl, str, str]:
    """The served application and the owner's access key id and secret."""
    from moto import settings
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.iam.models import iam_backends
    from moto.s3.models import s3_backends
    from moto.server import create_backend_app

    iam = iam_backends[DEFAULT_ACCOUNT_ID]["aws"]
    iam.create_user("us-east-1", OWNER)
    iam.put_user_policy(OWNER, "everything", json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"}]}))  # fmt: skip
    key = iam.create_access_key(OWNER)
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0  # every signed request is checked from now on
    app = create_backend_app("s3")
    return AccessControl(app, s3_backends[DEFAULT_ACCOUNT_ID]["aws"]), key.access_key_id, key.secret_access_key


def main(port: int) -> None:
    from werkzeug.serving import make_server

    app, key_id, secret = build()
    server = make_server("127.0.0.1", port, app, threaded=True)
    print(json.dumps({"port": port, "access_key_id": key_id, "secret_access_key": secret}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]))
