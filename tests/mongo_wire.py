"""A MongoDB stand-in for the tests: mockupdb speaks the wire protocol, mongomock runs the commands.

No MongoDB server can be installed on this machine (every mongod installer downloads binaries), so
`mongo_wire_server()` is NOT MongoDB. It is MongoDB Inc.'s `mockupdb` wire-protocol test server,
listening on a real TCP socket on a free 127.0.0.1 port in a background thread, whose every request
is executed on an in-memory `mongomock` client. pymongo talks to it as to a standalone mongod 5.0
(the version mongomock emulates; maxWireVersion 13), over OP_QUERY for the first handshake and
OP_MSG after that.

    mongo_wire_server() -> MongoWire
        .url      mongodb://127.0.0.1:PORT/?directConnection=true
        .url_for(db)                    the same URL naming a database
        .engine   the mongomock client holding the data
        .seen     Counter of the command names received
        .skipped  documents walked past for `skip` by every find so far
        .refuse(command, namespace=None, code=13, errmsg=None, times=None)
                  answer `command` on `db` or `db.collection` (every namespace when None) with an
                  error from now on (or the next `times` times), as a server answers a user without
                  the privilege or one that lost a cursor; `.allow()` undoes it

What it answers: hello/isMaster/ismaster, ping, buildInfo, endSessions; listDatabases (with admin,
config and local, as a real server lists them); listCollections (filter, nameOnly, views and
`system.views`, one cursor document); create (collections, and views stored in `system.views` as a
real server stores them), drop, dropDatabase, insert; find with filter, projection, sort, skip,
limit, batchSize, singleBatch and hint, and `min`/`max` index bounds on `_id` (the hint must name
the `_id` index, as MongoDB 4.2+ requires; the bounds compare in BSON type order like an index scan,
so ranges hold ids of every type, where `$gte`/`$lt` would compare within one type only; on a view
they fail as on MongoDB, which runs a find on a view as an aggregation); aggregate (every stage
mongomock has, `$sample` included) and count, also on views; server-side cursors with getMore and killCursors, batches cut at the
requested size, 101 documents for a first batch without one, or 16 MiB. Any other command answers
`{ok: 0, code: 59, codeName: CommandNotFound}`, and an error inside a command answers `ok: 0`
instead of leaving the client waiting.

What it does not do: authentication (no SCRAM or x.509: a client given credentials fails on
`saslStart`, an unknown command; without credentials everything is allowed), TLS,
compression, replica sets, sessions beyond accepting `lsid`, transactions, retryable writes, change
streams, update/delete/findAndModify, secondary indexes (only `_id` is hinted), collation,
maxTimeMS, tailable or exhaust cursors, cursor timeouts. Commands run one at a time (mockupdb
serialises them), so it measures nothing about MongoDB's speed. Query semantics are mongomock's:
where mongomock differs from MongoDB, so does this stand-in; `$sample` is a shuffle of the whole
collection, never the server's random cursor.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import operator
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import bson
import mockupdb
import mongomock
import pymongo.errors
from bson.int64 import Int64
from mongomock import filtering

from tests.servers import HOST

MAX_WIRE_VERSION = 13  # MongoDB 5.0, the version mongomock emulates
SERVER_VERSION = "5.0.5"
MAX_BSON = 16 * 1024 * 1024
FIRST_BATCH = 101  # a real server's first batch when the client names no batch size
SYSTEM_DATABASES = ("admin", "config", "local")


class CommandError(Exception):
    """A command's failure, answered as {ok: 0, errmsg, code, codeName}."""

    def __init__(self, code: int, code_name: str, errmsg: str) -> None:
        super().__init__(errmsg)
        self.code, self.code_name, self.errmsg = code, code_name, errmsg


@dataclass
class _Cursor:
    ns: str
    docs: list[dict[str, Any]]
    pos: int = 0

    def batch(self, size: int) -> tuple[list[dict[str, Any]], bool]:
        """The next documents: `size` of them (0 = no count limit) within 16 MiB; and whether any remain."""
        out: list[dict[str, Any]] = []
        total = 0
        while self.pos < len(self.docs) and (not size or len(out) < size):
            total += len(bson.encode(self.docs[self.pos]))
            if out and total > MAX_BSON:
                break
            out.append(self.docs[self.pos])
            self.pos += 1
        return out, self.pos < len(self.docs)


def _bson_lt(a: Any, b: Any) -> bool:
    """a < b in BSON order across types (numbers < strings < objects < ... < ObjectId < dates)."""
    return bool(filtering.bson_compare(operator.lt, a, b))


def _only_id(spec: Any) -> Any:
    if not isinstance(spec, dict) or list(spec) != ["_id"]:
        raise CommandError(51174, "Location51174", "The index chosen is not valid for satisfying the min/max query")
    return spec["_id"]


