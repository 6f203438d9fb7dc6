"""Real authorization servers and a recording SMTP server for the respond tests.

Each is started by the tests on a free 127.0.0.1 port with a temporary directory and torn down after:

    dot_server() -> AuthServer
        django-oauth-toolkit in a minimal Django project on a throwaway PostgreSQL: `/o/token/`,
        `/o/revoke_token/`, `/o/introspect/`. Two confidential applications: `user_client` (password grant:
        access + refresh tokens for a user, no browser needed) and `service_client` (client_credentials).
        `dsn` reaches the token tables (oauth2_provider_accesstoken.token_checksum = sha256 hex of the token).
    oidc_server() -> AuthServer
        the npm package oidc-provider (8.x, supports Node 20) with revocation, introspection and
        client_credentials enabled; one client that can also get a user's access + refresh token pair through
        an extension grant (tests/oidc_server.mjs). Installed by `npm install` into OIDC_CACHE (scripts/bootstrap
        does it on a fresh machine; the fixture does it when missing).
    smtp_server() -> SmtpRecorder
        aiosmtpd, recording every message (envelope and parsed headers); can refuse chosen recipients.
    mail_api_server() -> MailApi
        an HTTP e-mail provider endpoint (Resend-style `POST /emails`) that records requests and, like the
        real providers, answers a repeated `Idempotency-Key` with the first response instead of sending again.

The pytest fixtures `dot`, `oidc` (session scope), `smtp` and `mail_api` wrap them. `AuthServer.introspect`
asks the server directly (plain httpx), so a test's verdict does not depend on spillguard's own client.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import HOST, _process, _tempdir, free_port, postgres_server, require_binary

OIDC_PROVIDER_VERSION = "8.8.1"  # the last major that supports Node 20 (9.x wants Node 22)
OIDC_CACHE = Path(
    os.environ.get("SPILLGUARD_TEST_CACHE") or Path.home() / ".cache" / "spillguard-tests"
) / f"oidc-provider-{OIDC_PROVIDER_VERSION}"
OIDC_SCRIPT = Path(__file__).with_name("oidc_server.mjs")
USER_GRANT = "urn:spillguard:params:oauth:grant-type:test-user"


@dataclass
class Client:
    client_id: str
    client_secret: str


@dataclass
class TokenPair:
    access_token: str
    refresh_token: str


@dataclass
class AuthServer:
    kind: str  # "django-oauth-toolkit" | "oidc-provider"
    url: str
    token_url: str
    revocation_url: str
    introspection_url: str
    user_client: Client  # owns the user tokens (password grant / extension grant)
    service_client: Client  # client_credentials
    dsn: str | None = None  # the token store, where the server has a SQL one
    log_path: str | None = None
    _http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10, trust_env=False), repr=False)

    def user_tokens(self, username: str) -> TokenPair:
        """An access + refresh token issued to `username` by the server's own token endpoint."""
        c = self.user_client
        if self.kind == "django-oauth-toolkit":
            data = {"grant_type": "password", "username": username, "password": _dot_password(username)}
        else:
            data = {"grant_type": USER_GRANT, "username": username}
        body = self._token(c, data)
        return TokenPair(body["access_token"], body["refresh_token"])

    def service_token(self, scope: str = "api:read") -> str:
        """A client_credentials access token issued to `service_client`."""
        return self._token(self.service_client, {"grant_type": "client_credentials", "scope": scope})["access_token"]

    def refresh(self, refresh_token: str) -> httpx.Response:
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return self._http.post(self.token_url, data=data, auth=(self.user_client.client_id, self.user_client.client_secret))

    def introspect(self, token: str, hint: str | None = None) -> dict[str, Any]:
        data = {"token": token} | ({"token_type_hint": hint} if hint else {})
        c = self.service_client
        resp = self._http.post(self.introspection_url, data=data, auth=(c.client_id, c.client_secret))
        resp.raise_for_status()
        return resp.json()

    def active(self, token: str, hint: str | None = None) -> bool:
        return bool(self.introspect(token, hint).get("active"))

    def _token(self, c: Client, data: dict[str, str]) -> dict[str, Any]:
        resp = self._http.post(self.token_url, data=data, auth=(c.client_id, c.client_secret))
        if resp.status_code != 200:
            raise AssertionError(f"{self.kind} token endpoint answered {resp.status_code}: {resp.text[:300]}")
        return resp.json()


# --- django-oauth-toolkit -------------------------------------------------------------------------

_DOT_SETTINGS = """\
SECRET_KEY = "spillguard-test-only-{secret}"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
USE_TZ = True
ROOT_URLCONF = "sgdot.urls"
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "oauth2_provider"]
MIDDLEWARE = []
DATABASES = {{"default": {{"ENGINE": "django.db.backends.postgresql", "NAME": "dot", "USER": "postgres",
                          "HOST": "127.0.0.1", "PORT": {pg_port}}}}}
# Test users only: a fast hasher keeps the password grant quick.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
OAUTH2_PROVIDER = {{"SCOPES": {{"read": "read", "write": "write", "api:read": "api", "introspection": "introspect"}},
                   "ACCESS_TOKEN_EXPIRE_SECONDS": 3600}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
"""

