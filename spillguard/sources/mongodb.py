"""MongoDB: every collection of the URL's database (or of every database), read in `_id` ranges.

Ranges are index bounds on `_id` (`min()`/`max()` with the `_id_` index hinted), so they hold every
document whatever the BSON types of the ids; each bound is found by skipping on from the previous
one, so planning walks the index once. Views and time-series collections are read whole: MongoDB
runs a find on a view as an aggregation, which takes no index bounds (and a view's `_id`s need not
be unique), and a time-series collection has no `_id` index. Nested documents
and arrays arrive as nested columns; ObjectId, Decimal128, binary and other BSON types as text.
Samples use `$sample`, which the server draws at random but cannot seed: two sampled runs see
different documents. Finding a server, connecting and the handshake are bounded by the connect timeout
(`serverSelectionTimeoutMS`, `connectTimeoutMS`), every later read by the read timeout (`socketTimeoutMS`).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pymongo
import pymongo.errors
from bson import json_util

from spillguard.errors import UserError
from spillguard.sources.base import MalformedSink, Partition, ReaderDefaults, since_bound
from spillguard.sources.records import docs_to_tables
from spillguard.sources.retry import TransientError
from spillguard.sources.store import StoreSource, one_line, partition_count, unreachable

BATCH = 2000
SYSTEM_DBS = ("admin", "local", "config")
_TRANSIENT = (pymongo.errors.AutoReconnect, pymongo.errors.NetworkTimeout, pymongo.errors.ConnectionFailure, pymongo.errors.CursorNotFound)
_GLOB = set("*?[")


def _short(exc: BaseException, secret: str | None) -> str:
    """pymongo's message without the topology description it appends (a screenful of server state)."""
    return one_line(exc, secret).split(", Timeout: ", 1)[0].split(" (configured timeouts:", 1)[0]


def encode_id(value: Any) -> str:
    """An `_id` bound as canonical Extended JSON: JSON-compatible, and exact for every BSON type."""
    return json_util.dumps({"v": value}, json_options=json_util.CANONICAL_JSON_OPTIONS)


def decode_id(text: str) -> Any:
    return json_util.loads(text)["v"]


def _since_filter(spec: dict[str, Any]) -> dict[str, Any]:
    """A copy's watermark as a filter. Comparisons only match values of the same BSON type, so a time
    bound matches dates and ISO text alike, a number every numeric type."""
    bound = since_bound(spec)
    if bound is None:
        return {}
    fld, value = bound
    if not isinstance(value, str):
        return {fld: {"$gte": value}}
    alternatives: list[dict[str, Any]] = [{fld: {"$gte": value}}]
    try:
        day = datetime.date.fromisoformat(value)
        alternatives.append({fld: {"$gte": datetime.datetime(day.year, day.month, day.day)}})
    except ValueError:
        pass
    return {"$or": alternatives} if len(alternatives) > 1 else alternatives[0]


