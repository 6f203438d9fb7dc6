"""Elasticsearch / OpenSearch destination: documents sent with the bulk API, the copy's metadata in the
index mapping's `_meta`. An index has no transactions: abort deletes the index this copy created, and
`--replace` deletes the old index when the copy starts (documented as not atomic)."""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
import pyarrow as pa

from spillguard.errors import UserError
from spillguard.safecopy.destinations.sql import write_error
from spillguard.sources.elasticsearch import ElasticsearchSource
from spillguard.sources.store import one_line

BULK_DOCS = 2000


class IndexWriter:
    def __init__(self, dest: ElasticsearchDestination, name: str, mode: str) -> None:
        self.dest = dest
        self.index = name
        self.mode = mode
        self.rows = 0
        self.created = False
        exists = dest.exists(name)
        if mode == "replace" and exists:
            self._call("DELETE", f"/{name}")
            exists = False
        if not exists:
            self._call("PUT", f"/{name}", b"{}")
            self.created = True

    def _call(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json") -> dict[str, Any]:
        try:
            resp = self.dest.client.request(method, path, content=body, headers={"content-type": content_type})
        except httpx.HTTPError as exc:
            raise UserError(f"{self.dest.target}: {method} {path} failed ({one_line(exc, self.dest.password)})") from None
        if resp.status_code >= 300:
            raise UserError(f"{self.dest.target}: {method} {path} answered {resp.status_code} ({write_error(Exception(resp.text[:300]), self.dest.password)})")
        return resp.json() if resp.content else {}

    def write(self, table: pa.Table) -> None:
        rows = table.to_pylist()
        action = orjson.dumps({"index": {"_index": self.index}})
        for start in range(0, len(rows), BULK_DOCS):
            chunk = rows[start : start + BULK_DOCS]
            body = b"".join(action + b"\n" + orjson.dumps(r, default=str) + b"\n" for r in chunk)
            result = self._call("POST", "/_bulk", body, "application/x-ndjson")
            if result.get("errors"):
                failed = [i for i in result.get("items", []) if next(iter(i.values())).get("error")]
                reason = next(iter(failed[0].values()))["error"].get("type", "error") if failed else "error"
                self.abort()
                raise UserError(f"{self.dest.target}: {len(failed)} document(s) of {self.index} refused ({reason})")
        self.rows += len(rows)

    def commit(self, meta: dict[str, Any]) -> None:
        self._call("PUT", f"/{self.index}/_mapping", orjson.dumps({"_meta": {"spillguard_copy": meta}}))
        self._call("POST", f"/{self.index}/_refresh")

    def abort(self) -> None:
        if self.created:
            self.created = False
            with contextlib.suppress(httpx.HTTPError):  # the caller reports the error that led here
                self.dest.client.request("DELETE", f"/{self.index}")


class ElasticsearchDestination:
    """elasticsearch+http(s)://[user:password@]host:port; opensearch+http(s):// alike."""

    def __init__(self, target: str, **options: Any) -> None:
        self.source = ElasticsearchSource(target, **options)
        self.target = self.source.target
        self.password = self.source.password
        self.client = self.source.http()
        self.scan_target = target
        scheme, rest = target.split("://", 1)
        parts = urlsplit(f"{scheme}://{rest}")
        netloc = parts.netloc.rsplit("@", 1)[-1]
        self.audit_url = urlunsplit(parts._replace(netloc=netloc, query=""))

    def exists(self, name: str) -> bool:
        try:
            return self.client.request("HEAD", f"/{name}").status_code == 200
        except httpx.HTTPError as exc:
            raise UserError(f"{self.target}: cannot check index {name} ({one_line(exc, self.password)})") from None

    def open(self, name: str, mode: str) -> IndexWriter:
        if name != name.lower() or name.startswith(("_", "-", "+")):
            raise UserError(f"{self.target}: {name!r} is not a valid index name (lower case, not starting with _ - +); set `to` in the policy")
        return IndexWriter(self, name, mode)

    def dataset_name(self, name: str) -> str:
        return name

    def scan_plan(self, names: list[str]) -> tuple[list[str], dict[str, Any]]:
        return [self.scan_target], {"include": list(names)}

    def finish(self, commit: bool) -> None:
        pass

    def close(self) -> None:
        self.source.close()
