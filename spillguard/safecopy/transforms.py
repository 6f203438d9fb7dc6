"""Column transforms: one Arrow array in, one Arrow array out, vectorised over the column.

`keep`, `null`, `hmac`, `mask` and `generalise` (dates, IPv4, numbers, coordinates) run as Arrow
compute kernels or numpy; `hmac` hashes only the distinct values of a column. `fpe` (FF1) and
`redact` run Python on distinct values / on values the scan engine found something in, since
neither has a vectorised form. IPv6 generalisation parses the distinct IPv6 values only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spillguard.detect.arrays import as_text, take
from spillguard.errors import UserError
from spillguard.keys import PseudonymKey, derive_key, hex_array
from spillguard.safecopy.policy import FieldRule, Policy

DATE_UNITS = ("year", "month", "day", "hour")
_ISO_PREFIX = {"year": 4, "month": 7, "day": 10, "hour": 13}
_ISO_SUFFIX = {"year": "-01-01", "month": "-01", "day": "", "hour": ":00"}
_ALPHABETS = {
    "digits": "0123456789",
    "lower": "abcdefghijklmnopqrstuvwxyz",
    "upper": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "alnum": "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "hex": "0123456789abcdef",
}


@dataclass(slots=True)
class TransformStats:
    """What a transform could not do as asked, per field (reported in the summary, never silent)."""

    notes: dict[str, int] = field(default_factory=dict)

    def add(self, what: str, n: int) -> None:
        if n:
            self.notes[what] = self.notes.get(what, 0) + n


Transform = Callable[[pa.Array, TransformStats], pa.Array]


def pseudonymiser(key: PseudonymKey, length: int = 16, prefix: str = "") -> Callable[[pa.Array], pa.Array]:
    """HMAC-SHA-256 pseudonyms: the same value under the same key gives the same text in every table,
    store and run, so joins still work; the first `length` bytes of the MAC as hex."""

    def apply(values: pa.Array) -> pa.Array:
        text = as_text(values)
        if len(text) == 0:
            return pa.array([], pa.string())
        encoded = pc.dictionary_encode(text)  # distinct values hashed once (a user id repeats in every device row)
        uniq = hex_array(key.digests(encoded.dictionary), chars=2 * length)
        if prefix:
            uniq = pc.binary_join_element_wise(prefix, uniq, "")
        return pc.take(uniq, encoded.indices)

    return apply


def _hmac(rule: FieldRule, policy: Policy) -> Transform:
    length = int(rule.options.get("length", 16))
    if not 8 <= length <= 32:
        raise UserError(f"{policy.path}: field {rule.path!r}: hmac length must be 8..32 bytes, not {length}")
    apply = pseudonymiser(policy.key(rule.options.get("key")), length, str(rule.options.get("prefix", "")))
    return lambda values, _stats: apply(values)


def _null(_rule: FieldRule, _policy: Policy) -> Transform:
    return lambda values, _stats: pa.nulls(len(values), values.type)


def _keep(_rule: FieldRule, _policy: Policy) -> Transform:
    return lambda values, _stats: values


def _mask(rule: FieldRule, policy: Policy) -> Transform:
    prefix = int(rule.options.get("keep_prefix", 0))
    suffix = int(rule.options.get("keep_suffix", 0))
    char = str(rule.options.get("char", "*"))
    if prefix < 0 or suffix < 0 or len(char) != 1:
        raise UserError(f"{policy.path}: field {rule.path!r}: mask needs keep_prefix/keep_suffix >= 0 and one char")

    def apply(values: pa.Array, _stats: TransformStats) -> pa.Array:
        text = as_text(values)
        n = pc.utf8_length(text)
        # A value no longer than what would be kept is masked whole: nothing of it survives.
        short = pc.less_equal(n, prefix + suffix)
        keep_p = pc.if_else(short, 0, prefix)
        keep_s = pc.if_else(short, 0, suffix)
        middle = pc.subtract(n, pc.add(keep_p, keep_s))
        head = pc.utf8_slice_codeunits(text, 0, prefix)
        head = pc.if_else(short, "", head)
        tail = pc.utf8_slice_codeunits(text, -suffix, 2**31 - 1) if suffix else pa.repeat("", len(text))
        tail = pc.if_else(short, "", tail)
        stars = pc.binary_repeat(pa.scalar(char), pc.cast(middle, pa.int64()))
        return pc.binary_join_element_wise(head, stars, tail, "")

    return apply


def _generalise(rule: FieldRule, policy: Policy) -> Transform:
    opts = rule.options
    where = f"{policy.path}: field {rule.path!r}"
    if sum(k in opts for k in ("to", "grid", "bucket")) != 1:
        raise UserError(f"{where}: generalise needs one of to = \"month\"|\"network\"|..., grid = 0.01, bucket = 10")
    if "grid" in opts or "bucket" in opts:
        step = float(opts.get("grid") or opts.get("bucket") or 0)
        if step <= 0:
            raise UserError(f"{where}: grid/bucket must be a positive number")
        return lambda values, stats: _floor_to(values, step, stats, rule.path)
    to = str(opts["to"])
    if to in DATE_UNITS:
        return lambda values, stats: _date_to(values, to)
    if to == "network":
        return lambda values, stats: _network(values, stats, rule.path)
    raise UserError(f"{where}: generalise to {to!r} is not known; use one of {', '.join(DATE_UNITS)}, network")


def _floor_to(values: pa.Array, step: float, stats: TransformStats, path: str) -> pa.Array:
    t = values.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
        # Numbers written as text (coordinates in CSV): parse; what does not parse becomes null, counted.
        parsed = pc.cast(values, pa.float64(), safe=False) if not pa.types.is_string(t) else _parse_floats(values)
        stats.add(f"{path}: values that are not numbers nulled", int(parsed.null_count - values.null_count))
        values, t = parsed, pa.float64()
    x = pc.cast(values, pa.float64())
    cells = pc.floor(pc.divide(x, step))
    inverse = 1.0 / step
    # 0.1 * 488 is 48.800000000000004 but 488 / 10 is 48.8: divide when the step is 1/n.
    if step < 1 and abs(inverse - round(inverse)) < 1e-9:
        out = pc.divide(cells, float(round(inverse)))
    else:
        out = pc.multiply(cells, step)
    if pa.types.is_integer(t) and float(step).is_integer():
        return pc.cast(out, t)
    return out


def _parse_floats(values: pa.Array) -> pa.Array:
    ok = pc.match_substring_regex(values, r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")
    cleaned = pc.if_else(ok, pc.utf8_trim_whitespace(values), pa.scalar(None, pa.string()))
    return pc.cast(cleaned, pa.float64())


def _date_to(values: pa.Array, unit: str) -> pa.Array:
    t = values.type
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return pc.floor_temporal(values, unit=unit)
    # ISO text (what JSON sources give): keep the prefix of the unit, pad it back to a valid date.
    text = as_text(values)
    head = pc.utf8_slice_codeunits(text, 0, _ISO_PREFIX[unit])
    return pc.binary_join_element_wise(head, pa.scalar(_ISO_SUFFIX[unit]), "")


_IPV4 = r"^(\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3}$"


def _network(values: pa.Array, stats: TransformStats, path: str) -> pa.Array:
    """IPv4 addresses to their /24, IPv6 to their /48; anything else becomes null (counted)."""
    text = as_text(values)
    is_v4 = pc.fill_null(pc.match_substring_regex(text, _IPV4), False)
    v4 = pc.replace_substring_regex(text, _IPV4, r"\1.0")
    is_v6 = pc.fill_null(pc.and_(pc.invert(is_v4), pc.match_substring(text, ":")), False)
    out = pc.if_else(is_v4, v4, pa.scalar(None, pa.string()))
    if pc.any(is_v6).as_py():
        v6_values = pc.filter(text, is_v6)
        encoded = pc.dictionary_encode(v6_values)
        nets: list[str | None] = []
        for v in encoded.dictionary.to_pylist():
            try:
                nets.append(str(ipaddress.IPv6Network(f"{v.split('%')[0]}/48", strict=False).network_address))
            except ValueError:
                nets.append(None)
        mapped = pc.take(pa.array(nets, pa.string()), encoded.indices)
        idx = np.flatnonzero(np.asarray(is_v6))
        merged = out.to_numpy(zero_copy_only=False).astype(object)
        merged[idx] = mapped.to_numpy(zero_copy_only=False)
        out = pa.array(merged, pa.string())
    stats.add(f"{path}: values that are not IP addresses nulled", int(out.null_count - values.null_count))
    return out


def ff1_key(key: PseudonymKey) -> bytes:
    """The AES-256 key FF1 runs with, derived from the copy key (never the copy key itself)."""
    return derive_key(key.key, "spillguard ff1 key")


def _fpe(rule: FieldRule, policy: Policy) -> Transform:
    try:
        from ffx import FF1
        from ffx.exceptions import FFXError
    except ModuleNotFoundError:
        raise UserError("the fpe transform needs the libffx package: pip install 'spillguard[copy]'") from None
    name = str(rule.options.get("alphabet", "digits"))
    alphabet = _ALPHABETS.get(name, name)
    if len(set(alphabet)) != len(alphabet) or len(alphabet) < 2:
        raise UserError(f"{policy.path}: field {rule.path!r}: fpe alphabet must be {', '.join(_ALPHABETS)} or distinct characters")
    cipher = FF1(ff1_key(policy.key(rule.options.get("key"))), alphabet=alphabet)
    tweak = str(rule.options.get("tweak", "")).encode()
    members = frozenset(alphabet)

    def one(value: str) -> str | None:
        # Characters outside the alphabet (dashes, spaces, '+') stay in place: the format holds.
        idx = [i for i, c in enumerate(value) if c in members]
        try:
            enc = cipher.encrypt("".join(value[i] for i in idx), tweak=tweak)
        except FFXError:
            return None  # domain too small for FF1 (under a million values): nulled and counted
        chars = list(value)
        for i, c in zip(idx, enc, strict=True):
            chars[i] = c
        return "".join(chars)

    def apply(values: pa.Array, stats: TransformStats) -> pa.Array:
        text = as_text(values)
        encoded = pc.dictionary_encode(text)
        enc = pa.array([one(v) for v in encoded.dictionary.to_pylist()], pa.string())
        out = pc.take(enc, encoded.indices)
        stats.add(f"{rule.path}: values too short for FF1 nulled", int(out.null_count - text.null_count))
        return out

    return apply


def _redact(rule: FieldRule, policy: Policy) -> Transform:
    from spillguard import _default_ruleset

    ruleset = _default_ruleset()
    placeholder = str(rule.options.get("placeholder", "[{category}]"))
    path = rule.path

    def apply(values: pa.Array, stats: TransformStats) -> pa.Array:
        text = as_text(values)
        plan = ruleset.plan(path)
        out = text
        # Each pass replaces the first match of every rule in every value; values with more matches go again.
        for _ in range(16):
            hits = ruleset.scan_column(out, plan, want_spans=True)
            spans: dict[int, list[tuple[int, int, str]]] = {}
            for (rid, vi), (s, e) in hits.spans.items():
                spans.setdefault(vi, []).append((s, e, ruleset.rules[rid].category))
            if not spans:
                return out
            rows = np.array(sorted(spans), dtype=np.int64)
            current = take(out, rows).to_pylist()
            replaced = []
            for vi, value in zip(rows.tolist(), current, strict=True):
                for s, e, category in sorted(spans[vi], reverse=True):
                    value = value[:s] + placeholder.format(category=category) + value[e:]
                    stats.add(f"{path}: {category} redacted", 1)
                replaced.append(value)
            merged = out.to_numpy(zero_copy_only=False).astype(object)
            merged[rows] = replaced
            out = pa.array(merged, pa.string())
        stats.add(f"{path}: values still matching after 16 redaction passes nulled", len(spans))
        unfinished = np.zeros(len(out), bool)
        unfinished[rows] = True
        return pc.if_else(pa.array(unfinished), pa.scalar(None, pa.string()), out)

    return apply


_FACTORIES: dict[str, Callable[[FieldRule, Policy], Transform]] = {
    "keep": _keep,
    "null": _null,
    "hmac": _hmac,
    "mask": _mask,
    "generalise": _generalise,
    "fpe": _fpe,
    "redact": _redact,
}


def build_transform(rule: FieldRule, policy: Policy) -> Transform:
    """The function a rule applies; options are checked here, before any data is read."""
    return _FACTORIES[rule.transform](rule, policy)


def describe_key_use(policy: Policy) -> dict[str, Any]:
    """What the destination's metadata records about keys: ids and where they came from, never bytes."""
    return {name: {"key_id": k.id, "origin": k.source} for name, k in sorted(policy.keys.items())}
