"""`respond.toml`: where the company's credentials, sessions and integrations live, as configured actions.

One registry maps an action `kind` to its adapter and a `preset` to the settings of a known stack, so
adding a stack is a data change here. Loading checks everything a run needs before anything changes:
unknown keys, missing credential variables, unreachable stores, tables and columns that do not exist.
"""

from __future__ import annotations

import importlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spillguard.config import secret_from_env
from spillguard.errors import UserError
from spillguard.respond.actions import SCOPES, Limits, Scope

# kind -> "module:Class"; modules load only when a playbook uses the kind.
KINDS: dict[str, str] = {
    "sql-tokens": "spillguard.respond.sql:SqlTokens",
    "sql-sessions": "spillguard.respond.sql:SqlSessions",
    "not-valid-before": "spillguard.respond.sql:NotValidBefore",
    "integrations": "spillguard.respond.sql:LinkedAccounts",
    "redis-sessions": "spillguard.respond.redis_sessions:RedisSessions",
    "http": "spillguard.respond.http:HttpAction",
    "oauth": "spillguard.respond.oauth:OAuthRevocation",  # RFC 7009/7662, takes playbook settings itself
    "notify": "spillguard.respond.notify:NotifyAction",  # Art. 34 notices, once per person (respond/notify.py)
}

# preset -> the kind and settings of a known stack's table or key layout (any can be overridden).
PRESETS: dict[str, dict[str, Any]] = {
    # django-oauth-toolkit >= 3.0: token_checksum = sha256(token) hex, unique; AccessToken.revoke() deletes.
    "django-oauth-toolkit-access": {"kind": "sql-tokens", "table": "oauth2_provider_accesstoken", "token_column": "token_checksum",
                                    "stored": "sha256", "key_column": "id", "user_column": "user_id", "revoke": "delete"},
    # RefreshToken.revoke() sets `revoked` and deletes its access token (an access-token action covers those).
    "django-oauth-toolkit-refresh": {"kind": "sql-tokens", "table": "oauth2_provider_refreshtoken", "token_column": "token_checksum",
                                     "stored": "sha256", "key_column": "id", "user_column": "user_id", "revoke": "flag",
                                     "flag_column": "revoked", "flag_value": "now"},
    # Django REST framework TokenAuthentication: the 40-hex key is the token, stored plain.
    "drf-authtoken": {"kind": "sql-tokens", "table": "authtoken_token", "token_column": "key", "stored": "plain",
                      "key_column": "key", "user_column": "user_id", "revoke": "delete"},
    # Laravel Sanctum: plaintext "<id>|<secret>", column token = sha256(<secret>) hex.
    "laravel-sanctum": {"kind": "sql-tokens", "table": "personal_access_tokens", "token_column": "token", "stored": "sha256",
                        "key_column": "id", "user_column": "tokenable_id", "revoke": "delete"},
    # Authlib's SQLAlchemy OAuth2TokenMixin: raw tokens, integer *_revoked_at timestamps.
    "authlib-access": {"kind": "sql-tokens", "table": "oauth2_token", "token_column": "access_token", "stored": "plain",
                       "key_column": "id", "user_column": "user_id", "revoke": "flag", "flag_column": "access_token_revoked_at",
                       "flag_value": "epoch"},
    "authlib-refresh": {"kind": "sql-tokens", "table": "oauth2_token", "token_column": "refresh_token", "stored": "plain",
                        "key_column": "id", "user_column": "user_id", "revoke": "flag", "flag_column": "refresh_token_revoked_at",
                        "flag_value": "epoch"},
    # Django's database session backend: the user id is `_auth_user_id` inside the signed payload.
    "django-session": {"kind": "sql-sessions", "table": "django_session", "key_column": "session_key",
                       "data_column": "session_data", "decode": "django"},
    # Laravel's database session driver.
    "laravel-sessions": {"kind": "sql-sessions", "table": "sessions", "key_column": "id", "user_column": "user_id"},
    # Spring Session JDBC: attributes go with the row (ON DELETE CASCADE).
    "spring-session": {"kind": "sql-sessions", "table": "SPRING_SESSION", "key_column": "PRIMARY_ID", "user_column": "PRINCIPAL_NAME"},
    # express-session + connect-redis (JSON), user as Passport stores it.
    "express-session": {"kind": "redis-sessions", "pattern": "sess:*", "user_field": "passport.user"},
    # Flask-Session's Redis backend (its default key prefix): msgpack since 0.6 (or its `json` option), pickle
    # before; `auto` reads all three (pickle without running code). The user as Flask-Login keeps it.
    "flask-session": {"kind": "redis-sessions", "pattern": "session:*", "user_field": "_user_id", "format": "auto"},
}

# Action settings that name files: relative to the playbook's folder, like `leaked` and `journal`.
PATH_KEYS = ("relink_out", "report", "recipients", "ledger", "templates")
_TOP: dict[str, Any] = {
    "incident": str, "scope": str, "leaked": str, "subjects": str, "journal": str, "limits": dict, "action": list,
}
_LIMITS: dict[str, Any] = {"batch": int, "per_second": (int, float), "retries": int, "backoff_s": (int, float)}
# Keys every action takes; each adapter declares its own in KEYS.
COMMON_KEYS: dict[str, Any] = {"id": str, "kind": str, "preset": str, "store": str, "password_env": str, "scope": str,
                               "description": str}


