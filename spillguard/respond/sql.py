"""SQL adapters: token tables, session tables, "not valid before" cut-offs and linked accounts.

Every statement is set-based (in PostgreSQL a join with `unnest(%s::text[])` or, for leaked digests,
with `unnest(row addresses, digests)` found by one sequential COPY; `IN (…)` elsewhere), one batch per
step, and idempotent: a delete of rows already gone deletes nothing, a
revoke flag is only set where it is not set yet, a cut-off only moves forward to the incident's own
cut-off time. Raw tokens and session keys are read only where the store keeps them raw, hashed at
once, and kept in memory for the one step that needs them; steps carry digests.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from spillguard.errors import UserError
from spillguard.keys import sha256_hex
from spillguard.respond.actions import Context, Verification, batches, with_retries
from spillguard.respond.playbook import password_from
from spillguard.respond.steps import Step, StepOutcome, step_key
from spillguard.respond.stores import SqlStore
from spillguard.targets import mask_url


def _text(values: list[Any]) -> pa.Array:
    """Store values (ints, strings, bytes, UUIDs) as the text a scan of the same data saw."""
    if values and not isinstance(values[0], (str, int, bytes, type(None))):
        values = [None if v is None else str(v) for v in values]
    arr = pa.array(values)
    return arr if pa.types.is_string(arr.type) else arr.cast(pa.string())


def copy_rows(chunks: Iterable[bytes], names: list[str]) -> pa.Table:
    """The text columns of PostgreSQL's COPY ... TO STDOUT output (tab-separated, no quoting), from its chunks.
    The chunks are copied into Arrow's memory and parsed on this thread: an Arrow thread left holding Python-owned
    bytes takes the GIL to free them, and one doing so at interpreter exit aborts the process (exit -6,
    apache/arrow#34314)."""
    import pyarrow.csv as pcsv

    sink = pa.BufferOutputStream()
    for chunk in chunks:
        sink.write(chunk)
    data = sink.getvalue()
    if not data.size:
        return pa.table({name: pa.array([], pa.string()) for name in names})
    return pcsv.read_csv(
        pa.BufferReader(data), read_options=pcsv.ReadOptions(column_names=names, block_size=1 << 26, use_threads=False),
        parse_options=pcsv.ParseOptions(delimiter="\t", quote_char=False, escape_char=False),
        convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False),
    )


def _hex_list(values: list[Any]) -> list[str]:
    return sha256_hex(_text(values)).to_pylist() if values else []


class SqlAction:
    """What the SQL adapters share: settings, one connection, batches kept between plan and execute."""

    KEYS: dict[str, Any] = {"table": str}
    kind = ""
    verb = "act on"
    noun = "rows"

    def __init__(self, settings: dict[str, Any], src: str) -> None:
        self.settings = settings
        self.src = src
        self.id: str = settings["id"]
        self.scope: str = settings["scope"]
        url = settings.get("store")
        if not url:
            raise UserError(f"{src}: `store` is required (a postgresql://, mysql:// or sqlite:/// URL)")
        self.url: str = url
        self.target = mask_url(url)
        self.table: str = self._need("table")
        self.store: SqlStore | None = None
        self._items: dict[str, list[Any]] = {}  # step key -> raw batch, in memory only

    def _need(self, key: str) -> Any:
        value = self.settings.get(key)
        if value in (None, ""):
            raise UserError(f"{self.src}: `{key}` is required for kind {self.kind!r}")
        return value

    def columns(self) -> list[str | None]:
        return []

    def connect(self) -> None:
        password = password_from(self.settings.get("password_env"), self.src)
        self.store = SqlStore(self.url, password)
        self.store.require(self.table, self.columns(), self.src)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    @property
    def db(self) -> SqlStore:
        if self.store is None:
            self.connect()
        assert self.store is not None
        return self.store

    def _run(self, ctx: Context, fn: Any) -> Any:
        """fn() retried with backoff; a dropped connection is reopened before the next attempt."""
        errors = self.db.errors

        def attempt() -> Any:
            try:
                return fn()
            except errors:
                self.close()  # the next self.db reconnects
                raise

        return with_retries(attempt, ctx.limits, errors)

    def _key_steps(self, ctx: Context, keys: list[Any], what: str) -> list[Step]:
        """Steps over raw row keys: payload and idempotency key from their SHA-256, raw keys in memory."""
        steps = []
        for batch in batches(keys, self.db.max_batch(ctx.limits.batch)):
            digests = tuple(_hex_list(batch))
            key = step_key(ctx.incident, self.id, digests)
            self._items[key] = batch
            steps.append(Step(key, self.id, f"{self.verb} {len(batch):,} {what} in {self.table} at {self.target}", len(batch), digests))
        return steps

    def _delete_keys(self, ctx: Context, step: Step, column: str) -> StepOutcome:
        batch = self._items.get(step.key)
        if batch is None:
            return StepOutcome(0, step.count, "batch not planned in this run; plan again")
        where, args = self.db.member(column, batch)
        done = self._run(ctx, lambda: self.db.execute(f"DELETE FROM {self.db.q(self.table)} WHERE {where}", args))
        return StepOutcome(done, 0, f"deleted {done:,} {self.noun}")


