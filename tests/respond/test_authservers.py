"""The test harnesses themselves: each server issues, introspects and revokes tokens as the real software does."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import httpx

from tests.authservers import AuthServer, MailApi, SmtpRecorder, dot_create_users


def _revoke(server: AuthServer, token: str, hint: str) -> None:
    c = server.user_client
    resp = httpx.post(server.revocation_url, data={"token": token, "token_type_hint": hint},
                      auth=(c.client_id, c.client_secret), trust_env=False)  # fmt: skip
    assert resp.status_code == 200


def test_dot_issues_introspects_and_revokes(dot: AuthServer) -> None:
    dot_create_users(dot, ["ann", "bob"])
    ann, bob = dot.user_tokens("ann"), dot.user_tokens("bob")
    svc = dot.service_token("read")
    assert dot.active(ann.access_token) and dot.active(bob.access_token) and dot.active(svc)
    assert dot.introspect(ann.access_token)["username"] == "ann"
    _revoke(dot, ann.access_token, "access_token")
    assert not dot.active(ann.access_token)
    assert dot.active(bob.access_token)
    assert dot.introspect("never-issued") == {"active": False}


def test_oidc_provider_issues_introspects_and_revokes(oidc: AuthServer) -> None:
    ann, bob = oidc.user_tokens("ann"), oidc.user_tokens("bob")
    svc = oidc.service_token()
    assert oidc.active(ann.access_token) and oidc.active(ann.refresh_token) and oidc.active(svc)
    assert oidc.introspect(ann.access_token)["sub"] == "ann"
    # Revoking the refresh token ends the grant: its access token dies with it (RFC 7009 section 2.1).
    _revoke(oidc, ann.refresh_token, "refresh_token")
    assert not oidc.active(ann.refresh_token) and not oidc.active(ann.access_token)
    assert oidc.refresh(ann.refresh_token).status_code == 400
    assert oidc.active(bob.access_token) and oidc.active(bob.refresh_token)


def test_smtp_recorder_records_and_refuses(smtp: SmtpRecorder) -> None:
    smtp.refuse["gone@example.org"] = "550 5.1.1 no such user"
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = "a@example.org", "b@example.org", "hi", "<x@sg>"
    msg.set_content("hello")
    with smtplib.SMTP(smtp.host, smtp.port) as s:
        s.send_message(msg)
        try:
            s.sendmail("a@example.org", ["gone@example.org"], msg.as_bytes())
        except smtplib.SMTPRecipientsRefused as exc:
            assert exc.recipients["gone@example.org"][0] == 550
        else:
            raise AssertionError("the refused recipient was accepted")
    assert smtp.by_recipient() == {"b@example.org": 1}
    assert smtp.message_ids() == {"<x@sg>"}


def test_mail_api_deduplicates_idempotency_keys(mail_api: MailApi) -> None:
    headers = {"Authorization": f"Bearer {mail_api.api_key}", "Idempotency-Key": "k1"}
    first = httpx.post(mail_api.url, json={"to": ["x@example.org"]}, headers=headers, trust_env=False)
    again = httpx.post(mail_api.url, json={"to": ["x@example.org"]}, headers=headers, trust_env=False)
    assert first.json() == again.json() and len(mail_api.sent) == 1 and len(mail_api.requests) == 2
    assert httpx.post(mail_api.url, json={}, trust_env=False).status_code == 401
