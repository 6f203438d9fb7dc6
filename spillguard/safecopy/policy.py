"""The copy policy: which datasets are copied, and for every column or field path what happens to it.

A policy is a TOML file the user reviews (`spillguard policy init` proposes one):

    version = 1
    [keys.main]
    env = "SPILLGUARD_COPY_KEY"            # or: file = "/etc/spillguard/copy.key"   (hex, >= 128 bits)

    [datasets."public.users"]
    to = "users"                           # destination table / index / file name (default: source name)
    [datasets."public.users".fields]
    id = "hmac"
    email = "hmac"
    password_hash = "drop"
    signup_at = { transform = "generalise", to = "month" }
    [datasets."public.users".types]        # written by `policy init`: a type change halts the copy
    id = "integer"

Privacy by default: a source field that the policy does not name stops the copy (`on_new`).
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spillguard.errors import UserError
from spillguard.keys import PseudonymKey, load_pseudonym_key

TRANSFORMS = ("keep", "drop", "null", "hmac", "mask", "generalise", "fpe", "redact")
# Transforms that make sense on a whole object or array (a path with children below it).
SUBTREE_TRANSFORMS = frozenset({"keep", "drop", "null"})
# Transforms whose output replaces an identifier: the proof checks no source value of theirs survives.
IDENTIFIER_TRANSFORMS = frozenset({"hmac", "mask"})
ON_NEW = ("halt", "drop", "null")
FAMILIES = ("integer", "number", "boolean", "text", "timestamp")

_OPTIONS: dict[str, frozenset[str]] = {
    "keep": frozenset({"allow"}),
    "drop": frozenset(),
    "null": frozenset(),
    "hmac": frozenset({"key", "length", "prefix"}),
    "mask": frozenset({"keep_prefix", "keep_suffix", "char"}),
    "generalise": frozenset({"to", "grid", "bucket"}),
    "fpe": frozenset({"key", "alphabet", "tweak"}),
    "redact": frozenset({"placeholder"}),
}
_COMMON_OPTIONS = frozenset({"transform", "optional"})


@dataclass(frozen=True, slots=True)
class FieldRule:
    path: str
    transform: str
    options: dict[str, Any] = field(default_factory=dict)
    optional: bool = False

    def describe(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in sorted(self.options.items()) if k != "allow")
        return f"{self.transform}({opts})" if opts else self.transform


@dataclass(slots=True)
class DatasetPolicy:
    name: str
    to: str
    fields: dict[str, FieldRule]
    types: dict[str, str] = field(default_factory=dict)
    watermark: str | None = None  # incremental copies: the field whose growth marks new records

    def rule_for(self, path: str) -> FieldRule | None:
        """The rule of `path` itself, else of its nearest named ancestor (`address` covers `address.city`)."""
        probe = path
        while True:
            rule = self.fields.get(probe)
            if rule is not None:
                return rule
            parent = _parent(probe)
            if parent is None:
                return None
            probe = parent


@dataclass(slots=True)
class Policy:
    datasets: dict[str, DatasetPolicy]
    keys: dict[str, PseudonymKey]
    digest: str  # sha256 of the policy file: recorded with the copy
    path: str = ""
    on_new: str | None = None

    def key(self, name: str | None) -> PseudonymKey:
        if name is None:
            if len(self.keys) == 1:
                return next(iter(self.keys.values()))
            name = "main"
        key = self.keys.get(name)
        if key is None:
            raise UserError(f"{self.path}: no key named {name!r}; add [keys.{name}] with env = ... or file = ...")
        return key

    def key_ids(self) -> dict[str, str]:
        return {name: k.id for name, k in sorted(self.keys.items())}


def _parent(path: str) -> str | None:
    """`devices[].mac` -> `devices[]` -> `devices` -> None; `address.city` -> `address`."""
    if path.endswith("[]"):
        return path[:-2]
    cut = max(path.rfind("."), -1)
    if cut <= 0:
        return None
    return path[:cut]


def load_key(name: str, spec: Any, base: Path, where: str) -> PseudonymKey:
    """A policy's [keys.<name>]: exactly one of env = "VARIABLE" or file = "path" (relative to the policy)."""
    if not isinstance(spec, dict) or len({"env", "file"} & set(spec)) != 1 or set(spec) - {"env", "file"}:
        raise UserError(f"{where}: [keys.{name}] needs exactly one of env = \"VARIABLE\" or file = \"path\"")
    if "env" in spec:
        return load_pseudonym_key(None, str(spec["env"]), name=name, where=f"{where}: key {name!r}")
    path = Path(str(spec["file"])).expanduser()
    return load_pseudonym_key(path if path.is_absolute() else base / path, name=name, where=f"{where}: key {name!r}")


