"""S3 and S3-compatible object stores: how an `s3://` URL names a bucket, a key or prefix and an endpoint, and the
one place where clients are made and their errors are worded.

    s3://BUCKET                     every object of the bucket
    s3://BUCKET/PREFIX/             the objects under a prefix, named relative to it (like files in a folder)
    s3://BUCKET/KEY.jsonl.gz        one object
    ...?endpoint=http://HOST:PORT   an S3-compatible store (MinIO, Ceph, a test server) instead of AWS
    ...?region=eu-west-1            the signing region (default: the AWS configuration's, else us-east-1)

The endpoint is the URL's `endpoint` parameter, else `--endpoint-url` (written into the URL by the CLI, so results
name it), else `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, else AWS. It is part of the store key
(`s3://HOST:PORT/BUCKET`): two S3-compatible endpoints are two stores.

Credentials come from the standard AWS chain (environment, shared profile, SSO, instance or container role), in
whichever process reads: never from the URL, never in a task's arguments. An access key id is shown masked, a
secret never. boto3 is imported only when a client is made (the `s3` extra).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from spillguard.errors import UserError
from spillguard.targets import ParsedUrl, mask_url, parse_url

AWS_HOST = "s3.amazonaws.com"
ENDPOINT_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True, slots=True)
class Location:
    """Where an `s3://` URL points: a bucket, a key (one object, or a prefix) and the endpoint serving it."""

    bucket: str
    key: str  # as written after the bucket ('' for the whole bucket)
    endpoint_url: str | None  # None: AWS
    region: str | None

    @property
    def shown(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def prefix(self) -> str:
        """The key as a folder: '' or ending in '/'."""
        return self.key if not self.key or self.key.endswith("/") else self.key + "/"

    def object_url(self, key: str) -> str:
        """How messages name one object."""
        return f"s3://{self.bucket}/{key}"


def _endpoint_url(parsed: ParsedUrl) -> str | None:
    given = parsed.params().get("endpoint") or next((os.environ[v] for v in ENDPOINT_ENV if os.environ.get(v)), None)
    return given.rstrip("/") if given else None


def _check(parsed: ParsedUrl, url: str) -> None:
    shown = mask_url(url)
    written = url.partition("://")[2]
    # A secret key holding "/" (AWS's do) ends the authority early: "KEY:9/abc...@bucket/" reads as host "KEY", port
    # 9 and a path with an "@". A bucket name never holds ":", so that is credentials too, shown without them.
    slashed = parsed.raw.hostinfo != parsed.host and "@" in written
    if parsed.user is not None or parsed.password is not None or slashed:
        if slashed:
            shown = f"s3://***@{written.rpartition('@')[2]}"
        raise UserError(f"target {shown}: credentials do not belong in an s3:// URL; use the AWS environment "
                        "variables, a profile (AWS_PROFILE) or the machine's role")  # fmt: skip
    if parsed.raw.hostinfo != parsed.host or not _BUCKET.fullmatch(parsed.host):
        raise UserError(f"target {shown}: {parsed.raw.hostinfo!r} is not a bucket name (3-63 lower-case letters, digits, "
                        "'.' and '-'); write s3://BUCKET/PREFIX and give the store's address with --endpoint-url")  # fmt: skip


def endpoint(parsed: ParsedUrl) -> tuple[str, int, bool]:
    """The network endpoint (host, port, TLS) serving an `s3://` URL: the target registry's `endpoint` column.
    A malformed URL or endpoint is a `UserError` of one line."""
    url = f"s3://{parsed.raw.hostinfo}{parsed.path}"  # messages leave the query out: an endpoint may hold a password
    _check(parsed, url)
    given = _endpoint_url(parsed)
    if given is None:
        return AWS_HOST, 443, True
    parts = urlsplit(given)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or port == -1 or parts.path.strip("/"):
        raise UserError(f"target {mask_url(url)}: endpoint {mask_url(given)!r} is not http(s)://HOST[:PORT]; "
                        "give the S3 API address, e.g. --endpoint-url http://127.0.0.1:9000")  # fmt: skip
    tls = parts.scheme == "https"
    return parts.hostname.lower(), port or (443 if tls else 80), tls


def location(url: str) -> Location:
    """The bucket, key and endpoint of an `s3://` URL (validated)."""
    parsed = parse_url(url)
    endpoint(parsed)  # validates
    key = parsed.path[1:] if parsed.path.startswith("/") else parsed.path
    return Location(parsed.host, key, _endpoint_url(parsed), parsed.params().get("region") or None)


def with_endpoint(url: str, endpoint_url: str | None) -> str:
    """`url` with the endpoint written into it when it is an `s3://` URL without one of its own: from
    `endpoint_url` (--endpoint-url), else the AWS_ENDPOINT_URL variables. Results then name the endpoint, so
    their store keys do not depend on the environment of whoever reads them. Other URLs pass unchanged."""
    if not url.lower().startswith("s3://"):
        return url
    given = endpoint_url or next((os.environ[v] for v in ENDPOINT_ENV if os.environ.get(v)), None)
    if not given or "endpoint=" in url.partition("?")[2]:
        return url
    joined = f"{url}{'&' if '?' in url else '?'}endpoint={quote(given.rstrip('/'), safe=':/')}"
    location(joined)  # a bad endpoint is one line now
    return joined


# ------------------------------------------------------------------------------------------ clients


def client(loc: Location, *, anonymous: bool = False, connect_timeout: float = 10.0, read_timeout: float = 60.0) -> Any:
    """A boto3 S3 client for `loc`: credentials from the AWS chain, or none at all (`anonymous`: unsigned
    requests, as an outsider sends them). Few retries: the scan's own retry budget rides out outages."""
    try:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config
    except ModuleNotFoundError:
        raise UserError(f"{loc.shown}: reading S3 needs boto3; install it with: pip install 'spillguard[s3]'") from None
    options: dict[str, Any] = {
        "connect_timeout": connect_timeout, "read_timeout": read_timeout,
        "retries": {"max_attempts": 2, "mode": "standard"},
        "user_agent_extra": "spillguard",
    }  # fmt: skip
    if loc.endpoint_url is not None:
        options["s3"] = {"addressing_style": "path"}  # S3-compatible stores rarely serve bucket sub-domains
    if anonymous:
        options["signature_version"] = UNSIGNED
    session = boto3.session.Session()
    region = loc.region or session.region_name or "us-east-1"
    return session.client("s3", endpoint_url=loc.endpoint_url, region_name=region, config=Config(**options))


