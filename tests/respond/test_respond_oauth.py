"""RFC 7009 revocation + RFC 7662 verification against real authorization servers.

Tokens are issued by each server's own token endpoint; some of them end up in an "exposed copy" that
`spillguard scan --secrets-out` turns into a leaked set; spillguard revokes exactly those, and the server's
own introspection then calls them inactive while every token that did not leak stays active.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from spillguard.errors import UserError
from spillguard.keys import fingerprint_key
from spillguard.leaked import LeakedSet
from spillguard.respond.actions import Action, Context, Limits
from spillguard.respond.journal import Journal
from spillguard.respond.oauth import (
    MemoryTokenSource,
    OAuthClient,
    OAuthError,
    OAuthRevocation,
    OAuthServer,
    RawToken,
)
from tests.authservers import AuthServer, TokenPair, dot_create_users


def _scan_leaked(tmp: Path, leaked: dict[str, TokenPair], *, refresh: bool) -> LeakedSet:
    """Write the exposed copy (a users export holding the leaked tokens), scan it with --secrets-out, load the set."""
    exposed = tmp / "exposed"
    exposed.mkdir()
    with open(exposed / "users.jsonl", "w") as fh:
        for i, (user, pair) in enumerate(sorted(leaked.items())):
            row = {"id": i, "username": user, "access_token": pair.access_token}
            if refresh:
                row["refresh_token"] = pair.refresh_token
            fh.write(json.dumps(row) + "\n")
    out = tmp / "leaked.sgs"
    res = subprocess.run([sys.executable, "-c", "from spillguard.cli import main; main()", "scan", str(exposed),
                          "--secrets-out", str(out), "--format", "json"],
                         capture_output=True, text=True, env=dict(os.environ))  # fmt: skip
    assert res.returncode in (0, 1), res.stderr
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    return LeakedSet.load(out, fingerprint_key())


def _context(tmp: Path, leaked: LeakedSet, scope: str = "exact") -> Context:
    journal = Journal(tmp / "journal.db", fingerprint_key())
    return Context(incident="inc-1", scope=scope, leaked=leaked, subjects=None, journal=journal,  # type: ignore[arg-type]
                   key=fingerprint_key(), limits=Limits(batch=7, retries=2, backoff_s=0.05), dry_run=False)  # fmt: skip


def _settings(server: AuthServer, monkeypatch: pytest.MonkeyPatch, id: str, **extra: Any) -> dict[str, Any]:
    """A playbook `kind = "oauth"` action's settings; the client's credentials only in the environment."""
    monkeypatch.setenv("SG_TEST_OAUTH_ID", server.user_client.client_id)
    monkeypatch.setenv("SG_TEST_OAUTH_SECRET", server.user_client.client_secret)
    monkeypatch.setenv("SG_TEST_INTROSPECT_ID", server.service_client.client_id)
    monkeypatch.setenv("SG_TEST_INTROSPECT_SECRET", server.service_client.client_secret)
    return {
        "id": id, "revocation_url": server.revocation_url, "introspection_url": server.introspection_url,
        "client_id_env": "SG_TEST_OAUTH_ID", "client_secret_env": "SG_TEST_OAUTH_SECRET",
        "introspection_client_id_env": "SG_TEST_INTROSPECT_ID", "introspection_client_secret_env": "SG_TEST_INTROSPECT_SECRET",
        "per_second": 1000,
    } | extra  # fmt: skip


def _dot_access(dot: AuthServer) -> dict[str, Any]:
    assert dot.dsn
    return {"store": dot.dsn, "table": "oauth2_provider_accesstoken", "token_type_hint": "access_token"}


def _run(action: OAuthRevocation, ctx: Context) -> tuple[int, int, list[str]]:
    """Plan, then execute every step with the journal's intent/outcome around it, as the runner does."""
    steps = action.plan(ctx)
    texts = [s.description for s in steps]
    done = failed = 0
    for step in steps:
        ctx.journal.intent(step, incident=ctx.incident, target=action.server.target(), scope=ctx.scope)
        outcome = action.execute(ctx, step)
        ctx.journal.outcome(step, outcome, incident=ctx.incident, target=action.server.target(), scope=ctx.scope)
        done, failed = done + outcome.done, failed + outcome.failed
        texts.append(outcome.detail)
    return done, failed, texts


