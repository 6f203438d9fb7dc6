"""Objects in an S3 bucket (or an S3-compatible store) as files: every format the file source reads, partitioned
the same way (byte ranges of big JSON Lines objects, Parquet row groups, compressed objects whole), read in
ranged GETs.

Each object is pinned to the ETag it was listed with: every GET carries `If-Match`, and the ETag travels in the
partition spec to whichever worker reads it. An object rewritten during the scan fails the partitions not yet
read with a clear error (the scan is then incomplete, exit 3) instead of mixing two versions. Listing pages
through ListObjectsV2; include/exclude patterns apply to names relative to the prefix, as in a folder.
"""

from __future__ import annotations

import io
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from spillguard.errors import UserError
from spillguard.s3 import (
    CHANGED_ERRORS,
    MISSING_ERRORS,
    Location,
    client,
    credentials_label,
    describe,
    error_code,
    is_transient,
    is_unreachable,
    location,
    request_error,
)
from spillguard.sources.base import BLOCK_BYTES, SourceDefaults
from spillguard.sources.files import FileDataset, StoredFile, _kind_of_name
from spillguard.sources.retry import TransientError, Unreachable
from spillguard.sources.store import StoreOptions
from spillguard.targets import mask_url

FIRST_WINDOW = 256 << 10  # the first GET of a stream: enough for a Parquet footer or format sniffing
MAX_WINDOW = BLOCK_BYTES  # sequential reads grow their GETs to this (one block parsed per request)
LIST_PAGE = 1000  # keys per ListObjectsV2 page (S3's maximum)


class ObjectChanged(UserError):
    """The object is no longer the version the scan planned with (rewritten or deleted)."""


def _changed(url: str, etag: str) -> ObjectChanged:
    return ObjectChanged(f"{url}: changed during the scan (no longer ETag {etag}); the records of this object's unread "
                         "parts are not counted; scan it again")  # fmt: skip


class _RangedReader(io.RawIOBase):
    """An object's bytes, seekable, fetched in ranged GETs pinned to one ETag. A window is fetched per miss;
    sequential reads double it up to MAX_WINDOW, a seek elsewhere (Parquet) starts small again."""

    def __init__(self, obj: S3Object, until: int | None) -> None:
        self._obj = obj
        self._until = until
        self._pos = 0
        self._buf = b""
        self._buf_at = 0  # object offset of _buf[0]
        self._window = FIRST_WINDOW

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._obj.size()}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, b: Any) -> int:
        size = self._obj.size()
        if self._pos >= size or len(b) == 0:
            return 0
        end_of_buf = self._buf_at + len(self._buf)
        if not self._buf_at <= self._pos < end_of_buf:
            sequential = self._pos == end_of_buf and self._buf
            self._window = min(MAX_WINDOW, self._window * 2) if sequential else FIRST_WINDOW
            stop = min(size, self._pos + max(len(b), self._window))
            if self._until is not None and self._pos < self._until:  # a byte range: no further ahead than its end
                stop = min(stop, max(self._until, self._pos + len(b)))
            self._buf = self._obj.get(self._pos, stop)
            self._buf_at = self._pos
            if not self._buf:
                return 0
        at = self._pos - self._buf_at
        n = min(len(b), len(self._buf) - at)
        b[:n] = self._buf[at : at + n]
        self._pos += n
        return n


@dataclass(slots=True)
class S3Object:
    """One object, pinned to the ETag it was listed with: a `StoredFile` for the file formats."""

    source: S3Source = field(repr=False)
    key: str
    etag: str
    length: int

    @property
    def remote(self) -> bool:
        return True

    @property
    def path(self) -> str | None:
        return None

    @property
    def shown(self) -> str:
        return self.source.location.object_url(self.key)

    def spec(self) -> dict[str, Any]:
        return {"etag": self.etag}

    def at(self, spec: dict[str, Any]) -> StoredFile:
        pinned = spec.get("etag")
        if pinned is not None and pinned != self.etag:  # listed anew by a worker: another version
            raise _changed(self.shown, str(pinned))
        return self

    def open(self, until: int | None = None) -> IO[bytes]:
        # A small buffer here: the reader's own window decides how much one GET fetches.
        return io.BufferedReader(_RangedReader(self, until), buffer_size=1 << 16)

    def size(self) -> int:
        return self.length

    def signature(self) -> str:
        return f"{self.length}:{self.etag}"

    def get(self, start: int, end: int) -> bytes:
        """Bytes [start, end) of this version of the object."""
        try:
            response = self.source.client.get_object(
                Bucket=self.source.location.bucket, Key=self.key, Range=f"bytes={start}-{end - 1}", IfMatch=self.etag
            )
            data: bytes = response["Body"].read()
        except Exception as exc:  # noqa: BLE001 - classified: changed, transient, or the input's fault
            raise self.source.failure(exc, f"reading {self.shown}", self) from None
        return data


