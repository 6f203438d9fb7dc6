"""The playbook's `oauth` kind: RFC 7009 revocation at an authorization server, verified by RFC 7662
introspection, built from respond.toml settings over `respond.oauth` (OAuthRevocation).

The raw values of the leaked tokens are read from the server's own token table (looked up by their
SHA-256 digest, so only leaked rows are read), held in memory for the call, and never written.
"""

from __future__ import annotations

from typing import Any

from spillguard.errors import UserError
from spillguard.respond.actions import Context, Step, StepOutcome, Verification
from spillguard.respond.playbook import password_from
from spillguard.respond.stores import SqlStore


class OAuthAction:
    KEYS: dict[str, Any] = {
        "revocation_url": str, "introspection_url": str, "client_id_env": str, "client_secret_env": str, "auth_method": str,
        "introspection_client_id_env": str, "introspection_client_secret_env": str, "per_second": (int, float),
        "table": str, "token_column": str, "digest_column": str, "token_type_hint": str, "match": str, "rules": list,
    }
    kind = "oauth"

    def __init__(self, settings: dict[str, Any], src: str) -> None:
        self.settings = settings
        self.src = src
        self.id: str = settings["id"]
        self.scope: str = settings["scope"]
        if not settings.get("revocation_url"):
            raise UserError(f"{src}: `revocation_url` is required (the server's RFC 7009 endpoint)")
        if not settings.get("store") or not settings.get("table"):
            raise UserError(f"{src}: `store` and `table` are required (where the server keeps its tokens, to read the leaked ones)")
        self.target = ""
        self._inner: Any = None
        self._stores: list[SqlStore] = []

    def connect(self) -> None:
        try:
            from spillguard.respond.oauth import OAuthRevocation, OAuthServer, SqlTokenSource
        except ModuleNotFoundError:
            raise UserError(f"{self.src}: the oauth kind is not available in this install (spillguard.respond.oauth)") from None

        s = self.settings
        server_keys = ("introspection_url", "client_id_env", "client_secret_env", "auth_method",
                       "introspection_client_id_env", "introspection_client_secret_env", "per_second")
        server = OAuthServer(self.id, s["revocation_url"], **{k: s[k] for k in server_keys if k in s})
        self.target = server.target()
        password = password_from(s.get("password_env"), self.src)
        probe = SqlStore(s["store"], password)
        probe.require(s["table"], [s.get("token_column", "token"), s.get("digest_column", "token_checksum")], self.src)
        dialect = probe.dialect
        probe.close()

        def connect_store() -> Any:
            store = SqlStore(s["store"], password)
            self._stores.append(store)
            return store.conn

        source = SqlTokenSource(connect_store, s["table"], token_column=s.get("token_column", "token"),
                                digest_column=s.get("digest_column", "token_checksum"), hint=s.get("token_type_hint"),
                                paramstyle="qmark" if dialect == "sqlite" else "format")
        self._inner = OAuthRevocation(self.id, server, source, match=s.get("match", "sha256"), rules=s.get("rules"))
        self._inner.check()

    def _action(self) -> Any:
        if self._inner is None:
            self.connect()
        return self._inner

    def _ctx(self, ctx: Context) -> Context:
        # OAuthRevocation reads the scope from the context; an action may override the playbook's.
        if ctx.scope == self.scope:
            return ctx
        from dataclasses import replace

        return replace(ctx, scope=self.scope)  # type: ignore[arg-type]

    def plan(self, ctx: Context) -> list[Step]:
        return self._action().plan(self._ctx(ctx))

    def execute(self, ctx: Context, step: Step) -> StepOutcome:
        return self._action().execute(self._ctx(ctx), step)

    def verify(self, ctx: Context) -> Verification:
        return self._action().verify(self._ctx(ctx))

    def close(self) -> None:
        for store in self._stores:
            store.close()
        self._stores.clear()
        client = getattr(self._inner, "_client", None)
        if client is not None:
            client.close()