def _assert_no_raw(texts: list[str], tokens: list[str], journal_path: Path) -> None:
    blob = "\n".join(texts) + journal_path.read_bytes().decode("latin-1")
    for t in tokens:
        assert t not in blob


def test_dot_exact_scope_revokes_only_leaked_tokens(dot: AuthServer, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    users = [f"dot-exact-{i}" for i in range(24)]
    dot_create_users(dot, users)
    pairs = {u: dot.user_tokens(u) for u in users}
    rng = random.Random(11)
    leaked_users = set(rng.sample(users, 9))
    leaked = _scan_leaked(tmp_path, {u: pairs[u] for u in leaked_users}, refresh=False)
    assert len(leaked.digests("sha256")) == 9

    ctx = _context(tmp_path, leaked)
    assert dot.dsn
    action = OAuthRevocation(_settings(dot, monkeypatch, "dot-access", **_dot_access(dot)))
    assert isinstance(action, Action)
    action.connect()
    steps = action.plan(ctx)
    assert sum(s.count for s in steps) == 9 and [s.count for s in steps] == [7, 2]
    assert all(len(d) == 64 for s in steps for d in s.payload)

    done, failed, texts = _run(action, ctx)
    assert (done, failed) == (9, 0)
    for u in users:
        assert dot.active(pairs[u].access_token) == (u not in leaked_users), u
    v = action.verify(ctx)
    assert (v.checked, v.still_active) == (9, 0)
    _assert_no_raw(texts + v.details, [p.access_token for p in pairs.values()], tmp_path / "journal.db")

    # A rerun in a fresh process finds nothing left to revoke: the rows are gone from the token table.
    again = OAuthRevocation(_settings(dot, monkeypatch, "dot-access", **_dot_access(dot)))
    assert again.plan(ctx) == []
    action.close()
    again.close()


def test_dot_rerun_of_a_journaled_step_is_harmless(dot: AuthServer, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    users = [f"dot-rerun-{i}" for i in range(5)]
    dot_create_users(dot, users)
    pairs = {u: dot.user_tokens(u) for u in users}
    leaked = _scan_leaked(tmp_path, pairs, refresh=False)
    ctx = _context(tmp_path, leaked)
    assert dot.dsn
    cfg = _settings(dot, monkeypatch, "dot-access", **_dot_access(dot))
    (step,) = OAuthRevocation(cfg).plan(ctx)
    # The first process revoked, then died before journaling the outcome; a new one runs the same step again.
    first = OAuthRevocation(cfg)
    first.plan(ctx)
    assert first.execute(ctx, step).done == 5
    fresh = OAuthRevocation(cfg)
    outcome = fresh.execute(ctx, step)
    assert (outcome.done, outcome.failed) == (5, 0) and "5 already gone" in outcome.detail
    assert not any(dot.active(p.access_token) for p in pairs.values())


def test_oidc_provider_exact_and_all_scopes(oidc: AuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    users = [f"op-{i}" for i in range(16)]
    pairs = {u: oidc.user_tokens(u) for u in users}
    leaked_users = set(random.Random(5).sample(users, 6))
    leaked = _scan_leaked(tmp_path, {u: pairs[u] for u in leaked_users}, refresh=True)
    # The company's own token list, handed over in memory: every access and refresh token it issued.
    issued = [RawToken(p.access_token, "access_token") for p in pairs.values()]
    issued += [RawToken(p.refresh_token, "refresh_token") for p in pairs.values()]
    ctx = _context(tmp_path, leaked)
    action = OAuthRevocation(_settings(oidc, monkeypatch, "op"), source=MemoryTokenSource(issued))
    assert sum(s.count for s in action.plan(ctx)) == 12
    done, failed, texts = _run(action, ctx)
    assert (done, failed) == (12, 0)
    for u in users:
        alive = u not in leaked_users
        assert oidc.active(pairs[u].access_token) == alive and oidc.active(pairs[u].refresh_token) == alive, u
    assert oidc.refresh(pairs[sorted(leaked_users)[0]].refresh_token).status_code == 400
    v = action.verify(ctx)
    assert (v.checked, v.still_active, v.details) == (12, 0, [])
    _assert_no_raw(texts + v.details, [t.value for t in issued], tmp_path / "journal.db")

    # Scope `all`: what the company chose in 2019, every token it issued, leaked or not.
    (tmp_path / "all").mkdir()
    all_ctx = _context(tmp_path / "all", leaked, "all")
    everything = OAuthRevocation(_settings(oidc, monkeypatch, "op-all"), source=MemoryTokenSource(issued))
    assert sum(s.count for s in everything.plan(all_ctx)) == 32
    # Before executing, verify lists what is still active, by keyed fingerprint only.
    before = everything.verify(all_ctx)
    assert (before.checked, before.still_active) == (32, 20)
    assert len(before.details) == 20 and all("hmac-sha256:" in d for d in before.details)
    _run(everything, all_ctx)
    assert not any(oidc.active(t.value) for t in issued)
    assert everything.verify(all_ctx).still_active == 0


def test_client_credentials_token_matched_by_fingerprint(oidc: AuthServer, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    kept, lost = oidc.service_token(), oidc.service_token()
    leaked = _scan_leaked(tmp_path, {"svc": TokenPair(lost, "")}, refresh=False)
    monkeypatch.setenv("SG_SVC_ID", oidc.service_client.client_id)
    monkeypatch.setenv("SG_SVC_SECRET", oidc.service_client.client_secret)
    cfg = {"id": "op-svc", "revocation_url": oidc.revocation_url, "introspection_url": oidc.introspection_url,
           "client_id_env": "SG_SVC_ID", "client_secret_env": "SG_SVC_SECRET", "per_second": 20, "match": "fingerprint"}
    ctx = _context(tmp_path, leaked)
    action = OAuthRevocation(cfg, source=MemoryTokenSource([kept, lost]))
    assert _run(action, ctx)[:2] == (1, 0)
    assert oidc.active(kept) and not oidc.active(lost)


def test_missing_credentials_and_bad_url_are_one_line_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SG_NOPE_ID", raising=False)
    monkeypatch.delenv("SG_NOPE_SECRET", raising=False)
    cfg = {"id": "x", "revocation_url": "http://127.0.0.1:9/revoke", "client_id_env": "SG_NOPE_ID",
           "client_secret_env": "SG_NOPE_SECRET"}
    with pytest.raises(UserError, match=r"set \$SG_NOPE_ID and \$SG_NOPE_SECRET"):
        OAuthRevocation(cfg, source=MemoryTokenSource([])).connect()
    with pytest.raises(UserError, match="`store` and `table` are required"):
        OAuthRevocation(cfg)
    with pytest.raises(UserError, match="scope exact needs `leaked`"):
        OAuthRevocation(cfg, source=MemoryTokenSource(["t"])).plan(_context(tmp_path, LeakedSet.empty()))
    with pytest.raises(UserError, match="token_type_hint = 'id_token'"):
        OAuthRevocation(cfg | {"token_type_hint": "id_token"}, source=MemoryTokenSource([]))
    monkeypatch.setenv("SG_NOPE_ID", "a")
    monkeypatch.setenv("SG_NOPE_SECRET", "b")
    with pytest.raises(UserError, match="not an http"):
        OAuthClient(OAuthServer(id="y", revocation_url="ftp:/x", client_id_env="SG_NOPE_ID", client_secret_env="SG_NOPE_SECRET"))


class _Flaky:
    """A revocation endpoint that fails `fail` times with 503 (Retry-After: 0) before answering 200."""

    def __init__(self, fail: int) -> None:
        self.fail, self.calls, self.url = fail, 0, ""


@pytest.fixture
def flaky() -> Iterator[_Flaky]:
    state = _Flaky(2)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.calls += 1
            code = 503 if state.calls <= state.fail else 200
            self.send_response(code)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/revoke"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def test_retries_with_backoff_on_5xx_then_gives_up(flaky: _Flaky, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SG_F_ID", "a")
    monkeypatch.setenv("SG_F_SECRET", "b")
    cfg = OAuthServer(id="flaky", revocation_url=flaky.url, client_id_env="SG_F_ID", client_secret_env="SG_F_SECRET",
                      per_second=None)  # fmt: skip
    client = OAuthClient(cfg, Limits(retries=3, backoff_s=0.01))
    client.revoke(RawToken("tok-1"))
    assert flaky.calls == 3
    flaky.fail, flaky.calls = 10, 0
    with pytest.raises(OAuthError, match=r"HTTP 503 \(after 3 attempts\)") as err:
        OAuthClient(cfg, Limits(retries=2, backoff_s=0.01)).revoke(RawToken("tok-secret-value"))
    assert "tok-secret-value" not in str(err.value) and flaky.calls == 3
    dead = OAuthServer(id="dead", revocation_url="http://127.0.0.1:9/revoke", client_id_env="SG_F_ID",
                       client_secret_env="SG_F_SECRET", per_second=None)  # fmt: skip
    with pytest.raises(OAuthError, match="ConnectError"):
        OAuthClient(dead, Limits(retries=1, backoff_s=0.01)).revoke(RawToken("t"))


def test_playbook_oauth_action_through_the_runner(dot: AuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`kind = "oauth"` in respond.toml: plan, execute, verify with the journal, as `spillguard respond` runs it."""
    from spillguard.respond.runner import execute_response, open_response, plan_response, verify_response

    users = [f"dot-pb-{i}" for i in range(12)]
    dot_create_users(dot, users)
    pairs = {u: dot.user_tokens(u) for u in users}
    leaked_users = set(random.Random(3).sample(users, 5))
    _scan_leaked(tmp_path, {u: pairs[u] for u in leaked_users}, refresh=False)
    s = _settings(dot, monkeypatch, "dot-oauth")
    assert dot.dsn
    (tmp_path / "respond.toml").write_text(f"""
incident = "2019-12-es-leak"
scope = "exact"
leaked = "leaked.sgs"
journal = "response.journal"

[[action]]
id = "dot-oauth"
kind = "oauth"
store = "{dot.dsn}"
table = "oauth2_provider_accesstoken"
token_type_hint = "access_token"
revocation_url = "{s['revocation_url']}"
introspection_url = "{s['introspection_url']}"
client_id_env = "SG_TEST_OAUTH_ID"
client_secret_env = "SG_TEST_OAUTH_SECRET"
introspection_client_id_env = "SG_TEST_INTROSPECT_ID"
introspection_client_secret_env = "SG_TEST_INTROSPECT_SECRET"
""")
    resp = plan_response(open_response(tmp_path / "respond.toml", execute=True))
    assert resp.plan_dict()["actions"][0]["count"] == 5
    execute_response(resp)
    verify_response(resp)
    assert resp.execute_dict()["actions"][0]["done"] == 5 and resp.verify_dict()["still_active"] == 0
    journal = resp.ctx.journal
    assert journal is not None and journal.verify().ok
    resp.close()
    for u in users:
        assert dot.active(pairs[u].access_token) == (u not in leaked_users), u
    raw = (tmp_path / "response.journal").read_bytes()
    assert not any(p.access_token.encode() in raw for p in pairs.values())

    # A missing credential variable is one line before anything changes.
    monkeypatch.delenv("SG_TEST_OAUTH_SECRET")
    with pytest.raises(UserError, match=r"set \$SG_TEST_OAUTH_SECRET"):
        open_response(tmp_path / "respond.toml", execute=True)


def test_dot_refresh_tokens_revoked_and_their_access_tokens_with_them(dot: AuthServer, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """DOT's RefreshToken.revoke() flags the row and deletes its access token; DOT cannot introspect refresh
    tokens (it answers inactive for anything not an access token), so verification is left to the store."""
    import psycopg

    users = [f"dot-rt-{i}" for i in range(6)]
    dot_create_users(dot, users)
    pairs = {u: dot.user_tokens(u) for u in users}
    leaked_users = {"dot-rt-1", "dot-rt-4"}
    leaked = _scan_leaked(tmp_path, {u: pairs[u] for u in leaked_users}, refresh=True)
    assert dot.dsn
    cfg = _settings(dot, monkeypatch, "dot-refresh", store=dot.dsn, table="oauth2_provider_refreshtoken",
                    token_type_hint="refresh_token", verify_by="store")  # fmt: skip
    ctx = _context(tmp_path, leaked)
    action = OAuthRevocation(cfg)
    assert _run(action, ctx)[:2] == (2, 0)
    v = action.verify(ctx)
    assert (v.checked, v.still_active) == (0, 0) and "not verified by introspection" in v.details[0]
    with psycopg.connect(dot.dsn) as conn:
        revoked = dict(conn.execute("SELECT u.username, r.revoked IS NOT NULL FROM oauth2_provider_refreshtoken r "
                                    "JOIN auth_user u ON u.id = r.user_id WHERE u.username LIKE 'dot-rt-%'").fetchall())  # fmt: skip
    assert revoked == {u: u in leaked_users for u in users}
    for u in users:
        assert dot.active(pairs[u].access_token) == (u not in leaked_users)
        assert (dot.refresh(pairs[u].refresh_token).status_code == 200) == (u not in leaked_users)
    action.close()


def test_integration_tokens_revoked_at_the_partner_before_the_link_goes(dot: AuthServer, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Linked accounts holding a partner's tokens (django-oauth-toolkit plays the partner, as Login with Amazon
    would for Alexa): with `revocation_url`, each leaked link's tokens are revoked at the partner (its own
    introspection then says inactive) and only then is the link deleted; a partner that cannot be reached
    keeps the link and fails the step."""
    import sqlite3

    from spillguard.respond.sql import LinkedAccounts
    from tests.servers import free_port

    users = [f"dot-link-{i}" for i in range(10)]
    dot_create_users(dot, users)
    pairs = {u: dot.user_tokens(u) for u in users}
    leaked_users = set(users[::3])
    leaked = _scan_leaked(tmp_path, {u: pairs[u] for u in leaked_users}, refresh=False)
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE partner_links (id integer primary key, user_id text, access_token text, refresh_token text)")
        conn.executemany("INSERT INTO partner_links (user_id, access_token, refresh_token) VALUES (?, ?, ?)",
                         [(u, pairs[u].access_token, pairs[u].refresh_token) for u in users])
    monkeypatch.setenv("SG_TEST_PARTNER_ID", dot.user_client.client_id)
    monkeypatch.setenv("SG_TEST_PARTNER_SECRET", dot.user_client.client_secret)

    def action(url: str) -> LinkedAccounts:
        return LinkedAccounts({"id": "partner", "scope": "exact", "store": f"sqlite:///{db}", "table": "partner_links",
                               "user_column": "user_id", "token_columns": ["access_token", "refresh_token"],
                               "token_type_hints": ["access_token", "refresh_token"], "partner": "Partner",
                               "revocation_url": url, "client_id_env": "SG_TEST_PARTNER_ID",
                               "client_secret_env": "SG_TEST_PARTNER_SECRET", "per_second": 1000}, "test")  # fmt: skip

    ctx = _context(tmp_path, leaked)
    ctx.limits = Limits(batch=7, retries=0, backoff_s=0.01)
    unreachable = action(f"http://127.0.0.1:{free_port()}/o/revoke_token/")
    unreachable.connect()
    steps = unreachable.plan(ctx)
    assert sum(s.count for s in steps) == len(leaked_users)
    out = [unreachable.execute(ctx, s) for s in steps]
    assert sum(o.done for o in out) == 0 and sum(o.failed for o in out) == len(leaked_users)
    assert "links kept" in out[0].detail
    unreachable.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM partner_links").fetchone()[0] == len(users)

    partner = action(dot.revocation_url)
    partner.connect()
    done, failed, texts = 0, 0, []
    for s in partner.plan(ctx):
        o = partner.execute(ctx, s)
        done, failed = done + o.done, failed + o.failed
        texts += [s.description, o.detail]
    assert (done, failed) == (len(leaked_users), 0)
    assert sum(int(t.split(" ")[1]) for t in texts if t.startswith("revoked ")) == 2 * len(leaked_users)
    for u in users:
        assert dot.active(pairs[u].access_token) == (u not in leaked_users), u
        assert (dot.refresh(pairs[u].refresh_token).status_code == 200) == (u not in leaked_users), u
    with sqlite3.connect(db) as conn:
        assert {r[0] for r in conn.execute("SELECT user_id FROM partner_links")} == set(users) - leaked_users
    assert partner.verify(ctx).still_active == 0
    _assert_no_raw(texts, [t for p in pairs.values() for t in (p.access_token, p.refresh_token)], tmp_path / "journal.db")
    partner.close()