@dataclass(slots=True)
class MongoCollection(ReaderDefaults):
    source: MongoSource
    db: str
    coll: str
    docs: int
    subject_field: str | None
    read_whole: bool = False

    @property
    def name(self) -> str:
        return f"{self.db}.{self.coll}"

    def estimate(self) -> tuple[int, str] | None:
        """About how many documents the collection holds (its metadata count)."""
        return (self.docs, "records")

    def partitions(self) -> list[Partition]:
        base = {"db": self.db, "coll": self.coll}
        opts = self.source.options
        if opts.sample is not None:
            return [Partition(self.name, {**base, "sample": opts.sample})]
        n = 1 if self.read_whole else partition_count(self.docs, opts.partition_rows)
        if n == 1:
            return [Partition(self.name, base)]
        collection = self.source.client[self.db][self.coll]
        step = max(1, self.docs // n)
        bounds: list[Any] = []
        try:
            for _ in range(1, n):
                self.source.limiter.wait()
                # Skip from the previous bound, not from the start: a skip costs the server one index key per document.
                cursor = collection.find({}, {"_id": 1}).sort("_id", 1).hint([("_id", 1)])
                if bounds:
                    cursor = cursor.min([("_id", bounds[-1])])
                found = list(cursor.skip(step).limit(1))
                if not found:
                    break
                bounds.append(found[0]["_id"])
        except _TRANSIENT as exc:
            raise TransientError(f"{self.name}: cannot split into _id ranges ({_short(exc, self.source.password)})") from None
        except pymongo.errors.PyMongoError as exc:
            raise UserError(f"{self.name}: cannot split into _id ranges ({one_line(exc, self.source.password)})") from None
        edges: list[str | None] = [None, *[encode_id(b) for b in bounds], None]
        return [Partition(self.name, {**base, "min": edges[i], "max": edges[i + 1]}) for i in range(len(edges) - 1)]

    def _cursor(self, spec: dict[str, Any]) -> Any:
        collection = self.source.client[self.db][self.coll]
        if "sample" in spec:
            return collection.aggregate([{"$sample": {"size": int(spec["sample"])}}], batchSize=BATCH)
        cursor = collection.find(_since_filter(spec), batch_size=BATCH)
        if spec.get("min") is not None or spec.get("max") is not None:
            cursor = cursor.hint([("_id", 1)])
            if spec.get("min") is not None:
                cursor = cursor.min([("_id", decode_id(spec["min"]))])
            if spec.get("max") is not None:
                cursor = cursor.max([("_id", decode_id(spec["max"]))])
        return cursor

    def read(self, partition: Partition, malformed: MalformedSink) -> Iterator[pa.Table]:
        try:
            self.source.limiter.wait()
            yield from docs_to_tables(self._paced(self._cursor(partition.spec)), self.name, malformed)
        except _TRANSIENT as exc:
            raise TransientError(_short(exc, self.source.password)) from None
        except pymongo.errors.PyMongoError as exc:
            raise UserError(f"{self.name}: {one_line(exc, self.source.password)}") from None

    def _paced(self, cursor: Any) -> Iterator[dict[str, Any]]:
        """Documents of the cursor; with --max-rps, one wait per server batch."""
        for i, doc in enumerate(cursor, 1):
            if i % BATCH == 0:
                self.source.limiter.wait()
            yield doc


class MongoSource(StoreSource):
    """mongodb://[user:password@]host[:port][/database][?options]; mongodb+srv:// alike."""

    def __init__(self, target: str, **options: Any) -> None:
        super().__init__(target, "mongodb", options)
        parts = urlsplit(target)
        self.database = parts.path.strip("/") or None
        kwargs: dict[str, Any] = {
            "serverSelectionTimeoutMS": int(self.options.connect_timeout * 1000),
            "connectTimeoutMS": int(self.options.connect_timeout * 1000),
            # A server that stops answering mid-read is a transient fault (retried), not a scan that hangs.
            "socketTimeoutMS": int(self.options.read_timeout * 1000),
            "appname": "spillguard",
        }
        if parts.password is None and self.password is not None and parts.username:
            kwargs["password"] = self.password
        try:
            self.client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(target, **kwargs)
        except (pymongo.errors.PyMongoError, ValueError) as exc:
            raise UserError(f"{self.target}: cannot connect ({_short(exc, self.password)})") from None
        try:
            self.client.admin.command("ping")
        except pymongo.errors.OperationFailure as exc:
            self.client.close()
            raise UserError(f"{self.target}: login failed ({_short(exc, self.password)})") from None
        except pymongo.errors.PyMongoError as exc:
            self.client.close()  # its monitor threads would otherwise hold the process for another timeout
            raise unreachable(self.target, RuntimeError(_short(exc, None)), self.password) from None
        self._catalog: list[tuple[str, str, int, bool]] | None = None

    def _databases(self) -> list[str]:
        if self.database:
            return [self.database]
        try:
            return [d for d in self.client.list_database_names() if d not in SYSTEM_DBS]
        except pymongo.errors.PyMongoError as exc:
            raise UserError(f"{self.target}: cannot list databases ({one_line(exc, self.password)}); name one in the URL: mongodb://HOST/DATABASE") from None

    def _collections(self, db: str) -> list[tuple[str, bool]]:
        """(name, read whole) of the database's collections; views only with include_views.

        Views and time-series collections are read whole: neither has an `_id` index to bound."""
        flt = None if self.options.include_views else {"type": {"$in": ["collection", "timeseries"]}}
        try:
            infos = list(self.client[db].list_collections(filter=flt, nameOnly=True))
        except pymongo.errors.OperationFailure as exc:
            # Servers without listCollections (or a user without the right): scan the collections named by --include.
            literal = [p.split(".", 1)[1] if p.startswith(db + ".") else p for p in self.options.include if not (_GLOB & set(p))]
            if literal:
                return [(name, False) for name in literal]
            raise UserError(f"{self.target}: cannot list collections of {db} ({one_line(exc, self.password)}); name them with --include") from None
        return sorted((i["name"], i.get("type", "collection") != "collection") for i in infos if not i["name"].startswith("system."))

    def catalog(self) -> list[tuple[str, str, int, bool]]:
        """(database, collection, estimated documents, read whole) of every collection found."""
        if self._catalog is None:
            out = []
            for db in self._databases():
                for coll, read_whole in self._collections(db):
                    try:
                        count = self.client[db][coll].estimated_document_count()
                    except pymongo.errors.PyMongoError:
                        count = 0  # unknown: one partition
                    out.append((db, coll, int(count), read_whole))
            self._catalog = out
        return self._catalog

    def datasets(self) -> Iterator[MongoCollection]:
        for db, coll, count, read_whole in self.catalog():
            name = f"{db}.{coll}"
            if self.options.wanted(name, coll):
                yield MongoCollection(self, db, coll, count, self.options.subject_for(name, coll), read_whole)

    def dataset(self, name: str) -> MongoCollection:
        db, coll = name.split(".", 1)
        return MongoCollection(self, db, coll, 0, None)

    def close(self) -> None:
        self.client.close()
