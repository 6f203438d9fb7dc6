"""Detection rules as data: one TOML file per family, each rule carrying its own examples.

A rule matches by value pattern, by field name, or both:
- `value`: a pattern in the subset shared by Vectorscan and Python's `re`; the loader closes it on
  both sides with `boundary` (a character class that must not touch the match), which also makes
  the multi-pattern engine report one match end per hit instead of one per character;
- `field`: a regex searched in the normalised field path (lower snake case, dots, no `[]`);
  with `requires_field = true` the value pattern counts only under such a field, otherwise a
  matching field name only raises confidence;
- `check`: for field-only rules, a vectorised plausibility check of the values (see spillguard/detect/checks.py);
- `validator`: a function run on candidates only (see spillguard/detect/validators.py);
- `before` / `after`: a pattern that must come right before / after the value (a label such as `Phone:`, `SSN` or
  `-Fax`); it is part of the match for the engines but not of the reported span, so the label anchors a shape too
  loose on its own.
- `provider`: who issues the credential (listed by `spillguard rules --category secret`);
- a named group `(?P<secret>...)` in `value`: the credential inside a wider match (`password = "..."`);
  spans, fingerprints, digests and masking then cover exactly that group;
- `placeholder`: how candidates are told from placeholders (`token`, the default for secret rules:
  `ghp_xxxx...`, `<your-token>`, runs, sequences, low entropy; `password`: templates and masks only;
  `off`), see spillguard/detect/placeholders.py; `min_entropy`, `allow` (regexes) and `stopwords`
  further reject candidates, as a gitleaks rule's entropy and allowlist do.

A file whose top level has `[[rules]]` instead of `[[rule]]` is a gitleaks configuration and is
translated (spillguard/rules/gitleaks.py).
- `text`: names and postal addresses inside free text (`person_name`, `postal_address`), read by the NER
  pipeline of spillguard/detect/freetext.py in columns that hold prose only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import re
import sys
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from spillguard.cache import read_cached, readings, write_cached
from spillguard.categories import CATEGORIES
from spillguard.detect.checks import CHECKS
from spillguard.detect.freetext import TEXT_KINDS
from spillguard.detect.validators import VALIDATORS
from spillguard.errors import UserError

_KNOWN_KEYS = {
    "id", "category", "description", "value", "boundary", "field", "exclude_field", "requires_field",
    "check", "check_min", "check_max", "validator", "specific", "priority", "ignore_case", "before", "after",
    "examples", "negative_examples", "provider", "placeholder", "min_entropy", "allow", "stopwords", "text",
    "engine_value", "engine_exact_below",
}
PLACEHOLDER_MODES = ("token", "password", "off")
BUILTIN = "builtin:"  # the source prefix of the rules shipped in this package
DEFAULT_BOUNDARY = "[A-Za-z0-9]"
# The boundary of a pattern that closes itself (translated gitleaks rules): the pattern is used as written.
NO_BOUNDARY = "[\\x00]"
# Written inside a character class, "any non-ASCII character". Python's re reads it as is; the byte-level
# Vectorscan database reads it as the bytes of UTF-8 sequences, RE2 as code points (see the *_expression methods).
NON_ASCII = r"\u0080-\U0010FFFF"
# Python's re compiles a class holding that range into a large table (~50 ms for the e-mail rule): for Python the
# class becomes an alternation with a negated ASCII class, which compiles and matches the same characters fast.
_NON_ASCII_CLASS = re.compile(r"\[((?:[^\]\\]|\\.)*?)" + re.escape(NON_ASCII) + r"((?:[^\]\\]|\\.)*)\]")


def _python_classes(pattern: str) -> str:
    return _NON_ASCII_CLASS.sub(lambda m: f"(?:[{m.group(1)}{m.group(2)}]|[^\\x00-\\x7f])", pattern)


# What a pattern needs to be able to consume a newline at all: an escape that can stand for one (\s, \n, \D, \W,
# \x0a, an octal or control escape starting a range), a negated class, the inline DOTALL flag or a control character.
_NEWLINE_SYNTAX = re.compile(r"\\[snDWxuUNtrfv0-7]|\[\^|\(\?[aiLmux]*s|[\x00-\x1f]")


def _accepts_newline(parsed: Any) -> bool:
    """Whether a parsed pattern (re._parser) can consume a newline anywhere outside its look-arounds."""
    c = importlib.import_module("re._constants")  # CPython's own regex parser: no public home, no stubs

    def in_class(items: Any) -> bool:
        negate, hit = False, False
        for op, arg in items:
            if op is c.NEGATE:
                negate = True
            elif op is c.LITERAL:
                hit |= arg == 10
            elif op is c.RANGE:
                hit |= arg[0] <= 10 <= arg[1]
            elif op is c.CATEGORY:
                hit |= arg in (c.CATEGORY_SPACE, c.CATEGORY_NOT_DIGIT, c.CATEGORY_NOT_WORD, c.CATEGORY_LINEBREAK)
        return hit != negate

    for op, arg in parsed:
        if (
            (op is c.LITERAL and arg == 10)
            or (op is c.NOT_LITERAL and arg != 10)
            or (op is c.IN and in_class(arg))
            or (op is c.CATEGORY and arg in (c.CATEGORY_SPACE, c.CATEGORY_NOT_DIGIT, c.CATEGORY_NOT_WORD))
            or (op is c.SUBPATTERN and _accepts_newline(arg[3]))
            or (op is c.BRANCH and any(_accepts_newline(b) for b in arg[1]))
            or (op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT) and _accepts_newline(arg[2]))
            or (op is c.ATOMIC_GROUP and _accepts_newline(arg))
        ):
            return True
    return False


@dataclass(frozen=True, slots=True)
class Example:
    value: str
    field: str | None = None


@dataclass(slots=True)
class Rule:
    id: str
    category: str
    description: str = ""
    value: str | None = None
    boundary: str = DEFAULT_BOUNDARY
    field: str | None = None
    exclude_field: str | None = None
    requires_field: bool = False
    check: str | None = None
    check_min: float | None = None
    check_max: float | None = None
    validator: str | None = None
    specific: bool = False
    priority: int = 50
    ignore_case: bool = False
    before: str | None = None
    after: str | None = None
    text: str | None = None  # a kind of span found in free text (detect/freetext.py TEXT_KINDS)
    # A looser form of `value` for the engine's pass over a column (a bounded repeat the engine runs slowly, left
    # open): its hits are confirmed against `value` before anything uses them (RuleSet._confirmed), except in
    # values shorter than `engine_exact_below` bytes, where the two patterns find the same (built-in rules only:
    # tests/detect/test_engine_value.py holds each claim).
    engine_value: str | None = None
    engine_exact_below: int = 0
    examples: list[Example] = dataclasses.field(default_factory=list)
    negative_examples: list[Example] = dataclasses.field(default_factory=list)
    source: str = ""
    provider: str = ""
    placeholder: str = "off"
    min_entropy: float | None = None
    allow: list[str] = dataclasses.field(default_factory=list)
    stopwords: list[str] = dataclasses.field(default_factory=list)
    # Python's compiled forms, made on first use: a scan runs the value patterns only on the few candidates
    # Vectorscan leaves undecided, and compiling all ~600 patterns up front cost ~0.4 s of every run.
    _re: dict[str, re.Pattern[str] | None] = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

    def _compiled(self, which: str) -> re.Pattern[str] | None:
        try:
            return self._re[which]
        except KeyError:
            pass
        if which == "value":
            value = self.value_source()
            pattern = re.compile(*value) if value is not None else None
            self._re[which] = pattern
            return pattern
        source = {"field": self.field,
                  "exclude_field": self.exclude_field,
                  "allow": "|".join(f"(?:{a})" for a in self.allow) if self.allow else None}[which]
        pattern = re.compile(source) if source is not None else None
        self._re[which] = pattern
        return pattern

    def value_source(self) -> tuple[str, int] | None:
        """The value pattern as Python's re reads it, and its flags (`value_re` uncompiled)."""
        if self.value is None:
            return None
        return self.python_expression(), re.IGNORECASE if self.ignore_case else 0

    @property
    def value_re(self) -> re.Pattern[str] | None:
        return self._compiled("value")

    @property
    def field_re(self) -> re.Pattern[str] | None:
        return self._compiled("field")

    @property
    def exclude_field_re(self) -> re.Pattern[str] | None:
        return self._compiled("exclude_field")

    @property
    def allow_re(self) -> re.Pattern[str] | None:
        return self._compiled("allow")

    @property
    def secret_group(self) -> bool:
        """The pattern names the credential inside a wider match with (?P<secret>...)."""
        return any("(?P<secret>" in (p or "") for p in (self.value, self.before, self.after))

    def span(self, m: re.Match[str]) -> tuple[int, int]:
        """Where the reported value of a match is: the value without its label (`before`/`after`), the `secret`
        group of a credential, else the whole match."""
        if self.labelled:
            return m.span("v")
        return m.span("secret") if self.secret_group else m.span()

    @property
    def candidate_checks(self) -> bool:
        """Checks that need each candidate's exact text (always run on the Python path)."""
        return (
            self.min_entropy is not None or bool(self.allow) or bool(self.stopwords)
            or self.placeholder == "password" or (self.placeholder == "token" and self.secret_group)
        )

    @property
    def is_value_rule(self) -> bool:
        return self.value is not None

    @property
    def labelled(self) -> bool:
        """The match includes a label around the value; the span is the group `v`."""
        return self.before is not None or self.after is not None

    def hyperscan_expression(self, utf8: bool = False) -> bytes:
        """The pattern as the engine runs it; `utf8`: for its UTF-8 mode, where "any non-ASCII character" is a code
        point range (in byte mode, the bytes of UTF-8 sequences)."""
        assert self.value is not None
        non_ascii = r"\x{80}-\x{10FFFF}" if utf8 else r"\x80-\xff"
        # (byte mode, for columns that are not UTF-8, keeps `value`: confirming hits there would need RE2 over bytes)
        value = (self.engine_value if utf8 and self.engine_value is not None else self.value).replace(NON_ASCII, non_ascii)
        if self.boundary == NO_BOUNDARY:
            return f"(?:{value})".encode()
        inner = self.boundary[1:-1].replace(NON_ASCII, non_ascii)
        # The engine's buffer ends every value with "\n", which is never inside a boundary class, so
        # the right side can consume one delimiter character instead of needing a look-ahead.
        if self.labelled:
            value = f"(?:{self.before or ''})(?:{value})(?:{self.after or ''})"
        return f"(?:^|[^{inner}])(?:{value})[^{inner}]".encode()

    def line_expression(self) -> bytes:
        """The pattern matching a whole value and the newline after it in the engine's buffer (UTF-8 mode)."""
        return ("^(?:" + self.re2_value() + r")\n").encode()  # (the UTF-8 mode spells classes as RE2 does)

    def python_value(self) -> str:
        """The value pattern as Python's re reads it (without boundary or labels)."""
        return _python_classes(self.value or "")

    def python_boundary(self) -> str:
        """The boundary class as Python's re reads it (a character beside a match that may not be there)."""
        return _python_classes(self.boundary)

    def re2_value(self) -> str:
        """The value pattern for Arrow's RE2 kernels (whole-value checks)."""
        assert self.value is not None
        return self.value.replace(NON_ASCII, r"\x{80}-\x{10FFFF}")

    def re2_boundary_class(self) -> str:
        """The inside of the boundary class for RE2."""
        return self.boundary[1:-1].replace(NON_ASCII, r"\x{80}-\x{10FFFF}")

    def re2_expression(self) -> str:
        """Whether a value holds a match, for RE2, as the engine's UTF-8 pass with `value` decides it: ^ after
        every newline (its multi-line mode), the right boundary met by a character or the value's end."""
        inner = self.re2_boundary_class()
        flags = "(?mi)" if self.ignore_case else "(?m)"
        return f"{flags}(?:^|[^{inner}])(?:{self.re2_value()})(?:[^{inner}]|$)"

    def python_expression(self) -> str:
        if self.boundary == NO_BOUNDARY:
            return f"(?:{_python_classes(self.value or '')})"
        value, boundary = _python_classes(self.value or ""), _python_classes(self.boundary)
        if self.labelled:  # the reported span is the group `v`
            return f"(?<!{boundary})(?:{self.before or ''})(?P<v>{value})(?:{self.after or ''})(?!{boundary})"
        return f"(?<!{boundary})(?:{value})(?!{boundary})"

    def spans_lines(self) -> bool:
        """Whether a match can hold a newline (`Fax:\\n+1 ...`, `password =\\n...`): in the engine's buffer of
        values joined by newlines such a match can run from one value into the next, so its hits depend on the
        neighbours and are decided value by value in Python (every such rule has a validator or named group)."""
        if not self.is_value_rule:
            return False
        expression = self.python_expression()
        if _NEWLINE_SYNTAX.search(expression) is None:
            return False  # (most rules: parsing every pattern would cost ~30 ms a start)
        parsed = importlib.import_module("re._parser").parse(expression)
        return bool(parsed.state.flags & re.DOTALL) or _accepts_newline(parsed)

    def field_matches(self, path: str) -> bool:
        return self.field_re is not None and self.field_re.search(path) is not None

    def field_excluded(self, path: str) -> bool:
        return self.exclude_field_re is not None and self.exclude_field_re.search(path) is not None


