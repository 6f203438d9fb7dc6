"""The response journal: chain, anchor, append-only triggers, exports, and tamper detection by hand edits."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from spillguard.respond.journal import Journal, export_json, export_markdown
from spillguard.respond.steps import Step, StepOutcome, step_key
from tests import ROOT

KEY = bytes.fromhex("5f" * 32)


def _journal(path: Path, steps: int = 6) -> list[Step]:
    made = []
    with Journal(path, KEY) as j:
        j.append("open", incident="inc", detail="cut-off 2026-01-01T00:00:00.000000Z")
        for i in range(steps):
            s = Step(step_key("inc", "tokens", [f"d{i}"]), "tokens", f"revoke {i} tokens in t at postgresql://app@db/app", i)
            j.intent(s, incident="inc", target="postgresql://app:***@db/app", scope="exact")
            j.outcome(s, StepOutcome(i), incident="inc", target="postgresql://app:***@db/app", scope="exact")
            made.append(s)
    return made


def _raw(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.execute("DROP TRIGGER entries_no_update")
    db.execute("DROP TRIGGER entries_no_delete")
    return db


def journal_verify(path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SPILLGUARD_FINGERPRINT_KEY": KEY.hex()}
    return subprocess.run([sys.executable, "-c", "from spillguard.cli import main; main()", "journal", "verify", str(path)],
                          capture_output=True, text=True, env=env, timeout=120)


def test_intact_journal_verifies_and_is_owner_only(tmp_path):
    p = tmp_path / "j.db"
    steps = _journal(p)
    assert oct(p.stat().st_mode & 0o777) == "0o600"
    with Journal(p, KEY) as j:
        check = j.verify()
        assert check.ok and check.entries == 13 and not check.problems
        assert all(j.done(s.key) for s in steps) and not j.in_flight()
    res = journal_verify(p)
    assert res.returncode == 0 and "intact, 13 entries" in res.stdout


def test_append_only_triggers(tmp_path):
    p = tmp_path / "j.db"
    _journal(p, 1)
    db = sqlite3.connect(p)
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("UPDATE entries SET count = 99 WHERE seq = 2")
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("DELETE FROM entries WHERE seq = 2")


@pytest.mark.parametrize("tamper, problem", [
    ("UPDATE entries SET done = 999 WHERE seq = 5", "entry 5: content does not match its hash (edited)"),
    ("UPDATE entries SET detail = 'nothing happened' WHERE seq = 1", "entry 1: content does not match its hash (edited)"),
    ("DELETE FROM entries WHERE seq = 4", "entry 5: expected sequence 4"),
    ("DELETE FROM entries WHERE seq = 13", "entries removed"),
    ("DELETE FROM entries WHERE seq >= 10", "entries removed"),
])
def test_tampering_is_detected(tmp_path, tamper, problem):
    p = tmp_path / "j.db"
    _journal(p)
    db = _raw(p)
    db.execute(tamper)
    db.commit()
    db.close()
    res = journal_verify(p)
    assert res.returncode == 1
    assert problem in res.stderr, res.stderr


def test_reordered_entries_are_detected(tmp_path):
    p = tmp_path / "j.db"
    _journal(p)
    db = _raw(p)
    cols = "at, actor, incident, kind, step_key, action, target, scope, count, done, failed, result, detail, prev, hash"
    a = db.execute(f"SELECT {cols} FROM entries WHERE seq = 3").fetchone()
    b = db.execute(f"SELECT {cols} FROM entries WHERE seq = 5").fetchone()
    sets = ", ".join(f"{c.strip()} = ?" for c in cols.split(","))
    db.execute(f"UPDATE entries SET {sets} WHERE seq = 3", b)
    db.execute(f"UPDATE entries SET {sets} WHERE seq = 5", a)
    db.commit()
    db.close()
    res = journal_verify(p)
    assert res.returncode == 1 and "entry 3" in res.stderr


def test_forged_chain_without_the_key_fails(tmp_path):
    """Recomputing the chain with another key (an editor without the install's key) is caught."""
    p = tmp_path / "j.db"
    _journal(p)
    q = tmp_path / "forged.db"
    with Journal(q, b"\x01" * 32) as j:  # same content, attacker's key
        j.append("open", incident="inc", detail="cut-off 2026-01-01T00:00:00.000000Z")
    res = journal_verify(q)
    assert res.returncode == 1 and "content does not match" in res.stderr


def test_in_flight_and_exports(tmp_path):
    p = tmp_path / "j.db"
    with Journal(p, KEY) as j:
        s = Step(step_key("inc", "a", ["x"]), "a", "end 3 sessions", 3)
        j.intent(s, incident="inc")
        assert j.in_flight("inc") == {s.key} and not j.done(s.key)
        j.outcome(s, StepOutcome(2, 1, "one failed"), incident="inc")
        assert not j.done(s.key)  # a failed outcome is retried by the next run
        md = export_markdown(j)
        doc = json.loads(export_json(j))
    assert "| 2 |" in md and "intact" in md
    assert doc["verified"] and len(doc["entries"]) == 2 and doc["entries"][1]["failed"] == 1


def test_refuses_unmasked_email(tmp_path):
    with Journal(tmp_path / "j.db", KEY) as j, pytest.raises(ValueError):
        j.append("note", incident="inc", detail="mailed Person@Example.COM")


def test_step_keys_are_deterministic_and_order_free():
    assert step_key("i", "a", ["b", "a"]) == step_key("i", "a", ["a", "b"])
    assert step_key("i", "a", ["ab"]) != step_key("i", "a", ["a", "b"])
    assert step_key("i", "a", ["a"]) != step_key("j", "a", ["a"])
