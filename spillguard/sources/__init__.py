"""Store adapters, chosen by target: a path (file or folder) or a URL whose scheme names the store."""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit

from spillguard.errors import UserError
from spillguard.sources.base import DatasetReader, MalformedSink, Partition, Source

# scheme -> "module:Class"; modules are imported only when a target needs them.
SCHEMES: dict[str, str] = {
    "postgresql": "spillguard.sources.postgres:PostgresSource",
    "postgres": "spillguard.sources.postgres:PostgresSource",
    "mysql": "spillguard.sources.mysql:MySQLSource",
    "mariadb": "spillguard.sources.mysql:MySQLSource",
    "sqlite": "spillguard.sources.sqlite:SQLiteSource",
    "redis": "spillguard.sources.redis:RedisSource",
    "rediss": "spillguard.sources.redis:RedisSource",
    "elasticsearch+http": "spillguard.sources.elasticsearch:ElasticsearchSource",
    "elasticsearch+https": "spillguard.sources.elasticsearch:ElasticsearchSource",
    "opensearch+http": "spillguard.sources.elasticsearch:ElasticsearchSource",
    "opensearch+https": "spillguard.sources.elasticsearch:ElasticsearchSource",
    "mongodb": "spillguard.sources.mongodb:MongoSource",
    "mongodb+srv": "spillguard.sources.mongodb:MongoSource",
}


def mask_url(target: str) -> str:
    """A target as it may be shown or logged: any password replaced by ***."""
    if "://" not in target:
        return target
    parts = urlsplit(target)
    if parts.password is None:
        return target
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{netloc}").geturl()


def open_target(target: str, **options: Any) -> Source:
    if "://" not in target:
        from spillguard.sources.files import FileSource

        return FileSource(target, **options)
    scheme = target.split("://", 1)[0].lower()
    spec = SCHEMES.get(scheme)
    if spec is None:
        known = ", ".join(sorted(f"{s}://" for s in SCHEMES))
        raise UserError(f"{mask_url(target)}: unknown target type '{scheme}://'; use a path or one of {known}")
    module_name, class_name = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise UserError(f"{mask_url(target)}: support for {scheme}:// is not available ({exc.name} missing)") from None
    return getattr(module, class_name)(target, **options)


__all__ = ["DatasetReader", "MalformedSink", "Partition", "Source", "mask_url", "open_target"]
