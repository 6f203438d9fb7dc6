"""The state file: one row per finished partition, so an interrupted scan resumes where it stopped.

A row holds a partition's exact counts as JSON plus numpy arrays (read with allow_pickle=False:
loading a state file never runs code), under keyed hashes of its target and partition, with names
masked or keyed-hashed (see names.py) and the input's signature (a file's size and mtime), so a
resumed scan refuses an input that changed. SQLite in WAL mode: a kill -9 at any moment leaves
every committed partition readable. The subject hasher's seed is kept too, so merged counts of a
resumed scan equal an uninterrupted run's.
"""

from __future__ import annotations

import hashlib
import io
import sqlite3
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa

from spillguard.detect.sketch import HllSketch
from spillguard.detect.state import DatasetState, FindingState, KeySet, RowSet
from spillguard.errors import UserError
from spillguard.keys import app_hmac_key, keyed_hex
from spillguard.leaked import LeakedCollector, hmac_label
from spillguard.outfiles import check_state_path, open_state_db
from spillguard.scan.jobs import Malformed
from spillguard.scan.names import NAME_HASH_CHARS, stored_name
from spillguard.scan.options import ScanOptions
from spillguard.targets import mask_url

# Bumped whenever hashing, counting or the stored form changes, so that a state file never mixes
# partitions counted or kept two ways.
STATE_FORMAT = 3  # 3: no pickle, names masked/hashed, input signatures; 2: value hashes one byte short fixed
# Options that must not be written anywhere (fingerprint, state file) or that do not change results.
_NOT_FINGERPRINTED = {"password", "password_env", "progress", "max_rps", "connect_timeout", "read_timeout", "retry_budget"}


def options_fingerprint(options: ScanOptions, targets: list[str], *, include_seed: bool = False) -> str:
    """What must be equal for checkpointed partitions to be reusable: rules, fields, sampling, targets."""
    rule_digests = []
    for f in options.rule_files:
        try:
            rule_digests.append(hashlib.sha256(Path(f).read_bytes()).hexdigest())
        except OSError:
            rule_digests.append(str(f))
    src = {k: v for k, v in options.source_options.items() if k not in _NOT_FINGERPRINTED}
    per_target = {mask_url(t): {k: v for k, v in o.items() if k not in _NOT_FINGERPRINTED} for t, o in options.target_options.items()}
    doc = {
        "rules": rule_digests,
        "only": sorted(options.only or []),
        "exclude": sorted(options.exclude or []),
        "subject_field": options.subject_field,
        "show_samples": options.show_samples,
        "secrets_out": options.secrets_out,
        "approx_subjects": options.approx_subjects,
        # The application HMAC key by name and key id: a resume under another key must not reuse its digests.
        "secrets_hmac": (hmac_label(options.secrets_hmac_key_env, app_hmac_key(options.secrets_hmac_key_env))
                         if options.secrets_hmac_key_env else None),
        "source": src,
        "per_target": per_target,
        "targets": [mask_url(t) for t in targets],
        "seed": options.seed if include_seed else None,
        "state_format": STATE_FORMAT,
    }
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:32]


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


