"""Redis session stores: express-session/connect-redis `sess:<sid>` JSON and Flask-Session prefixes.

Keys are found with SCAN (never KEYS); for scope exact each batch's values are read with one MGET sent in
the same round trip as the next SCAN, and decoded (`session_values`: JSON, msgpack or pickle, never running
code) on a second thread while the next batch is read. Sessions are ended with pipelined UNLINK
(non-blocking delete), one batch per step. Commands are packed by hiredis in one call each, with no Python
work per key. A session id is a credential: a step's key is a SHA-256 over its batch of key names, the
names themselves stay in memory for the one step.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import hiredis
import numpy as np

from spillguard.errors import UserError
from spillguard.respond.actions import Context, Verification, batches, with_retries
from spillguard.respond.playbook import password_from
from spillguard.respond.session_values import FORMATS, SessionDecoder
from spillguard.respond.steps import Step, StepOutcome, step_key
from spillguard.respond.stores import REDIS_SCHEMES, redis_client, scheme_of
from spillguard.targets import mask_url

SCAN_COUNT = 10_000
UNLINK_KEYS = 1_000  # keys per UNLINK command; a step's commands go out in one pipeline


class RedisSessions:
    KEYS: dict[str, Any] = {"pattern": str, "user_field": str, "format": str}
    kind = "redis-sessions"

    def __init__(self, settings: dict[str, Any], src: str) -> None:
        self.settings = settings
        self.src = src
        self.id: str = settings["id"]
        self.scope: str = settings["scope"]
        self.url: str = settings.get("store") or ""
        if scheme_of(self.url) not in REDIS_SCHEMES:
            raise UserError(f"{src}: `store` must be a redis:// or rediss:// URL")
        self.target = mask_url(self.url)
        self.pattern: str = settings.get("pattern") or ""
        if not self.pattern:
            raise UserError(f"{src}: `pattern` is required (e.g. \"sess:*\")")
        self.format: str = settings.get("format", "json")
        if self.format not in FORMATS:
            raise UserError(f"{src}: format = {self.format!r}; use one of {', '.join(FORMATS)}")
        user_field: str = settings.get("user_field") or ""
        if self.scope == "exact" and not user_field:
            raise UserError(f"{src}: scope exact needs `user_field` (where the session value keeps the user id)")
        self.decoder = SessionDecoder(self.format, user_field) if user_field else None
        self.client: Any = None
        self._items: dict[str, list[bytes]] = {}
        self.unattributed = 0  # sessions whose user could not be read (scope exact leaves them)
        self.refused = 0  # of those, values refused for naming code (pickle globals)
        self.notes: list[str] = []

    def connect(self) -> None:
        self.client = redis_client(self.url, password_from(self.settings.get("password_env"), self.src))

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def _retry(self, ctx: Context, fn: Any) -> Any:
        import redis

        return with_retries(fn, ctx.limits, (redis.ConnectionError, redis.TimeoutError))

    def _commands(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send commands in one write on one pooled connection and read every reply. hiredis packs each command
        in one call (redis-py's own packing costs a Python step per argument)."""
        pool = self.client.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_packed_command([hiredis.pack_command(c) for c in commands])
            return [conn.read_response() for _ in commands]
        except BaseException:
            conn.disconnect()  # replies may be left unread: never hand this connection out again as it is
            raise
        finally:
            pool.release(conn)

    def _scan(self, ctx: Context, cursor: int, extra: list[tuple[Any, ...]]) -> tuple[int, list[bytes], list[Any]]:
        """One SCAN step, with other commands (an MGET) in the same round trip: (next cursor, keys, their replies)."""
        replies = self._retry(ctx, lambda: self._commands([*extra, ("SCAN", cursor, "MATCH", self.pattern, "COUNT", SCAN_COUNT)]))
        next_cursor, found = replies[-1]
        return int(next_cursor), list(found), replies[:-1]

    def _all_keys(self, ctx: Context) -> list[bytes]:
        keys: list[bytes] = []
        cursor = 0
        while True:
            cursor, found, _ = self._scan(ctx, cursor, [])
            keys.extend(found)
            if cursor == 0:
                break
        # SCAN may return a key twice (while the server rehashes): each key once, in SCAN order.
        return list(dict.fromkeys(keys))

    def _attributed(self, ctx: Context, dedupe: bool = False) -> tuple[list[bytes], np.ndarray, int, int]:
        """Every matching key once; whether its session's user is an affected person; how many sessions had no
        readable user, and how many of those were refused (pickle naming code).

        The MGET of one batch rides with the next SCAN; a second thread decodes a batch and hashes its users
        (Arrow and numpy release the GIL) while the next batch is read."""
        assert self.decoder is not None
        decoder = self.decoder
        subjects = ctx.subjects

        def judge(values: list[bytes | None]) -> tuple[np.ndarray, int, int]:
            got = decoder.users(values)
            return subjects.contains(got.users), got.unattributed, got.refused

        keys: list[bytes] = []
        seen: dict[bytes, None] = {}
        judged: list[Future[tuple[np.ndarray, int, int]]] = []
        pending: list[bytes] = []
        with ThreadPoolExecutor(1, thread_name_prefix="spillguard-sessions") as pool:

            def decode(chunk: list[bytes], values: list[bytes | None]) -> None:
                keys.extend(chunk)
                judged.append(pool.submit(judge, values))

            cursor = 0
            while True:
                fetch = pending if len(pending) >= ctx.limits.batch else []
                cursor, found, replies = self._scan(ctx, cursor, [("MGET", *fetch)] if fetch else [])
                if fetch:
                    decode(fetch, replies[0])
                    pending = []
                if dedupe:
                    found = [k for k in dict.fromkeys(found) if k not in seen]
                    seen.update(dict.fromkeys(found))
                pending.extend(found)
                if cursor == 0:
                    break
            for chunk in batches(pending, ctx.limits.batch):
                decode(chunk, self._retry(ctx, lambda c=chunk: self._commands([("MGET", *c)]))[0])
            parts = [f.result() for f in judged]
        if not dedupe and len(set(keys)) != len(keys):
            # SCAN returned some key twice (it may while the server rehashes): read again, each key once.
            return self._attributed(ctx, dedupe=True)
        hit = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, bool)
        return keys, hit, sum(p[1] for p in parts), sum(p[2] for p in parts)

    def _sessions(self, ctx: Context) -> list[bytes]:
        """Session keys to end: all matching keys, or those whose user is an affected person."""
        if self.client is None:
            self.connect()
        if self.scope == "all":
            self.unattributed = self.refused = 0
            return self._all_keys(ctx)
        keys, hit, self.unattributed, self.refused = self._attributed(ctx)
        chosen = np.empty(len(keys), dtype=object)
        chosen[:] = keys
        return list(chosen[hit].tolist())

    def _unread(self) -> str:
        refused = f" ({self.refused:,} refused: pickle naming code, never run)" if self.refused else ""
        return (f"{self.unattributed:,} sessions matching {self.pattern} without a readable user{refused} "
                "(not ended by scope exact)")

    def plan(self, ctx: Context) -> list[Step]:
        steps = []
        for batch in batches(self._sessions(ctx), ctx.limits.batch):
            # The key is one SHA-256 over the batch's sorted key names: no session id is kept in the step.
            key = step_key(ctx.incident, self.id, batch)
            self._items[key] = batch
            steps.append(Step(key, self.id, f"end {len(batch):,} sessions ({self.pattern}) at {self.target}", len(batch)))
        self.notes = [self._unread()] if self.unattributed else []
        return steps

    def execute(self, ctx: Context, step: Step) -> StepOutcome:
        batch = self._items.get(step.key)
        if batch is None:
            return StepOutcome(0, step.count, "batch not planned in this run; plan again")
        if self.client is None:
            self.connect()
        commands = [("UNLINK", *chunk) for chunk in batches(batch, UNLINK_KEYS)]
        done = int(sum(self._retry(ctx, lambda: self._commands(commands))))
        return StepOutcome(done, 0, f"ended {done:,} sessions")

    def verify(self, ctx: Context) -> Verification:
        left = self._sessions(ctx)
        details = []
        if left:
            details.append(f"{len(left):,} sessions {'of affected people ' if self.scope == 'exact' else ''}still in {self.target} ({self.pattern})")
        if self.unattributed:
            details.append(self._unread())
        return Verification(self.id, len(ctx.subjects) if self.scope == "exact" else len(left), len(left), details)
