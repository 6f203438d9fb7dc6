"""Redis session stores: express-session/connect-redis `sess:<sid>` JSON and Flask-Session prefixes.

Keys are found with SCAN (never KEYS), values read with pipelined GET, and sessions ended with
pipelined UNLINK (non-blocking delete), one batch per step. A session id is a credential: steps
carry the SHA-256 of the key names, the names themselves stay in memory for the one step.
"""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from spillguard.errors import UserError
from spillguard.keys import sha256_hex
from spillguard.respond.actions import Context, Verification, batches, with_retries
from spillguard.respond.playbook import password_from
from spillguard.respond.steps import Step, StepOutcome, step_key
from spillguard.respond.stores import REDIS_SCHEMES, redis_client, scheme_of
from spillguard.targets import mask_url

SCAN_COUNT = 10_000


def _field(doc: Any, path: list[str]) -> Any:
    for part in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


class RedisSessions:
    KEYS: dict[str, Any] = {"pattern": str, "user_field": str}
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
        self.user_path = (settings.get("user_field") or "").split(".") if settings.get("user_field") else []
        if self.scope == "exact" and not self.user_path:
            raise UserError(f"{src}: scope exact needs `user_field` (where the session JSON keeps the user id)")
        self.client: Any = None
        self._items: dict[str, list[bytes]] = {}
        self.unattributed = 0

    def connect(self) -> None:
        self.client = redis_client(self.url, password_from(self.settings.get("password_env"), self.src))

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def _retry(self, ctx: Context, fn: Any) -> Any:
        import redis

        return with_retries(fn, ctx.limits, (redis.ConnectionError, redis.TimeoutError))

    def _keys(self) -> list[bytes]:
        keys: list[bytes] = []
        cursor = 0
        while True:
            cursor, found = self.client.scan(cursor=cursor, match=self.pattern, count=SCAN_COUNT)
            keys.extend(found)
            if cursor == 0:
                break
        # SCAN may return a key twice; sorted so a rerun batches the same keys the same way.
        return pc.unique(pa.array(keys, pa.binary())).sort().to_pylist() if keys else []

    def _sessions(self, ctx: Context) -> list[bytes]:
        """Session keys to end: all matching keys, or those whose user is an affected person."""
        if self.client is None:
            self.connect()
        keys = self._retry(ctx, self._keys)
        if self.scope == "all":
            self.unattributed = 0
            return keys
        chunks: list[pa.Array] = []
        for chunk in batches(keys, ctx.limits.batch):
            values = self._retry(ctx, lambda c=chunk: self.client.mget(c))
            chunks.append(self._users(values))
        users = pa.concat_arrays(chunks) if chunks else pa.array([], pa.string())
        self.unattributed = users.null_count
        hit = ctx.subjects.contains(users)
        return [k for k, h in zip(keys, hit.tolist(), strict=True) if h]

    def _users(self, values: list[bytes | None]) -> pa.Array:
        """The user id in each session's JSON, as text (null where there is none): Arrow's JSON reader over
        the whole batch, one value at a time only when the batch is not uniform JSON objects."""
        import pyarrow.json as pj

        present = [v if v else b"{}" for v in values]
        try:
            if any(b"\n" in v for v in present):
                raise pa.ArrowInvalid("a value spans lines")
            table = pj.read_json(pa.BufferReader(b"\n".join(present)), read_options=pj.ReadOptions(block_size=1 << 26))
            col: Any = table.column(self.user_path[0]) if self.user_path[0] in table.column_names else None
            for part in self.user_path[1:]:
                if col is None or not pa.types.is_struct(col.type) or col.type.get_field_index(part) < 0:
                    col = None
                    break
                col = pc.struct_field(col, part)
            if col is not None and table.num_rows == len(values) and not pa.types.is_struct(col.type):
                return pc.cast(col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col, pa.string())
            if col is None and table.num_rows == len(values):
                return pa.nulls(len(values), pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            pass
        out: list[str | None] = []
        for raw in values:
            try:
                user = _field(orjson.loads(raw), self.user_path) if raw is not None else None
            except orjson.JSONDecodeError:
                user = None
            out.append(None if user is None or isinstance(user, (dict, list)) else str(user))
        return pa.array(out, pa.string())

    def plan(self, ctx: Context) -> list[Step]:
        steps = []
        for batch in batches(self._sessions(ctx), ctx.limits.batch):
            digests = tuple(sha256_hex(pa.array(batch, pa.binary()).cast(pa.string())).to_pylist())
            key = step_key(ctx.incident, self.id, digests)
            self._items[key] = batch
            steps.append(Step(key, self.id, f"end {len(batch):,} sessions ({self.pattern}) at {self.target}", len(batch), digests))
        return steps

    def execute(self, ctx: Context, step: Step) -> StepOutcome:
        batch = self._items.get(step.key)
        if batch is None:
            return StepOutcome(0, step.count, "batch not planned in this run; plan again")

        def unlink() -> int:
            pipe = self.client.pipeline(transaction=False)
            for chunk in batches(batch, 1000):
                pipe.unlink(*chunk)
            return int(sum(pipe.execute()))

        done = self._retry(ctx, unlink)
        return StepOutcome(done, 0, f"ended {done:,} sessions")

    def verify(self, ctx: Context) -> Verification:
        left = self._sessions(ctx)
        details = []
        if left:
            details.append(f"{len(left):,} sessions {'of affected people ' if self.scope == 'exact' else ''}still in {self.target} ({self.pattern})")
        if self.unattributed:
            details.append(f"{self.unattributed:,} sessions matching {self.pattern} without a readable user (not ended by scope exact)")
        return Verification(self.id, len(ctx.subjects) if self.scope == "exact" else len(left), len(left), details)
