"""Notify each person exactly once: real SMTP (aiosmtpd) and an idempotent HTTP mail API, the ledger, kill -9."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from spillguard.config import SinkConfig
from spillguard.errors import UserError
from spillguard.respond.journal import Journal
from spillguard.respond.notify import (
    Exemption,
    HttpMailConfig,
    HttpMailTransport,
    Ledger,
    Notifier,
    NotifyAction,
    Recipient,
    SmtpTransport,
    Templates,
    import_bounces,
    notices_from_report,
    recipients_from_csv,
)
from tests import ROOT
from tests.authservers import MailApi, SmtpRecorder

KEY = bytes.fromhex("5e" * 32)
GROUPS = ["credentials", "health", "financial", "identity", "home", "contact"]
CLI = [sys.executable, "-c", "from spillguard.cli import main; main()"]


@pytest.fixture(scope="module")
def notices(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The Art. 34 notices of a real report (demo data scanned, reported), with the draft's blanks filled in."""
    d = tmp_path_factory.mktemp("report")
    env = dict(os.environ, XDG_STATE_HOME=str(d / "state"))
    subprocess.run([sys.executable, "-c", f"from spillguard.demo import generate; generate({str(d / 'demo')!r}, users=200, seed=3)"],
                   check=True, env=env)  # fmt: skip
    subprocess.run(CLI + ["scan", str(d / "demo"), "-f", "json", "-o", str(d / "scan.json")], env=env, capture_output=True)
    subprocess.run(CLI + ["report", str(d / "scan.json"), "-f", "json", "-o", str(d / "report.json"), "--organisation",
                          "Acme Cameras", "--contact", "our data protection officer, Dana Example, +49 30 1234567"],
                   check=True, env=env, capture_output=True)  # fmt: skip
    out = notices_from_report(d / "report.json")
    assert [n["group"] for n in out] == GROUPS
    for n in out:
        n["what_happened"] = n["what_happened"].split(" [")[0] + " A configuration mistake on 4 December removed its password."
        n["measures"] = ["We closed access to the database on 26 December." if m.startswith("[") else m for m in n["measures"]]
    return out


def _people(n: int, seed: int = 1) -> list[Recipient]:
    rng = random.Random(seed)
    return [Recipient(f"person{i}@mail{i % 7}.example", tuple(rng.sample(GROUPS, rng.randint(1, 3))), f"Person {i}")
            for i in range(n)]  # fmt: skip


def _smtp(smtp: SmtpRecorder, **kw: Any) -> SmtpTransport:
    return SmtpTransport(SinkConfig(type="smtp", host=smtp.host, port=smtp.port, sender="privacy@acme.example", timeout=5),
                         **kw)  # fmt: skip


def _notifier(tmp: Path, notices: list[dict[str, Any]], transport: Any, **kw: Any) -> Notifier:
    return Notifier(incident="inc-2019-12", notices=notices, transport=transport, ledger=Ledger(tmp / "ledger.db"),
                    key=KEY, organisation="Acme Cameras", **kw)  # fmt: skip


def test_each_person_once_across_reruns(smtp: SmtpRecorder, notices: list[dict[str, Any]], tmp_path: Path) -> None:
    people = _people(40)
    # The same person twice, spelled differently, with other groups: still one message, covering both.
    people.append(Recipient("  PERSON3@Mail3.EXAMPLE ", ("health",)))
    lines: list[str] = []
    res = _notifier(tmp_path, notices, _smtp(smtp), log=lines.append).run(people)
    assert (res.people, res.sent, res.failed, res.in_doubt) == (40, 40, 0, 0) and res.complete
    counts = smtp.by_recipient()
    assert counts == {f"person{i}@mail{i % 7}.example": 1 for i in range(40)}
    # The message carries the four Art. 34(2) items and comes from the template of the most serious group.
    first = {m.rcpt_tos[0]: m for m in smtp.messages}["person3@mail3.example"]
    body = first.message.get_content()
    assert "What happened" in body and "Who to contact" in body and "What we have done" in body
    assert "What this can mean for you" in body and "Dana Example" in body and "Dear Person 3" in body
    assert first.message["Message-ID"].endswith("@acme.example>")

    again = _notifier(tmp_path, notices, _smtp(smtp)).run(people + _people(45)[40:])
    assert (again.sent, again.already) == (5, 40)
    assert max(smtp.by_recipient().values()) == 1 and smtp.count() == 45

    ledger = tmp_path / "ledger.db"
    for f in (ledger, Path(f"{ledger}-wal")):
        assert oct(f.stat().st_mode & 0o777) == "0o600", f
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("ledger.db*"))
    out = json.dumps(res.to_json()) + json.dumps(again.to_json()) + "\n".join(lines)
    for i in range(45):
        assert f"person{i}@mail".encode() not in stored and f"person{i}@mail" not in out