_DOT_URLS = """\
from django.urls import include, path
urlpatterns = [path("o/", include("oauth2_provider.urls", namespace="oauth2_provider"))]
"""

_DOT_SETUP = """\
import django, json, sys
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0, interactive=False)
from django.contrib.auth import get_user_model
from oauth2_provider.models import get_application_model
App = get_application_model()
cfg = json.loads(sys.argv[1])
for c, grant in ((cfg["user_client"], App.GRANT_PASSWORD), (cfg["service_client"], App.GRANT_CLIENT_CREDENTIALS)):
    App.objects.create(name=c["client_id"], client_id=c["client_id"], client_secret=c["client_secret"],
                       client_type=App.CLIENT_CONFIDENTIAL, authorization_grant_type=grant)
"""


def _dot_password(username: str) -> str:
    return f"pw-{username}"


def dot_create_users(server: AuthServer, usernames: list[str]) -> None:
    """Users the password grant can issue tokens to (password = `pw-<username>`), inserted in one statement."""
    import hashlib

    import psycopg

    rows = [(f"md5$s${hashlib.md5(f's{_dot_password(u)}'.encode()).hexdigest()}", u) for u in usernames]
    assert server.dsn
    with psycopg.connect(server.dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff,"
            " is_active, date_joined) VALUES (%s, false, %s, '', '', '', false, true, now())"
            " ON CONFLICT (username) DO NOTHING",
            rows,
        )


@contextlib.contextmanager
def dot_server() -> Iterator[AuthServer]:
    try:
        import django  # noqa: F401
        import oauth2_provider  # noqa: F401
    except ImportError:
        pytest.skip("django-oauth-toolkit is not installed (pip install -e '.[test]')")
    with postgres_server() as pg, _tempdir("dot") as d:
        import psycopg

        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE dot")
        pkg = Path(d) / "sgdot"
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        (pkg / "settings.py").write_text(_DOT_SETTINGS.format(secret=os.urandom(8).hex(), pg_port=pg.port))
        (pkg / "urls.py").write_text(_DOT_URLS)
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="sgdot.settings", PYTHONPATH=d)
        env.pop("PYTHONSAFEPATH", None)
        user_client = Client("sg-user-app", "user-app-" + os.urandom(12).hex())
        service_client = Client("sg-service-app", "service-app-" + os.urandom(12).hex())
        cfg = json.dumps({"user_client": user_client.__dict__, "service_client": service_client.__dict__})
        res = subprocess.run([sys.executable, "-c", _DOT_SETUP, cfg], env=env, cwd=d, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"django-oauth-toolkit setup failed:\n{res.stderr[-2000:]}")
        port = free_port()
        base = f"http://{HOST}:{port}"
        log = os.path.join(d, "django.log")

        def ready() -> bool:
            return httpx.post(f"{base}/o/introspect/", timeout=1, trust_env=False).status_code in (401, 403)

        argv = [sys.executable, "-m", "django", "runserver", f"{HOST}:{port}", "--noreload"]
        with _process(argv, "django-oauth-toolkit", ready, log, cwd=d, env=env):
            server = AuthServer(
                kind="django-oauth-toolkit", url=base, token_url=f"{base}/o/token/",
                revocation_url=f"{base}/o/revoke_token/", introspection_url=f"{base}/o/introspect/",
                user_client=user_client, service_client=service_client,
                dsn=pg.dsn.rsplit("/", 1)[0] + "/dot", log_path=log,
            )
            try:
                yield server
            finally:
                server._http.close()


# --- oidc-provider ------------------------------------------------------------------------------


def install_oidc_provider(cache: Path = OIDC_CACHE) -> Path:
    """`npm install oidc-provider@OIDC_PROVIDER_VERSION` into `cache` once; the directory holding node_modules."""
    entry = cache / "node_modules" / "oidc-provider" / "lib" / "index.js"
    if entry.exists():
        return cache
    npm = shutil.which("npm")
    if npm is None:
        raise FileNotFoundError("npm")
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "package.json").write_text('{"name": "spillguard-test-oidc", "private": true, "type": "module"}\n')
    subprocess.run([npm, "install", "--no-audit", "--no-fund", "--silent", f"oidc-provider@{OIDC_PROVIDER_VERSION}"],
                   cwd=cache, check=True, capture_output=True, timeout=300)  # fmt: skip
    return cache


