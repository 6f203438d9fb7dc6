"""`spillguard.toml`: the targets that scan, audit and watch work on, and the watch settings.

    [[target]]
    name = "metrics-es"
    url = "elasticsearch+http://127.0.0.1:9200"
    password_env = "ES_PASSWORD"
    include = ["users*"]
    exclude = [".*"]
    subject_fields = { "users" = "user_id" }
    admin_url = "elasticsearch+http://elastic@127.0.0.1:9200"
    admin_password_env = "ES_ADMIN_PASSWORD"
    inventory = "scans/metrics-es.json"

    inventory = ["scans/all.json"]        # top level: inventories for every target

    [watch]
    interval = 60
    state = "spillguard-watch.sqlite"
    remind_every = 3600

    [[watch.sink]]
    type = "webhook"
    url = "http://127.0.0.1:9000/hook"
    format = "slack"

Unknown keys are errors: a typo in a safety tool's config must not silently switch a check off.
Relative paths are resolved against the directory of the file.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from spillguard.errors import UserError
from spillguard.targets import check_targets

SINK_TYPES = ("stdout", "file", "webhook", "smtp", "command")


@dataclass(slots=True)
class TargetConfig:
    url: str
    name: str | None = None
    password_env: str | None = None
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    subject_fields: dict[str, str] = field(default_factory=dict)
    admin_url: str | None = None
    admin_password_env: str | None = None
    inventory: str | None = None
    # scan settings for this target (spillguard scan --config); None = the command line's
    sample: int | None = None
    include_views: bool | None = None
    include_hidden: bool | None = None

    def password(self) -> str | None:
        return secret_from_env(self.password_env, f"target {self.name or self.url!r}")

    def admin_password(self) -> str | None:
        return secret_from_env(self.admin_password_env, f"target {self.name or self.url!r} admin")


@dataclass(slots=True)
class SinkConfig:
    type: str
    url: str | None = None  # webhook
    format: str = "json"  # webhook: "slack" or "json"
    secret_env: str | None = None  # webhook: HMAC-SHA256 key for X-Spillguard-Signature
    path: str | None = None  # file: JSON lines appended here
    command: list[str] | str | None = None  # command: run with the alert JSON on stdin
    host: str | None = None  # smtp
    port: int = 25
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password_env: str | None = None
    sender: str | None = None
    to: list[str] = field(default_factory=list)
    timeout: float = 10.0

    def secret(self) -> str | None:
        return secret_from_env(self.secret_env, f"{self.type} sink")

    def password(self) -> str | None:
        return secret_from_env(self.password_env, f"{self.type} sink")


@dataclass(slots=True)
class WatchConfig:
    interval: float = 60.0
    state: str = "spillguard-watch.sqlite"
    remind_every: float = 3600.0
    jitter: float = 0.1  # fraction of the interval
    timeout: float = 5.0
    sinks: list[SinkConfig] = field(default_factory=list)


@dataclass(slots=True)
class Config:
    path: str | None = None
    targets: list[TargetConfig] = field(default_factory=list)
    inventory: list[str] = field(default_factory=list)
    watch: WatchConfig = field(default_factory=WatchConfig)


def secret_from_env(name: str | None, what: str, key: str = "the *_env key") -> str | None:
    """A credential named by a `*_env` setting (spillguard.toml, respond.toml): None when no variable is named, one
    clear line when the named one is not set."""
    if not name:
        return None
    value = os.environ.get(name)
    if value is None:
        raise UserError(f"{what}: environment variable {name} is not set; export it or remove {key}")
    return value


def _check_keys(src: str, where: str, table: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise UserError(
            f"{src}: unknown key {unknown[0]!r} in {where}; allowed: {', '.join(sorted(allowed))}"
        )


def _typed(src: str, where: str, key: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
        name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise UserError(f"{src}: {where}.{key} must be a {name}, not {type(value).__name__}")
    return value


_TARGET_TYPES: dict[str, Any] = {
    "url": str, "name": str, "password_env": str, "include": list, "exclude": list, "subject_fields": dict,
    "admin_url": str, "admin_password_env": str, "inventory": str,
    "sample": int, "include_views": bool, "include_hidden": bool,
}  # fmt: skip
_SINK_TYPES_OF: dict[str, Any] = {
    "type": str, "url": str, "format": str, "secret_env": str, "path": str, "command": (list, str), "host": str,
    "port": int, "starttls": bool, "ssl": bool, "username": str, "password_env": str, "sender": str, "to": list,
    "timeout": float,
}  # fmt: skip
_WATCH_TYPES: dict[str, Any] = {
    "interval": float, "state": str, "remind_every": float, "jitter": float, "timeout": float, "sink": list,
}  # fmt: skip


def _resolve(base: Path, p: str) -> str:
    return str(p if os.path.isabs(p) else base / p)


def load_config(path: str | Path) -> Config:
    p = Path(path)
    src = str(p)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise UserError(
            f"{src}: no such config file; create it or pass targets on the command line"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{src}: not valid TOML ({exc})") from None
    return parse_config(data, src, base=p.parent)


def parse_config(data: dict[str, Any], src: str = "spillguard.toml", base: Path | None = None) -> Config:
    base = base or Path(".")
    _check_keys(src, "the top level", data, {"target", "inventory", "watch"})
    cfg = Config(path=src)
    raw_targets = data.get("target", [])
    if not isinstance(raw_targets, list):
        raise UserError(f"{src}: 'target' must be an array of tables ([[target]])")
    for i, t in enumerate(raw_targets):
        where = f"[[target]] #{i + 1}"
        if not isinstance(t, dict):
            raise UserError(f"{src}: {where} must be a table")
        _check_keys(src, where, t, set(_TARGET_TYPES))
        if "url" not in t:
            raise UserError(f"{src}: {where} has no 'url'; add e.g. url = \"redis://HOST:PORT\"")
        kwargs = {k: _typed(src, where, k, v, _TARGET_TYPES[k]) for k, v in t.items()}
        urls = [kwargs["url"]] + ([kwargs["admin_url"]] if "admin_url" in kwargs else [])
        try:
            check_targets(urls)
        except UserError as exc:
            raise UserError(f"{src}: {where}: {exc}") from None
        if "inventory" in kwargs:
            kwargs["inventory"] = _resolve(base, kwargs["inventory"])
        cfg.targets.append(TargetConfig(**kwargs))
    inv = data.get("inventory", [])
    if isinstance(inv, str):
        inv = [inv]
    if not isinstance(inv, list) or not all(isinstance(x, str) for x in inv):
        raise UserError(f"{src}: 'inventory' must be a list of file paths")
    cfg.inventory = [_resolve(base, x) for x in inv]
    w = data.get("watch", {})
    if not isinstance(w, dict):
        raise UserError(f"{src}: [watch] must be a table")
    _check_keys(src, "[watch]", w, set(_WATCH_TYPES))
    watch = WatchConfig()
    for k, v in w.items():
        if k == "sink":
            continue
        setattr(watch, k, _typed(src, "[watch]", k, v, _WATCH_TYPES[k]))
    if watch.interval < 1:
        raise UserError(f"{src}: [watch].interval must be at least 1 second")
    watch.state = _resolve(base, watch.state)
    for i, s in enumerate(w.get("sink", [])):
        where = f"[[watch.sink]] #{i + 1}"
        if not isinstance(s, dict):
            raise UserError(f"{src}: {where} must be a table")
        _check_keys(src, where, s, {f.name for f in fields(SinkConfig)})
        kwargs = {k: _typed(src, where, k, v, _SINK_TYPES_OF[k]) for k, v in s.items()}
        sink = SinkConfig(**kwargs)
        validate_sink(sink, f"{src}: {where}")
        if sink.path:
            sink.path = _resolve(base, sink.path)
        watch.sinks.append(sink)
    cfg.watch = watch
    return cfg


def validate_sink(sink: SinkConfig, where: str) -> None:
    if sink.type not in SINK_TYPES:
        raise UserError(f"{where}: type {sink.type!r} is not one of {', '.join(SINK_TYPES)}")
    needs = {"webhook": "url", "file": "path", "command": "command", "smtp": "host"}
    key = needs.get(sink.type)
    if key and not getattr(sink, key):
        raise UserError(f"{where}: a {sink.type} sink needs '{key}'")
    if sink.type == "webhook" and sink.format not in ("slack", "json"):
        raise UserError(f"{where}: format {sink.format!r} is not 'slack' or 'json'")
    if sink.type == "smtp" and (not sink.sender or not sink.to):
        raise UserError(f"{where}: an smtp sink needs 'sender' and 'to'")
