"""Revoke leaked tokens at an OAuth 2 authorization server (RFC 7009) and prove it by introspection (RFC 7662).

Revocation is the *client's* endpoint: the server revokes a token only for the client it was issued to,
so each configured server names the client whose tokens it revokes, with its id and secret read from
environment variables (never from the playbook). Raw tokens are needed for the call, so an action gets
them at execution time from a `TokenSource` (a token table that keeps them, e.g. django-oauth-toolkit's
`oauth2_provider_accesstoken.token` looked up by its `token_checksum`, or an in-memory iterator) and keeps
them in memory only: steps, journal entries and messages carry SHA-256 digests and keyed fingerprints.

Scope `exact` revokes only tokens whose SHA-256 (or keyed fingerprint) is in the leaked set; `all` revokes
every token the source yields. After revoking, `verify` asks the server's own introspection endpoint:
a revoked token must come back `active: false`.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx

from spillguard.errors import UserError
from spillguard.keys import fingerprint
from spillguard.respond.actions import Context, Limits, Pacer, Verification, batches
from spillguard.respond.steps import Step, StepOutcome, step_key

Hint = Literal["access_token", "refresh_token"] | None
AuthMethod = Literal["client_secret_basic", "client_secret_post"]
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})


class OAuthError(Exception):
    """A revocation or introspection call failed for good (after retries); the message holds no token."""


class TransientError(Exception):
    """A 5xx/429 answer or a connection error: worth retrying after a pause."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class RawToken:
    value: str  # held in memory only, never written anywhere
    hint: Hint = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.value.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class OAuthServer:
    """One authorization server and the client whose tokens spillguard revokes there."""

    id: str
    revocation_url: str
    introspection_url: str | None = None
    client_id_env: str = "SPILLGUARD_OAUTH_CLIENT_ID"
    client_secret_env: str = "SPILLGUARD_OAUTH_CLIENT_SECRET"
    auth_method: AuthMethod = "client_secret_basic"
    # Separate credentials for introspection (a resource server's), when the server wants them.
    introspection_client_id_env: str | None = None
    introspection_client_secret_env: str | None = None
    per_second: float | None = 50.0  # calls a second; authorization servers rate-limit their endpoints
    timeout: float = 10.0

    def target(self) -> str:
        """The server as journals and messages name it: scheme, host and port only."""
        p = urlsplit(self.revocation_url)
        return f"{p.scheme}://{p.hostname}" + (f":{p.port}" if p.port else "")


def _credentials(id_env: str, secret_env: str, what: str) -> tuple[str, str]:
    missing = [v for v in (id_env, secret_env) if not os.environ.get(v)]
    if missing:
        raise UserError(f"{what}: set ${' and $'.join(missing)} to the OAuth client's id and secret")
    return os.environ[id_env], os.environ[secret_env]