def _field_rule(path: str, spec: Any, where: str) -> FieldRule:
    if isinstance(spec, str):
        spec = {"transform": spec}
    if not isinstance(spec, dict) or "transform" not in spec:
        raise UserError(f"{where}: field {path!r}: give a transform name or {{ transform = \"...\", ... }}")
    name = str(spec["transform"])
    if name == "generalize":
        name = "generalise"
    if name not in TRANSFORMS:
        raise UserError(f"{where}: field {path!r}: unknown transform {name!r}; use one of {', '.join(TRANSFORMS)}")
    options = {k: v for k, v in spec.items() if k not in _COMMON_OPTIONS}
    unknown = set(options) - _OPTIONS[name]
    if unknown:
        allowed = ", ".join(sorted(_OPTIONS[name])) or "none"
        raise UserError(f"{where}: field {path!r}: unknown option(s) {', '.join(sorted(unknown))} for {name}; allowed: {allowed}")
    return FieldRule(path, name, options, bool(spec.get("optional", False)))


def load_policy(path: str | Path) -> Policy:
    p = Path(path)
    where = str(p)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise UserError(f"{where}: cannot read the policy ({exc.strerror}); create one with `spillguard policy init`") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{where}: not valid TOML ({exc})") from None
    return parse_policy(doc, where=where, base=p.parent, digest=hashlib.sha256(raw).hexdigest())


def parse_policy(doc: dict[str, Any], *, where: str = "policy", base: Path | None = None, digest: str = "") -> Policy:
    base = base or Path.cwd()
    unknown = set(doc) - {"version", "keys", "datasets", "on_new"}
    if unknown:
        raise UserError(f"{where}: unknown top-level key(s) {', '.join(sorted(unknown))}; expected version, keys, datasets, on_new")
    if doc.get("version", 1) != 1:
        raise UserError(f"{where}: policy version {doc.get('version')!r} is not supported; use version = 1")
    on_new = doc.get("on_new")
    if on_new is not None and on_new not in ON_NEW:
        raise UserError(f"{where}: on_new must be one of {', '.join(ON_NEW)}")
    datasets: dict[str, DatasetPolicy] = {}
    raw_sets = doc.get("datasets") or {}
    if not isinstance(raw_sets, dict) or not raw_sets:
        raise UserError(f"{where}: no [datasets.\"NAME\"] sections; the policy must name what to copy")
    for name, spec in raw_sets.items():
        if not isinstance(spec, dict):
            raise UserError(f"{where}: datasets.{name} must be a table")
        extra = set(spec) - {"to", "fields", "types", "watermark"}
        if extra:
            raise UserError(f"{where}: datasets.{name}: unknown key(s) {', '.join(sorted(extra))}; expected to, fields, types, watermark")
        fields = {path: _field_rule(path, rule, f"{where}: datasets.{name}") for path, rule in (spec.get("fields") or {}).items()}
        types = {str(k): str(v) for k, v in (spec.get("types") or {}).items()}
        for path, fam in types.items():
            if fam not in FAMILIES:
                raise UserError(f"{where}: datasets.{name}.types.{path}: {fam!r} is not one of {', '.join(FAMILIES)}")
        watermark = str(spec["watermark"]) if spec.get("watermark") else None
        datasets[name] = DatasetPolicy(name, str(spec.get("to") or name), fields, types, watermark)
    targets = [d.to for d in datasets.values()]
    dupes = {t for t in targets if targets.count(t) > 1}
    if dupes:
        raise UserError(f"{where}: several datasets are copied to {', '.join(sorted(dupes))}; give each its own `to`")
    keys_doc = doc.get("keys") or {}
    if not isinstance(keys_doc, dict):
        raise UserError(f"{where}: [keys] must be a table of [keys.NAME] sections")
    needs_key = [r for d in datasets.values() for r in d.fields.values() if r.transform in ("hmac", "fpe")]
    policy = Policy(datasets, {}, digest, where, on_new)
    # Keys are loaded (and refused when missing, short or empty) only when a transform needs them.
    if needs_key:
        wanted = {r.options.get("key") for r in needs_key}
        if not keys_doc:
            raise UserError(
                f"{where}: hmac/fpe need a key: add [keys.main] with env = \"SPILLGUARD_COPY_KEY\" or file = \"copy.key\" "
                "(hex, >= 128 bits; `openssl rand -hex 32`)"
            )
        for name, spec in keys_doc.items():
            policy.keys[name] = load_key(name, spec, base, where)
        for name in wanted:
            policy.key(name)
    return policy
