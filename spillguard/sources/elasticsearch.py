"""Elasticsearch and OpenSearch over their REST API (plain httpx, so both products work).

Datasets are the indices and data streams (aliases resolved to their indices; `.`-prefixed system
and hidden indices skipped unless asked). Exhaustive reads are point-in-time + sliced searches
paged with `search_after` on `_shard_doc`, falling back to sliced scrolls where a cluster has no
point-in-time API. Samples are seeded `random_score` searches. Every `_source` field is read:
objects, nested objects and arrays arrive as nested columns. The first request (`GET /`) must be answered
within the connect timeout; every later one may wait the read timeout for each piece of its answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import httpx
import orjson
import pyarrow as pa

from spillguard.errors import UserError
from spillguard.sources.base import MalformedSink, Partition, since_bound
from spillguard.sources.records import docs_to_tables
from spillguard.sources.retry import TransientError, Unreachable
from spillguard.sources.store import (
    ReconnectingDataset,
    StoreSource,
    one_line,
    partition_count,
)

PAGE = 1000
KEEP_ALIVE = "5m"
MAX_WINDOW = 10_000
_FILTER = "hits.hits._source,hits.hits.sort,pit_id,_scroll_id"


class _NoPit(Exception):
    """The cluster has no usable point-in-time API: use scrolls."""


@dataclass(slots=True)
class SearchIndex(ReconnectingDataset):
    source: ElasticsearchSource
    name: str
    docs: int
    aliases: list[str] = field(default_factory=list)
    subject_field: str | None = None

    def estimate(self) -> tuple[int, str] | None:
        """How many documents the index holds (`_cat/indices`)."""
        return (self.docs, "records")

    def partitions(self) -> list[Partition]:
        opts = self.source.options
        if opts.sample is not None:
            return [Partition(self.name, {"index": self.name, "sample": opts.sample})]
        n = partition_count(self.docs, opts.partition_rows, cap=1024)
        if n == 1:
            return [Partition(self.name, {"index": self.name})]
        return [Partition(self.name, {"index": self.name, "slice": i, "max": n}) for i in range(n)]

    def read(self, partition: Partition, malformed: MalformedSink) -> Iterator[pa.Table]:
        spec = partition.spec
        try:
            pages = self._sample(int(spec["sample"])) if "sample" in spec else self._pit_pages(spec)
            for docs in pages:
                yield from docs_to_tables(docs, self.name, malformed)
        except _NoPit:
            for docs in self._scroll_pages(spec):
                yield from docs_to_tables(docs, self.name, malformed)

    def _slice(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The slice of a sliced read, and a copy's watermark as a range query."""
        body: dict[str, Any] = {"slice": {"id": spec["slice"], "max": spec["max"]}} if "max" in spec else {}
        if (bound := since_bound(spec)) is not None:
            body["query"] = {"range": {bound[0]: {"gte": bound[1]}}}
        return body

    def _pit_pages(self, spec: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        src = self.source
        pit = src.open_pit(self.name)
        try:
            after: list[Any] | None = None
            while True:
                body: dict[str, Any] = {"size": PAGE, "pit": {"id": pit, "keep_alive": KEEP_ALIVE}, "sort": ["_shard_doc"], "track_total_hits": False, **self._slice(spec)}
                if after is not None:
                    body["search_after"] = after
                doc = src.request("POST", "/_search", body, params={"filter_path": _FILTER}, no_pit_ok=after is None)
                pit = doc.get("pit_id", pit)
                hits = doc.get("hits", {}).get("hits", [])
                if not hits:
                    return
                yield [h.get("_source") or {} for h in hits]
                if len(hits) < PAGE:
                    return
                after = hits[-1]["sort"]
        finally:
            src.close_pit(pit)

    def _scroll_pages(self, spec: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        src = self.source
        body = {"size": PAGE, "sort": ["_doc"], **self._slice(spec)}
        doc = src.request("POST", f"/{quote(self.name, safe='')}/_search", body, params={"scroll": KEEP_ALIVE, "filter_path": _FILTER})
        scroll_id = doc.get("_scroll_id")
        try:
            while True:
                hits = doc.get("hits", {}).get("hits", [])
                if not hits:
                    return
                yield [h.get("_source") or {} for h in hits]
                doc = src.request("POST", "/_search/scroll", {"scroll": KEEP_ALIVE, "scroll_id": scroll_id}, params={"filter_path": _FILTER})
                scroll_id = doc.get("_scroll_id", scroll_id)
        finally:
            if scroll_id:
                src.request("DELETE", "/_search/scroll", {"scroll_id": [scroll_id]}, quiet=True)

    def _sample(self, n: int) -> Iterator[list[dict[str, Any]]]:
        """The top n documents by a seeded random score: a uniform random sample, repeatable by seed."""
        query = {
            "function_score": {
                "query": {"match_all": {}},
                "random_score": {"seed": self.source.options.seed % 2**31, "field": "_seq_no"},
                "boost_mode": "replace",
            }
        }
        size = min(n, MAX_WINDOW)
        body = {"size": size, "query": query, "track_total_hits": False}
        if n <= MAX_WINDOW:
            doc = self.source.request("POST", f"/{quote(self.name, safe='')}/_search", body, params={"filter_path": _FILTER})
            yield [h.get("_source") or {} for h in doc.get("hits", {}).get("hits", [])]
            return
        # Beyond the result window: page the same random order under a point in time.
        pit = self.source.open_pit(self.name)
        try:
            after: list[Any] | None = None
            left = n
            while left > 0:
                page = {**body, "size": min(PAGE, left), "pit": {"id": pit, "keep_alive": KEEP_ALIVE}, "sort": [{"_score": "desc"}, "_shard_doc"]}
                if after is not None:
                    page["search_after"] = after
                doc = self.source.request("POST", "/_search", page, params={"filter_path": _FILTER})
                hits = doc.get("hits", {}).get("hits", [])
                if not hits:
                    return
                yield [h.get("_source") or {} for h in hits]
                left -= len(hits)
                after = hits[-1]["sort"]
        finally:
            self.source.close_pit(pit)


class ElasticsearchSource(StoreSource):
    """elasticsearch+http(s)://[user:password@]host:port[/prefix][?verify=false]; opensearch+http(s):// alike."""

    def __init__(self, target: str, **options: Any) -> None:
        scheme, rest = target.split("://", 1)
        self.product, http = scheme.lower().split("+", 1)
        super().__init__(target, self.product, options)
        parts = urlsplit(f"{http}://{rest}")
        query = dict(parse_qsl(parts.query))
        self.verify = query.get("verify", query.get("verify_certs", "true")).lower() not in ("false", "0", "no")
        host = parts.hostname or "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        self.base_url = f"{http}://{host}:{parts.port or 9200}{parts.path.rstrip('/')}"
        self.username = unquote(parts.username) if parts.username else None
        self._http: httpx.Client | None = None
        self._pit_style: str | None = None
        self._catalog: list[SearchIndex] | None = None
        try:
            info = self.request("GET", "/", None, login=True)
        except TransientError as exc:
            self.reset()
            raise Unreachable(f"{self.target}: cannot connect ({exc})") from None
        distribution = str(info.get("version", {}).get("distribution", "")).lower()
        self.is_opensearch = distribution == "opensearch" or self.product == "opensearch"

    # -- HTTP ---------------------------------------------------------------------------------
    def http(self) -> httpx.Client:
        if self._http is None:
            headers = {"content-type": "application/json", "accept": "application/json"}
            import os

            api_key = os.environ.get("SPILLGUARD_ES_API_KEY")
            auth = None
            if api_key:
                headers["authorization"] = f"ApiKey {api_key}"
            elif self.username or self.password:
                auth = httpx.BasicAuth(self.username or "elastic", self.password or "")
            opts = self.options
            self._http = httpx.Client(
                base_url=self.base_url, headers=headers, auth=auth, verify=self.verify,
                # connect covers TCP and the TLS handshake; read is the longest wait for a piece of an answer.
                timeout=httpx.Timeout(opts.read_timeout, connect=opts.connect_timeout, pool=opts.connect_timeout),
            )
        return self._http

    def reset(self) -> None:
        if self._http is not None:
            self._http.close()
        self._http = None

    def request(
        self, method: str, path: str, body: Any, *, params: dict[str, str] | None = None, login: bool = False,
        quiet: bool = False, no_pit_ok: bool = False,
    ) -> dict[str, Any]:
        self.limiter.wait()
        # The login request is part of connecting: a server that accepts and never answers is unreachable.
        timeout: Any = httpx.Timeout(self.options.connect_timeout) if login else httpx.USE_CLIENT_DEFAULT
        try:
            resp = self.http().request(method, path, params=params, content=orjson.dumps(body) if body is not None else None, timeout=timeout)
        except httpx.TransportError as exc:
            self.reset()
            if quiet:
                return {}
            raise TransientError(f"{type(exc).__name__}: {one_line(exc, self.password)}") from None
        if quiet:
            return {}
        if resp.status_code in (401, 403):
            raise UserError(f"{self.target}: login failed or not allowed (HTTP {resp.status_code} on {path}); check the user and password")
        if resp.status_code == 429 or resp.status_code >= 500:
            raise TransientError(f"HTTP {resp.status_code} on {path}")
        if resp.status_code >= 400:
            if no_pit_ok:
                raise _NoPit()
            reason = ""
            try:
                err = resp.json().get("error", {})
                reason = err.get("reason", "") if isinstance(err, dict) else str(err)
            except ValueError:
                pass
            raise UserError(f"{self.target}: HTTP {resp.status_code} on {path}: {reason[:200]}")
        return orjson.loads(resp.content) if resp.content else {}

    def open_pit(self, index: str) -> str:
        """A point in time on the index, in the dialect the cluster speaks (Elasticsearch or OpenSearch)."""
        styles = [self._pit_style] if self._pit_style else (["opensearch", "es"] if self.is_opensearch else ["es", "opensearch"])
        for style in styles:
            path = f"/{quote(index, safe='')}/_pit" if style == "es" else f"/{quote(index, safe='')}/_search/point_in_time"
            try:
                doc = self.request("POST", path, None, params={"keep_alive": KEEP_ALIVE}, no_pit_ok=True)
            except _NoPit:
                continue
            pit = doc.get("id") or doc.get("pit_id")
            if pit:
                self._pit_style = style
                return str(pit)
        raise _NoPit()

    def close_pit(self, pit: str) -> None:
        if self._pit_style == "opensearch":
            self.request("DELETE", "/_search/point_in_time", {"pit_id": [pit]}, quiet=True)
        else:
            self.request("DELETE", "/_pit", {"id": pit}, quiet=True)

    # -- discovery ------------------------------------------------------------------------------
    def catalog(self) -> list[SearchIndex]:
        if self._catalog is not None:
            return self._catalog
        counts: dict[str, int] = {}
        rows = self._get_list("/_cat/indices", {"format": "json", "h": "index,docs.count,status", "expand_wildcards": "all"})
        closed: set[str] = set()
        for row in rows:
            if row.get("status") == "close":
                closed.add(str(row.get("index")))  # a closed index cannot be searched
                continue
            try:
                counts[row["index"]] = int(row.get("docs.count") or 0)
            except (KeyError, TypeError, ValueError):
                continue
        aliases: dict[str, list[str]] = {}
        streams: list[tuple[str, list[str]]] = []
        hidden: set[str] = set()
        try:
            resolved = self.request("GET", "/_resolve/index/*", None, params={"expand_wildcards": "all"})
        except UserError:
            resolved = {}
        for idx in resolved.get("indices", []):
            if idx["name"] in closed or "closed" in idx.get("attributes", []):
                continue
            if "hidden" in idx.get("attributes", []) or idx.get("data_stream"):
                hidden.add(idx["name"])
            counts.setdefault(idx["name"], 0)
        for al in resolved.get("aliases", []):
            for idx in al.get("indices", []):
                aliases.setdefault(idx, []).append(al["name"])
        for ds in resolved.get("data_streams", []):
            streams.append((ds["name"], list(ds.get("backing_indices", []))))
        out: list[SearchIndex] = []
        backing = {b for _n, bs in streams for b in bs}
        for name in sorted(counts):
            if name in backing:
                continue  # read through its data stream
            out.append(SearchIndex(self, name, counts[name], sorted(aliases.get(name, []))))
            if name in hidden:
                out[-1].aliases.append("\0hidden")
        for name, bs in streams:
            out.append(SearchIndex(self, name, sum(counts.get(b, 0) for b in bs)))
        self._catalog = out
        return out

    def _get_list(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        try:
            doc: Any = self.request("GET", path, None, params=params)
        except TransientError as exc:
            raise Unreachable(f"{self.target}: cannot list indices ({exc})") from None
        return doc if isinstance(doc, list) else []

    def datasets(self) -> Iterator[SearchIndex]:
        for idx in self.catalog():
            is_hidden = idx.name.startswith(".") or "\0hidden" in idx.aliases
            if is_hidden and not self.options.include_hidden:
                continue
            names = [idx.name, *[a for a in idx.aliases if a != "\0hidden"]]
            if not self.options.wanted(*names):
                continue
            idx.subject_field = self.options.subject_for(*names)
            yield idx

    def dataset(self, name: str) -> SearchIndex:
        return SearchIndex(self, name, 0, [], None)
