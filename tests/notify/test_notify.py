"""notify: one registry of sinks matching the config's vocabulary, and a message that is not audit-specific."""

from __future__ import annotations

import io
import json
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from spillguard.config import SINK_TYPES, SinkConfig
from spillguard.errors import UserError
from spillguard.notify import SINKS, CommandSink, Fact, FileSink, Message, WebhookSink, build_sink
from spillguard.notify.webhook import sign
from tests.audit.test_watch import webhook_receiver


def _message() -> Message:
    # A respond-style notification: nothing of the audit's vocabulary.
    return Message(
        subject="tokens revoked: 1,229 of 1,229",
        body="Every leaked token was revoked at its issuer and verified by introspection.\n",
        fields={"kind": "respond", "revoked": 1229, "verified": 1229},
        key="respond-incident-7-revoke",
        at="2026-12-02T10:00:00Z",
        facts=(Fact("revoked", "1229", short=True),),
        variables={"incident": "7"},
    )


def test_every_configurable_sink_type_has_one_registry_row(tmp_path: Path) -> None:
    assert set(SINKS) == set(SINK_TYPES)
    cfgs = {
        "stdout": SinkConfig(type="stdout"),
        "file": SinkConfig(type="file", path=str(tmp_path / "a.jsonl")),
        "webhook": SinkConfig(type="webhook", url="http://127.0.0.1:9/x"),
        "smtp": SinkConfig(type="smtp", host="127.0.0.1", sender="a@example.org", to=["b@example.org"]),
        "command": SinkConfig(type="command", command=["true"]),
    }
    for name, cfg in cfgs.items():
        assert build_sink(cfg).name == name
    with pytest.raises(UserError, match="sink type 'pager' is unknown"):
        build_sink(SinkConfig(type="pager"))


def test_json_sinks_deliver_exactly_the_fields(tmp_path: Path) -> None:
    m = _message()
    buf = io.StringIO()
    with redirect_stdout(buf):
        build_sink(SinkConfig(type="stdout")).send(m)
    assert json.loads(buf.getvalue()) == dict(m.fields)
    FileSink(str(tmp_path / "n.jsonl")).send(m)
    assert json.loads((tmp_path / "n.jsonl").read_text()) == dict(m.fields)


def test_webhook_carries_the_idempotency_key_and_a_verifiable_signature() -> None:
    m = _message()
    with webhook_receiver() as (url, received):
        WebhookSink(url, "json", secret="hook-key").send(m)
        WebhookSink(url, "slack").send(m)
        _, headers, body = received.get(timeout=5)
        _, slack_headers, slack_body = received.get(timeout=5)
    assert json.loads(body) == dict(m.fields)
    assert headers["idempotency-key"] == slack_headers["idempotency-key"] == m.key
    assert headers["x-spillguard-signature"] == sign("hook-key", body)
    card = json.loads(slack_body)
    assert card["text"] == "spillguard: tokens revoked: 1,229 of 1,229"
    assert card["attachments"][0]["color"] == "good" and card["attachments"][0]["ts"] == m.at
    assert card["attachments"][0]["fields"] == [{"title": "revoked", "value": "1229", "short": True}]


def test_command_gets_variables_subject_and_key(tmp_path: Path) -> None:
    out = tmp_path / "env.json"
    script = (
        "import json, os, sys; "
        f"open({str(out)!r}, 'w').write(json.dumps({{k: v for k, v in os.environ.items() if k.startswith('SPILLGUARD_')}}"
        " | {'stdin': sys.stdin.read()}))"
    )
    CommandSink([sys.executable, "-c", script]).send(_message())
    got = json.loads(out.read_text())
    assert got["SPILLGUARD_INCIDENT"] == "7" and got["SPILLGUARD_KEY"] == "respond-incident-7-revoke"
    assert got["SPILLGUARD_SUBJECT"].startswith("tokens revoked")
    assert json.loads(got["stdin"]) == dict(_message().fields)
