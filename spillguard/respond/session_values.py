"""The user id inside stored session values, read in bulk: JSON, msgpack or pickle, without running any code.

Session stores serialise a session's dict in the web framework's own format: express-session/connect-redis
and Flask-Session's `json` option write JSON, Flask-Session >= 0.6 writes msgpack by default, and older
Flask-Session versions (and many hand-rolled stores) write pickle. `auto` tells them apart by their first
bytes, value by value.

Pickle is read by a restricted unpickler that admits only what needs no code: dicts, lists, tuples, sets,
strings, bytes, numbers, booleans and None. Any global (a class, a function, `os.system`, even `datetime`),
an extension-registry entry or a persistent id refuses the whole value: it is counted as refused and its
session as unattributed, never loaded with `pickle.loads`. A refused or unreadable session is not ended by
scope `exact`; the action reports how many there were.

Hot path: a batch of values is decoded with one C-level call per format (Arrow's JSON reader for the whole
batch, `map` over msgpack's `unpackb`), the user field is picked with `map`, and the ids become one Arrow
string array. Only batches that do not fit the fast path (odd types, broken values) go value by value, and
pickle always does (one restricted unpickler per value: it is the legacy format).
"""

from __future__ import annotations

import functools
import io
import itertools
import operator
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgpack
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

FORMATS: Final = ("json", "msgpack", "pickle", "auto")

_unpack = functools.partial(msgpack.unpackb, raw=False, strict_map_key=False)
_EMPTY: dict[Any, Any] = {}  # the default of a missing intermediate level: its own `.get` gives the default again


class RefusedPickle(pickle.UnpicklingError):
    """A pickle that would import or call something: never loaded."""


class _Refused:
    """Marks a value the restricted unpickler refused (distinct from a value that is merely unreadable)."""


REFUSED: Final = _Refused()


class NoGlobalsUnpickler(pickle.Unpickler):
    """Builds only builtin containers and scalars; every opcode that would import or call code ends here."""

    def find_class(self, module: str, name: str) -> Any:
        # GLOBAL, STACK_GLOBAL, INST, and the copyreg extension codes (EXT1/2/4) all resolve through here.
        raise RefusedPickle(f"pickle names a global ({module}.{name}); refused, nothing was imported or run")

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedPickle("pickle asks for a persistent object; refused")


def safe_unpickle(value: bytes) -> Any:
    """The object in `value` if it is made of builtin containers and scalars only; REFUSED if it names any
    global; None if it is not a pickle at all."""
    try:
        return NoGlobalsUnpickler(io.BytesIO(value)).load()
    except RefusedPickle:
        return REFUSED
    except Exception:  # noqa: BLE001 - any other failure means "not a readable pickle", never a crash
        return None


@dataclass(slots=True)
class SessionUsers:
    users: pa.Array  # string: the user id per value, null where no user could be read
    refused: int = 0  # values refused outright (pickle naming a global)

    @property
    def unattributed(self) -> int:
        return int(self.users.null_count)