@dataclass(slots=True)
class Playbook:
    path: Path
    incident: str
    scope: Scope
    leaked: Path | None
    subjects: Path | None
    journal: Path
    limits: Limits
    actions: list[Any] = field(default_factory=list)  # configured Action adapters, not yet connected

    def close(self) -> None:
        for a in self.actions:
            close = getattr(a, "close", None)
            if close is not None:
                close()


def _typed(src: str, where: str, key: str, value: Any, kind: Any) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise UserError(f"{src}: {where}.{key} must be a {name}, not {type(value).__name__}")
    return value


def _check(src: str, where: str, table: dict[str, Any], allowed: dict[str, Any]) -> None:
    for key, value in table.items():
        if key not in allowed:
            raise UserError(f"{src}: unknown key {key!r} in {where}; allowed: {', '.join(sorted(allowed))}")
        _typed(src, where, key, value, allowed[key])


def adapter_class(kind: str, src: str = "playbook") -> type:
    spec = KINDS.get(kind)
    if spec is None:
        raise UserError(f"{src}: unknown action kind {kind!r}; use one of {', '.join(sorted(KINDS))}")
    module_name, class_name = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise UserError(f"{src}: action kind {kind!r} is not available in this install") from None
    return getattr(module, class_name)


def password_from(env: str | None, what: str) -> str | None:
    return secret_from_env(env, what, "password_env")


def load_playbook(path: str | Path, *, scope: str | None = None) -> Playbook:
    """Parse and check a playbook file. Stores are not contacted yet (see `connect_all`)."""
    path = Path(path)
    src = str(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{src}: no such playbook; write one from the example in docs/respond.md") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{src}: cannot read the playbook ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{src}: not valid TOML ({exc})") from None
    _check(src, "the playbook", doc, _TOP)
    incident = doc.get("incident")
    if not incident or not incident.strip():
        raise UserError(f"{src}: `incident` is required (a name for this incident, e.g. \"2019-12-es-leak\")")
    chosen = scope or doc.get("scope", "exact")
    if chosen not in SCOPES:
        raise UserError(f"{src}: scope {chosen!r} is not one of {', '.join(SCOPES)}")
    limits_doc = doc.get("limits", {})
    _check(src, "[limits]", limits_doc, _LIMITS)
    limits = Limits(**{k: v for k, v in limits_doc.items()})
    if limits.batch < 1 or limits.retries < 0:
        raise UserError(f"{src}: [limits] batch must be at least 1 and retries at least 0")
    base = path.parent

    def rel(value: str | None) -> Path | None:
        return None if value is None else (base / value if not Path(value).is_absolute() else Path(value))

    journal = rel(doc.get("journal")) or base / f"{incident}.journal"
    actions: list[Any] = []
    seen: set[str] = set()
    for n, raw in enumerate(doc.get("action", []), 1):
        where = f"[[action]] #{n}"
        if not isinstance(raw, dict):
            raise UserError(f"{src}: {where} must be a table")
        preset_name = raw.get("preset")
        settings: dict[str, Any] = {}
        if preset_name is not None:
            if preset_name not in PRESETS:
                raise UserError(f"{src}: {where}: unknown preset {preset_name!r}; use one of {', '.join(sorted(PRESETS))}")
            settings.update(PRESETS[preset_name])
        settings.update(raw)
        kind = settings.get("kind")
        if not kind:
            raise UserError(f"{src}: {where} needs `kind` or `preset`")
        cls = adapter_class(str(kind), f"{src}: {where}")
        _check(src, where, settings, {**COMMON_KEYS, **cls.KEYS})
        action_id = settings.get("id") or preset_name or f"{kind}-{n}"
        if action_id in seen:
            raise UserError(f"{src}: {where}: action id {action_id!r} is used twice; give each action its own id")
        seen.add(action_id)
        action_scope = settings.get("scope", chosen) if scope is None else chosen
        if action_scope not in SCOPES:
            raise UserError(f"{src}: {where}: scope {action_scope!r} is not one of {', '.join(SCOPES)}")
        settings["id"] = action_id
        for key in PATH_KEYS:
            if key in settings:
                settings[key] = str(rel(settings[key]))
        settings["scope"] = action_scope
        actions.append(cls(settings, src=f"{src}: action {action_id!r}"))
    if not actions:
        raise UserError(f"{src}: no [[action]]; add at least one (see docs/respond.md)")
    return Playbook(path, incident.strip(), chosen, rel(doc.get("leaked")), rel(doc.get("subjects")), journal, limits, actions)


def check_leaked(playbook: Playbook, leaked: Any) -> None:
    """What each action needs of the leaked-secret set (an `hmac` column for `stored = "hmac"`), before any
    store is contacted."""
    for action in playbook.actions:
        check = getattr(action, "check_leaked", None)
        if check is not None:
            check(leaked)


def connect_all(playbook: Playbook) -> None:
    """Credentials, connections, tables and columns of every action, before any action runs."""
    for action in playbook.actions:
        action.connect()