_CHILD = """
import json, sys
from spillguard.config import SinkConfig
from spillguard.respond.notify import Ledger, Notifier, Recipient, SmtpTransport
cfg = json.loads(sys.argv[1])
t = SmtpTransport(SinkConfig(type="smtp", host=cfg["host"], port=cfg["port"], sender="privacy@acme.example"))
people = [Recipient(a, tuple(g)) for a, g in cfg["people"]]
Notifier(incident="inc-kill", notices=cfg["notices"], transport=t, ledger=Ledger(cfg["ledger"]),
         key=bytes.fromhex(cfg["key"])).run(people)
"""


@pytest.mark.parametrize("kill_after", [7, 61, 150])
def test_kill_9_during_notification_then_rerun(smtp: SmtpRecorder, notices: list[dict[str, Any]], tmp_path: Path,
                                               kill_after: int) -> None:  # fmt: skip
    people = _people(200, seed=kill_after)
    smtp.delay_s = 0.004  # the server takes a moment per message, so the kill lands mid-run
    cfg = {"host": smtp.host, "port": smtp.port, "ledger": str(tmp_path / "ledger.db"), "key": KEY.hex(),
           "notices": notices, "people": [(p.address, list(p.groups)) for p in people]}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(cfg)], env=dict(os.environ))
    deadline = time.monotonic() + 60
    while smtp.count() < kill_after and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.001)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = smtp.count()
    assert kill_after <= before < 200

    smtp.delay_s = 0.0
    rerun = _notifier(tmp_path, notices, _smtp(smtp))
    rerun.incident = "inc-kill"
    res = rerun.run(people)
    # At most the message in flight on each of the 4 connections is in doubt, and none is sent again blindly.
    assert res.in_doubt <= 4 and res.already + res.sent + res.in_doubt == 200
    assert max(smtp.by_recipient().values()) == 1
    # The operator settles it from the mail server's log (the Message-ID is deterministic), then reruns.
    assert rerun.resolve_in_doubt(lambda ids: ids & smtp.message_ids()) == res.in_doubt
    final = rerun.run(people)
    assert final.in_doubt == 0 and final.complete
    assert smtp.by_recipient() == {p.address: 1 for p in people}


def test_template_without_an_art34_item_is_refused(smtp: SmtpRecorder, notices: list[dict[str, Any]], tmp_path: Path) -> None:
    good = (ROOT / "spillguard/respond/templates/notice.txt.j2").read_text()
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "health.txt.j2").write_text(good.replace("{% block contact -%}", "{% block helpdesk -%}"))
    with pytest.raises(UserError, match=r"health.txt.j2: no \{% block contact %\} \(the contact point\)"):
        _notifier(tmp_path, notices, _smtp(smtp), templates=Templates(folder))
    (folder / "health.txt.j2").write_text(good.replace("{{ notice.what_happened }}", "").replace(
        "The information of yours that was affected: {{ data }}", "").replace("What happened", ""))
    with pytest.raises(UserError, match="block 'nature' .* renders empty"):
        _notifier(tmp_path, notices, _smtp(smtp), templates=Templates(folder))
    (folder / "health.txt.j2").write_text(good.replace("Subject: {{ notice.subject_line }}\n\n", ""))
    with pytest.raises(UserError, match="must start with one `Subject: …` line"):
        _notifier(tmp_path, notices, _smtp(smtp), templates=Templates(folder))
    (folder / "health.txt.j2").unlink()
    draft = [dict(n) for n in notices]
    draft[2]["measures"] = ["[Describe how the exposure was stopped and when.]"]
    with pytest.raises(UserError, match="notice for 'financial': measures still holds a placeholder"):
        _notifier(tmp_path, draft, _smtp(smtp))
    draft = [dict(n) for n in notices]
    draft[0]["contact"] = ""
    with pytest.raises(UserError, match="'credentials': the contact point"):
        _notifier(tmp_path, draft, _smtp(smtp))
    assert smtp.count() == 0


