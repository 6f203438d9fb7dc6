"""Leaked-secret sets: every credential a scan found, as the digests token stores keep, never the value.

`spillguard scan --secrets-out leaked.sgs` collects, for every secret or password value the engine
matched, its keyed fingerprint (the same `hmac-sha256:` form the JSON output shows), the SHA-256 hex
of the value (django-oauth-toolkit's `token_checksum`, Sanctum's `token`), the SHA-256 hex of the
part after the first `|` (a Sanctum plaintext token is `<id>|<secret>`), the rule, dataset, field and
a keyed hash of the record's subject, and, with `--secrets-hmac-key-env VAR`, the HMAC-SHA-256 hex of the
value under the application's own key (for token stores that keep HMAC(app secret, token)). Hashing is `spillguard.keys`' column functions: the per-value work is C,
no Python code per value.

The file is Parquet, written owner-only, with the fingerprint key's id in its metadata so a set made
under another key is refused rather than silently matching nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spillguard.detect.arrays import as_text, take
from spillguard.errors import UserError
from spillguard.keys import Hasher, app_hmac_key, fingerprints, hmac_hex, key_id, sha256_hex, subject_hasher
from spillguard.outfiles import private_file

FORMAT = "spillguard-leaked-secrets"
VERSION = "1"
SCHEMA = pa.schema(
    [
        ("fingerprint", pa.string()),  # hmac-sha256:<32 hex>, as in the scan's JSON output
        ("sha256", pa.string()),  # hex SHA-256 of the value (null for passwords: low entropy, dictionary-reversible)
        ("sha256_tail", pa.string()),  # hex SHA-256 of the text after the first '|', else null
        ("rule", pa.string()),
        ("category", pa.string()),
        ("target", pa.string()),  # masked URL or path
        ("dataset", pa.string()),  # masked identifiers
        ("field", pa.string()),
        ("subject", pa.uint64()),  # keyed hash of the record's subject id (keys.subject_hasher), 0 = unknown
        ("hmac", pa.string()),  # hex HMAC-SHA-256(application key, value) with --secrets-hmac-key-env, else null
    ]
)
HMAC_META = b"hmac_key"  # metadata: "<env var> <key id>" of the application key the `hmac` column was made under


class SecretExtractor:
    """The matched secret inside each value: the rule's pattern where the value is longer than the secret
    (a header, a JSON blob), else the whole value. RE2 over the column; Python only for patterns RE2 rejects."""

    def __init__(self) -> None:
        self._patterns: dict[str, str | re.Pattern[str] | None] = {}

    def _pattern(self, rule: Any) -> str | re.Pattern[str] | None:
        if rule.id not in self._patterns:
            pat: str | re.Pattern[str] | None = None
            if rule.value is not None:
                inner = rule.boundary[1:-1]
                # A pattern naming its credential (`password = (?P<secret>...)`) yields that group, renamed `m`.
                body = rule.value.replace("(?P<secret>", "(?P<m>") if rule.secret_group else f"(?P<m>{rule.value})"
                pat = ("(?i)" if rule.ignore_case else "") + f"(?:^|[^{inner}])(?:{body})(?:[^{inner}]|$)"
                try:
                    pc.extract_regex(pa.array(["x"]), pat)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    pat = rule.value_re
            self._patterns[rule.id] = pat
        return self._patterns[rule.id]

    def extract(self, rule: Any, texts: pa.Array) -> pa.Array:
        pat = self._pattern(rule)
        if pat is None:
            return texts
        if isinstance(pat, str):
            found = pc.struct_field(pc.extract_regex(texts, pat), "m")
        else:
            found = pa.array([None if t is None or (m := pat.search(t)) is None else t[slice(*rule.span(m))] for t in texts.to_pylist()], pa.string())
        return pc.coalesce(found, texts)


@dataclass(slots=True)
class LeakedCollector:
    """What one partition (or a whole dataset, once merged) saw of secrets: mergeable, picklable."""

    batches: list[pa.RecordBatch] = field(default_factory=list)

    def add(self, key: bytes, subjects: Hasher, extractor: SecretExtractor, rule: Any, target: str, dataset: str,
            field_path: str, values: pa.Array, subject_values: pa.Array | None, app_key: bytes | None = None) -> None:
        texts = extractor.extract(rule, as_text(values))
        keep = texts.is_valid()
        if texts.null_count:
            texts = texts.filter(keep)
            subject_values = subject_values.filter(keep) if subject_values is not None else None
        n = len(texts)
        if n == 0:
            return
        if rule.category != "secret":
            # A password's plain SHA-256 is reversible by dictionary: only its keyed fingerprint is kept.
            sha_hex, tail_hex, app_hex = pa.nulls(n, pa.string()), pa.nulls(n, pa.string()), pa.nulls(n, pa.string())
        else:
            app_hex = hmac_hex(app_key, texts) if app_key is not None else pa.nulls(n, pa.string())
            sha_hex = sha256_hex(texts)
            has_tail = pc.greater_equal(pc.find_substring(texts, "|"), 0)
            if pc.any(has_tail).as_py():
                tails = pc.replace_substring_regex(texts, r"^[^|]*\|", "", max_replacements=1)
                tail_hex = pc.if_else(has_tail, sha256_hex(tails), pa.scalar(None, pa.string()))
            else:
                tail_hex = pa.nulls(n, pa.string())
        subj = subjects.hash_strings(subject_values) if subject_values is not None else np.zeros(n, np.uint64)
        const = [pa.repeat(pa.scalar(v, pa.string()), n) for v in (rule.id, rule.category, target, dataset, field_path)]
        arrays = [fingerprints(key, texts), sha_hex, tail_hex, *const, pa.array(subj, pa.uint64()), app_hex]
        self.batches.append(pa.RecordBatch.from_arrays(arrays, schema=SCHEMA))

    def merge(self, other: LeakedCollector) -> None:
        self.batches.extend(other.batches)

    def table(self) -> pa.Table:
        if not self.batches:
            return SCHEMA.empty_table()
        t = pa.Table.from_batches(self.batches, SCHEMA)
        # One row per (secret, where, whose): a token repeated in many records is one credential to revoke.
        return t.group_by(SCHEMA.names, use_threads=False).aggregate([]).select(SCHEMA.names)


def hmac_label(env: str, app_key: bytes) -> str:
    """What a set records of the application key its `hmac` column was made under: the variable and a key id."""
    return f"{env} {key_id(app_key)}"


def write_leaked(path: str | Path, table: pa.Table, key: bytes, hmac_key: str | None = None) -> int:
    """Write the set owner-only and atomically; returns the rows written. `hmac_key` is `hmac_label()` when the
    `hmac` column was computed."""
    path = Path(path)
    meta = {b"format": FORMAT.encode(), b"version": VERSION.encode(), b"key_id": key_id(key).encode()}
    if hmac_key is not None:
        meta[HMAC_META] = hmac_key.encode()
    table = table.replace_schema_metadata(meta)
    import pyarrow.parquet as pq  # only with --secrets-out: a scan without it does not load Parquet

    with private_file(path) as fh:
        pq.write_table(table, fh, compression="zstd")
    return int(table.num_rows)


@dataclass(slots=True)
class LeakedSet:
    """A leaked-secret set, loaded for a response. Digests only; lookups are set operations."""

    table: pa.Table
    source: str = ""
    hmac_key: str | None = None  # "<env var> <key id>" when the set has the application's HMAC of each secret

    @classmethod
    def empty(cls) -> LeakedSet:
        return cls(SCHEMA.empty_table())

    @classmethod
    def load(cls, path: str | Path, key: bytes) -> LeakedSet:
        import pyarrow.parquet as pq

        path = Path(path)
        try:
            pf = pq.ParquetFile(path)
        except FileNotFoundError:
            raise UserError(f"{path}: no such leaked-secret set; write one with `spillguard scan … --secrets-out {path}`") from None
        except (OSError, pa.ArrowInvalid) as exc:
            raise UserError(f"{path}: not a leaked-secret set ({exc}); give the file `scan --secrets-out` wrote") from None
        meta = pf.schema_arrow.metadata or {}
        if meta.get(b"format") != FORMAT.encode():
            raise UserError(f"{path}: not a leaked-secret set; give the file `scan --secrets-out` wrote")
        if meta.get(b"key_id") != key_id(key).encode():
            raise UserError(f"{path}: made under another fingerprint key; run respond with the key the scan used "
                            "($SPILLGUARD_FINGERPRINT_KEY or the key file)")
        # No Arrow thread pool for a file this size: a pool thread left at interpreter exit aborts the process
        # ("terminate called without an active exception", apache/arrow#34314) after the work is done.
        table = pf.read(use_threads=False)
        pf.close()
        if "hmac" not in table.schema.names:  # a set written before the column existed
            table = table.append_column("hmac", pa.nulls(table.num_rows, pa.string()))
        hmac_key = meta[HMAC_META].decode() if HMAC_META in meta else None
        return cls(table.select(SCHEMA.names).cast(SCHEMA), str(path), hmac_key)

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def _values(self, names: tuple[str, ...], rules: list[str] | None) -> pa.Array:
        t = self.table
        if rules:
            t = t.filter(pc.is_in(t["rule"], pa.array(rules)))
        parts = [t[n].combine_chunks() if isinstance(t[n], pa.ChunkedArray) else t[n] for n in names]
        both = pa.concat_arrays(parts) if parts else pa.array([], pa.string())
        return pc.unique(both.drop_null()).sort()

    def column(self, name: str, rules: list[str] | None = None) -> list[str]:
        """Distinct non-null values of a digest column (optionally of some rules only), sorted."""
        values: list[str] = self._values((name,), rules).to_pylist()
        return values

    def digests(self, form: str, rules: list[str] | None = None) -> list[str]:
        """The leaked values as a token store keeps them: `sha256`, `sha256_tail` or `fingerprint`;
        `sha256_any` is both SHA-256 forms (a store holds one or the other); `hmac` the application's HMAC
        (refused when the scan did not compute it)."""
        names = {"sha256": ("sha256",), "sha256_tail": ("sha256_tail",), "fingerprint": ("fingerprint",),
                 "sha256_any": ("sha256", "sha256_tail"), "hmac": ("hmac",)}.get(form)
        if names is None:
            raise ValueError(form)
        if form == "hmac":
            self.require_hmac()
        values: list[str] = self._values(names, rules).to_pylist()
        return values

    def require_hmac(self, where: str = "") -> None:
        """Refuse (one line, exit 2) when the set holds no application HMAC of its secrets."""
        if self.hmac_key is None:
            pre = f"{where}: " if where else ""
            raise UserError(f"{pre}stored = \"hmac\" needs a leaked set with the application's HMAC of each secret, and "
                            f"{self.source or 'the leaked set'} has none; rescan with `--secrets-hmac-key-env VAR` "
                            "(VAR holding the application's HMAC key)")

    def subjects(self) -> np.ndarray:
        """Keyed subject hashes of the people whose secrets leaked (0 = unknown excluded)."""
        s = pc.unique(self.table["subject"]).to_numpy()
        return np.sort(s[s != 0])

    def contains(self, form: str, values: pa.Array) -> np.ndarray:
        """Which of `values` (digests of the same form) are in the set: a boolean mask."""
        return np.asarray(pc.is_in(values, pa.array(self.digests(form), pa.string())).fill_null(False))


class SecretsOut:
    """The scanner's hook for --secrets-out: one per scanner, a LeakedCollector per dataset state."""

    def __init__(self, key: bytes, hmac_key_env: str | None = None) -> None:
        self.key = key
        # The application's own HMAC key, read in each worker from its variable: never in options or state files.
        self.app_key = app_hmac_key(hmac_key_env) if hmac_key_env else None
        self.subjects = subject_hasher(key)
        self.extractor = SecretExtractor()

    def collect(self, state: Any, rule: Any, leaf: Any, idx: np.ndarray, subject_leaf: Any) -> None:
        """Digests of the values `idx` of `leaf` that `rule` matched, with their records' subjects."""
        from spillguard.detect.masking import mask_identifiers

        if state.leaked is None:
            state.leaked = LeakedCollector()
        values = leaf.values if idx.size == len(leaf.values) else take(leaf.values, idx)
        subject_values = None
        if subject_leaf is not None and subject_leaf.rows is None:
            rows = idx if leaf.rows is None else leaf.rows[idx]
            subject_values = take(subject_leaf.values, rows)
        state.leaked.add(self.key, self.subjects, self.extractor, rule, state.target, mask_identifiers(state.dataset),
                         mask_identifiers(leaf.path), values, subject_values, self.app_key)


def leaked_table(states: Any) -> pa.Table:
    """Every dataset's leaked secrets, one row per (secret, rule, place, subject)."""
    total = LeakedCollector()
    for st in states:
        if st.leaked is not None:
            total.merge(st.leaked)
    return total.table()