def _example(raw: Any, where: str) -> Example:
    if isinstance(raw, str):
        return Example(raw)
    if isinstance(raw, dict) and isinstance(raw.get("value"), str):
        return Example(raw["value"], raw.get("field"))
    raise UserError(f"{where}: an example must be a string or {{value = ..., field = ...}}")


def _rule_from_table(raw: dict[str, Any], source: str, need_examples: bool = True) -> Rule:
    where = f"{source}: rule {raw.get('id', '?')!r}"
    unknown = set(raw) - _KNOWN_KEYS
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; see the rule format in the README")
    for key in ("id", "category"):
        if not isinstance(raw.get(key), str):
            raise UserError(f"{where}: '{key}' is required and must be a string")
    if raw["category"] not in CATEGORIES:
        raise UserError(f"{where}: category {raw['category']!r} is not one of {', '.join(CATEGORIES)}")
    if "value" not in raw and "check" not in raw and "text" not in raw:
        raise UserError(f"{where}: a rule needs a 'value' pattern, a 'check' on a 'field' or a free-'text' kind")
    if "text" in raw and (raw["text"] not in TEXT_KINDS or raw["text"] != raw["category"] or "value" in raw or "check" in raw):
        raise UserError(f"{where}: 'text' is one of {', '.join(TEXT_KINDS)}, equal to the category, without 'value' or 'check'")
    if "check" in raw and raw["check"] not in CHECKS:
        raise UserError(f"{where}: check {raw['check']!r} is not one of {', '.join(sorted(CHECKS))}")
    if "check" in raw and "field" not in raw:
        raise UserError(f"{where}: a 'check' rule needs a 'field' pattern")
    if raw.get("validator") is not None and raw["validator"] not in VALIDATORS:
        raise UserError(f"{where}: validator {raw['validator']!r} is not one of {', '.join(sorted(VALIDATORS))}")
    rule = Rule(
        id=raw["id"],
        category=raw["category"],
        description=raw.get("description", ""),
        value=raw.get("value"),
        boundary=raw.get("boundary", DEFAULT_BOUNDARY),
        field=raw.get("field"),
        exclude_field=raw.get("exclude_field"),
        requires_field=bool(raw.get("requires_field", False)),
        check=raw.get("check"),
        check_min=raw.get("check_min"),
        check_max=raw.get("check_max"),
        validator=raw.get("validator"),
        specific=bool(raw.get("specific", False)),
        priority=int(raw.get("priority", 50)),
        ignore_case=bool(raw.get("ignore_case", False)),
        before=raw.get("before"),
        after=raw.get("after"),
        text=raw.get("text"),
        engine_value=raw.get("engine_value"),
        engine_exact_below=int(raw.get("engine_exact_below", 0)),
        examples=[_example(e, where) for e in raw.get("examples", [])],
        negative_examples=[_example(e, where) for e in raw.get("negative_examples", [])],
        source=source,
        provider=str(raw.get("provider", "")),
        placeholder=str(raw.get("placeholder", "token" if raw["category"] == "secret" and "value" in raw else "off")),
        min_entropy=float(raw["min_entropy"]) if raw.get("min_entropy") is not None else None,
        allow=[str(a) for a in raw.get("allow", [])],
        stopwords=[str(w).lower() for w in raw.get("stopwords", [])],
    )
    if rule.placeholder not in PLACEHOLDER_MODES:
        raise UserError(f"{where}: placeholder {rule.placeholder!r} is not one of {', '.join(PLACEHOLDER_MODES)}")
    if need_examples and not rule.examples:
        raise UserError(f"{where}: every rule needs at least one entry in 'examples'")
    if not (rule.boundary.startswith("[") and rule.boundary.endswith("]")):
        raise UserError(f"{where}: 'boundary' must be a character class like [A-Za-z0-9]")
    if rule.engine_value is not None and (rule.value is None or rule.labelled or rule.boundary == NO_BOUNDARY):
        raise UserError(f"{where}: 'engine_value' is a looser 'value' for a rule with a value, a boundary and no before/after")
    if rule.engine_value is not None and (_NEWLINE_SYNTAX.search(rule.engine_value) or rule.spans_lines()):
        raise UserError(f"{where}: 'engine_value' and 'value' must not match a newline (hits are confirmed value by value)")
    if rule.engine_exact_below and not source.startswith(BUILTIN):
        raise UserError(f"{where}: 'engine_exact_below' is for the built-in rules; leave it out (every hit is confirmed)")
    if not source.startswith(BUILTIN):  # the user's rules are checked now; the built-in ones by the tests
        try:
            for which in ("value", "field", "exclude_field", "allow"):
                rule._compiled(which)
        except re.error as exc:
            raise UserError(f"{where}: invalid pattern: {exc}") from None
        if rule.engine_value is not None:
            _check_engine_value(rule, where)
    return rule


