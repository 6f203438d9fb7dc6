"""Generated token, session and integration stores in the real formats, with ground truth of what leaked.

`World(users, leaked_every)` makes users; every `leaked_every`-th user is in the exposed copy (a JSON
Lines file scanned with --secrets-out/--subjects-out) with their tokens as they were when copied. Some
leaked users got new tokens after the copy (those did not leak: scope exact must leave them alone).
Loaders put the same world into PostgreSQL, MariaDB/MySQL, SQLite and Redis in the real layouts:
django-oauth-toolkit, DRF authtoken, Laravel Sanctum and sessions, Django sessions (signed payload),
Alexa-style linked accounts with Atza|/Atzr| tokens, express-session JSON in Redis.
"""

from __future__ import annotations

import hashlib
import json
import random
import string
from dataclasses import dataclass, field
from pathlib import Path

URLSAFE = string.ascii_letters + string.digits + "-_"


def _tok(rng: random.Random, n: int, alphabet: str = URLSAFE) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def django_session_data(user_id: int | None, rng: random.Random) -> str:
    """session_data exactly as Django's SessionBase.encode writes it (signed, compressed when shorter)."""
    from django.core import signing

    data: dict = {"cart": [rng.randint(1, 9) for _ in range(rng.choice((1, 40)))]}
    if user_id is not None:
        data.update({"_auth_user_id": str(user_id), "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
                     "_auth_user_hash": _tok(rng, 64, "0123456789abcdef")})
    signer = signing.TimestampSigner(key="test-secret-key-" + "x" * 40, salt="django.contrib.sessions.SessionStore",
                                     fallback_keys=[])
    return signer.sign_object(data, serializer=signing.JSONSerializer, compress=True)


@dataclass
class User:
    id: int
    email: str
    dot_access: str
    dot_refresh: str
    drf: str
    sanctum_id: int
    sanctum_secret: str
    alexa_access: str
    alexa_refresh: str
    leaked: bool
    django_sessions: list[str] = field(default_factory=list)
    laravel_sessions: list[str] = field(default_factory=list)
    redis_sessions: list[str] = field(default_factory=list)
    fresh_access: str | None = None  # issued after the copy: never leaked

    @property
    def sanctum_plain(self) -> str:
        return f"{self.sanctum_id}|{self.sanctum_secret}"