def user_text(value: Any) -> str | None:
    """A user id as the scanned copy would hold it: text or an integer, nothing else."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


def field_value(doc: Any, path: Sequence[str]) -> Any:
    for part in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


def _as_ids(arr: pa.Array) -> pa.Array | None:
    """A decoded user column as text, or None when its type is not text or integer (the slow path decides)."""
    t = arr.type
    if pa.types.is_null(t):
        return pa.nulls(len(arr), pa.string())
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t):
        return pc.cast(arr, pa.string())
    return None


def _ids_of_docs(docs: list[Any], path: Sequence[str]) -> pa.Array:
    """The user id of each decoded session dict: `map` over the levels, one Arrow array at the end."""
    col: list[Any] = docs
    try:
        for depth, part in enumerate(path):
            default = None if depth == len(path) - 1 else _EMPTY
            col = list(map(operator.methodcaller("get", part, default), col))
        fast = _as_ids(pa.array(col))
        if fast is not None:
            return fast
    except (AttributeError, TypeError, pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        pass  # a level that is not a dict, or mixed id types: value by value below
    return pa.array([user_text(field_value(d, path)) for d in docs], pa.string())


class SessionDecoder:
    """Reads the user id at a dotted `user_field` path out of session values in one format."""

    def __init__(self, fmt: str, user_field: str) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")
        self.format = fmt
        self.path = user_field.split(".")
        self._json_type: pa.DataType | None = None  # the user field's type once Arrow has inferred it

    def users(self, values: Sequence[bytes | None]) -> SessionUsers:
        """User ids of a batch of values (None: the key vanished between listing and reading)."""
        if not values:
            return SessionUsers(pa.array([], pa.string()))
        decode: dict[str, Callable[[Sequence[bytes | None]], SessionUsers]] = {
            "json": self._json, "msgpack": self._msgpack, "pickle": self._pickle, "auto": self._auto}
        return decode[self.format](values)

    # -- JSON --------------------------------------------------------------------------------------
    def _json(self, values: Sequence[bytes | None]) -> SessionUsers:
        present = [v or b"{}" for v in values]
        joined = b"\n".join(present)
        if joined.count(b"\n") == len(present) - 1:  # no value spans lines: one JSON Lines buffer
            col = self._arrow_json(joined, len(present))
            if col is not None:
                return SessionUsers(col)
        docs = []
        for raw in present:
            try:
                docs.append(orjson.loads(raw))
            except orjson.JSONDecodeError:
                docs.append(None)
        return SessionUsers(_ids_of_docs(docs, self.path))

    def _arrow_json(self, joined: bytes, n: int) -> pa.Array | None:
        # One block, parsed on this thread: an Arrow pool thread holding these Python-owned bytes at interpreter
        # exit aborts the process (exit -6, apache/arrow#34314).
        read = pj.ReadOptions(use_threads=False, block_size=max(1 << 20, len(joined) + 1))
        if self._json_type is not None:
            # Reading only the user field with its known type is a quarter faster than inferring every field.
            schema_type: pa.DataType = self._json_type
            for part in reversed(self.path[1:]):
                schema_type = pa.struct([(part, schema_type)])
            parse = pj.ParseOptions(explicit_schema=pa.schema([(self.path[0], schema_type)]), unexpected_field_behavior="ignore")
            try:
                col = self._pick(pj.read_json(pa.BufferReader(joined), read_options=read, parse_options=parse), n)
                if col is not None:
                    return col
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                pass  # this batch differs (another id type, a value that is not an object): infer again
        try:
            table = pj.read_json(pa.BufferReader(joined), read_options=read)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return None
        return self._pick(table, n, learn=True)

    def _pick(self, table: pa.Table, n: int, learn: bool = False) -> pa.Array | None:
        if table.num_rows != n:
            return None
        if self.path[0] not in table.column_names:
            return pa.nulls(n, pa.string())
        col: Any = table.column(self.path[0]).combine_chunks()
        for part in self.path[1:]:
            if not pa.types.is_struct(col.type):
                return None  # an intermediate level that is not an object in some value: value by value
            if col.type.get_field_index(part) < 0:
                return pa.nulls(n, pa.string())
            col = pc.struct_field(col, part)
        ids = _as_ids(col)
        if ids is not None and learn and not pa.types.is_null(col.type):
            self._json_type = col.type
        return ids

    # -- msgpack -----------------------------------------------------------------------------------
    def _msgpack(self, values: Sequence[bytes | None]) -> SessionUsers:
        present = [v or b"\x80" for v in values]  # 0x80: an empty map
        try:
            docs = list(map(_unpack, present))
        except Exception:  # noqa: BLE001 - a broken value in the batch: decode value by value
            docs = []
            for raw in present:
                try:
                    docs.append(_unpack(raw))
                except Exception:  # noqa: BLE001 - unreadable: no user
                    docs.append(None)
        return SessionUsers(_ids_of_docs(docs, self.path))

    # -- pickle ------------------------------------------------------------------------------------
    def _pickle(self, values: Sequence[bytes | None]) -> SessionUsers:
        docs = list(map(safe_unpickle, (v or b"" for v in values)))
        refused = sum(map(operator.is_, docs, itertools.repeat(REFUSED)))
        if refused:
            docs = [None if d is REFUSED else d for d in docs]
        return SessionUsers(_ids_of_docs(docs, self.path), refused)

    # -- auto --------------------------------------------------------------------------------------
    def _auto(self, values: Sequence[bytes | None]) -> SessionUsers:
        kinds = classify(values)
        order: list[np.ndarray] = []
        parts: list[pa.Array] = []
        refused = 0
        objs = np.empty(len(values), dtype=object)
        objs[:] = values
        for kind, decode in (("json", self._json), ("msgpack", self._msgpack), ("pickle", self._pickle)):
            idx = np.flatnonzero(kinds == kind)
            if idx.size == 0:
                continue
            got = decode(objs[idx].tolist())
            order.append(idx)
            parts.append(got.users)
            refused += got.refused
        if len(parts) == 1:
            return SessionUsers(parts[0], refused)
        users = pa.concat_arrays(parts).take(pa.array(np.argsort(np.concatenate(order), kind="stable")))
        return SessionUsers(users, refused)


def classify(values: Sequence[bytes | None]) -> np.ndarray:
    """Each value's format by its first bytes: "pickle" (protocol 2+ starts 0x80 and the protocol number;
    0 and 1 start with `(` or `}`), "msgpack" (a map: 0x80-0x8f, 0xde, 0xdf), else "json"."""
    arr = pa.array([v or b"" for v in values], pa.binary())
    offsets = np.frombuffer(arr.buffers()[1], np.int32, len(arr) + 1)
    data_buf = arr.buffers()[2]
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    padded = np.concatenate([data, np.zeros(2, np.uint8)])
    b0 = np.where(lengths > 0, padded[offsets[:-1]], 0)
    b1 = np.where(lengths > 1, padded[offsets[:-1] + 1], 0)
    pickle_ = ((b0 == 0x80) & (lengths > 1) & (b1 >= 2) & (b1 <= 5)) | (b0 == ord("(")) | (b0 == ord("}"))
    msgpack_ = ~pickle_ & (((b0 >= 0x80) & (b0 <= 0x8F)) | (b0 == 0xDE) | (b0 == 0xDF))
    return np.where(pickle_, "pickle", np.where(msgpack_, "msgpack", "json"))