class MongoWire:
    """The mockupdb server and the mongomock engine behind it; see the module docstring."""

    def __init__(self) -> None:
        self.engine: mongomock.MongoClient = mongomock.MongoClient()
        self.seen: Counter[str] = Counter()
        self.refused: dict[tuple[str, str | None], list[Any]] = {}  # [code, errmsg, times left or None]
        self.timeseries: set[str] = set()  # "db.coll" listed as time-series collections: no _id index
        self.skipped = 0  # documents walked past for `skip`, summed over every find: what skipping costs a server
        self._cursors: dict[int, _Cursor] = {}
        self._cursor_ids = itertools.count(7_000_000_001)
        self._connections = itertools.count(1)
        self._commands: dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]] = {
            "hello": self._hello, "isMaster": self._hello, "ismaster": self._hello,
            "ping": lambda db, cmd: {},
            "buildInfo": self._build_info, "buildinfo": self._build_info,
            "endSessions": lambda db, cmd: {},
            "listDatabases": self._list_databases,
            "listCollections": self._list_collections,
            "create": self._create,
            "drop": self._drop,
            "dropDatabase": self._drop_database,
            "insert": self._insert,
            "find": self._find,
            "getMore": self._get_more,
            "killCursors": self._kill_cursors,
            "aggregate": self._aggregate,
            "count": self._count,
        }  # fmt: skip
        # port=None: mockupdb binds port 0 itself, so no other process can take the port between pick and bind.
        self.server = mockupdb.MockupDB(port=None)
        self.server.autoresponds(self._handle)

    @property
    def port(self) -> int:
        return int(self.server.port)

    @property
    def url(self) -> str:
        return f"mongodb://{HOST}:{self.port}/?directConnection=true"

    def url_for(self, db: str) -> str:
        return f"mongodb://{HOST}:{self.port}/{db}?directConnection=true"

    def refuse(self, command: str, namespace: str | None = None, code: int = 13, errmsg: str | None = None, times: int | None = None) -> None:
        errmsg = errmsg or f"not authorized on {namespace or 'admin'} to execute command {{ {command}: ... }}"
        self.refused[(command, namespace)] = [code, errmsg, times]

    def allow(self, command: str, namespace: str | None = None) -> None:
        self.refused.pop((command, namespace), None)

    # -- the wire side ----------------------------------------------------------------------------

    def _handle(self, request: mockupdb.Request) -> bool:
        if not request.is_command:  # legacy OP_QUERY on a collection, OP_INSERT...: pymongo 4 sends none
            if isinstance(request, mockupdb.OpQuery):
                request.fail("legacy opcode not supported by the stand-in")
            return True
        cmd = dict(request.doc)
        name = request.command_name or ""
        db = cmd.pop("$db", None) or request.namespace
        self.seen[name] += 1
        try:
            handler = self._commands.get(name)
            if handler is None:
                raise CommandError(59, "CommandNotFound", f"no such command: '{name}'")
            reply = {**handler(db, cmd), "ok": 1}
        except CommandError as exc:
            reply = {"ok": 0, "errmsg": exc.errmsg, "code": exc.code, "codeName": exc.code_name}
        except pymongo.errors.OperationFailure as exc:  # mongomock raises pymongo's errors
            reply = {"ok": 0, "errmsg": str(exc), "code": exc.code or 2, "codeName": "BadValue"}
        except Exception as exc:  # noqa: BLE001 - a crash here would leave the client waiting forever
            reply = {"ok": 0, "errmsg": f"stand-in: {type(exc).__name__}: {exc}", "code": 1, "codeName": "InternalError"}
        if isinstance(request, mockupdb.OpMsg) and request.flags & mockupdb.OP_MSG_FLAGS["moreToCome"]:
            return True  # unacknowledged write: no reply
        request.replies(reply)
        return True

    def _check(self, command: str, db: str, coll: str | None = None) -> None:
        for key in ((command, f"{db}.{coll}" if coll else db), (command, db), (command, None)):
            if key in self.refused:
                code, errmsg, times = self.refused[key]
                if times is not None:
                    if times <= 1:
                        del self.refused[key]
                    else:
                        self.refused[key][2] = times - 1
                raise CommandError(code, "Unauthorized" if code == 13 else "Error", errmsg)

    # -- handshake and administration ---------------------------------------------------------------

    def _hello(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        reply = {
            "ismaster": True, "isWritablePrimary": True, "maxBsonObjectSize": MAX_BSON,
            "maxMessageSizeBytes": 48_000_000, "maxWriteBatchSize": 100_000,
            "localTime": dt.datetime.now(dt.UTC), "logicalSessionTimeoutMinutes": 30,
            "connectionId": next(self._connections), "minWireVersion": 0,
            "maxWireVersion": MAX_WIRE_VERSION, "readOnly": False,
        }  # fmt: skip
        if cmd.get("helloOk"):
            reply["helloOk"] = True
        return reply

    def _build_info(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        return {"version": SERVER_VERSION, "versionArray": [5, 0, 5, 0], "bits": 64, "maxBsonObjectSize": MAX_BSON}

    def _list_databases(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        self._check("listDatabases", db)
        names = sorted({*SYSTEM_DATABASES, *self.engine.list_database_names()})
        infos = [{"name": n, "sizeOnDisk": 8192, "empty": False} for n in names]
        if cmd.get("filter"):
            infos = [i for i in infos if filtering.filter_applies(cmd["filter"], i)]
        if cmd.get("nameOnly"):
            infos = [{"name": i["name"]} for i in infos]
        return {"databases": infos, "totalSize": 8192 * len(infos)}

    def _list_collections(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        self._check("listCollections", db)
        database = self.engine[db]
        infos: list[dict[str, Any]] = []
        for name in sorted(database.list_collection_names()):
            if f"{db}.{name}" in self.timeseries:
                infos.append({"name": name, "type": "timeseries", "options": {"timeseries": {"timeField": "at"}}, "info": {"readOnly": False}})
                continue
            infos.append({"name": name, "type": "collection", "options": {}, "info": {"readOnly": False},
                          "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"}})  # fmt: skip
        views = list(database["system.views"].find())
        if views:
            infos.append({"name": "system.views", "type": "collection", "options": {}, "info": {"readOnly": False}})
        for view in views:
            infos.append({"name": view["_id"].split(".", 1)[1], "type": "view",
                          "options": {"viewOn": view["viewOn"], "pipeline": view["pipeline"]}, "info": {"readOnly": True}})  # fmt: skip
        if cmd.get("filter"):
            infos = [i for i in infos if filtering.filter_applies(cmd["filter"], i)]
        if cmd.get("nameOnly"):
            infos = [{"name": i["name"], "type": i["type"]} for i in infos]
        return self._open_cursor(f"{db}.$cmd.listCollections", infos, cmd.get("cursor", {}).get("batchSize"))

    def _create(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        name = cmd["create"]
        database = self.engine[db]
        if name in database.list_collection_names() or self._view(db, name) is not None:
            raise CommandError(48, "NamespaceExists", f"Collection {db}.{name} already exists.")
        if "viewOn" in cmd:
            database["system.views"].insert_one({"_id": f"{db}.{name}", "viewOn": cmd["viewOn"], "pipeline": list(cmd.get("pipeline", []))})
        else:
            database.create_collection(name)
        return {}

    def _drop(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        name = cmd["drop"]
        self.engine[db]["system.views"].delete_one({"_id": f"{db}.{name}"})
        self.engine[db].drop_collection(name)
        return {"ns": f"{db}.{name}"}

    def _drop_database(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        self.engine.drop_database(db)
        return {"dropped": db}

    def _insert(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        name = cmd["insert"]
        if self._view(db, name) is not None:
            raise CommandError(166, "CommandNotSupportedOnView", f"Namespace {db}.{name} is a view, not a collection")
        docs = [dict(d) for d in cmd.get("documents", [])]
        try:
            self.engine[db][name].insert_many(docs, ordered=cmd.get("ordered", True))
        except pymongo.errors.BulkWriteError as exc:
            details = exc.details or {}
            return {"n": details.get("nInserted", 0), "writeErrors": details.get("writeErrors", [])}
        return {"n": len(docs)}

    # -- reads ----------------------------------------------------------------------------------------

    def _view(self, db: str, name: str) -> dict[str, Any] | None:
        return self.engine[db]["system.views"].find_one({"_id": f"{db}.{name}"})

    def _pipeline_source(self, db: str, name: str, pipeline: list[Any]) -> tuple[str, list[Any]]:
        """A view's pipeline runs on the collection it is defined on (views of views too)."""
        view = self._view(db, name)
        while view is not None:
            name, pipeline = view["viewOn"], [*view["pipeline"], *pipeline]
            view = self._view(db, name)
        return name, pipeline

    def _find(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        name = cmd["find"]
        self._check("find", db, name)
        flt = dict(cmd.get("filter") or {})
        projection = cmd.get("projection") or None
        sort = list((cmd.get("sort") or {}).items())
        skip, limit = int(cmd.get("skip", 0)), abs(int(cmd.get("limit", 0)))
        hint, lo, hi = cmd.get("hint"), cmd.get("min"), cmd.get("max")
        if hint is not None and (hint not in ("_id_", {"_id": 1}) or f"{db}.{name}" in self.timeseries):
            raise CommandError(2, "BadValue", "error processing query: planner returned error :: caused by :: hint provided does not correspond to an existing index")
        if (lo is not None or hi is not None) and hint is None:
            raise CommandError(51173, "Location51173", "When using min()/max() a hint of which index to use must be provided")
        self.skipped += skip
        source, pipeline = self._pipeline_source(db, name, [])
        collection = self.engine[db][source]
        if pipeline and (lo is not None or hi is not None):
            # A find on a view runs as an aggregation, which has no index bounds (MongoDB's asAggregationCommand).
            raise CommandError(168, "InvalidPipelineOperator", f"Option {'min' if lo is not None else 'max'} not supported in aggregation.")
        if pipeline:
            stages = [*pipeline, {"$match": flt}, *([{"$sort": dict(sort)}] if sort else [])]
            stages += [{"$skip": skip}] if skip else []
            stages += [{"$limit": limit}] if limit else []
            stages += [{"$project": projection}] if projection else []
            docs: list[dict[str, Any]] = list(collection.aggregate(stages))
        elif lo is None and hi is None:
            docs = list(collection.find(flt, projection, sort=sort or None, skip=skip, limit=limit))
        else:
            # Index bounds: min inclusive, max exclusive, in BSON order across types, on the _id index.
            low = None if lo is None else _only_id(lo)
            high = None if hi is None else _only_id(hi)
            docs = [
                d for d in collection.find(flt, sort=sort or [("_id", 1)])
                if (lo is None or not _bson_lt(d["_id"], low)) and (hi is None or _bson_lt(d["_id"], high))
            ]
            docs = docs[skip:][: limit or None]
            if projection:
                docs = [collection._copy_only_fields(d, projection, dict) for d in docs]
        size = cmd.get("batchSize")
        if limit and (size is None or size > limit):
            size = limit
        return self._open_cursor(f"{db}.{name}", docs, size, single=bool(cmd.get("singleBatch")))

    def _aggregate(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        name = cmd["aggregate"]
        if not isinstance(name, str):
            raise CommandError(115, "CommandNotSupported", "database-level aggregation is not supported by the stand-in")
        self._check("aggregate", db, name)
        source, pipeline = self._pipeline_source(db, name, list(cmd.get("pipeline", [])))
        docs = list(self.engine[db][source].aggregate(pipeline))
        return self._open_cursor(f"{db}.{name}", docs, cmd.get("cursor", {}).get("batchSize"))

    def _count(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        name = cmd["count"]
        self._check("count", db, name)
        source, pipeline = self._pipeline_source(db, name, [{"$match": dict(cmd.get("query") or {})}])
        n = len(list(self.engine[db][source].aggregate(pipeline)))
        n = max(0, n - int(cmd.get("skip", 0)))
        return {"n": min(n, int(cmd["limit"])) if cmd.get("limit") else n}

    # -- cursors ----------------------------------------------------------------------------------------

    def _open_cursor(self, ns: str, docs: list[dict[str, Any]], size: int | None, single: bool = False) -> dict[str, Any]:
        cursor = _Cursor(ns, docs)
        batch, more = cursor.batch(FIRST_BATCH if size is None else int(size))
        cursor_id = 0
        if more and not single:
            cursor_id = next(self._cursor_ids)
            self._cursors[cursor_id] = cursor
        return {"cursor": {"firstBatch": batch, "id": Int64(cursor_id), "ns": ns}}

    def _get_more(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        cursor_id = int(cmd["getMore"])
        cursor = self._cursors.get(cursor_id)
        if cursor is None or cursor.ns != f"{db}.{cmd.get('collection')}":
            raise CommandError(43, "CursorNotFound", f"cursor id {cursor_id} not found")
        self._check("getMore", db, cmd.get("collection"))
        batch, more = cursor.batch(int(cmd.get("batchSize") or 0))
        if not more:
            del self._cursors[cursor_id]
        return {"cursor": {"nextBatch": batch, "id": Int64(cursor_id if more else 0), "ns": cursor.ns}}

    def _kill_cursors(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        killed, missing = [], []
        for cursor_id in cmd.get("cursors", []):
            (killed if self._cursors.pop(int(cursor_id), None) is not None else missing).append(cursor_id)
        return {"cursorsKilled": killed, "cursorsNotFound": missing, "cursorsAlive": [], "cursorsUnknown": []}

    def open_cursors(self) -> int:
        """Server-side cursors still open (a reader that stops early must kill its cursor)."""
        return len(self._cursors)


@contextlib.contextmanager
def mongo_wire_server() -> Iterator[MongoWire]:
    """The stand-in on a free 127.0.0.1 port, served from a background thread until the block ends."""
    wire = MongoWire()
    wire.server.run()
    try:
        yield wire
    finally:
        wire.server.stop()
