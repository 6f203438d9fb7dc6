"""watch: history in SQLite, alerts on transitions through real sinks, time-to-alert against a real Redis."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import queue
import socket
import sqlite3
import stat
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from spillguard.audit.alerts import alert_message
from spillguard.audit.history import History
from spillguard.audit.verdict import ExposureVerdict
from spillguard.audit.watch import WatchOptions, alert_event, run_cycle, watch
from spillguard.config import SinkConfig
from spillguard.notify import CommandSink, FileSink, Message, SinkError, SmtpSink, WebhookSink
from spillguard.verdicts import Verdict
from tests.servers import free_port, redis_command, redis_server


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, queue.Queue[tuple[float, dict[str, str], bytes]]]]:
    """A local HTTP endpoint that records every POST with its arrival time."""
    received: queue.Queue[tuple[float, dict[str, str], bytes]] = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.put((time.monotonic(), {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def test_flip_to_open_alerts_the_webhook_within_three_intervals(tmp_path: Path) -> None:
    state = tmp_path / "watch.sqlite"
    with redis_server(password="pw-redis") as srv, webhook_receiver() as (url, received):
        sink = WebhookSink(url, "json", secret="hook-key")
        first_cycle = threading.Event()
        stop = threading.Event()
        codes: list[int] = []

        def run() -> None:
            codes.append(watch([srv.url], state=state, sinks=[sink], stop=stop,
                               options=WatchOptions(interval=1.0, jitter=0.1, timeout=2.0),
                               on_cycle=lambda r: first_cycle.set()))  # fmt: skip

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            assert first_cycle.wait(10), "the first audit cycle never finished"
            assert received.empty(), "a protected target must not alert on the first look"
            assert redis_command(srv.port, "CONFIG", "SET", "requirepass", '""', password="pw-redis").startswith(
                b"+OK"
            )
            flipped = time.monotonic()
            arrived, headers, body = received.get(timeout=3 * 1.0)
            time_to_alert = arrived - flipped
            print(f"\ntime-to-alert (protected -> open-read, interval 1 s): {time_to_alert:.3f} s")
            assert time_to_alert <= 3.0
            alert = json.loads(body)
            assert (alert["event"], alert["old_verdict"], alert["new_verdict"]) == (
                "exposed",
                "protected",
                "open-read",
            )
            assert alert["target"] == srv.url and alert["first_exposed_at"] == alert["at"]
            assert alert["evidence"]["info_reply"] == "answered"
            expected = "sha256=" + hmac.new(b"hook-key", body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(headers["x-spillguard-signature"], expected)

            # Still open on the next cycles: no second alert (de-duplication).
            time.sleep(1.5)
            assert received.empty()

            redis_command(srv.port, "CONFIG", "SET", "requirepass", "pw-again")
            _, _, body = received.get(timeout=3.0)
            recovery = json.loads(body)
            assert (recovery["event"], recovery["old_verdict"], recovery["new_verdict"]) == (
                "recovered", "open-read", "protected",
            )  # fmt: skip
        finally:
            stop.set()
            thread.join(10)
    assert codes == [0]  # the last cycle saw it protected again
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
    db = sqlite3.connect(state)
    rows = db.execute("SELECT old_verdict, new_verdict, at FROM transitions ORDER BY id").fetchall()
    assert [(o, n) for o, n, _ in rows] == [
        (None, "protected"),
        ("protected", "open-read"),
        ("open-read", "protected"),
    ]
    assert all(at.endswith("Z") for _, _, at in rows)
    (n_obs,) = db.execute("SELECT COUNT(*) FROM observations").fetchone()
    assert n_obs >= 4
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    cols = [r[1] for r in db.execute("PRAGMA table_info(observations)")]
    assert cols == ["id", "target", "checked_at", "verdict", "evidence", "duration_ms", "target_key"]


class RecordingSink:
    """A sink that keeps alerts in memory, and can be told to fail."""

    name = "recording"

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        self.keys: list[str] = []  # idempotency keys of every attempt, failed or not
        self.fail = False

    def send(self, message: Message) -> None:
        self.keys.append(message.key)
        if self.fail:
            raise SinkError("down")
        self.alerts.append(dict(message.fields))


def test_dedup_reminders_and_retry_after_a_failed_delivery(tmp_path: Path) -> None:
    sink = RecordingSink()
    with redis_server() as srv, History(tmp_path / "s.sqlite") as history:
        opts = WatchOptions(interval=1, remind_every=3600, timeout=2)
        sink.fail = True
        run_cycle([srv.url], history, [sink], opts)
        assert sink.alerts == []  # failed delivery...
        sink.fail = False
        run_cycle([srv.url], history, [sink], opts)
        assert [a["event"] for a in sink.alerts] == ["exposed"]  # ...is retried on the next cycle
        assert sink.keys[0] == sink.keys[1]  # ...as the same notification: a receiver can drop a duplicate
        first = sink.alerts[0]["first_exposed_at"]
        run_cycle([srv.url], history, [sink], opts)
        assert len(sink.alerts) == 1  # de-duplicated
        opts.remind_every = 0
        run_cycle([srv.url], history, [sink], opts)
        reminder = sink.alerts[-1]
        assert reminder["event"] == "reminder" and reminder["first_exposed_at"] == first
        assert reminder["exposed_for_s"] > 0
        assert sink.keys[-1] not in sink.keys[:-1]  # a reminder is a notification of its own
        assert len(history.transitions(srv.url)) == 1  # one change of verdict only


def test_alert_events_for_every_kind_of_change() -> None:
    assert alert_event(None, "open-read", first_look=True) == "exposed"
    assert alert_event(None, "protected", first_look=True) is None
    assert alert_event("protected", "weak-credentials", first_look=False) == "exposed"
    assert alert_event("open-metadata", "open-read", first_look=False) == "changed"
    assert alert_event("open-read", "protected", first_look=False) == "recovered"
    assert alert_event("open-read", "unreachable", first_look=False) == "changed"
    assert alert_event("protected", "error", first_look=False) == "changed"
    assert alert_event("unreachable", "protected", first_look=False) == "changed"
    assert alert_event("open-read", "open-read", first_look=False) is None


def test_history_keeps_first_exposure_through_an_unreachable_gap(tmp_path: Path) -> None:
    def v(verdict: Verdict) -> ExposureVerdict:
        return ExposureVerdict(
            target="redis://10.0.0.1:6379", protocol="redis", verdict=verdict, evidence={"n": 1}
        )

    with History(tmp_path / "h.sqlite") as h:
        h.record(v(Verdict.OPEN_READ), "2026-11-27T10:00:00.000000Z")
        obs = h.record(v(Verdict.UNREACHABLE), "2026-11-27T10:01:00.000000Z")
        assert obs.state.first_exposed_at == "2026-11-27T10:00:00.000000Z"
        obs = h.record(v(Verdict.OPEN_READ), "2026-11-27T10:02:00.000000Z")
        assert obs.state.first_exposed_at == "2026-11-27T10:00:00.000000Z"
        obs = h.record(v(Verdict.PROTECTED), "2026-11-27T10:03:00.000000Z")
        assert obs.state.first_exposed_at is None
        assert [t["new_verdict"] for t in h.transitions()] == [
            "open-read",
            "unreachable",
            "open-read",
            "protected",
        ]
        assert h.observation_count() == 4


def _alert() -> Message:
    return alert_message({
        "event": "exposed", "target": "redis://127.0.0.1:6379", "name": "cache", "protocol": "redis",
        "old_verdict": "protected", "new_verdict": "open-read", "new_exposed": True, "at": "2026-11-27T10:00:00Z",
        "first_exposed_at": "2026-11-27T10:00:00Z", "exposed_for_s": 0.0,
        "stakes": {"subjects": 2400, "records": 5000, "categories": {"email": {"subjects": 2400, "records": 2500,
                   "values": 2500}}},
        "evidence": {"reason": "INFO answered without credentials"}, "server_version": "7.0", "tls": False,
    })  # fmt: skip


def test_slack_webhook_payload() -> None:
    with webhook_receiver() as (url, received):
        WebhookSink(url, "slack").send(_alert())
        _, headers, body = received.get(timeout=5)
    payload = json.loads(body)
    assert payload["text"] == "spillguard: cache: protected → open-read"
    fields = {f["title"]: f["value"] for f in payload["attachments"][0]["fields"]}
    assert fields["at stake"].startswith("at stake: 2400 people")
    assert "x-spillguard-signature" not in headers


def test_webhook_failure_is_a_sink_error() -> None:
    with pytest.raises(SinkError, match="webhook http://127.0.0.1"):
        WebhookSink(f"http://127.0.0.1:{free_port()}/secret-path", timeout=2).send(_alert())


def test_file_and_command_sinks(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    sink = FileSink(str(path))
    sink.send(_alert())
    sink.send(_alert())
    assert [json.loads(line)["event"] for line in path.read_text().splitlines()] == ["exposed", "exposed"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    out = tmp_path / "cmd.out"
    script = f"import os, sys; open({str(out)!r}, 'w').write(os.environ['SPILLGUARD_NEW_VERDICT'] + sys.stdin.read())"
    CommandSink([sys.executable, "-c", script]).send(_alert())
    text = out.read_text()
    assert (
        text.startswith("open-read{")
        and json.loads(text[len("open-read") :])["target"] == "redis://127.0.0.1:6379"
    )
    with pytest.raises(SinkError, match="exited 3"):
        CommandSink([sys.executable, "-c", "raise SystemExit(3)"]).send(_alert())


def test_smtp_sink_delivers_to_a_real_smtp_conversation() -> None:
    """A minimal SMTP server (RFC 5321 verbs only) on a free port receives the alert mail."""
    port = free_port()
    listener = socket.create_server(("127.0.0.1", port))
    received: dict[str, Any] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        f = conn.makefile("rb")
        conn.sendall(b"220 test ESMTP\r\n")
        while True:
            line = f.readline().decode().rstrip("\r\n")
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                conn.sendall(b"250 test\r\n")
            elif verb in ("MAIL", "RCPT"):
                received.setdefault(verb, []).append(line)
                conn.sendall(b"250 ok\r\n")
            elif verb == "DATA":
                conn.sendall(b"354 go\r\n")
                data = []
                while (chunk := f.readline()) != b".\r\n":
                    data.append(chunk)
                received["data"] = b"".join(data).decode()
                conn.sendall(b"250 queued\r\n")
            elif verb == "QUIT":
                conn.sendall(b"221 bye\r\n")
                break
            else:
                conn.sendall(b"502 no\r\n")
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    cfg = SinkConfig(
        type="smtp", host="127.0.0.1", port=port, sender="watch@example.org", to=["oncall@example.org"]
    )
    SmtpSink(cfg).send(_alert())
    thread.join(5)
    listener.close()
    assert [r.upper() for r in received["RCPT"]] == ["RCPT TO:<ONCALL@EXAMPLE.ORG>"]
    assert "Subject: [spillguard] cache" in received["data"]
    assert "at stake: 2400 people" in received["data"]
    assert "Message-ID: <" in received["data"]  # from the idempotency key: a re-sent alert keeps it


def test_targets_that_differ_only_by_password_keep_two_histories(tmp_path: Path) -> None:
    with redis_server(password="pw-one-Xq9") as srv:
        one = f"redis://:pw-one-Xq9@127.0.0.1:{srv.port}/0"
        two = f"redis://:pw-two-Zk4@127.0.0.1:{srv.port}/0"
        anonymous = f"redis://127.0.0.1:{srv.port}/0"
        state = tmp_path / "h.sqlite"
        with History(state) as history:
            for _ in range(2):
                result = run_cycle([one, two, anonymous], history, [], WatchOptions(timeout=3))
            keys = [r[0] for r in history.db.execute("SELECT target FROM target_state ORDER BY target")]
            per_key = dict(history.db.execute("SELECT target_key, COUNT(*) FROM observations GROUP BY target_key"))
        assert {v.target for v in result.targets} == {f"redis://:***@127.0.0.1:{srv.port}/0", anonymous}
        store = f"redis://127.0.0.1:{srv.port}/0"
        assert len(keys) == 3 and keys[0] == store  # no credentials: the store key and path alone
        assert all(k.startswith(f"{store} login:") for k in keys[1:]) and keys[1] != keys[2]
        assert per_key == {k: 2 for k in keys}  # each target's own two observations
        for f in tmp_path.iterdir():
            data = f.read_bytes()
            assert b"pw-one" not in data and b"pw-two" not in data, f


def test_an_existing_world_readable_alert_file_is_made_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    path.write_text('{"event": "earlier"}\n')
    path.chmod(0o644)
    FileSink(str(path)).send(_alert())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [json.loads(x)["event"] for x in path.read_text().splitlines()] == ["earlier", "exposed"]