def test_cli_report_json_without_contact_is_refused_with_exit_2(tmp_path: Path) -> None:
    """The report's own draft (no --contact, placeholders left) cannot be sent: one line, exit 2."""
    script = ("import sys\nfrom spillguard.errors import UserError\nfrom spillguard.respond.notify import check_notice\n"
              "try:\n    check_notice({'group': 'home', 'what_happened': 'x', 'what_data': 'y', 'consequences': ['c'],"
              " 'measures': ['m'], 'contact': '[name, role, e-mail and phone of the data protection officer or other contact point]'})\n"
              "except UserError as e:\n    print(f'spillguard: {e}', file=sys.stderr); sys.exit(2)\n")  # fmt: skip
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "fill in --contact" in res.stderr


def test_custom_group_template_and_preview(smtp: SmtpRecorder, notices: list[dict[str, Any]], tmp_path: Path) -> None:
    good = (ROOT / "spillguard/respond/templates/notice.txt.j2").read_text()
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "credentials.txt.j2").write_text(good.replace("What happened", "Your account: what happened"))
    n = _notifier(tmp_path, notices, _smtp(smtp), templates=Templates(folder))
    res = n.preview("reviewer@acme.example")
    assert res.previews == 2 and set(res.by_template) == {"credentials.txt.j2", "notice.txt.j2"}
    assert smtp.by_recipient() == {"reviewer@acme.example": 2}
    assert all(m.message["Subject"].startswith("[PREVIEW] ") for m in smtp.messages)
    assert Ledger(tmp_path / "ledger.db").counts("inc-2019-12") == {}
    people = [Recipient("a@x.example", ("credentials", "home")), Recipient("b@x.example", ("home",))]
    sent = _notifier(tmp_path, notices, _smtp(smtp), templates=Templates(folder)).run(people)
    assert sent.by_template == {"credentials.txt.j2": 1, "notice.txt.j2": 1}


def test_refusals_failures_and_bounces_are_recorded(smtp: SmtpRecorder, notices: list[dict[str, Any]], tmp_path: Path) -> None:
    people = _people(12)
    smtp.refuse[people[0].address] = "550 5.1.1 <person0@mail0.example> no such user"
    smtp.refuse[people[1].address] = "451 4.3.0 try again later"
    n = _notifier(tmp_path, notices, _smtp(smtp, retries=1, backoff_s=0.01))
    res = n.run(people)
    assert (res.sent, res.rejected, res.failed) == (10, 1, 1) and not res.complete
    assert {f["code"] for f in res.failures} == {"550", "451"}
    assert "person0@" not in json.dumps(res.to_json()) and res.failures[0]["recipient"].startswith("p***@")
    # The server takes the deferred one now; the refused one is not tried again.
    smtp.refuse.clear()
    again = _notifier(tmp_path, notices, _smtp(smtp)).run(people)
    assert (again.sent, again.already) == (1, 11)
    assert smtp.by_recipient().get(people[0].address) is None and smtp.by_recipient()[people[1].address] == 1

    # A bounce arrives later as an RFC 3464 report naming the original Message-ID.
    original = next(m for m in smtp.messages if m.rcpt_tos == [people[5].address])
    mid = str(original.message["Message-ID"]).encode()
    raw = (b"From: MAILER-DAEMON@mail5.example\r\nTo: privacy@acme.example\r\nSubject: Undelivered Mail\r\n"
           b'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
           b"--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
           b"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mail5.example\r\n\r\n"
           b"Final-Recipient: rfc822; person5@mail5.example\r\nAction: failed\r\nStatus: 5.2.2\r\n\r\n"
           b"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: " + mid + b"\r\nSubject: x\r\n\r\n--B--\r\n")
    ledger = Ledger(tmp_path / "ledger.db")
    assert import_bounces(ledger, [raw]) == 1
    assert ledger.counts("inc-2019-12") == {"sent": 10, "rejected": 1, "bounced": 1}


