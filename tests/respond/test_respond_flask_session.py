"""Flask-Session by user: sessions written by the real Flask-Session package into a throwaway Redis, with each
serialiser it offers (msgpack, json) plus pickled sessions as Flask-Session < 0.6 wrote them, which today's
Flask-Session still reads. Scope exact must end exactly the affected people's sessions of every format; a
malicious pickle must be refused without running, counted as unattributed and reported."""

from __future__ import annotations

import json
import os
import pickle

import pytest

from tests.respond import test_respond as base
from tests.respond.test_respond import cli, playbook
from tests.servers import redis_server

world = base.world  # test_respond's module-scoped fixture: the world, its copy scanned

flask = pytest.importorskip("flask")
flask_session = pytest.importorskip("flask_session")
redis = pytest.importorskip("redis")


def flask_app(client: redis.Redis, fmt: str) -> flask.Flask:
    """A Flask app whose server-side sessions live in Redis; /login/<id> signs in as Flask-Login does."""
    app = flask.Flask(f"shop-{fmt}")
    app.config.update(SECRET_KEY="test-only", SESSION_TYPE="redis", SESSION_REDIS=client, SESSION_SERIALIZATION_FORMAT=fmt)
    flask_session.Session(app)

    @app.post("/login/<int:user_id>")
    def login(user_id: int) -> str:
        import datetime as dt

        flask.session["_user_id"] = str(user_id)  # Flask-Login's key, the id as text
        flask.session["_fresh"] = True
        flask.session["_id"] = "a" * 128
        flask.session["seen"] = dt.datetime(2019, 12, 26, 9, 21, tzinfo=dt.UTC)
        flask.session["cart"] = [{"sku": "cam-v2", "n": 1}]
        return "ok"

    @app.post("/browse")
    def browse() -> str:
        flask.session["cart"] = [{"sku": "plug", "n": 2}]
        return "ok"

    @app.get("/whoami")
    def whoami() -> str:
        return str(flask.session.get("_user_id"))

    return app


class Boom:
    """What an attacker with write access to the store would plant: unpickling runs a command."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def sessions_of(client: redis.Redis) -> set[bytes]:
    return set(client.scan_iter("session:*"))


def test_flask_session_by_user_every_serialiser(world, tmp_path):
    w, leaked, people = world
    marker = tmp_path / "pwned"
    with redis_server() as server:
        client = redis.Redis.from_url(server.url)
        expected_left: set[bytes] = set()
        affected = {u.id for u in w.leaked}
        by_format: dict[str, int] = {}
        users = w.users[:40]
        for n, fmt in enumerate(("msgpack", "json")):
            app = flask_app(client, fmt)
            before = sessions_of(client)
            made: set[bytes] = set()
            for u in users[n::2]:  # each user's sessions in one format, two browsers each
                for _ in range(2):
                    with app.test_client() as browser:
                        assert browser.post(f"/login/{u.id}").status_code == 200
                        assert browser.get("/whoami").text == str(u.id)  # Flask-Session reads its own value back
                    new = sessions_of(client) - before
                    before |= new
                    made |= new
                    if u.id not in affected:
                        expected_left |= new
            with app.test_client() as guest:
                guest.post("/browse")
            guest_keys = sessions_of(client) - before
            expected_left |= guest_keys
            # The store really holds each serialiser's bytes: a msgpack map, or a JSON object.
            for key in made:
                value = client.get(key)
                assert (value[0] & 0xF0 == 0x80) if fmt == "msgpack" else value.startswith(b"{")
            by_format[fmt] = len(made)
        # Sessions written by Flask-Session < 0.6: the pickled dict; today's Flask-Session still reads them.
        legacy_users = w.users[40:60]
        for u in legacy_users:
            for protocol in (2, pickle.HIGHEST_PROTOCOL):
                sid = f"legacy{u.id}p{protocol}"
                client.set(f"session:{sid}", pickle.dumps({"_user_id": str(u.id), "_fresh": True, "_permanent": True}, protocol))
                if u.id not in affected:
                    expected_left.add(f"session:{sid}".encode())
        app = flask_app(client, "msgpack")
        with app.test_client() as browser:
            browser.set_cookie("session", f"legacy{legacy_users[2].id}p2")
            assert browser.get("/whoami").text == str(legacy_users[2].id)
        # A planted pickle naming an affected person: refused, never run, counted and reported.
        victim = next(u for u in w.users if u.id in affected)
        client.set("session:planted", pickle.dumps({"_user_id": str(victim.id), "x": Boom(str(marker))}))
        expected_left.add(b"session:planted")
        client.set("cache:other", "not a session")

        pb = playbook(tmp_path, leaked, people, f'[[action]]\npreset = "flask-session"\nstore = "{server.url}"\n')
        session_ids = [k.split(b":", 1)[1] for k in sessions_of(client)]  # credentials: never shown or journaled
        res = cli("respond", "plan", str(pb), "-f", "json", check=0)
        shown = [res.stdout + res.stderr]
        plan = json.loads(res.stdout)["actions"][0]
        total = len(sessions_of(client))
        assert plan["count"] == total - len(expected_left)
        # Guests (one per app) and the planted pickle have no readable user: counted and said, never skipped silently.
        assert plan["notes"] == ["3 sessions matching session:* without a readable user (1 refused: pickle naming code, "
                                 "never run) (not ended by scope exact)"]
        table = cli("respond", "plan", str(pb), check=0).stdout
        assert "1 refused" in table
        shown.append(cli("respond", "execute", str(pb), "--execute", "-f", "json", check=0).stdout)
        assert sessions_of(client) == expected_left
        assert not marker.exists()
        res = cli("respond", "verify", str(pb), check=0)
        assert "without a readable user (1 refused" in res.stdout
        journal = (tmp_path / "respond.journal").read_bytes()
        assert b"1 refused" in journal
        export = cli("journal", "export", str(tmp_path / "respond.journal"), "--format", "json", check=0).stdout
        for blob in [*(t.encode() for t in [*shown, table, res.stdout, export]), journal]:
            assert not any(sid in blob for sid in session_ids)
        # Scope all ends everything under the prefix, whatever its format, and nothing else.
        cli("respond", "execute", str(pb), "--scope", "all", "--execute", check=0)
        assert not sessions_of(client) and client.get("cache:other") == b"not a session"
        assert not marker.exists()
        assert by_format["msgpack"] and by_format["json"]
        client.close()