def _check_engine_value(rule: Rule, where: str) -> None:
    """A looser engine pattern must flag every value the rule's own does: held to the rule's examples (a narrower
    one would lose matches unseen)."""
    source = dataclasses.replace(rule, value=rule.engine_value, engine_value=None).value_source()
    assert source is not None
    try:
        loose = re.compile(*source)
    except re.error as exc:
        raise UserError(f"{where}: invalid engine_value: {exc}") from None
    import pyarrow as pa
    import pyarrow.compute as pc

    try:  # the engine confirms the looser pattern's hits with `value` as RE2 reads it
        pc.match_substring_regex(pa.array(["x"]), rule.re2_expression())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise UserError(f"{where}: with an engine_value, 'value' must also suit RE2 ({exc})") from None
    exact = rule.value_re
    for example in [*rule.examples, *rule.negative_examples]:
        if exact is not None and exact.search(example.value) and not loose.search(example.value):
            raise UserError(f"{where}: engine_value does not match the example {example.value!r} that value matches; it must match all that value does")


def load_rule_file(path: str | Path) -> list[Rule]:
    """A spillguard rule file (`[[rule]]`) or a gitleaks configuration (`[[rules]]`), as rules."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: rule file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read rule file ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from None
    if "rules" in doc and "rule" not in doc:
        from spillguard.rules.gitleaks import check_engine, translate

        rules = [_rule_from_table(t, str(path), need_examples=False) for t in translate(doc, str(path))]
        check_engine(rules, str(path))
        return rules
    return _rules_from_doc(doc, str(path))


def _rules_from_doc(doc: dict[str, Any], source: str) -> list[Rule]:
    tables = doc.get("rule")
    if not isinstance(tables, list) or not tables:
        raise UserError(f"{source}: no [[rule]] tables found")
    return [_rule_from_table(t, source) for t in tables]


_CACHE_FORMAT = b"1"  # changed when the cached form of the parsed files changes


def spans_lines_of(rules: Sequence[Rule]) -> list[bool]:
    """Rule.spans_lines of each rule, kept in the cache under a digest of their patterns: reading the patterns that
    might hold a newline with Python's parser is ~15 ms of every scan's start, loading the answers well under 1."""
    key = ("spans_lines", sys.version_info[:2], [r.python_expression() if r.is_value_rule else None for r in rules])
    return readings("rules", key, rules, Rule.spans_lines, bool, bool)


def builtin_rules() -> list[Rule]:
    rules: list[Rule] = []
    for name, doc in _builtin_docs():
        rules.extend(_rules_from_doc(doc, f"{BUILTIN}{name}"))
    return rules


def _builtin_docs() -> list[tuple[str, dict[str, Any]]]:
    """The built-in rule files, parsed. Parsing their TOML is ~40 ms of every command's start; the parsed tables
    are kept as JSON (~2 ms to read) in the cache under a digest of the files' bytes, so an edited file is
    parsed again. A table JSON would not give back as parsed (a TOML date) is never cached."""
    files = [
        (entry.name, entry.read_bytes())
        for entry in sorted(resources.files(__package__).iterdir(), key=lambda p: p.name)
        if entry.name.endswith(".toml")
    ]
    digest = hashlib.sha256(_CACHE_FORMAT)
    for name, data in files:
        digest.update(b"%s\0%d\0" % (name.encode(), len(data)))
        digest.update(data)
    cached = read_cached("rules", f"{digest.hexdigest()[:32]}.json")
    if cached is not None:
        try:
            return [(name, doc) for name, doc in orjson.loads(cached)]
        except (orjson.JSONDecodeError, TypeError, ValueError):
            pass  # a damaged entry: parsed again and rewritten
    docs = [(name, tomllib.loads(data.decode("utf-8"))) for name, data in files]
    try:
        encoded = orjson.dumps(docs)
    except TypeError:
        return docs
    if [tuple(d) for d in orjson.loads(encoded)] == docs:
        write_cached("rules", f"{digest.hexdigest()[:32]}.json", encoded)
    return docs


def select_rules(
    extra_files: Iterable[str | Path] = (),
    only: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
) -> list[Rule]:
    """Built-in rules plus user rule files, filtered by rule id or category (`--only` / `--except`)."""
    rules = builtin_rules()
    for path in extra_files:
        rules.extend(load_rule_file(path))
    seen: dict[str, str] = {}
    for rule in rules:
        if rule.id in seen:
            raise UserError(f"{rule.source}: rule id {rule.id!r} is already defined in {seen[rule.id]}")
        seen[rule.id] = rule.source
    names = {r.id for r in rules} | set(CATEGORIES)
    for label, wanted in (("--only", only), ("--except", exclude)):
        for name in wanted or ():
            if name not in names:
                raise UserError(f"{label} {name}: no rule or category of that name (see `spillguard rules`)")
    if only:
        keep = set(only)
        rules = [r for r in rules if r.id in keep or r.category in keep]
    if exclude:
        drop = set(exclude)
        rules = [r for r in rules if r.id not in drop and r.category not in drop]
    if not rules:
        raise UserError("no rules left after --only/--except; widen the selection")
    return rules


def rule_listing(extra_files: Iterable[str | Path] = (), categories: Iterable[str] | None = None) -> list[tuple[str, str, str, str, str]]:
    """(provider, id, category, how it matches, description) of each rule, for `spillguard rules`: by
    category, then provider, then id. An unknown category is a UserError naming the known ones."""
    wanted = list(categories or [])
    for name in wanted:
        if name not in CATEGORIES:
            raise UserError(f"--category {name}: not a category; use one of {', '.join(CATEGORIES)}")
    rows = []
    for r in select_rules(extra_files):
        if wanted and r.category not in wanted:
            continue
        kind = "value+field" if r.is_value_rule and r.requires_field else "value" if r.is_value_rule else "free text" if r.text else "field"
        rows.append((r.provider or "-", r.id, r.category, kind, r.description))
    order = list(CATEGORIES)
    rows.sort(key=lambda row: (order.index(row[2]), row[0].lower(), row[1]))
    return rows