# -- token tables -----------------------------------------------------------------------------------
class SqlTokens(SqlAction):
    """Revoke leaked tokens (scope exact) or every live token (scope all) in one table."""

    KEYS = {"table": str, "token_column": str, "stored": str, "prefix": str, "key_column": str, "user_column": str,
            "revoke": str, "flag_column": str, "flag_value": str, "rules": list}
    kind = "sql-tokens"
    verb = "revoke"
    noun = "tokens"

    def __init__(self, settings: dict[str, Any], src: str) -> None:
        super().__init__(settings, src)
        self.token_column: str = self._need("token_column")
        self.stored: str = settings.get("stored", "sha256")
        if self.stored not in ("plain", "sha256", "hmac", "prefix"):
            raise UserError(f"{src}: stored = {self.stored!r}; use plain, sha256, hmac or prefix")
        self.prefix: str = settings.get("prefix", "")
        if self.stored == "prefix" and not self.prefix:
            raise UserError(f"{src}: stored = \"prefix\" needs `prefix` (the text the store puts before the SHA-256 hex)")
        self.key_column: str = settings.get("key_column", "id")
        self.revoke: str = settings.get("revoke", "delete")
        if self.revoke not in ("delete", "flag"):
            raise UserError(f"{src}: revoke = {self.revoke!r}; use delete or flag")
        self.flag_column: str | None = settings.get("flag_column")
        self.flag_value: str = settings.get("flag_value", "now")
        if self.revoke == "flag" and not self.flag_column:
            raise UserError(f"{src}: revoke = \"flag\" needs `flag_column`")
        if self.flag_value not in ("now", "true", "epoch"):
            raise UserError(f"{src}: flag_value = {self.flag_value!r}; use now, true or epoch")
        self.rules: list[str] | None = settings.get("rules")
        self._tids: dict[str, list[str]] = {}  # step key -> row addresses (PostgreSQL), in memory only

    def columns(self) -> list[str | None]:
        return [self.token_column, self.key_column, self.settings.get("user_column"), self.flag_column]

    def _live(self) -> str:
        if self.revoke == "delete" or self.flag_column is None:
            return "1=1"
        col = self.db.q(self.flag_column)
        if self.flag_value == "now":
            return f"{col} IS NULL"
        zero = "FALSE" if self.flag_value == "true" else "0"
        return f"({col} IS NULL OR {col} = {zero})"

    def _set_flag(self) -> str:
        d = self.db.dialect
        value = {"now": self.db.now(), "true": "TRUE" if d != "sqlite" else "1",
                 "epoch": {"postgresql": "CAST(extract(epoch FROM now()) AS bigint)", "mysql": "UNIX_TIMESTAMP()",
                           "sqlite": "CAST(strftime('%s', 'now') AS INTEGER)"}[d]}[self.flag_value]
        assert self.flag_column is not None
        return f"{self.db.q(self.flag_column)} = {value}"

    def check_leaked(self, leaked: Any) -> None:
        """Before anything runs: a store keeping HMAC(app key, token) needs the set's `hmac` column."""
        if self.stored == "hmac" and self.scope == "exact":
            leaked.require_hmac(self.src)

    def _digests(self, ctx: Context) -> list[str]:
        if self.stored == "hmac":  # hex HMAC-SHA-256(app key, token), computed by the scan (--secrets-hmac-key-env)
            return ctx.leaked.digests("hmac", self.rules)
        # A token's SHA-256 and, for "<id>|<secret>" tokens (Sanctum), its secret's: a store holds one of them.
        both = ctx.leaked.digests("sha256_any", self.rules)
        return [self.prefix + d for d in both] if self.stored == "prefix" else both

    def _matching_keys(self, ctx: Context) -> list[Any]:
        """Rows to act on, by reading the table: every live row (all) or, for raw tokens, the leaked ones."""
        t, key, tok = self.db.q(self.table), self.db.q(self.key_column), self.db.q(self.token_column)
        if self.scope == "all":
            return [r[0] for r in self.db.query(f"SELECT {key} FROM {t} WHERE {self._live()} ORDER BY {key}")]
        rows = self.db.query(f"SELECT {key}, {tok} FROM {t} WHERE {self._live()} AND {tok} IS NOT NULL ORDER BY {key}")
        if not rows:
            return []
        keys, tokens = zip(*rows, strict=True)
        hit = ctx.leaked.contains("sha256", sha256_hex(_text(list(tokens))))
        return [k for k, h in zip(keys, hit.tolist(), strict=True) if h]

    def _by_digest(self, batch: list[str]) -> tuple[str, list[Any]]:
        """FROM-clause join of the table (alias t) with a batch of digests, and its parameters: in PostgreSQL
        `unnest(array)`, which the planner answers with index lookups, elsewhere an IN list."""
        tok = f"t.{self.db.q(self.token_column)}"
        if self.db.dialect == "postgresql":
            return f"unnest({self.db.p}::text[]) AS l(d) WHERE {tok} = l.d", [list(batch)]
        where, args = self.db.member(self.token_column, batch)
        return "(SELECT 1) AS l WHERE t." + where, args

    def _count(self, batch: list[str]) -> int:
        join, args = self._by_digest(batch)
        sql = f"SELECT count(*) FROM {self.db.q(self.table)} t, {join} AND {self._live_t()}"
        return int(self.db.query(sql, args)[0][0])

    def _live_t(self) -> str:
        live = self._live()
        return live if live == "1=1" else live.replace(self.db.q(self.flag_column or ""), "t." + self.db.q(self.flag_column or ""))

    def _physical(self, digests: list[str]) -> tuple[list[str], list[str]]:
        """PostgreSQL: (ctid, digest) of every live row whose digest leaked, in heap order, from one sequential
        COPY of the digest column matched in Arrow: no index probe per leaked digest."""
        t, tok = self.db.q(self.table), self.db.q(self.token_column)
        with self.db.conn.cursor() as cur, cur.copy(
            f"COPY (SELECT ctid, {tok} FROM {t} WHERE {self._live()} AND {tok} IS NOT NULL) TO STDOUT"
        ) as copy:
            rows = copy_rows(copy, ["ctid", "digest"])
        if not rows.num_rows:
            return [], []
        hit = rows.filter(pc.is_in(rows["digest"], value_set=pa.array(digests, pa.string())))
        return hit["ctid"].to_pylist(), hit["digest"].to_pylist()

    def plan(self, ctx: Context) -> list[Step]:
        if self.scope == "all" or self.stored == "plain":
            return self._key_steps(ctx, self._matching_keys(ctx), "tokens")
        size = self.db.max_batch(ctx.limits.batch)
        if self.db.dialect == "postgresql":
            tids, found = self._run(ctx, lambda: self._physical(self._digests(ctx)))
            steps = []
            for start in range(0, len(tids), size):
                batch = found[start : start + size]
                key = step_key(ctx.incident, self.id, batch)
                self._tids[key] = tids[start : start + size]
                steps.append(Step(key, self.id, f"{self.verb} {len(batch):,} leaked tokens in {self.table} at {self.target}",
                                  len(batch), tuple(batch)))
            return steps
        steps = []
        for batch in batches(self._digests(ctx), size):
            n = self._run(ctx, lambda b=batch: self._count(b))
            if n:
                what = f"{n:,} leaked tokens (of {len(batch):,} leaked digests)"
                steps.append(Step(step_key(ctx.incident, self.id, batch), self.id,
                                  f"{self.verb} {what} in {self.table} at {self.target}", n, tuple(batch)))
        return steps

    def _statement(self, step: Step) -> tuple[str, list[Any]]:
        t = self.db.q(self.table)
        if step.key in self._tids:
            # Rows found by the plan, by physical address, and only while their digest is still the leaked one:
            # a row moved since (an update) is left alone and found again by the next plan or verify.
            # A join with unnest(addresses, digests): one TID lookup per row, checked against its own digest.
            join = (f"unnest({self.db.p}::tid[], {self.db.p}::text[]) AS l(c, d) "
                    f"WHERE t.ctid = l.c AND t.{self.db.q(self.token_column)} = l.d")
            args = [self._tids[step.key], list(step.payload)]
            if self.revoke == "delete":
                return f"DELETE FROM {t} AS t USING {join}", args
            return f"UPDATE {t} AS t SET {self._set_flag()} FROM {join} AND {self._live_t()}", args
        if step.key in self._items:
            where, args = self.db.member(self.key_column, self._items[step.key])
            if self.revoke == "delete":
                return f"DELETE FROM {t} WHERE {where}", args
            return f"UPDATE {t} SET {self._set_flag()} WHERE {where} AND {self._live()}", args
        batch = list(step.payload)
        if self.db.dialect == "postgresql":
            join, args = self._by_digest(batch)
            if self.revoke == "delete":
                return f"DELETE FROM {t} AS t USING {join}", args
            return f"UPDATE {t} AS t SET {self._set_flag()} FROM {join} AND {self._live_t()}", args
        where, args = self.db.member(self.token_column, batch)
        if self.revoke == "delete":
            return f"DELETE FROM {t} WHERE {where}", args
        return f"UPDATE {t} SET {self._set_flag()} WHERE {where} AND {self._live()}", args

    def execute(self, ctx: Context, step: Step) -> StepOutcome:
        done = self._run(ctx, lambda: self.db.execute(*self._statement(step)))
        return StepOutcome(done, 0, f"{'deleted' if self.revoke == 'delete' else 'flagged'} {done:,} tokens")

    def verify(self, ctx: Context) -> Verification:
        if self.scope == "all" or self.stored == "plain":
            keys = self._matching_keys(ctx)
            checked = len(keys) if self.scope == "all" else len(ctx.leaked.digests("sha256", self.rules))
            active = len(keys)
        else:
            digests = self._digests(ctx)
            checked = len(digests)
            if self.db.dialect == "postgresql":
                active = len(self._physical(digests)[0])
            else:
                active = sum(self._count(b) for b in batches(digests, self.db.max_batch(ctx.limits.batch)))
        details = [f"{active:,} {'live' if self.scope == 'all' else 'leaked'} tokens still valid in {self.table} at {self.target}"] if active else []
        return Verification(self.id, checked, active, details)