@contextlib.contextmanager
def oidc_server() -> Iterator[AuthServer]:
    node = require_binary("node")
    try:
        modules = install_oidc_provider()
    except (FileNotFoundError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"oidc-provider could not be installed ({exc}); run scripts/bootstrap")
        pytest.skip(f"oidc-provider could not be installed with npm ({type(exc).__name__})")
    user_client = Client("sg-oidc-app", "oidc-app-" + os.urandom(12).hex())
    service_client = Client("sg-oidc-service", "oidc-service-" + os.urandom(12).hex())
    port = free_port()
    base = f"http://{HOST}:{port}"
    with _tempdir("oidc") as d:
        log = os.path.join(d, "oidc.log")
        env = dict(os.environ, SG_OIDC_MODULES=str(modules), SG_OIDC_PORT=str(port),
                   SG_OIDC_CLIENTS=json.dumps([user_client.__dict__, service_client.__dict__]))  # fmt: skip

        def ready() -> bool:
            return httpx.get(f"{base}/.well-known/openid-configuration", timeout=1, trust_env=False).status_code == 200

        with _process([node, str(OIDC_SCRIPT)], "oidc-provider", ready, log, cwd=d, env=env):
            server = AuthServer(
                kind="oidc-provider", url=base, token_url=f"{base}/token",
                revocation_url=f"{base}/token/revocation", introspection_url=f"{base}/token/introspection",
                user_client=user_client, service_client=service_client, log_path=log,
            )
            try:
                yield server
            finally:
                server._http.close()


# --- SMTP -----------------------------------------------------------------------------------------


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes
    at: float


class SmtpRecorder:
    """aiosmtpd on a free loopback port; every accepted message lands in `messages` (thread-safe)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.messages: list[ReceivedMail] = []
        self.refuse: dict[str, str] = {}  # recipient -> SMTP reply, e.g. "550 5.1.1 no such user"
        self.refuse_sender: str | None = None  # SMTP reply to every MAIL FROM, e.g. "553 5.7.1 not allowed"
        self.delay_s = 0.0  # per message, so a test can kill a sender mid-run
        self.drop_after_data: set[str] = set()  # recipients whose message is kept but never answered (connection cut)
        self._lock = threading.Lock()

    # aiosmtpd handler hooks
    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, mail_options: Any) -> str:
        if self.refuse_sender:
            return self.refuse_sender
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        reply = self.refuse.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay_s:
            import asyncio

            await asyncio.sleep(self.delay_s)
        raw = bytes(envelope.original_content or envelope.content)
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        with self._lock:
            self.messages.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), msg, raw, time.time()))  # type: ignore[arg-type]
        if self.drop_after_data & {r.lower() for r in envelope.rcpt_tos}:
            server.transport.abort()  # the message is here, the sender never hears so: the one window in doubt
        return "250 Message accepted for delivery"

    def count(self) -> int:
        with self._lock:
            return len(self.messages)

    def by_recipient(self) -> dict[str, int]:
        out: dict[str, int] = {}
        with self._lock:
            for m in self.messages:
                for r in m.rcpt_tos:
                    out[r.lower()] = out.get(r.lower(), 0) + 1
        return out

    def message_ids(self) -> set[str]:
        with self._lock:
            return {str(m.message["Message-ID"]) for m in self.messages}


@contextlib.contextmanager
def smtp_server() -> Iterator[SmtpRecorder]:
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        pytest.skip("aiosmtpd is not installed (pip install -e '.[test]')")
    port = free_port()
    rec = SmtpRecorder(HOST, port)
    ctl = Controller(rec, hostname=HOST, port=port, data_size_limit=10 * 1024 * 1024)
    ctl.start()
    try:
        yield rec
    finally:
        ctl.stop()


# --- an HTTP e-mail provider ----------------------------------------------------------------------


class MailApi:
    """Records `POST /emails`; a repeated Idempotency-Key gets the first answer back and sends nothing."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []  # accepted e-mails (one per distinct idempotency key)
        self.requests: list[tuple[str | None, dict[str, Any]]] = []  # every request: (key, body)
        self.fail_next: list[int] = []  # status codes to answer the next requests with (transient errors)
        self.api_key = "mail-api-" + os.urandom(8).hex()
        self.url = ""
        self._seen: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def handle(self, key: str | None, auth: str | None, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append((key, body))
            if auth != f"Bearer {self.api_key}":
                return 401, {"message": "invalid api key"}
            if self.fail_next:
                return self.fail_next.pop(0), {"message": "try again"}
            if key and key in self._seen:
                return 200, self._seen[key]
            answer = {"id": f"msg-{len(self.sent) + 1}"}
            self.sent.append(body)
            if key:
                self._seen[key] = answer
            return 200, answer


@contextlib.contextmanager
def mail_api_server() -> Iterator[MailApi]:
    api = MailApi()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            status, answer = api.handle(self.headers.get("Idempotency-Key"), self.headers.get("Authorization"), body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer((HOST, 0), Handler)
    api.url = f"http://{HOST}:{httpd.server_address[1]}/emails"
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield api
    finally:
        httpd.shutdown()
        httpd.server_close()


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dot() -> Iterator[AuthServer]:
    with dot_server() as s:
        yield s


@pytest.fixture(scope="session")
def oidc() -> Iterator[AuthServer]:
    with oidc_server() as s:
        yield s


@pytest.fixture
def smtp() -> Iterator[SmtpRecorder]:
    with smtp_server() as s:
        yield s


@pytest.fixture
def mail_api() -> Iterator[MailApi]:
    with mail_api_server() as s:
        yield s


__all__ = [
    "AuthServer", "Client", "MailApi", "SmtpRecorder", "TokenPair", "dot", "dot_create_users", "dot_server",
    "install_oidc_provider", "mail_api", "mail_api_server", "oidc", "oidc_server", "smtp", "smtp_server",
]