class S3Source(SourceDefaults):
    """A bucket, a prefix of one, or one object. Options are the stores' (`StoreOptions`)."""

    def __init__(self, target: str, **options: Any) -> None:
        self.progress = options.pop("progress", None)
        self.options = StoreOptions.from_kwargs(options)
        self.subject_field = self.options.subject_field
        self.target = mask_url(target)
        self.location: Location = location(target)
        self.anonymous = credentials_label() is None  # no credentials anywhere in the chain: unsigned, as for public data
        self.client = client(self.location, anonymous=self.anonymous, connect_timeout=self.options.connect_timeout,
                             read_timeout=self.options.read_timeout)  # fmt: skip
        self._listed: dict[str, S3Object] | None = None
        self._by_key: dict[str, S3Object] = {}

    def failure(self, exc: BaseException, what: str, obj: S3Object | None = None, *, listing: bool = False) -> Exception:
        """A failed request as the scan needs it: the object changed (not retried: an error of that object),
        transient (retried within the budget), unreachable (bad input when the scan starts, retried later), or
        the input's fault (one line). The listing runs before any retries: what fails there is one line."""
        code = error_code(exc)
        if obj is not None and (code in CHANGED_ERRORS or code in MISSING_ERRORS):
            return _changed(obj.shown, obj.etag)
        error = request_error(self.location, what, exc)
        if is_unreachable(exc):
            return Unreachable(str(error))
        if is_transient(exc) and not listing:
            return TransientError(f"{what}: {describe(exc)}")
        return error

    def _head(self, key: str, *, listing: bool = False) -> S3Object | None:
        try:
            head = self.client.head_object(Bucket=self.location.bucket, Key=key)
        except Exception as exc:  # noqa: BLE001
            if error_code(exc) in MISSING_ERRORS:
                return None
            raise self.failure(exc, f"looking up {self.location.object_url(key)}", listing=listing) from None
        return S3Object(self, key, str(head["ETag"]), int(head["ContentLength"]))

    def _objects(self) -> dict[str, S3Object]:
        """name -> object: the one object the URL names, or every data object under its prefix."""
        if self._listed is not None:
            return self._listed
        loc = self.location
        listed: dict[str, S3Object] = {}
        if loc.key and not loc.key.endswith("/"):
            one = self._head(loc.key, listing=True)
            if one is not None:
                name = posixpath.basename(loc.key)
                if _kind_of_name(name) is None:
                    raise UserError(f"{self.target}: unknown file type; supported: .jsonl .ndjson .json .csv .tsv .parquet, optionally .gz or .zst")
                self._listed = {name: one}
                return self._listed
        prefix = loc.prefix
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=prefix, PaginationConfig={"PageSize": LIST_PAGE})
            for page in pages:
                for item in page.get("Contents", []):
                    key = str(item["Key"])
                    name = key[len(prefix) :]
                    if key.endswith("/") or _kind_of_name(posixpath.basename(key)) is None:
                        continue
                    listed[name] = S3Object(self, key, str(item["ETag"]), int(item["Size"]))
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self.failure(exc, f"listing {loc.shown}", listing=True) from None
        if not listed:
            raise UserError(f"{self.target}: no data objects under {loc.shown}; spillguard reads .jsonl .ndjson .json .csv .tsv .parquet "
                            "(optionally .gz or .zst)")  # fmt: skip
        self._listed = listed
        return listed

    def _dataset(self, name: str, obj: S3Object) -> FileDataset:
        kind = _kind_of_name(posixpath.basename(obj.key))
        assert kind is not None
        return FileDataset(obj, name, kind[0], kind[1], self.options.subject_for(name, posixpath.basename(name)), self.progress)

    def datasets(self) -> Iterator[FileDataset]:
        # In the order a folder's files are walked (names sorted within each "folder"), so results list alike.
        for name, obj in sorted(self._objects().items(), key=lambda item: item[0].split("/")):
            if self.options.wanted(name, posixpath.basename(name)):
                yield self._dataset(name, obj)

    def dataset(self, name: str) -> FileDataset:
        """The object `datasets()` calls `name`, by one HEAD (a worker does not list the bucket again)."""
        if self._listed is not None and name in self._listed:
            return self._dataset(name, self._listed[name])
        obj = self._by_key.get(name)
        if obj is None:
            loc = self.location
            single = bool(loc.key) and not loc.key.endswith("/") and name == posixpath.basename(loc.key)
            obj = (self._head(loc.key) if single else None) or self._head(loc.prefix + name)
            if obj is None:
                raise UserError(f"{self.target}: object {name!r} disappeared during the scan; scan again")
            self._by_key[name] = obj
        return self._dataset(name, obj)

    def warnings(self) -> list[str]:
        if self.options.sample:
            return ["--sample applies to stores; objects are read in full, like files"]
        return []

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if close is not None:
            close()