def test_exemption_is_journaled_once(smtp: SmtpRecorder, notices: list[dict[str, Any]], tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db", KEY)
    exempt = [Exemption("financial", "34(3)(a)", "card numbers were stored encrypted (AES-256, key not exposed)")]
    people = [Recipient("only-cards@x.example", ("financial",)), Recipient("both@x.example", ("financial", "contact"))]
    for _ in range(2):
        res = _notifier(tmp_path, notices, _smtp(smtp), exemptions=exempt, journal=journal).run(people)
    assert res.exempted == 1 and smtp.by_recipient() == {"both@x.example": 1}
    body = smtp.messages[0].message.get_content()
    assert "card" not in body.split("What this can mean for you")[1].split("What we have done")[0].lower()
    decisions = [e for e in journal.entries("inc-2019-12") if e.kind == "decision"]
    assert len(decisions) == 1 and decisions[0].result == "exempt 34(3)(a)" and "encrypted" in decisions[0].detail
    runs = [e for e in journal.entries("inc-2019-12") if e.kind == "notify"]
    assert [(r.done, r.result) for r in runs] == [(1, "done"), (1, "done")]
    assert journal.verify().ok
    assert b"@x.example" not in (tmp_path / "journal.db").read_bytes()
    with pytest.raises(UserError, match="basis '34\\(3\\)\\(d\\)'"):
        Exemption("health", "34(3)(d)", "x")


def test_http_provider_gets_idempotency_keys(mail_api: MailApi, notices: list[dict[str, Any]], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("SG_MAIL_KEY", mail_api.api_key)
    cfg = HttpMailConfig(url=mail_api.url, sender="privacy@acme.example", api_key_env="SG_MAIL_KEY")
    people = _people(20)
    mail_api.fail_next = [503, 500]  # transient: retried with the same key
    res = _notifier(tmp_path, notices, HttpMailTransport(cfg, backoff_s=0.01)).run(people)
    assert (res.sent, res.failed) == (20, 0) and len(mail_api.sent) == 20
    keys = [k for k, _ in mail_api.requests]
    assert len(keys) == 22 and len(set(keys)) == 20  # the two 5xx answers were retried with the same key
    # The process died after the provider accepted three messages and before the ledger said so.
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        db.execute("UPDATE messages SET state='pending' WHERE rowid IN (2, 5, 9)")
    again = _notifier(tmp_path, notices, HttpMailTransport(cfg)).run(people)
    assert (again.sent, again.already, again.in_doubt) == (3, 17, 0)
    assert len(mail_api.sent) == 20 and len(mail_api.requests) == 25  # re-sent with the same keys, dropped as duplicates
    # Past the provider's key lifetime a re-send could duplicate: held for the operator instead.
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        db.execute("UPDATE messages SET state='pending' WHERE rowid = 4")
    late = HttpMailConfig(url=mail_api.url, sender="privacy@acme.example", api_key_env="SG_MAIL_KEY", dedup_window_s=0.0)
    held = _notifier(tmp_path, notices, HttpMailTransport(late)).run(people)
    assert (held.sent, held.in_doubt) == (0, 1) and held.held[0]["message_id"].endswith("@acme.example>")


def test_bad_input_is_one_line_before_anything_is_sent(smtp: SmtpRecorder, notices: list[dict[str, Any]], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    with pytest.raises(UserError, match=r"recipient p\*\*\*@m\*\*\*.example: no Art. 34 notice for group 'pets'"):
        _notifier(tmp_path, notices, _smtp(smtp)).run([Recipient("person1@mail1.example", ("pets",))])
    csv_path = tmp_path / "people.csv"
    csv_path.write_text("email,groups\nok@x.example,contact\nnot-an-address,contact\n")
    with pytest.raises(UserError, match=r"people.csv:3: not an e-mail address"):
        list(recipients_from_csv(csv_path))
    with pytest.raises(UserError, match="no column 'mail'"):
        list(recipients_from_csv(csv_path, address_column="mail"))
    monkeypatch.delenv("SG_NO_KEY", raising=False)
    with pytest.raises(UserError, match=r"set \$SG_NO_KEY"):
        HttpMailTransport(HttpMailConfig(url="http://127.0.0.1:9/emails", sender="a@b.example", api_key_env="SG_NO_KEY"))
    dead = SmtpTransport(SinkConfig(type="smtp", host="127.0.0.1", port=9, sender="a@b.example", timeout=2))
    with pytest.raises(UserError, match="cannot reach the mail server"):
        _notifier(tmp_path, notices, dead).run(_people(3))
    assert Ledger(tmp_path / "ledger.db").counts("inc-2019-12") == {} and smtp.count() == 0
    # A server that refuses the sender stops the run: nobody is marked refused, everybody stays sendable.
    smtp.refuse_sender = "553 5.7.1 sender not allowed"
    with pytest.raises(UserError, match="refuses the sender"):
        _notifier(tmp_path, notices, _smtp(smtp)).run(_people(3))
    counts = Ledger(tmp_path / "ledger.db").counts("inc-2019-12")
    assert set(counts) <= {"failed"} and smtp.count() == 0
    smtp.refuse_sender = None
    assert _notifier(tmp_path, notices, _smtp(smtp)).run(_people(3)).sent == 3


def test_as_a_playbook_action(smtp: SmtpRecorder, notices: list[dict[str, Any]], tmp_path: Path) -> None:
    from spillguard.respond.actions import Action, Context, Limits

    journal = Journal(tmp_path / "journal.db", KEY)
    people = _people(25)
    ctx = Context(incident="inc-2019-12", scope="exact", leaked=None, subjects=None, journal=journal, key=KEY,  # type: ignore[arg-type]
                  limits=Limits(batch=10), dry_run=False)  # fmt: skip
    action = NotifyAction({"id": "notify-people"}, notifier=_notifier(tmp_path, notices, _smtp(smtp)), recipients=people)
    assert isinstance(action, Action)
    assert action.verify(ctx).still_active == 25
    steps = action.plan(ctx)
    assert [s.count for s in steps] == [10, 10, 5] and all(len(h) == 64 for s in steps for h in s.payload)
    for step in steps[:2]:
        journal.intent(step, incident=ctx.incident, target="smtp")
        journal.outcome(step, action.execute(ctx, step), incident=ctx.incident, target="smtp")
    v = action.verify(ctx)
    assert (v.checked, v.still_active, v.details) == (25, 5, ["5 not sent"])
    # A fresh process plans only the people not yet told.
    again = NotifyAction({"id": "notify-people"}, notifier=_notifier(tmp_path, notices, _smtp(smtp)), recipients=people)
    (last,) = again.plan(ctx)
    assert last.count == 5 and again.execute(ctx, last).done == 5
    assert again.verify(ctx).still_active == 0 and smtp.by_recipient() == {p.address: 1 for p in people}
    assert b"@mail" not in (tmp_path / "journal.db").read_bytes() and journal.verify().ok


def test_playbook_notify_action_through_the_runner(smtp: SmtpRecorder, notices: list[dict[str, Any]], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """`kind = "notify"` in respond.toml: checked at open, people planned in steps, the run journaled, a rerun sends nothing."""
    from spillguard.respond.runner import execute_response, open_response, plan_response, verify_response

    monkeypatch.setenv("SPILLGUARD_FINGERPRINT_KEY", KEY.hex())
    (tmp_path / "report.json").write_text(json.dumps({"art34": notices}))
    people = _people(30)
    rows = ["email,groups,user_id"] + [f"{p.address},{';'.join(p.groups)},u{i}" for i, p in enumerate(people)]
    (tmp_path / "people.csv").write_text("\n".join(rows) + "\n")
    # Scope exact: only the people in the subjects file (as `scan --subjects-out` writes it) are told.
    affected = {f"u{i}" for i in range(0, 30, 3)}
    (tmp_path / "subjects.csv").write_text("subject\n" + "\n".join(sorted(affected)) + "\n")
    playbook = tmp_path / "respond.toml"
    playbook.write_text(f"""
incident = "2019-12-es-leak"
scope = "exact"
subjects = "subjects.csv"
journal = "response.journal"
limits = {{batch = 4}}

[[action]]
id = "tell-people"
kind = "notify"
report = "report.json"
recipients = "people.csv"
subject_column = "user_id"
ledger = "notify.ledger"
organisation = "Acme Cameras"
smtp_host = "{smtp.host}"
smtp_port = {smtp.port}
sender = "privacy@acme.example"
exempt = [{{group = "financial", basis = "34(3)(a)", reason = "card numbers were stored encrypted"}}]
""")
    for _ in range(2):
        resp = plan_response(open_response(playbook, execute=True))
        execute_response(resp)
        verify_response(resp)
        assert resp.verify_dict()["still_active"] == 0
        resp.close()
    told = {f"person{i}@mail{i % 7}.example" for i in range(0, 30, 3) if set(people[i].groups) - {"financial"}}
    assert smtp.by_recipient() == {a: 1 for a in told}
    journal = Journal(tmp_path / "response.journal", KEY)
    assert journal.verify().ok
    assert sum(1 for e in journal.entries() if e.kind == "decision") == 1
    assert b"@mail" not in (tmp_path / "response.journal").read_bytes()
    assert oct((tmp_path / "notify.ledger").stat().st_mode & 0o777) == "0o600"

    # Bad input stops the run at open, before anything is sent: a template folder that does not exist.
    playbook.write_text(playbook.read_text().replace('organisation = "Acme Cameras"', 'templates = "nope"'))
    with pytest.raises(UserError, match="no such templates folder"):
        open_response(playbook, execute=True)


def test_cli_refuses_a_template_without_contact_with_exit_2(smtp: SmtpRecorder, notices: list[dict[str, Any]],
                                                            tmp_path: Path) -> None:  # fmt: skip
    """`spillguard respond execute --execute` with a notice template missing an Art. 34(2) item: one line, exit 2, nothing sent."""
    (tmp_path / "report.json").write_text(json.dumps({"art34": notices}))
    (tmp_path / "people.csv").write_text("email,groups\nann@x.example,credentials\n")
    good = (ROOT / "spillguard/respond/templates/notice.txt.j2").read_text()
    (tmp_path / "notices").mkdir()
    (tmp_path / "notices" / "default.txt.j2").write_text(good.replace("{% block contact -%}", "{% block footer -%}"))
    (tmp_path / "respond.toml").write_text(f"""
incident = "2019-12-es-leak"
scope = "all"
[[action]]
kind = "notify"
report = "report.json"
recipients = "people.csv"
ledger = "notify.ledger"
templates = "notices"
smtp_host = "{smtp.host}"
smtp_port = {smtp.port}
sender = "privacy@acme.example"
""")
    res = subprocess.run(CLI + ["respond", "execute", str(tmp_path / "respond.toml"), "--execute"], capture_output=True,
                         text=True, env=dict(os.environ, SPILLGUARD_FINGERPRINT_KEY=KEY.hex()))  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().count("\n") == 0 and "no {% block contact %} (the contact point)" in res.stderr
    assert "Traceback" not in res.stderr and smtp.count() == 0 and "ann@" not in res.stdout + res.stderr


def test_rate_limit_spaces_the_messages(smtp: SmtpRecorder, notices: list[dict[str, Any]], tmp_path: Path) -> None:
    from spillguard.respond.actions import Limits

    started = time.time()
    res = _notifier(tmp_path, notices, _smtp(smtp), limits=Limits(per_second=40)).run(_people(20))
    assert res.sent == 20
    times = sorted(m.at for m in smtp.messages)
    # 20 messages at 40 a second: the last cannot be accepted before 19/40 s after the run began. Acceptance times
    # at the server can bunch when the machine is loaded (a late first delivery shortens the span), so the span
    # itself is only required to show the spacing, not all of it.
    assert times[-1] - started >= 19 / 40 * 0.95
    assert times[-1] - times[0] >= 19 / 40 * 0.5


def test_two_runs_on_one_ledger_cannot_overlap(smtp: SmtpRecorder, notices: list[dict[str, Any]], tmp_path: Path) -> None:
    first = _notifier(tmp_path, notices, _smtp(smtp))
    with first.ledger.exclusive(), pytest.raises(UserError, match="another notification run is using this ledger"):
        _notifier(tmp_path, notices, _smtp(smtp)).run(_people(3))
    assert smtp.count() == 0
    assert _notifier(tmp_path, notices, _smtp(smtp)).run(_people(3)).sent == 3


def test_connection_cut_after_the_final_dot_is_in_doubt_not_resent(smtp: SmtpRecorder, notices: list[dict[str, Any]],
                                                                   tmp_path: Path) -> None:  # fmt: skip
    people = _people(6)
    smtp.drop_after_data.add(people[2].address)
    res = _notifier(tmp_path, notices, _smtp(smtp, retries=2, backoff_s=0.01)).run(people)
    assert (res.sent, res.in_doubt, res.failed) == (5, 1, 0) and res.held[0]["recipient"] == "p***@m***.example"
    smtp.drop_after_data.clear()
    held = _notifier(tmp_path, notices, _smtp(smtp)).run(people)
    assert (held.sent, held.already, held.in_doubt) == (0, 5, 1)
    assert smtp.by_recipient()[people[2].address] == 1  # the server had it all along; nobody re-sent it
    n = _notifier(tmp_path, notices, _smtp(smtp))
    assert n.resolve_in_doubt(lambda ids: ids & smtp.message_ids()) == 1
    assert n.run(people).already == 6 and smtp.count() == 6
    # At-least-once, when the operator chooses it: an in-doubt message is sent again.
    smtp.drop_after_data.add(people[4].address)
    (tmp_path / "b").mkdir()
    _notifier(tmp_path / "b", notices, _smtp(smtp, retries=0)).run(people[4:5])
    smtp.drop_after_data.clear()
    again = _notifier(tmp_path / "b", notices, _smtp(smtp), in_doubt="resend").run(people[4:5])
    assert again.sent == 1 and smtp.by_recipient()[people[4].address] == 3


def _cli_playbook(tmp: Path, smtp: SmtpRecorder, notices: list[dict[str, Any]], people: list[Recipient]) -> Path:
    (tmp / "report.json").write_text(json.dumps({"art34": notices}))
    (tmp / "people.csv").write_text("email,groups,name\n" + "".join(f"{p.address},{';'.join(p.groups)},{p.name}\n" for p in people))
    playbook = tmp / "respond.toml"
    playbook.write_text(f"""
incident = "2019-12-es-leak"
scope = "all"
journal = "response.journal"
[[action]]
id = "tell-people"
kind = "notify"
report = "report.json"
recipients = "people.csv"
name_column = "name"
ledger = "notify.ledger"
organisation = "Acme Cameras"
smtp_host = "{smtp.host}"
smtp_port = {smtp.port}
sender = "privacy@acme.example"
""")
    return playbook


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, SPILLGUARD_FINGERPRINT_KEY=KEY.hex()))  # fmt: skip


def test_cli_preview_sends_the_plan_to_one_test_address(smtp: SmtpRecorder, notices: list[dict[str, Any]], tmp_path: Path) -> None:
    people = _people(17, seed=4)
    playbook = _cli_playbook(tmp_path, smtp, notices, people)
    ledger = tmp_path / "notify.ledger"
    # One per template in use (the built-in one serves every group here).
    res = _run("respond", "execute", str(playbook), "--preview", "reviewer@acme.example", "-f", "json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)["actions"][0]
    assert (doc["previews"], doc["people"], doc["sent"]) == (1, 17, 0) and doc["by_template"] == {"notice.txt.j2": 1}
    assert smtp.by_recipient() == {"reviewer@acme.example": 1}
    # Every message of the plan, each person's own text, all to the test address.
    res = _run("respond", "execute", str(playbook), "--preview", "reviewer@acme.example", "--preview-every")
    assert res.returncode == 0, res.stderr
    assert smtp.by_recipient() == {"reviewer@acme.example": 18}
    previews = smtp.messages[1:]
    assert all(str(m.message["Subject"]).startswith("[PREVIEW for p***@m***.example] ") for m in previews)
    # Each person's own message: every name in exactly one preview.
    for p in people:
        assert sum(1 for m in previews if re.search(rf"\b{p.name}\b", m.message.get_content())) == 1, p.name
    assert all(str(m.message["Message-ID"]).startswith("<preview-") for m in previews)
    assert "person" not in res.stdout + res.stderr and "reviewer@" not in res.stdout
    # Nothing recorded as sent: the ledger has no row, there is no journal, and the real run mails everybody.
    assert Ledger(ledger).counts("2019-12-es-leak") == {} and not (tmp_path / "response.journal").exists()
    real = _run("respond", "execute", str(playbook), "--execute", "-f", "json")
    assert real.returncode == 0, real.stderr
    assert {a: n for a, n in smtp.by_recipient().items() if a != "reviewer@acme.example"} == {p.address: 1 for p in people}
    # Bad input: one line, exit 2, nothing sent.
    before = smtp.count()
    for args, message in ((("--preview", "reviewer@acme.example", "--execute"), "without --execute"),
                          (("--preview-every",), "needs --preview"), (("--preview", "not-an-address"), "one e-mail address")):
        bad = _run("respond", "execute", str(playbook), *args)
        assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and message in bad.stderr, bad.stderr
    assert smtp.count() == before


def _dsn(message_id: str, status: str = "5.1.1", action: str = "failed") -> bytes:
    return (b"From: MAILER-DAEMON@mx.example\r\nTo: privacy@acme.example\r\nSubject: Undelivered Mail\r\n"
            b'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
            b"--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
            b"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
            b"Final-Recipient: rfc822; someone@mx.example\r\nAction: " + action.encode() + b"\r\nStatus: " + status.encode()
            + b"\r\n\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: " + message_id.encode()
            + b"\r\nSubject: x\r\n\r\n--B--\r\n")  # fmt: skip


@pytest.mark.parametrize("form", ["mbox", "eml"])
def test_cli_verify_imports_bounces(smtp: SmtpRecorder, notices: list[dict[str, Any]], tmp_path: Path, form: str) -> None:
    import mailbox

    people = _people(9, seed=8)
    playbook = _cli_playbook(tmp_path, smtp, notices, people)
    assert _run("respond", "execute", str(playbook), "--execute").returncode == 0
    assert _run("respond", "verify", str(playbook)).returncode == 0
    by_addr = {m.rcpt_tos[0]: str(m.message["Message-ID"]) for m in smtp.messages}
    bounced = [people[2].address, people[6].address]
    dsns = [_dsn(by_addr[a]) for a in bounced]
    dsns += [_dsn(by_addr[people[3].address], "4.2.2", "delayed"),  # a delay is not a bounce
             _dsn("<unknown@elsewhere.example>"), b"From: a@b.example\r\nSubject: hello\r\n\r\nnot a report\r\n"]
    if form == "mbox":
        where = tmp_path / "bounces.mbox"
        box = mailbox.mbox(where)
        for raw in dsns:
            box.add(raw)
        box.close()
    else:
        where = tmp_path / "bounces"
        where.mkdir()
        for i, raw in enumerate(dsns):
            (where / f"{i}.eml").write_bytes(raw)
    res = _run("respond", "verify", str(playbook), "--bounces", str(where), "-f", "json")
    assert res.returncode == 1, res.stderr
    assert "read 5 messages, recorded 2 bounces" in res.stderr
    (action,) = json.loads(res.stdout)["actions"]
    assert (action["checked"], action["still_active"], action["details"]) == (9, 2, ["2 bounced"])
    assert Ledger(tmp_path / "notify.ledger").counts("2019-12-es-leak") == {"sent": 7, "bounced": 2}
    assert "person" not in res.stdout + res.stderr
    # A rerun of execute does not mail the bounced people again; a missing mailbox is one line, exit 2.
    before = smtp.count()
    assert _run("respond", "execute", str(playbook), "--execute").returncode == 0 and smtp.count() == before
    bad = _run("respond", "verify", str(playbook), "--bounces", str(tmp_path / "nope.mbox"))
    assert bad.returncode == 2 and "no such mailbox" in bad.stderr and bad.stderr.strip().count("\n") == 0