def credentials_label() -> str | None:
    """The access key id the AWS chain would sign with, masked (`AKIA…(20 chars)`); None without credentials."""
    try:
        import boto3

        found = boto3.session.Session().get_credentials()
    except Exception:  # noqa: BLE001 - a broken profile is the same as none here: anonymous checks only
        return None
    if found is None:
        return None
    from spillguard.detect.masking import mask_secret

    return mask_secret(found.access_key or "")


def credentials_secrets() -> list[str]:
    """The chain's secret parts, for scrubbing messages (never shown, never stored)."""
    try:
        import boto3

        found = boto3.session.Session().get_credentials()
    except Exception:  # noqa: BLE001
        return []
    if found is None:
        return []
    return [s for s in (found.secret_key, found.token, found.access_key) if s]


def error_code(exc: BaseException) -> str | None:
    """The S3 error code of a botocore ClientError ('NoSuchBucket', 'AccessDenied', '412', ...), else None."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = (response.get("Error") or {}).get("Code")
    return str(code) if code else str((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or "") or None


CREDENTIAL_ERRORS = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
                               "TokenRefreshRequired", "InvalidSecurity", "AuthorizationHeaderMalformed"})  # fmt: skip
DENIED_ERRORS = frozenset({"AccessDenied", "AllAccessDisabled", "403", "AccountProblem"})
MISSING_ERRORS = frozenset({"NoSuchKey", "404", "NotFound"})
CHANGED_ERRORS = frozenset({"PreconditionFailed", "412"})


def is_unreachable(exc: BaseException) -> bool:
    """No answer from the endpoint (refused, timed out, unknown host)."""
    try:
        from botocore.exceptions import ConnectionClosedError, ConnectTimeoutError, EndpointConnectionError
    except ModuleNotFoundError:
        return False
    return isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ConnectionClosedError)


def is_transient(exc: BaseException) -> bool:
    """A failure a retry may cure: a dropped connection, a read timeout, throttling, a 5xx."""
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import (
            HTTPClientError,
            IncompleteReadError,
            ReadTimeoutError,
            ResponseStreamingError,
        )
        from urllib3.exceptions import ProtocolError
    except ModuleNotFoundError:
        return False
    # ResponseStreamingError, IncompleteReadError: the connection broke while a GET's body was being read.
    if isinstance(exc, BotoConnectionError | HTTPClientError | ReadTimeoutError | ProtocolError | ResponseStreamingError | IncompleteReadError):
        return True
    code = error_code(exc) or ""
    status = ((getattr(exc, "response", None) or {}).get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0
    return code in ("SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "503", "500") or int(status) >= 500


def describe(exc: BaseException) -> str:
    """One line about a failed request, scrubbed of every credential the chain holds."""
    code = error_code(exc)
    text = " ".join(str(exc).split()) or type(exc).__name__
    if code and code not in text:
        text = f"{code}: {text}"
    for secret in sorted(credentials_secrets(), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text[:300]


def request_error(loc: Location, what: str, exc: BaseException) -> UserError:
    """A failed request as one line naming the input and what to do (exit 2 when a scan starts)."""
    code = error_code(exc)
    where = f"s3://{loc.bucket}" + (f" at {loc.endpoint_url}" if loc.endpoint_url else "")
    if is_unreachable(exc):
        hint = "check --endpoint-url (or AWS_ENDPOINT_URL) and that the store is up"
        return UserError(f"{where}: cannot connect to the endpoint ({describe(exc)}); {hint}")
    if code == "NoSuchBucket":
        return UserError(f"{where}: no such bucket; check the bucket name and the endpoint")
    if code in CREDENTIAL_ERRORS:
        return UserError(f"{where}: the credentials were refused ({code}); check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE")
    if code in DENIED_ERRORS:
        return UserError(f"{where}: access denied to {what}; give credentials allowed to list and read it (s3:ListBucket, s3:GetObject)")
    try:
        from botocore.exceptions import NoCredentialsError, PartialCredentialsError
    except ModuleNotFoundError:
        return UserError(f"{where}: {what} failed ({describe(exc)})")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return UserError(f"{where}: no AWS credentials found; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE")
    return UserError(f"{where}: {what} failed ({describe(exc)})")