# -- session tables ---------------------------------------------------------------------------------
def django_session_user(data: str | None) -> str | None:
    """`_auth_user_id` from a django_session.session_data value (signed JSON, optionally zlib; or the
    pre-3.1 base64 "hash:json" form). The signature is not checked: the row is the store's own."""
    import base64
    import binascii
    import zlib

    if not data:
        return None
    try:
        if ":" in data and not data.endswith("="):
            payload = data.split(":", 1)[0]
            compressed = payload.startswith(".")
            raw = base64.urlsafe_b64decode(payload.lstrip(".") + "=" * (-len(payload.lstrip(".")) % 4))
            if compressed:
                raw = zlib.decompress(raw)
        else:
            raw = base64.b64decode(data).split(b":", 1)[1]
        user = orjson.loads(raw).get("_auth_user_id")
    except (ValueError, binascii.Error, zlib.error, orjson.JSONDecodeError, IndexError, AttributeError):
        return None
    return None if user is None else str(user)


class SqlSessions(SqlAction):
    """End sessions: of affected people (exact) or everyone's (all)."""

    KEYS = {"table": str, "key_column": str, "user_column": str, "data_column": str, "decode": str}
    kind = "sql-sessions"
    verb = "end"
    noun = "sessions"

    def __init__(self, settings: dict[str, Any], src: str) -> None:
        super().__init__(settings, src)
        self.key_column: str = self._need("key_column")
        self.decode: str = settings.get("decode", "none")
        if self.decode not in ("none", "django"):
            raise UserError(f"{src}: decode = {self.decode!r}; use none or django")
        self.user_column: str | None = settings.get("user_column")
        self.data_column: str | None = settings.get("data_column")
        if self.decode == "django" and not self.data_column:
            raise UserError(f"{src}: decode = \"django\" needs `data_column` (session_data)")
        if self.scope == "exact" and not (self.user_column or self.decode == "django"):
            raise UserError(f"{src}: scope exact needs `user_column` (or decode = \"django\") to find affected people's sessions")
        self.unattributed = 0
        self.notes: list[str] = []

    def columns(self) -> list[str | None]:
        return [self.key_column, self.user_column, self.data_column]

    def _sessions(self, ctx: Context) -> tuple[list[Any], int]:
        """(session keys to end, sessions whose user could not be read)."""
        t, key = self.db.q(self.table), self.db.q(self.key_column)
        if self.scope == "all":
            return [r[0] for r in self.db.query(f"SELECT {key} FROM {t} ORDER BY {key}")], 0
        who = self.db.q(self.data_column if self.decode == "django" else self.user_column)  # type: ignore[arg-type]
        rows = self.db.query(f"SELECT {key}, {who} FROM {t} ORDER BY {key}")
        if not rows:
            return [], 0
        keys, users = zip(*rows, strict=True)
        users_l = [django_session_user(u) for u in users] if self.decode == "django" else list(users)
        unknown = sum(1 for u in users_l if u is None) if self.decode == "django" else 0
        hit = ctx.subjects.contains(_text(users_l))
        return [k for k, h in zip(keys, hit.tolist(), strict=True) if h], unknown

    def plan(self, ctx: Context) -> list[Step]:
        keys, self.unattributed = self._sessions(ctx)
        self.notes = [f"{self.unattributed:,} sessions in {self.table} whose user could not be read (not ended by scope exact)"] \
            if self.unattributed else []
        return self._key_steps(ctx, keys, "sessions")

    def execute(self, ctx: Context, step: Step) -> StepOutcome:
        return self._delete_keys(ctx, step, self.key_column)

    def verify(self, ctx: Context) -> Verification:
        keys, unknown = self._sessions(ctx)
        details = []
        if keys:
            details.append(f"{len(keys):,} sessions {'of affected people ' if self.scope == 'exact' else ''}still open in {self.table} at {self.target}")
        if unknown:
            details.append(f"{unknown:,} sessions in {self.table} whose user could not be read (not counted as ended)")
        return Verification(self.id, len(ctx.subjects) if self.scope == "exact" else len(keys), len(keys), details)


