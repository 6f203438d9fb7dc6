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
    """Documents go straight into the index. Checkpointed (`run` given): each document's `_id` is derived from
    its partition and its place in it, so a partition written again after a crash overwrites itself; the
    state file alone says which partitions are done (`markers` False), and a failure keeps the index."""

    def __init__(self, dest: ElasticsearchDestination, name: str, mode: str, run: str | None = None, resume: bool = False) -> None:
        self.dest = dest
        self.index = name
        self.mode = mode
        self.rows = 0
        self.run = run
        self.markers = False
        self.created = False
        self._part_rows = 0
        self._pending: list[pa.Table] = []
        exists = dest.exists(name)
        if mode == "replace" and exists and not resume:
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

    def done(self) -> set[str]:
        return set()

    def write(self, table: pa.Table) -> None:
        if self.run:
            self._pending.append(table)  # ids need the partition: sent at its checkpoint
            return
        self._send(table, None)

    def checkpoint(self, pid: str, order: int = 0) -> None:
        pending, self._pending = self._pending, []
        self._part_rows = 0
        for table in pending:
            self._send(table, pid)

    def _send(self, table: pa.Table, pid: str | None) -> None:
        rows = table.to_pylist()
        plain = orjson.dumps({"index": {"_index": self.index}})
        for start in range(0, len(rows), BULK_DOCS):
            chunk = rows[start : start + BULK_DOCS]
            if pid is None:
                actions = [plain] * len(chunk)
            else:
                first = self._part_rows + start
                # The run id too: a later copy appending the same partitions (same bounds) adds documents.
                actions = [orjson.dumps({"index": {"_index": self.index, "_id": f"{self.run}-{pid}-{first + i}"}}) for i in range(len(chunk))]
            body = b"".join(a + b"\n" + orjson.dumps(r, default=str) + b"\n" for a, r in zip(actions, chunk, strict=True))
            result = self._call("POST", "/_bulk", body, "application/x-ndjson")
            if result.get("errors"):
                failed = [i for i in result.get("items", []) if next(iter(i.values())).get("error")]
                reason = next(iter(failed[0].values()))["error"].get("type", "error") if failed else "error"
                self.abort()
                raise UserError(f"{self.dest.target}: {len(failed)} document(s) of {self.index} refused ({reason})")
        self.rows += len(rows)
        self._part_rows += len(rows)

    def commit(self, meta: dict[str, Any]) -> None:
        self._call("PUT", f"/{self.index}/_mapping", orjson.dumps({"_meta": {"spillguard_copy": meta}}))
        self._call("POST", f"/{self.index}/_refresh")

    def abort(self) -> None:
        """Delete the index this copy created, unless a checkpointed copy keeps it for --resume."""
        self._pending = []
        if self.created and not self.run:
            self.created = False
            with contextlib.suppress(httpx.HTTPError):  # the caller reports the error that led here
                self.dest.client.request("DELETE", f"/{self.index}")

    def discard(self) -> None:
        """A halted checkpointed copy: the index it filled is deleted, unless it appended to an index that
        existed before (then its documents stay: --replace rebuilds the index)."""
        self._pending = []
        if self.run and self.mode != "append":
            self.created = True
        self.run = None
        self.abort()


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

    def published(self, name: str, run: str) -> bool:
        return False  # publishing (the mapping's _meta, a refresh) is done again: it is idempotent

    def open(self, name: str, mode: str, run: str | None = None, resume: bool = False) -> IndexWriter:
        if name != name.lower() or name.startswith(("_", "-", "+")):
            raise UserError(f"{self.target}: {name!r} is not a valid index name (lower case, not starting with _ - +); set `to` in the policy")
        return IndexWriter(self, name, mode, run, resume)

    def dataset_name(self, name: str) -> str:
        return name

    def scan_plan(self, names: list[str]) -> tuple[list[str], dict[str, Any]]:
        return [self.scan_target], {"include": list(names)}

    def finish(self, commit: bool) -> None:
        pass

    def close(self) -> None:
        self.source.close()