class StateCodec:
    """A DatasetState <-> (JSON document, .npz bytes): counts and names in JSON, hashes and bitmaps as arrays."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    def encode(self, state: DatasetState, malformed: list[Malformed]) -> tuple[bytes, bytes]:
        arrays: list[np.ndarray] = []

        def put(a: np.ndarray) -> int:
            arrays.append(a)
            return len(arrays) - 1

        name = self._name
        findings = []
        for fs in state.findings.values():
            rows = [[keyed_hex(self.key, part, NAME_HASH_CHARS), put(packed), int(size)] for part, (packed, size) in fs.rows.__getstate__().items()]
            findings.append({
                "field": name(fs.field), "rule": fs.rule, "category": fs.category, "named": fs.named,
                "values_matched": fs.values_matched, "records_matched": fs.records_matched,
                "subjects": put(fs.subjects.array()), "distinct": put(fs.distinct.array()), "rows": rows,
                "samples": list(fs.samples), "fingerprints": list(fs.fingerprints),
            })
        doc = {
            "dataset": name(state.dataset),
            "subject_field": name(state.subject_field) if state.subject_field else None,
            "records": state.records,
            "malformed": state.malformed,
            "nonnull": [[name(path), n] for path, n in state.nonnull.items()],
            "unchecked": [[name(path), n] for path, n in state.unchecked.items()],
            "subjects": put(state.subjects.array()),
            "findings": findings,
            "malformed_list": [[name(dataset), line, reason, kind] for dataset, line, reason, kind in malformed],
            # --secrets-out: the partition's leaked digests (keyed fingerprints, SHA-256, masked places) as Arrow IPC
            "leaked": put(np.frombuffer(_ipc(state.leaked.table()), np.uint8)) if state.leaked is not None else None,
        }
        buf = io.BytesIO()
        np.savez(buf, *arrays)
        return orjson.dumps(doc), buf.getvalue()

    def decode(self, doc_bytes: bytes, blob: bytes, target: str) -> tuple[DatasetState, list[Malformed]]:
        doc = orjson.loads(doc_bytes)
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = [npz[f"arr_{i}"] for i in range(len(npz.files))]

        def exact(i: int) -> KeySet:
            ks = KeySet()
            ks.__setstate__({"keys": arrays[i].astype(np.uint64, copy=False)})
            return ks

        def keys(i: int) -> KeySet | HllSketch:
            if arrays[i].dtype == np.uint8:  # --approx-subjects: a sketch's registers
                return HllSketch(arrays[i].copy())
            return exact(i)

        state = DatasetState(target=target, dataset=doc["dataset"], subject_field=doc["subject_field"])
        state.records, state.malformed = int(doc["records"]), int(doc["malformed"])
        state.nonnull = {path: int(n) for path, n in doc["nonnull"]}
        state.unchecked = {path: int(n) for path, n in doc.get("unchecked", [])}
        state.subjects = keys(doc["subjects"])
        for f in doc["findings"]:
            rows = RowSet()
            rows.__setstate__({part: (arrays[i], size) for part, i, size in f["rows"]})
            fs = FindingState(
                f["field"], f["rule"], f["category"], bool(f["named"]), int(f["values_matched"]), int(f["records_matched"]),
                keys(f["subjects"]), exact(f["distinct"]), rows, list(f["samples"]), list(f["fingerprints"]),
            )
            state.findings[(fs.field, fs.rule)] = fs
        if doc.get("leaked") is not None:
            table = pa.ipc.open_stream(arrays[doc["leaked"]].tobytes()).read_all()
            state.leaked = LeakedCollector(table.to_batches())
        malformed = [(str(d), line, str(reason), str(kind)) for d, line, reason, kind in doc["malformed_list"]]
        return state, malformed

    def _name(self, name: str) -> str:
        return stored_name(self.key, name)


Finished = dict[str, tuple[DatasetState, list[Malformed], str | None]]  # partition id -> state, malformed, signature


class Checkpoint:
    """The state file of one scan. Created owner-only: it holds keyed hashes, counts and masked samples."""

    def __init__(self, path: str | Path, options: ScanOptions, targets: list[str], key: bytes, *, resume: bool) -> None:
        self.path = Path(path)
        self.codec = StateCodec(key)
        self.key = key
        check_state_path(self.path)
        existed = self.path.exists() and self.path.stat().st_size > 0
        try:
            self.db = open_state_db(self.path)
            self.db.execute("CREATE TABLE IF NOT EXISTS scan (fingerprint TEXT PRIMARY KEY, seed INTEGER NOT NULL, started_at TEXT NOT NULL)")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS partition (fingerprint TEXT NOT NULL, target TEXT NOT NULL, key TEXT NOT NULL, "
                "signature TEXT, doc BLOB NOT NULL, arrays BLOB NOT NULL, finished_at TEXT NOT NULL, "
                "PRIMARY KEY (fingerprint, target, key))"
            )
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(partition)")}
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{self.path}: not a spillguard state file ({exc})") from None
        if "arrays" not in columns:
            raise UserError(f"{self.path}: state file of an older spillguard; it cannot be resumed, start with a new --state file")
        self.fingerprint = options_fingerprint(options, targets)
        rows = self.db.execute("SELECT fingerprint, seed FROM scan").fetchall()
        stored = dict(rows)
        if existed and rows and not resume:
            raise UserError(f"{self.path}: state file of an earlier scan exists; pass --resume to continue it or choose a new --state file")
        if resume and rows and self.fingerprint not in stored:
            raise UserError(
                f"{self.path}: this state file belongs to a scan with other targets or options (or an older spillguard); "
                "resume with the same command line or use a new --state file"
            )
        if self.fingerprint in stored:
            self.seed = int(stored[self.fingerprint])
        else:
            self.seed = options.seed
            self.db.execute("INSERT INTO scan VALUES (?, ?, datetime('now'))", (self.fingerprint, options.seed))
        self.saved = 0  # partitions this run has written

    def partition_id(self, target: str, key: str) -> str:
        return keyed_hex(self.key, f"{target}\x1f{key}", NAME_HASH_CHARS)

    def finished(self, target: str) -> Finished:
        out: Finished = {}
        for key, signature, doc, blob in self.db.execute(
            "SELECT key, signature, doc, arrays FROM partition WHERE fingerprint = ? AND target = ?",
            (self.fingerprint, keyed_hex(self.key, target, NAME_HASH_CHARS)),
        ):
            state, malformed = self.codec.decode(doc, blob, target)
            out[key] = (state, malformed, signature)
        return out

    def save(self, target: str, key: str, signature: str | None, state: DatasetState, malformed: list[Malformed]) -> tuple[DatasetState, list[Malformed]]:
        """Write a finished partition; returns it as it was stored, so that every partition of a checkpointed
        run is merged in one form whether it was scanned now or loaded on resume."""
        doc, blob = self.codec.encode(state, malformed)
        self.write(target, key, signature, doc, blob)
        return self.codec.decode(doc, blob, target)

    def write(self, target: str, key: str, signature: str | None, doc: bytes, blob: bytes) -> None:
        """Write a finished partition already in its stored form (`StateCodec.encode`, where it was scanned)."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(
                "INSERT OR REPLACE INTO partition VALUES (?, ?, ?, ?, ?, ?, datetime('now'))",
                (self.fingerprint, keyed_hex(self.key, target, NAME_HASH_CHARS), self.partition_id(target, key), signature, doc, blob),
            )
        self.saved += 1

    def total_saved(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM partition WHERE fingerprint = ?", (self.fingerprint,)).fetchone()[0])

    def close(self) -> None:
        self.db.close()