# -- not valid before -------------------------------------------------------------------------------
class NotValidBefore(SqlAction):
    """Move a per-user (or global) cut-off column to the incident's cut-off time: every token issued
    before it dies, including access tokens nobody can enumerate."""

    KEYS = {"table": str, "column": str, "user_column": str}
    kind = "not-valid-before"
    verb = "set the cut-off of"
    noun = "rows"

    def __init__(self, settings: dict[str, Any], src: str) -> None:
        super().__init__(settings, src)
        self.column: str = self._need("column")
        self.user_column: str | None = settings.get("user_column")
        if self.scope == "exact" and not self.user_column:
            raise UserError(f"{src}: scope exact needs `user_column` (a global cut-off is scope all)")

    def columns(self) -> list[str | None]:
        return [self.column, self.user_column]

    def _cutoff(self, ctx: Context) -> Any:
        when = dt.datetime.strptime(ctx.cutoff, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
        return when if self.db.dialect == "postgresql" else when.strftime("%Y-%m-%d %H:%M:%S.%f")

    def _before(self) -> str:
        col = self.db.q(self.column)
        return f"({col} IS NULL OR {col} < {self.db.p})"

    def _users(self, ctx: Context) -> list[Any]:
        assert self.user_column is not None
        t, u = self.db.q(self.table), self.db.q(self.user_column)
        rows = self.db.query(f"SELECT {u} FROM {t} WHERE {self._before()} ORDER BY {u}", [self._cutoff(ctx)])
        users = [r[0] for r in rows]
        hit = ctx.subjects.contains(_text(users))
        return [v for v, h in zip(users, hit.tolist(), strict=True) if h]

    def _count_all(self, ctx: Context) -> int:
        return int(self.db.query(f"SELECT count(*) FROM {self.db.q(self.table)} WHERE {self._before()}", [self._cutoff(ctx)])[0][0])

    def plan(self, ctx: Context) -> list[Step]:
        if self.scope == "exact":
            return self._key_steps(ctx, self._users(ctx), "people's cut-off")
        n = self._count_all(ctx)
        if not n:
            return []
        key = step_key(ctx.incident, self.id, ["all", ctx.cutoff])
        return [Step(key, self.id, f"set {self.table}.{self.column} to {ctx.cutoff} on {n:,} rows at {self.target}", n)]

    def execute(self, ctx: Context, step: Step) -> StepOutcome:
        t, col = self.db.q(self.table), self.db.q(self.column)
        args: list[Any] = [self._cutoff(ctx), self._cutoff(ctx)]
        sql = f"UPDATE {t} SET {col} = {self.db.p} WHERE {self._before()}"
        if step.key in self._items:
            assert self.user_column is not None
            where, more = self.db.member(self.user_column, self._items[step.key])
            sql += f" AND {where}"
            args += more
        done = self._run(ctx, lambda: self.db.execute(sql, args))
        return StepOutcome(done, 0, f"cut-off set on {done:,} rows")

    def verify(self, ctx: Context) -> Verification:
        left = len(self._users(ctx)) if self.scope == "exact" else self._count_all(ctx)
        details = [f"{left:,} rows of {self.table} still accept tokens issued before {ctx.cutoff}"] if left else []
        return Verification(self.id, left, left, details)


# -- linked accounts (integrations) -------------------------------------------------------------------
class LinkedAccounts(SqlAction):
    """Unlink integrations whose partner tokens leaked (exact) or all of them (all), and write relink
    instructions: where the partner has no revocation API, the link is deleted and the person relinks."""

    KEYS = {"table": str, "key_column": str, "user_column": str, "token_columns": list, "stored": str, "partner": str,
            "relink_out": str, "revocation_url": str, "client_id_env": str, "client_secret_env": str, "auth_method": str,
            "token_type_hints": list, "per_second": (int, float)}
    kind = "integrations"
    verb = "unlink"
    noun = "links"

    def __init__(self, settings: dict[str, Any], src: str) -> None:
        super().__init__(settings, src)
        self.key_column: str = settings.get("key_column", "id")
        self.user_column: str = self._need("user_column")
        self.token_columns: list[str] = settings.get("token_columns") or []
        if self.scope == "exact" and not self.token_columns:
            raise UserError(f"{src}: scope exact needs `token_columns` (where the partner tokens are)")
        self.stored: str = settings.get("stored", "plain")
        if self.stored not in ("plain", "sha256"):
            raise UserError(f"{src}: stored = {self.stored!r}; use plain or sha256")
        self.partner: str = settings.get("partner", "the partner")
        out = settings.get("relink_out")
        self.relink_out = Path(out) if out else None
        self._users: dict[str, list[Any]] = {}
        # Where the partner has an RFC 7009 endpoint, each link's tokens are revoked there before the link is deleted.
        self.revocation_url: str | None = settings.get("revocation_url")
        self.hints: list[str | None] = list(settings.get("token_type_hints") or [None] * len(self.token_columns))
        if self.revocation_url is not None:
            if self.stored != "plain" or not self.token_columns:
                raise UserError(f"{src}: `revocation_url` needs the raw partner tokens: `token_columns` with stored = \"plain\"")
            if len(self.hints) != len(self.token_columns) or any(h not in (None, "access_token", "refresh_token") for h in self.hints):
                raise UserError(f"{src}: token_type_hints must name access_token or refresh_token once per token column")
        elif any(k in settings for k in ("client_id_env", "client_secret_env", "auth_method", "token_type_hints")):
            raise UserError(f"{src}: partner credentials need `revocation_url` (the partner's RFC 7009 endpoint)")
        self.partner_client: Any = None
        self._tokens: dict[str, list[list[str]]] = {}  # step key -> each link's raw partner tokens, in memory only

    def connect(self) -> None:
        super().connect()
        if self.revocation_url is not None and self.partner_client is None:
            from spillguard.respond.oauth import OAuthClient, OAuthServer

            server = OAuthServer(
                id=self.id, revocation_url=self.revocation_url,
                client_id_env=self.settings.get("client_id_env", "SPILLGUARD_OAUTH_CLIENT_ID"),
                client_secret_env=self.settings.get("client_secret_env", "SPILLGUARD_OAUTH_CLIENT_SECRET"),
                auth_method=self.settings.get("auth_method", "client_secret_basic"),
                per_second=float(self.settings.get("per_second", 50.0)))
            if server.auth_method not in ("client_secret_basic", "client_secret_post"):
                raise UserError(f"{self.src}: auth_method = {server.auth_method!r}; use client_secret_basic or client_secret_post")
            self.partner_client = OAuthClient(server)

    def close(self) -> None:
        super().close()
        if self.partner_client is not None:
            self.partner_client.close()
            self.partner_client = None

    def columns(self) -> list[str | None]:
        return [self.key_column, self.user_column, *self.token_columns]

    def _links(self, ctx: Context) -> list[tuple[Any, ...]]:
        """(key, user, raw token per token column) of the links to unlink."""
        t, k, u = self.db.q(self.table), self.db.q(self.key_column), self.db.q(self.user_column)
        read = self.scope == "exact" or self.revocation_url is not None
        cols = "".join(f", {self.db.q(c)}" for c in self.token_columns) if read else ""
        rows = self.db.query(f"SELECT {k}, {u}{cols} FROM {t} ORDER BY {k}")
        if self.scope == "all" or not rows:
            return list(rows)
        hit = None
        for i in range(len(self.token_columns)):
            values = _text([r[2 + i] for r in rows])
            digests = values if self.stored == "sha256" else sha256_hex(values)
            col_hit = ctx.leaked.contains("sha256", digests)
            hit = col_hit if hit is None else hit | col_hit
        assert hit is not None
        return [r for r, h in zip(rows, hit.tolist(), strict=True) if h]

    def plan(self, ctx: Context) -> list[Step]:
        links = self._links(ctx)
        steps = self._key_steps(ctx, [r[0] for r in links], f"{self.partner} links")
        by_key = {r[0]: r for r in links}
        for s in steps:
            rows = [by_key[k] for k in self._items[s.key]]
            self._users[s.key] = [r[1] for r in rows]
            if self.revocation_url is not None:
                self._tokens[s.key] = [[str(v) if v else "" for v in r[2:]] for r in rows]
        return steps

    def _revoke_at_partner(self, step: Step) -> tuple[list[Any], int, str]:
        """Each link's tokens revoked at the partner (one RFC 7009 call per token); only links whose every token
        the partner confirmed are deleted. (links to delete, tokens revoked, what failed)."""
        from spillguard.respond.oauth import OAuthError, RawToken, TransientError

        keys = self._items[step.key]
        tokens = self._tokens.get(step.key, [[] for _ in keys])
        keep: list[Any] = []
        revoked = 0
        errors: dict[str, int] = {}
        for key, link_tokens in zip(keys, tokens, strict=True):
            ok = True
            for value, hint in zip(link_tokens, self.hints, strict=False):
                if not value:
                    continue
                try:
                    self.partner_client.revoke(RawToken(value, hint))  # type: ignore[arg-type]
                    revoked += 1
                except (OAuthError, TransientError) as exc:
                    ok = False
                    reason = str(exc).split(":", 1)[-1].strip()[:80] or type(exc).__name__
                    errors[reason] = errors.get(reason, 0) + 1
            if ok:
                keep.append(key)
        said = "; ".join(f"{n:,} × {r}" for r, n in sorted(errors.items()))
        return keep, revoked, said

    def execute(self, ctx: Context, step: Step) -> StepOutcome:
        if step.key not in self._items:
            return StepOutcome(0, step.count, "batch not planned in this run; plan again")
        revoked_note = ""
        failed = 0
        if self.revocation_url is not None:
            if self.partner_client is None:
                self.connect()
            self.partner_client.limits = ctx.limits
            keys, revoked, said = self._revoke_at_partner(step)
            failed = step.count - len(keys)
            revoked_note = f"revoked {revoked:,} {self.partner} tokens at {self.partner_client.server.target()}; "
            if failed:
                revoked_note += f"{failed:,} links kept, their revocation failed ({said}); "
            if not keys:
                return StepOutcome(0, failed, revoked_note.rstrip("; "))
            where, args = self.db.member(self.key_column, keys)
            done = self._run(ctx, lambda: self.db.execute(f"DELETE FROM {self.db.q(self.table)} WHERE {where}", args))
            outcome = StepOutcome(done, failed, f"{revoked_note}deleted {done:,} links")
        else:
            outcome = self._delete_keys(ctx, step, self.key_column)
        if self.relink_out is not None and not ctx.dry_run and step.key in self._users and not failed:
            write_relink(self.relink_out, ctx.incident, self.partner, step.key, self._users[step.key])
        return outcome

    def verify(self, ctx: Context) -> Verification:
        left = self._links(ctx)
        details = [f"{len(left):,} {self.partner} links with leaked tokens still in {self.table} at {self.target}"] if left else []
        return Verification(self.id, len(left), len(left), details)


RELINK_TEXT = ("Your {partner} connection was disconnected to protect your account after a security incident. "
               "Open the app and link {partner} again; a new token will be issued.")


def write_relink(path: Path, incident: str, partner: str, key: str, users: list[Any]) -> None:
    """Relink instructions, one JSON line per person, owner-only; a step already written is not written again."""
    if path.exists():
        with open(path, "rb") as fh:
            if any(orjson.loads(line).get("step") == key for line in fh if line.strip()):
                return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as fh:
        for user in users:
            fh.write(orjson.dumps({"incident": incident, "step": key, "user": str(user), "partner": partner,
                                   "message": RELINK_TEXT.format(partner=partner)}) + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