class World:
    def __init__(self, users: int = 120, leaked_every: int = 3, seed: int = 11) -> None:
        rng = random.Random(seed)
        self.rng = rng
        self.users: list[User] = []
        for i in range(1, users + 1):
            u = User(
                id=i, email=f"person{i}@example.org", dot_access=_tok(rng, 30), dot_refresh=_tok(rng, 30),
                drf=_tok(rng, 40, "0123456789abcdef"), sanctum_id=1000 + i, sanctum_secret=_tok(rng, 40, string.ascii_letters + string.digits),
                alexa_access="Atza|" + _tok(rng, 360), alexa_refresh="Atzr|" + _tok(rng, 360), leaked=i % leaked_every == 0,
            )
            u.django_sessions = [_tok(rng, 32, string.ascii_lowercase + string.digits) for _ in range(2)]
            u.laravel_sessions = [_tok(rng, 40) for _ in range(2)]
            u.redis_sessions = [_tok(rng, 32) for _ in range(2)]
            if u.leaked and i % (leaked_every * 2) == 0:
                u.fresh_access = _tok(rng, 30)
            self.users.append(u)
        self.guest_sessions = [_tok(rng, 32, string.ascii_lowercase + string.digits) for _ in range(7)]

    @property
    def leaked(self) -> list[User]:
        return [u for u in self.users if u.leaked]

    def raw_secrets(self) -> list[str]:
        """Every raw credential in the world (for 'never printed' checks)."""
        out = []
        for u in self.users:
            out += [u.dot_access, u.dot_refresh, u.drf, u.sanctum_secret, u.alexa_access, u.alexa_refresh,
                    *u.django_sessions, *u.laravel_sessions, *u.redis_sessions]
            if u.fresh_access:
                out.append(u.fresh_access)
        return out

    def write_copy(self, path: Path) -> None:
        """The exposed copy: leaked users with their tokens at copy time."""
        with open(path, "w") as fh:
            for u in self.leaked:
                fh.write(json.dumps({
                    "user_id": u.id, "email": u.email, "access_token": u.dot_access, "refresh_token": u.dot_refresh,
                    "auth_token": u.drf, "api_token": u.sanctum_plain, "alexa": {"access": u.alexa_access, "refresh": u.alexa_refresh},
                    "camera_name": f"cam {u.id}",
                }) + "\n")

    # -- SQL ----------------------------------------------------------------------------------------
    def sql_statements(self, dialect: str) -> list[tuple[str, list[tuple]]]:
        """(DDL or INSERT, rows) in the real layouts; dialect is postgresql, mysql or sqlite."""
        ts = {"postgresql": "timestamptz", "mysql": "datetime(6)", "sqlite": "text"}[dialect]
        serial = {"postgresql": "bigserial primary key", "mysql": "bigint auto_increment primary key", "sqlite": "integer primary key"}[dialect]
        p = "?" if dialect == "sqlite" else "%s"
        uq = "" if dialect == "sqlite" else ""
        out: list[tuple[str, list[tuple]]] = [
            (f"CREATE TABLE auth_user (id bigint primary key, email varchar(254), tokens_valid_after {ts} null)", []),
            (f"CREATE TABLE oauth2_provider_accesstoken (id {serial}, user_id bigint, token text not null, "
             f"token_checksum varchar(64) not null unique{uq}, expires {ts} null, scope text, application_id bigint, "
             f"source_refresh_token_id bigint null, id_token_id bigint null)", []),
            (f"CREATE TABLE oauth2_provider_refreshtoken (id {serial}, user_id bigint, token text not null, "
             f"token_checksum varchar(64) not null, access_token_id bigint null, application_id bigint, revoked {ts} null, "
             "token_family varchar(36) null, unique (token_checksum, revoked))", []),
            (f"CREATE TABLE authtoken_token (`key` varchar(40) primary key, created {ts} null, user_id bigint unique)"
             if dialect == "mysql" else f"CREATE TABLE authtoken_token (key varchar(40) primary key, created {ts} null, user_id bigint unique)", []),
            (f"CREATE TABLE personal_access_tokens (id {serial}, tokenable_type varchar(255), tokenable_id bigint, name varchar(255), "
             f"token varchar(64) unique, abilities text, last_used_at {ts} null, expires_at {ts} null)", []),
            (f"CREATE TABLE django_session (session_key varchar(40) primary key, session_data text not null, expire_date {ts} null)", []),
            ("CREATE TABLE sessions (id varchar(255) primary key, user_id bigint null, ip_address varchar(45), "
             "user_agent text, payload text not null, last_activity int not null)", []),
            (f"CREATE TABLE alexa_links (id {serial}, user_id bigint, access_token text, refresh_token text)", []),
        ]
        users = [(u.id, u.email) for u in self.users]
        access = [(u.id, u.dot_access, sha(u.dot_access)) for u in self.users]
        access += [(u.id, u.fresh_access, sha(u.fresh_access)) for u in self.users if u.fresh_access]
        refresh = [(u.id, u.dot_refresh, sha(u.dot_refresh)) for u in self.users]
        drf = [(u.drf, u.id) for u in self.users]
        sanctum = [(u.sanctum_id, "App\\Models\\User", u.id, "app", sha(u.sanctum_secret)) for u in self.users]
        dj = [(k, django_session_data(u.id, self.rng)) for u in self.users for k in u.django_sessions]
        dj += [(k, django_session_data(None, self.rng)) for k in self.guest_sessions]
        lv = [(k, u.id, "203.0.113.9", "Mozilla/5.0", "YTowOnt9", 1700000000) for u in self.users for k in u.laravel_sessions]
        lv += [(k, None, "203.0.113.9", "curl", "YTowOnt9", 1700000000) for k in self.guest_sessions]
        links = [(u.id, u.alexa_access, u.alexa_refresh) for u in self.users]
        k = "`key`" if dialect == "mysql" else "key"
        out += [
            (f"INSERT INTO auth_user (id, email) VALUES ({p}, {p})", users),
            (f"INSERT INTO oauth2_provider_accesstoken (user_id, token, token_checksum) VALUES ({p}, {p}, {p})", access),
            (f"INSERT INTO oauth2_provider_refreshtoken (user_id, token, token_checksum) VALUES ({p}, {p}, {p})", refresh),
            (f"INSERT INTO authtoken_token ({k}, user_id) VALUES ({p}, {p})", drf),
            (f"INSERT INTO personal_access_tokens (id, tokenable_type, tokenable_id, name, token) VALUES ({p}, {p}, {p}, {p}, {p})", sanctum),
            (f"INSERT INTO django_session (session_key, session_data) VALUES ({p}, {p})", dj),
            (f"INSERT INTO sessions (id, user_id, ip_address, user_agent, payload, last_activity) VALUES ({p}, {p}, {p}, {p}, {p}, {p})", lv),
            (f"INSERT INTO alexa_links (user_id, access_token, refresh_token) VALUES ({p}, {p}, {p})", links),
        ]
        return out

    def load_sql(self, conn, dialect: str) -> None:
        cur = conn.cursor()
        for sql, rows in self.sql_statements(dialect):
            if rows:
                cur.executemany(sql, rows)
            else:
                cur.execute(sql)
        if dialect == "sqlite":
            conn.commit()
        cur.close()

    def load_redis(self, client) -> None:
        pipe = client.pipeline(transaction=False)
        for u in self.users:
            for sid in u.redis_sessions:
                pipe.set(f"sess:{sid}", json.dumps({"cookie": {"originalMaxAge": 86400000, "httpOnly": True, "path": "/"},
                                                    "passport": {"user": u.id}}))
        for sid in self.guest_sessions:
            pipe.set(f"sess:{sid}", json.dumps({"cookie": {"path": "/"}}))
        pipe.set("cache:home", "x")
        pipe.execute()