class OAuthClient:
    """RFC 7009 / RFC 7662 calls on one keep-alive connection, paced, retried with backoff."""

    def __init__(self, server: OAuthServer, limits: Limits | None = None, *, http: httpx.Client | None = None) -> None:
        for url in filter(None, (server.revocation_url, server.introspection_url)):
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                raise UserError(f"oauth server {server.id}: {url!r} is not an http(s) URL; give the endpoint's full URL")
        self.server = server
        self.limits = limits or Limits()
        self.auth = _credentials(server.client_id_env, server.client_secret_env, f"oauth server {server.id}")
        self.introspection_auth = self.auth
        if server.introspection_client_id_env and server.introspection_client_secret_env:
            self.introspection_auth = _credentials(server.introspection_client_id_env,
                                                   server.introspection_client_secret_env,
                                                   f"oauth server {server.id} (introspection)")  # fmt: skip
        self.pacer = Pacer(server.per_second)
        self.http = http or httpx.Client(timeout=server.timeout, trust_env=False, headers={"User-Agent": "spillguard-respond/1"})
        self.calls = 0

    def close(self) -> None:
        self.http.close()

    def revoke(self, token: RawToken) -> None:
        """Revoke one token. RFC 7009: 200 whether or not the server knew it; anything else is an error."""
        data = {"token": token.value} | ({"token_type_hint": token.hint} if token.hint else {})
        resp = self._post(self.server.revocation_url, data, self.auth, "revocation")
        if resp.status_code != 200:
            raise OAuthError(f"{self.server.id}: revocation answered HTTP {resp.status_code} {_error_code(resp)}")

    def active(self, token: RawToken) -> bool:
        """Whether the server's introspection endpoint still calls the token active (RFC 7662)."""
        if not self.server.introspection_url:
            raise UserError(f"oauth server {self.server.id}: no introspection_url, so revocation cannot be verified; add it")
        data = {"token": token.value} | ({"token_type_hint": token.hint} if token.hint else {})
        resp = self._post(self.server.introspection_url, data, self.introspection_auth, "introspection")
        if resp.status_code != 200:
            raise OAuthError(f"{self.server.id}: introspection answered HTTP {resp.status_code} {_error_code(resp)}")
        try:
            body = resp.json()
        except ValueError:
            raise OAuthError(f"{self.server.id}: introspection did not answer JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("active"), bool):
            raise OAuthError(f"{self.server.id}: introspection answer has no boolean 'active' member")
        return body["active"]

    def _post(self, url: str, data: dict[str, str], auth: tuple[str, str], what: str) -> httpx.Response:
        if self.server.auth_method == "client_secret_post":
            data = data | {"client_id": auth[0], "client_secret": auth[1]}
            basic = None
        else:
            basic = auth
        delay = self.limits.backoff_s
        for attempt in range(self.limits.retries + 1):
            self.pacer.wait()
            self.calls += 1
            try:
                resp = self.http.post(url, data=data, auth=basic)  # type: ignore[arg-type]
                if resp.status_code not in TRANSIENT_STATUS:
                    return resp
                err = TransientError(f"{self.server.id}: {what} answered HTTP {resp.status_code}", _retry_after(resp))
            except httpx.TransportError as exc:
                err = TransientError(f"{self.server.id}: {what} at {self.server.target()} failed: {type(exc).__name__}")
            if attempt == self.limits.retries:
                raise OAuthError(f"{err} (after {attempt + 1} attempts)")
            time.sleep(min(max(delay, err.retry_after or 0.0), 60.0))
            delay *= 2
        raise AssertionError("unreachable")


def _retry_after(resp: httpx.Response) -> float | None:
    try:
        return float(resp.headers.get("Retry-After", ""))
    except ValueError:
        return None


def _error_code(resp: httpx.Response) -> str:
    # The RFC 6749 error code only: descriptions may echo request parameters.
    try:
        code = resp.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return f"({code})" if isinstance(code, str) and code.isascii() and len(code) < 60 else ""


# --- where the raw tokens come from ------------------------------------------------------------------


class TokenSource(Protocol):
    """Yields raw tokens at execution time. `digests` narrows to tokens whose SHA-256 is given (None: all)."""

    def tokens(self, digests: list[str] | None) -> Iterator[RawToken]: ...


class MemoryTokenSource:
    """Tokens handed over in memory (e.g. read from a partner export just before the response)."""

    def __init__(self, tokens: Iterable[RawToken | str]) -> None:
        self._tokens = [t if isinstance(t, RawToken) else RawToken(t) for t in tokens]

    def tokens(self, digests: list[str] | None) -> Iterator[RawToken]:
        if digests is None:
            yield from self._tokens
            return
        wanted = set(digests)
        yield from (t for t in self._tokens if t.sha256 in wanted)


class SqlTokenSource:
    """Raw tokens from a table that keeps them next to their SHA-256 (django-oauth-toolkit's
    `oauth2_provider_accesstoken(token, token_checksum)` and `_refreshtoken`, Authlib-style tables), through
    the response's own store connection (`respond.stores.SqlStore`: PostgreSQL, MySQL/MariaDB, SQLite).
    Exact scope reads only the leaked rows, by their digests, one `= ANY(…)`/`IN (…)` query per batch."""

    def __init__(self, url: str, table: str, *, token_column: str = "token", digest_column: str = "token_checksum",
                 hint: Hint = None, password_env: str | None = None, batch: int = 5_000, src: str = "oauth") -> None:  # fmt: skip
        self.url, self.table, self.token_column, self.digest_column = url, table, token_column, digest_column
        self.hint, self.password_env, self.batch, self.src = hint, password_env, batch, src
        self.store: Any = None

    def connect(self) -> None:
        from spillguard.respond.playbook import password_from
        from spillguard.respond.stores import SqlStore

        if self.store is None:
            self.store = SqlStore(self.url, password_from(self.password_env, self.src))
            self.store.require(self.table, [self.token_column, self.digest_column], self.src)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    def tokens(self, digests: list[str] | None) -> Iterator[RawToken]:
        self.connect()
        db = self.store
        col = db.q(self.token_column)
        # A blank token column means the server keeps digests only (RFC 9700 storage): nothing to send.
        base = f"SELECT {col} FROM {db.q(self.table)} WHERE {col} IS NOT NULL AND {col} <> ''"
        if digests is None:
            yield from (RawToken(r[0], self.hint) for r in db.query(base))
            return
        for chunk in batches(digests, db.max_batch(self.batch)):
            where, args = db.member(self.digest_column, chunk)
            yield from (RawToken(r[0], self.hint) for r in db.query(f"{base} AND {where}", args))


# --- the playbook action ---------------------------------------------------------------------------


class OAuthRevocation:
    """Revoke leaked tokens at one authorization server; verify each by the server's own introspection.

    Playbook (`kind = "oauth"`): `revocation_url`, `introspection_url`, the client's `client_id_env` and
    `client_secret_env`, and where the raw tokens are read at execution time: `store` + `table` (+
    `token_column`, `digest_column`, `token_type_hint`). From Python, `source=` can hand tokens over in memory.
    `verify_by = "store"` for tokens the server cannot introspect (django-oauth-toolkit's refresh tokens): verify
    then says so instead of counting an "inactive" answer that the server gives for any unknown token.
    """

    KEYS: dict[str, Any] = {
        "revocation_url": str, "introspection_url": str, "client_id_env": str, "client_secret_env": str,
        "introspection_client_id_env": str, "introspection_client_secret_env": str, "auth_method": str,
        "per_second": (int, float), "timeout_s": (int, float), "match": str, "rules": list,
        "table": str, "token_column": str, "digest_column": str, "token_type_hint": str, "verify_by": str,
    }  # fmt: skip
    kind = "oauth"

    def __init__(self, settings: dict[str, Any], src: str = "oauth", *, source: TokenSource | None = None,
                 client: OAuthClient | None = None) -> None:  # fmt: skip
        self.settings, self.src = settings, src
        self.id: str = settings["id"]
        self.scope: str | None = settings.get("scope")  # None: the context's
        url = settings.get("revocation_url")
        if not url:
            raise UserError(f"{src}: `revocation_url` is required (the server's RFC 7009 endpoint)")
        auth = settings.get("auth_method", "client_secret_basic")
        if auth not in ("client_secret_basic", "client_secret_post"):
            raise UserError(f"{src}: auth_method = {auth!r}; use client_secret_basic or client_secret_post")
        hint = settings.get("token_type_hint")
        if hint not in (None, "access_token", "refresh_token"):
            raise UserError(f"{src}: token_type_hint = {hint!r}; use access_token or refresh_token")
        self.match: str = settings.get("match", "sha256")
        if self.match not in ("sha256", "fingerprint"):
            raise UserError(f"{src}: match = {self.match!r}; use sha256 or fingerprint")
        self.rules: list[str] | None = settings.get("rules")
        self.verify_by: str = settings.get("verify_by", "introspection")
        if self.verify_by not in ("introspection", "store"):
            raise UserError(f"{src}: verify_by = {self.verify_by!r}; use introspection or store")
        self.server = OAuthServer(
            id=self.id, revocation_url=url, introspection_url=settings.get("introspection_url"),
            client_id_env=settings.get("client_id_env", "SPILLGUARD_OAUTH_CLIENT_ID"),
            client_secret_env=settings.get("client_secret_env", "SPILLGUARD_OAUTH_CLIENT_SECRET"), auth_method=auth,
            introspection_client_id_env=settings.get("introspection_client_id_env"),
            introspection_client_secret_env=settings.get("introspection_client_secret_env"),
            per_second=settings.get("per_second", 50.0), timeout=float(settings.get("timeout_s", 10.0)),
        )  # fmt: skip
        self.target = self.server.target()
        if source is None:
            store, table = settings.get("store"), settings.get("table")
            if not store or not table:
                raise UserError(f"{src}: `store` and `table` are required: the token table that keeps the raw tokens "
                                "(e.g. django-oauth-toolkit's oauth2_provider_accesstoken)")  # fmt: skip
            source = SqlTokenSource(store, table, token_column=settings.get("token_column", "token"),
                                    digest_column=settings.get("digest_column", "token_checksum"), hint=hint,
                                    password_env=settings.get("password_env"), src=src)  # fmt: skip
        self.source = source
        self._client = client
        # digest -> raw token, for this process only: what plan found, so execute and verify need not read again.
        self._held: dict[str, RawToken] = {}

    @property
    def client(self) -> OAuthClient:
        if self._client is None:
            self._client = OAuthClient(self.server)
        return self._client

    def connect(self) -> None:
        """Bad configuration as one line before anything changes: credentials, URLs, the token table's columns."""
        _ = self.client
        if isinstance(self.source, SqlTokenSource):
            self.source.connect()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if isinstance(self.source, SqlTokenSource):
            self.source.close()
        self._held.clear()

    def _scope(self, ctx: Context) -> str:
        return self.scope or ctx.scope

    def _candidates(self, ctx: Context) -> dict[str, RawToken]:
        """digest -> raw token for every token in scope, read from the source now."""
        if self._scope(ctx) == "all":
            return {t.sha256: t for t in self.source.tokens(None)}
        if not len(ctx.leaked):
            raise UserError(f"{self.src}: scope exact needs `leaked` (the file `scan --secrets-out` wrote), or use scope all")
        if self.match == "fingerprint":
            leaked_fp = set(ctx.leaked.digests("fingerprint", self.rules))
            return {t.sha256: t for t in self.source.tokens(None) if fingerprint(ctx.key, t.value) in leaked_fp}
        leaked = ctx.leaked.digests("sha256", self.rules)
        return {t.sha256: t for t in self.source.tokens(leaked)} if leaked else {}
    def plan(self, ctx: Context) -> list[Step]:
        self._held.update(self._candidates(ctx))
        digests = sorted(self._held)
        steps = []
        size = min(ctx.limits.batch, 500)  # one step is at most a few seconds of HTTP calls
        for batch in batches(digests, size):
            steps.append(Step(
                key=step_key(ctx.incident, self.id, batch), action=self.id,
                description=f"revoke {len(batch)} token(s) at {self.server.target()} (RFC 7009)",
                count=len(batch), payload=tuple(batch),
            ))  # fmt: skip
        return steps

    def execute(self, ctx: Context, step: Step) -> StepOutcome:
        missing = [d for d in step.payload if d not in self._held]
        if missing:  # a fresh process (a rerun): read the raw values of this step's tokens again
            self._held.update({t.sha256: t for t in self.source.tokens(list(missing))})
        done = failed = gone = 0
        problems: list[str] = []
        for digest in step.payload:
            token = self._held.get(digest)
            if token is None:
                gone += 1  # no longer in the store (revoked by an earlier run): nothing to send
                continue
            if ctx.dry_run:
                continue
            try:
                self.client.revoke(token)
                done += 1
            except OAuthError as exc:
                failed += 1
                if len(problems) < 3:
                    problems.append(f"{fingerprint(ctx.key, token.value)}: {exc}")
        detail = f"revoked {done}" + (f", {gone} already gone from the source" if gone else "")
        if failed:
            detail += f", {failed} failed: " + "; ".join(problems)
        return StepOutcome(done=done + gone, failed=failed, detail=detail)

    def verify(self, ctx: Context) -> Verification:
        if self.verify_by == "store":
            # The server's introspection cannot see these tokens (django-oauth-toolkit introspects access tokens
            # only, and answers inactive for anything else): claiming them verified would be a false proof.
            return Verification(action=self.id, checked=0, still_active=0, details=[
                f"not verified by introspection at {self.target} (verify_by = \"store\"): check the token table "
                "with a sql-tokens action"])  # fmt: skip
        tokens = dict(self._held)
        tokens.update(self._candidates(ctx))  # tokens the source still yields are checked too
        still: list[str] = []
        for token in tokens.values():
            if self.client.active(token):
                still.append(fingerprint(ctx.key, token.value))
        details = [f"still active at {self.server.target()}: {fp}" for fp in still[:20]]
        if len(still) > 20:
            details.append(f"… and {len(still) - 20} more")
        return Verification(action=self.id, checked=len(tokens), still_active=len(still), details=details)
