"""The detection engine: Arrow columns in, per-rule matched value indices out.

Value rules run together in one Vectorscan database over each column joined into one buffer
("\n" between values), so a column costs one pass whatever the number of rules. Python runs only
on candidates: validators (Luhn, mod 97, phonenumbers, ...) and overlap resolution inside values
that more than one rule hit. Field-only rules run vectorised checks on columns whose name matches.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import spillguard._native as _native
from spillguard.categories import CLAIMING_CATEGORIES
from spillguard.detect.alphabet import (
    EVERY_RUN,
    HIGH,
    NEWLINE,
    NO_RUNS,
    RequirementTable,
    WholeForm,
    class_chars,
    linear_program,
    match_chars,
    requirements,
    value_bytes,
    value_runs,
    whole_forms,
    whole_linear,
)
from spillguard.detect.arrays import (
    as_text,
    native_column,
    string_buffers,
    take,
    unique_inverse,
    unique_sorted,
)
from spillguard.detect.checks import run_check
from spillguard.detect.fieldnames import canonical_path
from spillguard.detect.flatten import normalise_path
from spillguard.detect.freetext import find_in_column
from spillguard.detect.matcher import (
    CompileError,
    Matcher,
    cached_patterns,
    compile_patterns,
    record_spent,
    rule_flags,
    scan_distinct,
    scan_text,
    spent_before,
    text_bytes,
    valid_utf8,
)
from spillguard.detect.placeholders import MARKERS, accept_secret, low_entropy_prefix
from spillguard.detect.validators import CONTEXT_VALIDATORS, IPV4_CONTEXT, VALIDATORS, VECTOR_VALIDATORS
from spillguard.rules import NO_BOUNDARY, Rule, spans_lines_of

_CACHE_LIMIT = 200_000
# Distinct values are found by hashing (~60-100 ns a value) and their matches handed back to every row holding them,
# to save Vectorscan's ~100-200 ns on each repeat: worth it when the distinct values are under a quarter of the
# column's bytes (a column of mostly empty rows and distinct tokens is not), measured again every _REMEASURE columns
# of a field that was not.
_DISTINCT_MIN = 512
_DISTINCT_SAMPLE = 2048
_DISTINCT_SHARE = 0.25
_REMEASURE = 8
# A column is scanned with a database of only the rules its bytes let match (alphabet.py) once that database exists:
# found in the compile cache, or compiled when scanning with wider databases in its place has cost, over this run and
# earlier ones on the machine, as much as compiling it is estimated to (seconds per rule, Vectorscan's UTF-8 mode
# here). Like renting until renting has cost the price of buying: never more than twice the best choice made with
# hindsight, whether the field is scanned once or every night.
_COMPILE_SECONDS_PER_RULE = 0.04
_RECORD_SHARE = 0.2
_FAR_NARROWER = 4  # ... and compiled at once, while the wider one is not compiled yet, when it has this many times fewer rules
_POSSIBLE_MEMO = 4096
# A set of value rules lacking more than this share of the common ones (excluded under its field) gets a database of
# its own instead of the common one with those rules' hits dropped (see Split).
_SPLIT_MISSING = 8
_NARROW_MIN_BYTES = 1 << 16  # a smaller column's scan is too short to gain more than looking for its database costs,
# unless its field has been measured already (the tail block of a file's range) or its small columns add up to as much
# A field's columns are narrowed by their runs too (alphabet.Run) while that keeps at most this share of the rules
# their bytes let match: measuring a column's runs costs about a tenth of scanning it with a small database.
_RUNS_KEEP = 0.6
# A field whose values are mostly each wholly one rule's match (a column of bcrypt hashes or of Alexa tokens) learns
# that rule as its owner from a scanned column; later columns give the owner every value it wholly matches and no rule
# able to win over it hits, and scan only the rest (RuleSet._owned). Worth trying on columns of this many values, kept
# while the owner holds at least this share of them and the owned way does not cost a value _OWNER_MARGIN times the
# full scan's.
_OWNED_MIN = 1024
_OWNED_SHARE = 0.5
_NEWLINE_TABLE = bytes(1 if b == 10 else 0 for b in range(256))  # (_native.any_byte: which values hold a newline)
_OWNER_RETRY = 64  # columns a field scans in full before it tries an owner again that cost more than a full scan
_WHOLE_RETRY = 16  # a field's whole-value checks try the dearer of RE2 and the line pass again this often (_whole_values)
_OWNER_MARGIN = 1.2  # (a column's seconds vary by a tenth or two: an owner goes when clearly the dearer way)


def _mean(before: float | None, now: float) -> float:
    """A running mean of per-value costs, the latest column weighing half."""
    return now if before is None else (before + now) / 2


def _verdict(verdict: np.ndarray | tuple[np.ndarray, np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    return verdict if isinstance(verdict, tuple) else (verdict, np.ones(n, bool))


@dataclass(slots=True)
class FieldPlan:
    """Which rules apply to one field path, decided once per path."""

    allowed_value_rules: np.ndarray  # bool per value rule index
    named_rules: frozenset[int]  # rule indices (into RuleSet.rules) whose field pattern matches
    check_rules: list[int]
    value_rules: tuple[int, ...] = ()  # the allowed value rules, in order: one Vectorscan database per distinct set
    text_rules: tuple[int, ...] = ()  # free-text rules (names, addresses): run only if the column holds prose
    # Learnt from the field's columns as they come: the share of its bytes in distinct values when last measured, and
    # how many columns were scanned row by row since (see scan_distinct below and RuleSet._raw_hits).
    distinct_share: float | None = None
    since_measured: int = 0
    present: int = 0  # every byte the field's columns have held so far (alphabet.present_bytes)
    small_bytes: int = 0  # the bytes of its columns under _NARROW_MIN_BYTES while it was not measured yet
    runs: bytes = NO_RUNS  # the longest run of each class in them, while measured (RuleSet._column_facts)
    # Their bytes without the newline they are scanned between, and their fewest and most characters (non-empty
    # values, while measured: RuleSet._whole_lengths).
    found: int = 0
    shortest: int = 1 << 62
    longest: int = 0
    # The field's owner rule (-1: none; see RuleSet._owned), and the CPU seconds a value of its columns costs scanned
    # in full and the owned way (running means; None: not measured yet); `owner_wait`: columns left before an owner
    # is learnt again.
    owner: int = -1
    full_cost: float | None = None
    owned_cost: float | None = None
    owner_wait: int = 0
    empty_hits: bool | None = None  # whether a rule of the set matches in an empty value (RuleSet._matches_empty)
    # Per vectorised-validator rule: a value's seconds of the whole-value check by RE2 and by the line pass (running
    # means), and the checks made since the field measured both (RuleSet._whole_values).
    whole_costs: dict[int, list[float | None]] = field(default_factory=dict)
    whole_checks: int = 0

    def scan_distinct(self, column: pa.Array) -> bool:
        """Whether to scan this column's distinct values instead of its rows: while the field's values repeat
        (distinct values under _DISTINCT_SHARE of its bytes). The share is measured on a sample of the field's
        first column (a small sample repeats less than the whole: the estimate errs towards scanning every row),
        exactly on each column scanned by distinct values, and again on a sample every _REMEASURE-th column of a
        field that did not repeat, to notice when it starts to."""
        if len(column) < _DISTINCT_MIN:
            return False
        if self.distinct_share is None or self.since_measured >= _REMEASURE:
            sample = column.slice(0, _DISTINCT_SAMPLE)
            self.measured(text_bytes(pc.unique(sample)), text_bytes(sample))
        else:
            self.since_measured += 1
        return self.distinct_share is not None and self.distinct_share < _DISTINCT_SHARE

    def measured(self, distinct_bytes: int, total_bytes: int) -> None:
        self.distinct_share = distinct_bytes / max(total_bytes, 1)
        self.since_measured = 0


@dataclass(slots=True)
class ColumnHits:
    """Value indices hit per rule index, plus the matched spans for values that needed them."""

    by_rule: dict[int, np.ndarray] = field(default_factory=dict)
    spans: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)  # (rule, value) -> first span
    # With want_spans: every span of a rule in a value (two e-mails in one value are two matches).
    all_spans: dict[tuple[int, int], list[tuple[int, int]]] = field(default_factory=dict)
    # Indices of the prose values the free-text rules could not read (the text extra is not installed).
    unchecked: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


@dataclass(slots=True)
class Narrowed:
    """A narrower rule set than a field plan's (the rules a column's bytes let match): its database once it exists,
    else the seconds spent scanning with wider databases in its place, in this run and earlier ones on this machine
    (what compiling it is weighed against; `recorded`: as last written to the cache)."""

    patterns: tuple[list[bytes], list[int], tuple[int, ...]]
    matcher: Matcher | None = None
    spent: float = 0.0
    recorded: float = 0.0
    refused: bool = False  # the engine refused to compile it: rented for ever

    @classmethod
    def open(cls, patterns: tuple[list[bytes], list[int], tuple[int, ...]], matcher: Matcher | None = None) -> Narrowed:
        """The entry of a database: the one at hand (in this process or the disk cache), else the seconds earlier
        runs on this machine spent without it."""
        entry = cls(patterns, matcher if matcher is not None else cached_patterns(*patterns))
        if entry.matcher is None:
            entry.spent = entry.recorded = spent_before(*patterns)
        return entry

    def due(self) -> Matcher | None:
        """The database, compiled now if the seconds spent without it have reached its estimated compile; None while
        they have not, or when the engine refuses it."""
        if self.matcher is None and not self.refused and self.spent >= self.compile_estimate:
            try:
                self.matcher = compile_patterns(*self.patterns)
            except CompileError:
                self.refused = True
        return self.matcher

    @property
    def compile_estimate(self) -> float:
        return _COMPILE_SECONDS_PER_RULE * len(self.patterns[0])

    def charge(self, seconds: float) -> None:
        self.spent += seconds
        if self.spent - self.recorded >= _RECORD_SHARE * self.compile_estimate:  # a few writes per compile's worth of scanning
            record_spent(*self.patterns, self.spent)
            self.recorded = self.spent


@dataclass(frozen=True, slots=True)
class Split:
    """How a set of value rules is scanned in UTF-8 mode: as parts, each one database (the common rules, which every
    field's set mostly is, then the set's own field-only rules), the hits of common rules the set lacks dropped
    (`keep`: per rule index and the placeholder markers, or None when every hit is the set's). Matching is per
    pattern, so the parts find what one database of the set finds; and fields share one database, narrowed by
    bytes or not, instead of each set compiling its own (seconds each on a machine's first scans)."""

    parts: tuple[tuple[int, ...], ...]
    keep: np.ndarray | None


# A part as a column is scanned with it: its rules, the rules its database holds (the same, or the narrower set that
# finds the same) and that narrower set's entry while the wider database stands in for it (charged the seconds).
PartScan = tuple[tuple[int, ...], tuple[int, ...], Narrowed | None]


class FieldPatterns:
    """Which rules' `field` and `exclude_field` patterns match a field path. Planning tests every rule against
    every new path; compiling the ~90 distinct patterns with Python's re cost ~0.07 s of each process's start.
    They form one Vectorscan database instead (cached on disk like the value databases), run once per path; a
    path Vectorscan would read differently (non-ASCII: Unicode classes; a newline: `$`) takes Python's re."""

    _KINDS = ("field", "exclude_field")

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = rules
        patterns: dict[str, int] = {}
        self.ids: dict[str, list[int]] = {kind: [] for kind in self._KINDS}  # per rule: pattern id or -1
        for rule in rules:
            for kind in self._KINDS:
                source = getattr(rule, kind)
                self.ids[kind].append(-1 if source is None else patterns.setdefault(source, len(patterns)))
        self.db: Matcher | None = None
        self.python_only: set[int] = set()  # patterns Vectorscan refuses (an embedded ^): Python's re decides them
        todo = list(patterns)
        while todo and self.db is None:
            try:
                ids = [patterns[p] for p in todo]
                self.db = compile_patterns([p.encode() for p in todo], [int(_native.FLAG_ALLOWEMPTY)] * len(todo), ids)
            except CompileError as exc:
                if exc.index < 0:
                    self.python_only = set(patterns.values())
                    break
                self.python_only.add(patterns[todo.pop(exc.index)])

    def matching(self, paths: tuple[str, ...]) -> list[frozenset[int]] | None:
        """The pattern ids matching each path, or None where Python's re must decide."""
        if self.db is None or not all(p.isascii() and "\n" not in p for p in paths):
            return None
        # One scan per path: the patterns' `$` (not multi-line) holds only at the end of the scanned text.
        return [frozenset(scan_text(self.db, pa.array([path], pa.string()))[0].tolist()) for path in paths]

    def matches(self, i: int, kind: str, paths: tuple[str, ...], hits: list[frozenset[int]] | None) -> bool:
        pid = self.ids[kind][i]
        if pid < 0:
            return False
        if hits is not None and pid not in self.python_only:
            return any(pid in found for found in hits)
        rule = self.rules[i]
        test = rule.field_matches if kind == "field" else rule.field_excluded
        return any(test(path) for path in paths)


class RuleSet:
    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = list(rules)
        self.value_rule_ids = [i for i, r in enumerate(self.rules) if r.is_value_rule]
        self._priority = np.array([r.priority for r in self.rules], dtype=np.int64)
        self._needs_python = np.array([r.validator is not None or r.candidate_checks for r in self.rules], dtype=bool)
        # Token rules whose placeholders the MARKERS pattern (one more expression in each database) flags.
        self._token_rule = np.array([r.is_value_rule and r.placeholder == "token" for r in self.rules] + [False], dtype=bool)
        self._marker_id = len(self.rules)
        categories = sorted({r.category for r in self.rules})
        self._category_code = np.array([categories.index(r.category) for r in self.rules], dtype=np.int64)
        self._validate_cache: dict[tuple[int, str] | tuple[int, str, int], bool] = {}
        self._dbs: dict[tuple[tuple[int, ...], bool], Matcher] = {}
        self._requirements: RequirementTable | None = None  # what a match of each value rule needs of a column's bytes
        self._held: dict[tuple[int, bytes], bytes] = {}  # per set of bytes and runs a column holds: _holding
        self._possible: dict[tuple[tuple[int, ...], int, bytes, tuple[int, int, int] | None], tuple[int, ...]] = {}
        self._forms: list[WholeForm | None] | None = None  # per rule index: what a whole-value match takes (_whole_forms)
        self._form_fits: dict[tuple[tuple[tuple[int, ...], ...], int], bool] = {}
        self._narrowed: dict[tuple[int, ...], Narrowed] = {}
        # The value rules every field runs (one database shared by all fields) and those that run only under a field
        # named for them; see _split. Both compiled now, so a pattern the engine rejects is named before any scan.
        self._common = tuple(i for i in self.value_rule_ids if not self.rules[i].requires_field)
        self._splits: dict[tuple[int, ...], Split] = {}
        try:
            for part in (self._common, tuple(i for i in self.value_rule_ids if self.rules[i].requires_field)):
                if part:
                    self._compile(part)
        except Exception:
            for rid in self.value_rule_ids:  # name the rule whose pattern the engine rejects
                self._compile((rid,))
            raise
        # Whole-value forms (RE2) let validators run vectorised when a candidate is the entire value.
        self._whole: dict[int, str] = {}
        self._inner: dict[int, str] = {}  # first match inside longer text, for context-free validators
        for rid in self.value_rule_ids:
            rule = self.rules[rid]
            if rule.validator in VECTOR_VALIDATORS and not rule.labelled:
                pattern = ("(?i)" if rule.ignore_case else "") + f"^(?:{rule.re2_value()})$"
                try:
                    pc.match_substring_regex(pa.array(["x"]), pattern)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    continue
                self._whole[rid] = pattern
                if rule.validator not in CONTEXT_VALIDATORS:
                    inner_class = rule.re2_boundary_class()
                    self._inner[rid] = (
                        ("(?i)" if rule.ignore_case else "") + f"(?:^|[^{inner_class}])(?P<m>{rule.re2_value()})(?:[^{inner_class}]|$)"
                    )
        # Rules whose matches can run across a value's end: scanned over every row even where a field's distinct
        # values are scanned once (their hits depend on the neighbours, which distinct values do not keep).
        self._spans_lines = np.array([*spans_lines_of(self.rules), False], dtype=bool)
        self._spans_lines_bytes = self._spans_lines[: len(self.rules)].astype(np.uint8).tobytes()
        self._spanning: dict[tuple[int, ...], tuple[int, ...]] = {}  # per database: its rules that span lines
        # Rules the UTF-8 pass runs with a looser `engine_value`: their hits confirmed against `value` (RE2) in values
        # of at least `engine_exact_below` bytes (_confirmed).
        self._loose = np.zeros(len(self.rules) + 1, bool)
        self._confirm: dict[int, tuple[str, int]] = {}
        for rid in self.value_rule_ids:
            rule = self.rules[rid]
            if rule.engine_value is not None:
                self._loose[rid] = True
                self._confirm[rid] = (rule.re2_expression(), rule.engine_exact_below)
        self._fields = FieldPatterns(self.rules)
        self._can_own_memo: dict[int, bool] = {}
        self._linear: dict[int, bytes | None] = {}  # per value rule: its whole-value program (alphabet.linear_program)
        self._rival_sets: dict[tuple[tuple[int, ...], int, int], tuple[int, ...]] = {}
        self._owner_dbs: dict[tuple[int, tuple[int, ...]], Narrowed] = {}  # per owner and rivals (_owner_database)
        self._line_dbs: dict[int, Narrowed] = {}  # per vectorised-validator rule: its whole-line pattern (_whole_values)
        self.plan = lru_cache(maxsize=65536)(self._plan)

    def _compile(self, wanted: tuple[int, ...], utf8: bool = True) -> Matcher:
        """The database of some value rules (plus the placeholder markers when a token rule is among them), in
        UTF-8 mode for text or in byte mode for columns that are not valid UTF-8 (matcher.rule_flags)."""
        cached = self._dbs.get((wanted, utf8))
        if cached is not None:
            return cached
        try:
            matcher = compile_patterns(*self._patterns(wanted, utf8))
        except CompileError as exc:
            if len(wanted) > 1:
                raise
            from spillguard.errors import UserError

            r = self.rules[wanted[0]]
            raise UserError(f"{r.source}: rule {r.id!r}: pattern not supported by the engine ({exc.message})") from None
        self._dbs[(wanted, utf8)] = matcher
        return matcher

    def _patterns(self, wanted: tuple[int, ...], utf8: bool, markers: bool = False) -> tuple[list[bytes], list[int], tuple[int, ...]]:
        """The expressions, flags and ids of the database of some value rules (see _compile), with the placeholder
        markers when a token rule is among them or `markers` asks for them."""
        rule_ids = wanted
        exprs = [self.rules[i].hyperscan_expression(utf8) for i in rule_ids]
        flags = [rule_flags(self.rules[i].ignore_case, utf8) for i in rule_ids]
        if markers or self._token_rule[list(rule_ids)].any():
            exprs.append(MARKERS.encode())
            flags.append(rule_flags(ignore_case=False, utf8=utf8))
            rule_ids = (*rule_ids, self._marker_id)
        return exprs, flags, rule_ids

    def _available(self, wanted: tuple[int, ...]) -> bool:
        """Whether the UTF-8 database of some value rules is at hand (in this process or the disk cache)."""
        return (wanted, True) in self._dbs or cached_patterns(*self._patterns(wanted, True)) is not None

    def _holding(self, present: int, runs: bytes = EVERY_RUN) -> bytes:
        """Per rule index, whether a column holding the bytes `present` and the longest runs `runs` lets the rule
        match (1 or 0; alphabet.py, every value rule's requirement read once, or loaded from the cache)."""
        key = (present, runs)
        held = self._held.get(key)
        if held is None:
            if self._requirements is None:
                sources = [self.rules[rid].value_source() or ("", 0) for rid in self.value_rule_ids]
                self._requirements = RequirementTable(requirements(sources))
            flags = np.zeros(len(self.rules), np.uint8)
            flags[self.value_rule_ids] = self._requirements.holding(present, runs)
            held = flags.tobytes()
            if len(self._held) >= _POSSIBLE_MEMO:
                self._held.clear()
            self._held[key] = held
        return held

    def _possible_rules(
        self, rule_ids: tuple[int, ...], present: int, runs: bytes, whole: tuple[int, int, int] | None = None
    ) -> tuple[int, ...]:
        """The rules of `rule_ids` a column holding the bytes `present` and the runs `runs` lets match; with `whole`
        (its value bytes, fewest and most characters of a non-empty value), less the rules whose boundary class holds
        every one of its bytes (so a match would be a whole value) when no branch fits (alphabet.WholeForm)."""
        key = (rule_ids, present, runs, whole)
        possible = self._possible.get(key)
        if possible is None:
            held = self._holding(present, runs)
            possible = tuple(rid for rid in rule_ids if held[rid])
            if whole is not None:
                found, shortest, longest = whole
                forms = self._whole_forms()
                possible = tuple(
                    rid for rid in possible
                    if (form := forms[rid]) is None or found & ~form.boundary or form.allows(present, runs, shortest, longest)
                )
            if len(self._possible) >= _POSSIBLE_MEMO:
                self._possible.clear()
            self._possible[key] = possible
        return possible

    def _whole_forms(self) -> list[WholeForm | None]:
        """Per rule index, its WholeForm: for value rules matched as written (no labels, no looser engine pattern, no
        match across lines, a boundary), read once or loaded from the cache."""
        if self._forms is None:
            eligible = [
                r.is_value_rule and not r.labelled and r.engine_value is None and r.boundary != NO_BOUNDARY and not self._spans_lines[i]
                for i, r in enumerate(self.rules)
            ]
            flags = [re.IGNORECASE if r.ignore_case else 0 for r in self.rules]
            self._forms = whole_forms(
                [(r.python_value(), r.python_boundary(), f) if ok else None for r, ok, f in zip(self.rules, eligible, flags, strict=True)]
            )
        return self._forms

    def _whole_lengths(self, filled: pa.Array, plan: FieldPlan, parts: tuple[tuple[int, ...], ...], found: int) -> tuple[int, int, int] | None:
        """(value bytes, fewest and most characters of a non-empty value) of the field's columns so far with this one's
        (FieldPlan.found, shortest, longest), measured when the field's bytes `found` are all in some rule's boundary
        class (_possible_rules leaves the rule out when its match, a whole value, fits no length); else None."""
        key = (parts, found)
        fits = self._form_fits.get(key)
        if fits is None:
            forms = self._whole_forms()
            fits = bool(found) and any((form := forms[r]) is not None and not found & ~form.boundary for part in parts for r in part)
            if len(self._form_fits) >= _POSSIBLE_MEMO:
                self._form_fits.clear()
            self._form_fits[key] = fits
        if not fits:
            return None
        lengths = np.diff(string_buffers(filled)[0])
        lengths = lengths[lengths > 0]
        shortest, longest = plan.shortest, plan.longest
        if lengths.size:  # (this column's lengths always in, whatever another thread writes meanwhile)
            shortest, longest = min(shortest, int(lengths.min())), max(longest, int(lengths.max()))
            plan.shortest, plan.longest = min(plan.shortest, shortest), max(plan.longest, longest)
        return found, shortest, longest

    def _runs_pay(self, parts: tuple[tuple[int, ...], ...], present: int, runs: bytes) -> bool:
        """Whether runs such as `runs` leave enough of the rules of `parts` that a column's bytes `present` let match
        out of its scan (at most _RUNS_KEEP of them kept) to pay for measuring a column's runs."""
        kept = sum(len(self._possible_rules(part, present, runs)) for part in parts)
        return kept <= _RUNS_KEEP * sum(len(self._possible_rules(part, present, EVERY_RUN)) for part in parts)

    def _column_facts(self, filled: pa.Array, plan: FieldPlan | None, parts: tuple[tuple[int, ...], ...]) -> tuple[int, bytes]:
        """(value_bytes, runs) of a column to narrow its scan by (_database): the runs are those of the field's
        columns so far with this one's (FieldPlan.runs), measured while they leave enough rules out (_runs_pay, as the
        field's bytes and runs so far say), else EVERY_RUN (no rule left out by runs)."""
        if plan is None or not self._runs_pay(parts, plan.present | NEWLINE, plan.runs):
            return value_bytes(filled), EVERY_RUN
        found, runs = value_runs(filled)
        runs = bytes(map(max, plan.runs, runs))  # (this column's runs always in, whatever another thread writes)
        plan.runs = bytes(map(max, plan.runs, runs))
        return found, runs

    def _database(
        self, rule_ids: tuple[int, ...], present: int, runs: bytes = EVERY_RUN, whole: tuple[int, int, int] | None = None
    ) -> tuple[tuple[int, ...], Narrowed | None]:
        """The rules to scan a column of valid UTF-8 holding the bytes `present`, the runs `runs` and the lengths
        `whole` with: those of `rule_ids` these let match (alphabet.py, _possible_rules) when their database exists or
        is now worth compiling, else `rule_ids`; and the narrower set's entry when the wider database stands in for it
        (the caller adds the scan's seconds)."""
        possible = self._possible_rules(rule_ids, present, runs, whole)
        if not possible or possible == rule_ids:
            return possible, None
        narrowed = self._narrowed.get(possible)
        if narrowed is None:  # (compiled by an earlier run?)
            narrowed = self._narrowed[possible] = Narrowed.open(self._patterns(possible, True), self._dbs.get((possible, True)))
        if narrowed.matcher is None and (
            narrowed.spent >= narrowed.compile_estimate
            # No wider database yet either (a first run): compile the narrower one when it is far cheaper.
            or (len(possible) * _FAR_NARROWER <= len(rule_ids) and not self._available(rule_ids))
        ):
            narrowed.matcher = self._compile(possible, True)  # (from the disk cache if another process compiled it)
        if narrowed.matcher is None:
            return rule_ids, narrowed
        self._dbs[(possible, True)] = narrowed.matcher
        return possible, None

    def flush_spent(self) -> None:
        """Write the seconds every narrower set has been rented for and the cache does not hold yet (charge writes
        them in steps of a fifth of its compile: the seconds of a scan shorter than that would never add up across
        runs). Called as each partition's scan ends."""
        for narrowed in [*self._narrowed.values(), *self._owner_dbs.values(), *self._line_dbs.values()]:
            if narrowed.matcher is None and narrowed.spent > narrowed.recorded:
                record_spent(*narrowed.patterns, narrowed.spent)
                narrowed.recorded = narrowed.spent

    # -- planning -------------------------------------------------------------------------
    def _plan(self, path: str) -> FieldPlan:
        norm = normalise_path(path)
        canon = canonical_path(path)  # abbreviations spelled out (fname -> first_name, ssn_no -> ssn_number)
        allowed = np.zeros(len(self.rules), dtype=bool)
        named: set[int] = set()
        checks: list[int] = []
        texts: list[int] = []
        fields = self._fields
        paths = (norm,) if canon == norm else (norm, canon)
        hits = fields.matching(paths)
        for i, rule in enumerate(self.rules):
            matches_name = fields.matches(i, "field", paths, hits)
            if matches_name:
                named.add(i)
            if fields.matches(i, "exclude_field", paths, hits):
                continue
            if rule.is_value_rule:
                allowed[i] = matches_name or not rule.requires_field
            elif matches_name and rule.check:
                checks.append(i)
            elif rule.text is not None and (matches_name or not rule.requires_field):
                texts.append(i)
        return FieldPlan(allowed, frozenset(named), checks, tuple(i for i in self.value_rule_ids if allowed[i]), tuple(texts))

    # -- scanning -------------------------------------------------------------------------
    def _split(self, rule_ids: tuple[int, ...]) -> Split:
        """The parts a set of value rules is scanned in (Split): the common rules' database and one of the set's
        own, unless the set lacks more than a _SPLIT_MISSING-th of the common rules (their hits would be wasted
        work): then the set is its own one part."""
        split = self._splits.get(rule_ids)
        if split is None:
            common = set(self._common)
            own = tuple(r for r in rule_ids if r not in common)
            missing = len(common) - (len(rule_ids) - len(own))
            if not common or missing * _SPLIT_MISSING > len(common):
                split = Split((rule_ids,), None)
            else:
                keep = None
                if missing:
                    keep = np.zeros(len(self.rules) + 1, bool)
                    keep[list(rule_ids)] = True
                    keep[self._marker_id] = True
                split = Split((self._common, own) if own else (self._common,), keep)
            self._splits[rule_ids] = split
        return split

    def _raw_hits(self, text: pa.Array, rule_ids: tuple[int, ...] | None = None, plan: FieldPlan | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(rule index, value index) of every Vectorscan match end in a string column (each distinct value scanned
        once where the field's values repeat: the same pairs, up to order)."""
        rule_ids = tuple(self.value_rule_ids) if rule_ids is None else rule_ids
        empty = np.zeros(0, np.int64), np.zeros(0, np.int64)
        if not rule_ids or len(text) == 0:
            return empty
        filled = pc.fill_null(text, "") if text.null_count else text
        split = self._split(rule_ids)
        size = text_bytes(filled)
        narrow = size >= _NARROW_MIN_BYTES
        if not narrow and plan is not None:  # a field measured already, or whose small columns have added up to enough
            plan.small_bytes += size
            narrow = plan.present != 0 or plan.small_bytes >= _NARROW_MIN_BYTES
        found, runs = self._column_facts(filled, plan, split.parts) if narrow else (value_bytes(filled), EVERY_RUN)
        present = found | NEWLINE
        # Bytes viewed as text may not be UTF-8: those take the byte-mode database of every rule (see rule_flags).
        if present & HIGH and not valid_utf8(filled):
            return self._scan(filled, [(rule_ids, rule_ids, None)], False, plan)
        scans: list[PartScan] = [(part, part, None) for part in split.parts]
        if narrow:
            whole = None
            if plan is not None:  # the field's bytes so far: one narrower set per field, not one per column
                present |= plan.present  # (this column's bytes always in, whatever another thread writes meanwhile)
                plan.present |= present
                found |= plan.found
                plan.found |= found
                whole = self._whole_lengths(filled, plan, split.parts, found)
            scans = [(part, *self._database(part, present, runs, whole)) for part in split.parts]
            scans = [scan for scan in scans if scan[1]]
            if not scans:
                return empty
        ids, at = self._scan(filled, scans, True, plan)
        if split.keep is not None:
            kept = split.keep[ids]
            ids, at = ids[kept], at[kept]
        if self._confirm and self._loose[ids].any():
            ids, at = self._confirmed(filled, ids, at)
        return ids, at

    def _confirmed(self, filled: pa.Array, ids: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The hits with those of `engine_value` rules kept only where the value holds a match of `value`: what the
        UTF-8 pass with the rules' own patterns gives. Values shorter than a rule's `engine_exact_below` bytes are
        kept as found (there the looser pattern finds the same); longer ones are checked with RE2."""
        keep = np.ones(ids.size, bool)
        offsets: np.ndarray | None = None
        for rid, (pattern, exact_below) in self._confirm.items():
            sel = np.flatnonzero(ids == rid)
            if not sel.size:
                continue
            values = at[sel]
            if exact_below:
                if offsets is None:
                    offsets = string_buffers(filled)[0]
                long = (offsets[values + 1] - offsets[values]) >= exact_below
                sel, values = sel[long], values[long]
                if not sel.size:
                    continue
            uniq = unique_sorted(values)
            held = np.asarray(pc.match_substring_regex(take(filled, uniq), pattern), dtype=bool)
            if not held.all():
                keep[sel[np.isin(values, uniq[~held])]] = False
        return (ids, at) if keep.all() else (ids[keep], at[keep])

    def _scan(
        self, filled: pa.Array, scans: list[PartScan], utf8: bool, plan: FieldPlan | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """_raw_hits of some parts (PartScan), each distinct value once where the field's values repeat."""
        distinct = plan is not None and plan.scan_distinct(filled)
        found = []
        distinct_bytes = 0
        for rule_ids, scan_ids, narrowed in scans:
            started = time.perf_counter() if narrowed is not None else 0.0
            database = self._compile(scan_ids, utf8)
            if not distinct:
                found.append(scan_text(database, filled))
            else:
                ids, at, distinct_bytes = scan_distinct(database, filled)
                spanning = self._spanning.get(rule_ids)
                if spanning is None:
                    spanning = self._spanning[rule_ids] = tuple(r for r in rule_ids if self._spans_lines[r])
                # Their hits as a scan of every row gives them (the markers come from the pass above); the database of
                # the part's spanning rules, unless the column's bytes let none of them match.
                if spanning and (scan_ids is rule_ids or not set(spanning).isdisjoint(scan_ids)):
                    local = ~self._spans_lines[ids]
                    ids2, at2 = scan_text(self._compile(spanning, utf8), filled)
                    other = ids2 != self._marker_id
                    ids, at = np.concatenate([ids[local], ids2[other]]), np.concatenate([at[local], at2[other]])
                found.append((ids, at))
            if narrowed is not None:
                narrowed.charge(time.perf_counter() - started)
        if distinct:
            assert plan is not None
            plan.measured(distinct_bytes, text_bytes(filled))
        if len(found) == 1:
            return found[0]
        # Each part's database with a token rule holds the placeholder markers too: their hits kept once.
        marked = False
        for k, (_, scan_ids, _) in enumerate(scans):
            if marked:
                ids, at = found[k]
                other = ids != self._marker_id
                found[k] = ids[other], at[other]
            marked = marked or bool(self._token_rule[list(scan_ids)].any())
        return np.concatenate([ids for ids, _ in found]), np.concatenate([at for _, at in found])

    def _validate(self, rule_id: int, text: str, value: str, start: int) -> bool:
        rule = self.rules[rule_id]
        if rule.validator is None and rule.placeholder == "off" and not rule.candidate_checks:
            return True
        # Context-sensitive validators see the surroundings, so the cache key must include them.
        if rule.validator in CONTEXT_VALIDATORS:
            before, after = IPV4_CONTEXT
            lo = max(0, start - before)
            # The window and where the match sits in it.
            key: tuple[int, str] | tuple[int, str, int] = (rule_id, value[lo : start + len(text) + after], start - lo)
        else:
            key = (rule_id, text)
        hit = self._validate_cache.get(key)
        if hit is None:
            hit = VALIDATORS[rule.validator](text, value, start) if rule.validator is not None else True
            hit = hit and accept_secret(rule, text)
            if len(self._validate_cache) > _CACHE_LIMIT:
                self._validate_cache.clear()
            self._validate_cache[key] = hit
        return hit

    def resolve_value(self, value: str, rule_ids: Sequence[int]) -> list[tuple[int, int, int]]:
        """Validated, non-overlapping (rule, start, end) spans in one value; most specific rule wins. Matches are
        taken most specific first, and one overlapping a span already kept is dropped without being validated
        (the spans kept are those of validating every match first: a kept span is never given up)."""
        spans: list[tuple[int, int, int, int]] = []
        for rid in rule_ids:
            rule = self.rules[rid]
            assert rule.value_re is not None
            for m in rule.value_re.finditer(value):
                start, end = rule.span(m)  # the credential itself where the pattern names it
                spans.append((-rule.priority, -(end - start), start, rid))
        spans.sort()
        kept: list[tuple[int, int, int]] = []
        for _neg_pri, neg_len, start, rid in spans:
            end = start - neg_len
            if all(end <= s or start >= e for _, s, e in kept) and self._validate(rid, value[start:end], value, start):
                kept.append((rid, start, end))
        kept.sort(key=lambda k: k[1])
        return kept

    def _drop_coincidences(self, hits: ColumnHits, category: str, claimed_idx: np.ndarray, n: int) -> None:
        """Under an SSID, nickname or password field any text is the field's own data: a value that merely
        looks like an SSN or a phone number there is not one. Specific formats (e-mails, tokens) still count."""
        claimed = np.zeros(n, bool)
        claimed[claimed_idx] = True
        for rid in list(hits.by_rule):
            rule = self.rules[rid]
            if rule.is_value_rule and not rule.specific and rule.category != category:
                kept = hits.by_rule[rid][~claimed[hits.by_rule[rid]]]
                if kept.size:
                    hits.by_rule[rid] = kept
                else:
                    del hits.by_rule[rid]

    def value_pairs(self, rule_idx: np.ndarray, value_idx: np.ndarray, collapse: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The (value, rule) pairs of a column's matches, each once, ordered by value then rule; with `collapse`,
        the rules of one category on a value collapsed to the most specific (+44 20 7946 0958: international and
        national phone; a rule whose matches can span lines is never collapsed: its hit may be a match begun in the
        value before, `... Fax` then this value's number, which only the value's own resolution in Python can
        tell); and whether each pair's value is left with more than one rule. One native pass (native/pairs.c) when
        the matches come in value order, as one Vectorscan pass gives them; pairs from distinct values are sorted
        first."""
        args = (self._category_code, self._priority, self._spans_lines_bytes, collapse)
        rule_idx, value_idx = np.ascontiguousarray(rule_idx, np.int64), np.ascontiguousarray(value_idx, np.int64)
        done = _native.value_pairs(rule_idx, value_idx, *args)
        if done is None:
            nrules = len(self.rules)
            pairs = unique_sorted(value_idx * nrules + rule_idx)
            done = _native.value_pairs(pairs % nrules, pairs // nrules, *args)
            assert done is not None
        values, rules, multi = done
        return np.frombuffer(values, np.int64), np.frombuffer(rules, np.int64), np.frombuffer(multi, np.bool_)

    def _vector_validate(
        self, text: pa.Array, rule_idx: np.ndarray, value_idx: np.ndarray, needs: np.ndarray, plan: FieldPlan
    ) -> tuple[np.ndarray, np.ndarray]:
        """Decide candidates with a vectorised validator; returns (accepted, decided) masks.

        A candidate that is the whole value is decided outright. Inside longer text the first match is
        extracted and, when it passes, the value is accepted; when it fails, a later match in the same
        text might not, so that value is left to the Python path."""
        accepted = np.zeros(rule_idx.size, bool)
        decided = np.zeros(rule_idx.size, bool)
        for rid in np.flatnonzero(np.bincount(rule_idx[needs])).tolist():  # (rule indices: small ints)
            pattern = self._whole.get(rid)
            if pattern is None:
                continue
            validate = VECTOR_VALIDATORS[self.rules[rid].validator or ""]
            sel = np.flatnonzero(needs & (rule_idx == rid))
            # A rule's value indices are ascending and distinct: as many as the values means every value, in order.
            cand = text if sel.size == len(text) else take(text, value_idx[sel])
            whole = self._whole_values(cand, rid, pattern, plan)
            if whole.any():
                ok, can = _verdict(validate(cand), len(cand))
                decided[sel[whole & can]] = True
                accepted[sel[whole & can & ok]] = True
            inner = self._inner.get(rid)
            if inner is not None and not whole.all():
                part = np.flatnonzero(~whole)
                first = pc.struct_field(pc.extract_regex(take(cand, part), inner), "m")
                ok, can = _verdict(validate(first), len(first))
                hit = ok & can & np.asarray(first.is_valid())
                decided[sel[part[hit]]] = True
                accepted[sel[part[hit]]] = True
        return accepted, decided

    # -- values a field's owner takes without a scan ------------------------------------------
    def _value_rule_hits(self, text: pa.Array, plan: FieldPlan, want_spans: bool, hits: ColumnHits) -> None:
        """_value_hits, with the values the field's owner takes (_owned) left out of the scan; the field's owner
        learnt from, and weighed by, the columns scanned in full."""
        owned, pending = (None, None)
        started = time.thread_time()
        owner = plan.owner  # (once: another thread scanning the field may learn or forget it meanwhile)
        if owner >= 0 and not want_spans and len(text) >= _OWNED_MIN:
            owned, pending = self._owned(text, plan, owner)
        if owned is None:
            started = time.thread_time()
            self._value_hits(text, plan, want_spans, hits)
            if want_spans or len(text) < _OWNED_MIN:
                return
            spent = time.thread_time() - started
            if pending is not None:  # the database of the owner's rivals is rented: charged the full scan's seconds
                pending.charge(spent)
            plan.full_cost = _mean(plan.full_cost, spent / len(text))
            if owner < 0:
                self._learn_owner(plan, hits, len(text) - text.null_count)
            return
        rest = ~owned
        if not self._matches_empty(plan):  # empty values (and nulls) hold no match: not scanned either
            offsets = string_buffers(text)[0]
            rest &= offsets[1:] > offsets[:-1]
            if text.null_count:
                rest &= np.asarray(text.is_valid())
        rest = np.flatnonzero(rest)
        if rest.size:
            part = ColumnHits()
            self._value_hits(text if rest.size == len(text) else take(text, rest), plan, False, part)
            for rid, idx in part.by_rule.items():
                hits.by_rule[rid] = rest[idx]
            hits.spans.update(((rid, int(rest[vi])), span) for (rid, vi), span in part.spans.items())
        mine = np.flatnonzero(owned)
        scanned = hits.by_rule.get(owner)
        hits.by_rule[owner] = mine if scanned is None else np.sort(np.concatenate([mine, scanned]), kind="stable")
        plan.owned_cost = _mean(plan.owned_cost, (time.thread_time() - started) / len(text))
        if plan.full_cost is not None and plan.owned_cost > plan.full_cost * _OWNER_MARGIN:
            self._forget_owner(plan, _OWNER_RETRY)  # cheaper to scan every value

    def _owned(self, text: pa.Array, plan: FieldPlan, owner: int) -> tuple[np.ndarray | None, Narrowed | None]:
        """The values of a string column its field's owner takes without a scan (a mask), found in one pass of a
        database of the owner's pattern as a whole line (Rule.line_expression; natively instead where the pattern is
        linear: _linear_program) and its rivals (rules that could win a value over it; with the placeholder markers for
        a token rule): the values the owner wholly matches, that its validator accepts (vectorised) and, for a token
        rule, that are no placeholder suspects (low_entropy_prefix), holding no hit of a rival or a marker. Such a value is the owner's alone, as a scan decides it: every
        character of the owner's matches is one its boundary forbids beside a match (_can_own), so the owner's only
        match in the value is the value itself, which the exact resolution (resolve_value) takes first, and every
        other rule's match overlaps it (a value holding a newline is never taken). None (scan the column in full) when
        the column is not UTF-8, when the owner wholly matches under _OWNED_SHARE of its values (the owner is forgotten), or
        while that database is not worth compiling yet: then with its entry, to charge the full scan's seconds to."""
        rule = self.rules[owner]
        filled = pc.fill_null(text, "") if text.null_count else text
        found = value_bytes(filled)
        if found & HIGH and not valid_utf8(filled):
            return None, None
        program = self._linear_program(owner)
        matcher, entry = self._owner_database(owner, self._rivals(plan.value_rules, owner, found | NEWLINE), program is not None)
        if matcher is None and entry is not None:
            return None, entry
        if program is None:
            assert matcher is not None
            owned, _, others = self._whole_lines(matcher, owner, filled, found)
        else:  # the owner's whole values natively, its rivals' and the markers' hits (if any) by Vectorscan
            owned = whole_linear(filled, program)
            others = scan_text(matcher, filled)[1] if matcher is not None else np.zeros(0, np.int64)
        if int(owned.sum()) < _OWNED_SHARE * (len(text) - text.null_count):
            self._forget_owner(plan, _REMEASURE)
            return None, None
        owned[others] = False  # a rival's hit or a placeholder marker's
        if rule.validator is not None:
            idx = np.flatnonzero(owned)
            cand = filled if idx.size == len(filled) else take(filled, idx)
            ok, can = _verdict(VECTOR_VALIDATORS[rule.validator](cand), idx.size)
            owned[idx[~(ok & can)]] = False
        if self._token_rule[owner]:
            idx = np.flatnonzero(owned)
            owned[idx[low_entropy_prefix(filled, idx)]] = False
        return owned, None

    def _can_own(self, rid: int) -> bool:
        """Whether a value rule can own values (_owned): its matches are its value pattern's whole match (no label,
        no secret group), need nothing beyond a vectorised validator and the placeholder markers (no candidate
        checks, no context), cannot hold a newline or be empty, and hold only ASCII characters of its own boundary
        class (alphabet.match_chars): then a match cannot have a character of the value beside it, so in a value it
        wholly matches it matches nowhere else."""
        can = self._can_own_memo.get(rid)
        if can is not None:
            return can
        rule = self.rules[rid]
        can = False
        if (
            rule.is_value_rule
            and not rule.labelled
            and not rule.secret_group
            and not rule.candidate_checks
            and rule.placeholder in ("off", "token")
            and not self._spans_lines[rid]
            and (rule.validator is None or (rule.validator in VECTOR_VALIDATORS and rule.validator not in CONTEXT_VALIDATORS))
            and rule.value_re is not None
            and rule.value_re.search("") is None
        ):
            source, flags = rule.value_source() or ("", 0)
            chars = match_chars(source, flags)
            can = chars is not None and chars != 0 and chars & ~class_chars(rule.python_boundary(), flags) == 0
        self._can_own_memo[rid] = can
        return can

    def _matches_empty(self, plan: FieldPlan) -> bool:
        """Whether a rule of the field's set matches in an empty value (a built-in rule never does), by scanning one."""
        if plan.empty_hits is None:
            plan.empty_hits = bool(self._raw_hits(pa.array([""], pa.string()), plan.value_rules)[0].size)
        return plan.empty_hits

    def _rivals(self, rule_ids: tuple[int, ...], owner: int, present: int) -> tuple[int, ...]:
        """The rules of a field's set that could win a value over its owner (resolve_value takes the highest
        priority first, then the longest match, then the rule listed first; value_pairs keeps the first of the highest
        priority of one category), less those a column holding the bytes `present` cannot match."""
        key = (rule_ids, owner, present)
        rivals = self._rival_sets.get(key)
        if rivals is None:
            pri = self._priority
            held = self._holding(present)
            rivals = tuple(
                r for r in rule_ids if r != owner and (pri[r] > pri[owner] or (pri[r] == pri[owner] and r < owner)) and held[r]
            )
            if len(self._rival_sets) >= _POSSIBLE_MEMO:
                self._rival_sets.clear()
            self._rival_sets[key] = rivals
        return rivals

    def _owner_database(self, owner: int, rivals: tuple[int, ...], linear: bool = False) -> tuple[Matcher | None, Narrowed | None]:
        """The database of an owner's whole-line pattern (reported under the owner's index) and its rivals' patterns
        (with the placeholder markers for a token owner) once it exists or is worth compiling, rented as the narrower
        databases are (_database): with its entry, charged while it is not. `linear`: the owner's whole values are
        decided natively (_linear_program), so the database holds its rivals and the markers only; (None, None) when
        it would hold nothing."""
        token = bool(self._token_rule[owner])
        if linear and not rivals and not token:
            return None, None
        key = (owner, rivals)
        entry = self._owner_dbs.get(key)
        if entry is None:
            exprs, flags, ids = self._patterns(rivals, True, token)
            if not linear:
                rule = self.rules[owner]
                exprs, flags, ids = [*exprs, rule.line_expression()], [*flags, rule_flags(rule.ignore_case, True)], (*ids, owner)
            entry = self._owner_dbs[key] = Narrowed.open((exprs, flags, tuple(ids)))
        matcher = entry.due()
        if entry.refused:  # (the engine refuses the whole-line form: the rule owns no values)
            self._can_own_memo[owner] = False
        return matcher, entry

    def _linear_program(self, rid: int) -> bytes | None:
        """The program deciding natively which values a value rule's pattern wholly matches (_native.whole_linear),
        when its pattern is linear (alphabet.linear_program): what its whole-line form finds in the UTF-8 pass."""
        if rid not in self._linear:
            rule = self.rules[rid]
            self._linear[rid] = None if rule.value is None else linear_program(rule.python_value(), re.IGNORECASE if rule.ignore_case else 0)
        return self._linear[rid]

    def _learn_owner(self, plan: FieldPlan, hits: ColumnHits, n: int) -> None:
        """Take the rule most values of a column scanned in full went to as the field's owner, when it holds at least
        _OWNED_SHARE of its `n` values (nulls left out) and can own values."""
        if plan.owner_wait:
            plan.owner_wait -= 1
            return
        best, count = -1, 0
        for rid, idx in hits.by_rule.items():
            if idx.size > count:
                best, count = rid, idx.size
        if best >= 0 and count >= _OWNED_SHARE * n and self._can_own(best):
            plan.owner = best

    @staticmethod
    def _forget_owner(plan: FieldPlan, wait: int) -> None:
        """Scan the field's columns in full, and learn an owner again after `wait` of them."""
        plan.owner = -1
        plan.owned_cost = None
        plan.owner_wait = wait

    def _value_hits(self, text: pa.Array, plan: FieldPlan, want_spans: bool, hits: ColumnHits) -> None:
        """The value rules' hits in a string column, into `hits` (by_rule, spans; all_spans with want_spans)."""
        rule_idx, value_idx = self._raw_hits(text, plan.value_rules, plan)
        flagged = np.zeros(len(text) if rule_idx.size else 0, bool)
        marked = rule_idx == self._marker_id
        if marked.any():
            flagged[value_idx[marked]] = True
            rule_idx, value_idx = rule_idx[~marked], value_idx[~marked]
        if rule_idx.size:
            value_idx, rule_idx, multi = self.value_pairs(rule_idx, value_idx, collapse=not want_spans)
            # Values hit by one rule that needs no validator are final; the rest go through Python.
            token = self._token_rule[rule_idx]
            if token.any():  # placeholder suspects take the exact path (placeholders.py)
                suspect = token & flagged[value_idx]
                quiet = np.flatnonzero(token & ~suspect)
                if quiet.size:
                    suspect[quiet] = low_entropy_prefix(text, value_idx[quiet])
                multi |= suspect
            needs = self._needs_python[rule_idx] | multi
            plain = ~needs  # the only rule on its value, and nothing to validate: final as matched
            if want_spans:
                needs[:] = True
                plain[:] = False
            else:
                accepted, decided = self._vector_validate(text, rule_idx, value_idx, needs & ~multi, plan)
                plain |= accepted
                needs &= ~decided
            final_rules = [rule_idx[plain]]
            final_values = [value_idx[plain]]
            if needs.any():
                cand_values, cand_rules = value_idx[needs], rule_idx[needs]
                uniq, inverse = unique_inverse(cand_values)
                strings = take(text, uniq).to_pylist()
                groups: dict[int, list[int]] = {}
                for pos, rid in zip(inverse.tolist(), cand_rules.tolist(), strict=True):
                    groups.setdefault(pos, []).append(rid)
                out_r: list[int] = []
                out_v: list[int] = []
                for pos, rids in groups.items():
                    value = strings[pos]
                    if value is None:
                        continue
                    vi = int(uniq[pos])
                    seen: set[int] = set()
                    for rid, s, e in self.resolve_value(value, rids):
                        if want_spans:
                            hits.all_spans.setdefault((rid, vi), []).append((s, e))
                        if rid not in seen:
                            seen.add(rid)
                            out_r.append(rid)
                            out_v.append(vi)
                            hits.spans[(rid, vi)] = (s, e)
                final_rules.append(np.asarray(out_r, dtype=np.int64))
                final_values.append(np.asarray(out_v, dtype=np.int64))
            all_r = np.concatenate(final_rules)
            all_v = np.concatenate(final_values)
            order = np.argsort(all_r, kind="stable")
            all_r, all_v = all_r[order], all_v[order]
            bounds = np.flatnonzero(np.diff(all_r)) + 1
            for r_chunk, v_chunk in zip(np.split(all_r, bounds), np.split(all_v, bounds), strict=True):
                if r_chunk.size:
                    # Two ascending runs (values final as matched, then those decided in Python): a stable sort
                    # merges them in one linear pass, and one run is already in order.
                    ordered = v_chunk.size < 2 or bool((v_chunk[1:] > v_chunk[:-1]).all())
                    hits.by_rule[int(r_chunk[0])] = v_chunk if ordered else np.sort(v_chunk, kind="stable")

    def _whole_values(self, cand: pa.Array, rid: int, pattern: str, plan: FieldPlan) -> np.ndarray:
        """Which values a rule's pattern wholly matches: RE2's check of `pattern` (`^...$`) or one Vectorscan pass
        of the rule's whole-line form (Rule.line_expression, on a column of UTF-8), whichever has cost less a value
        in the field (each tried again every _WHOLE_RETRY-th column: by the values, either can be twice the other);
        the line database rented as the narrower ones are, with RE2's seconds. A linear pattern's whole values are
        decided natively instead (_linear_program), faster than either."""
        program = self._linear_program(rid)
        if program is not None:
            return whole_linear(cand, program)
        entry = self._line_dbs.get(rid)
        if entry is None:
            rule = self.rules[rid]
            entry = self._line_dbs[rid] = Narrowed.open(([rule.line_expression()], [rule_flags(rule.ignore_case, True)], (rid,)))
        matcher = entry.due()  # (refused: RE2 it stays)
        filled = pc.fill_null(cand, "") if cand.null_count else cand
        found = value_bytes(filled) if matcher is not None else 0
        costs = plan.whole_costs.setdefault(rid, [None, None])  # a value's seconds: RE2's, the line pass's
        if matcher is None or (found & HIGH and not valid_utf8(filled)):
            line = False
        elif costs[1] is None or costs[0] is None:
            line = costs[1] is None
        else:
            plan.whole_checks += 1
            line = (costs[1] <= costs[0]) != (plan.whole_checks % _WHOLE_RETRY == 0)
        started = time.thread_time()
        if line:
            assert matcher is not None
            whole = self._whole_lines(matcher, rid, filled, found)[0]
        else:
            whole = np.asarray(pc.fill_null(pc.match_substring_regex(cand, pattern), False), dtype=bool)
        spent = time.thread_time() - started
        costs[int(line)] = _mean(costs[int(line)], spent / max(len(cand), 1))
        if matcher is None:
            entry.charge(spent)
        return whole

    @staticmethod
    def _whole_lines(matcher: Matcher, rid: int, filled: pa.Array, found: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mask of the values the whole-line pattern reported under `rid` matches, and the other (id, value) hits of
        the pass) over a UTF-8 column without nulls holding the bytes `found` (value_bytes): a line of a value holding
        a newline is not the value, and the matches of a line stay in its value's lines."""
        ids, at = scan_text(matcher, filled)
        mine = ids == rid
        whole = np.zeros(len(filled), bool)
        whole[at[mine]] = True
        if found & NEWLINE:
            whole &= np.frombuffer(_native.any_byte(*native_column(filled)[0], _NEWLINE_TABLE), np.uint8) != 1
        return whole, ids[~mine], at[~mine]

    def scan_column(self, values: pa.Array, plan: FieldPlan, want_spans: bool = False) -> ColumnHits:
        hits = ColumnHits()
        t = values.type
        # Floats, booleans and times never hold a value-rule format; skip the text conversion and scan.
        textual = not (pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_temporal(t))
        text = as_text(values) if plan.value_rules and textual else values
        if plan.value_rules and textual:
            self._value_rule_hits(text, plan, want_spans, hits)
        value_type = t.value_type if pa.types.is_dictionary(t) else t
        if plan.text_rules and (pa.types.is_string(value_type) or pa.types.is_large_string(value_type)):
            # Prose is only ever stored as text; numbers, dates and bytes never pay for the free-text test.
            by_kind = {self.rules[rid].text: rid for rid in plan.text_rules}
            found, hits.unchecked = find_in_column(as_text(text), tuple(k for k in by_kind if k is not None))
            for kind, (idx, spans) in found.items():
                rid = by_kind[kind]
                hits.by_rule[rid] = idx
                hits.spans.update(((rid, vi), span) for vi, span in zip(idx.tolist(), spans, strict=True))
        if plan.check_rules:
            for rid in plan.check_rules:
                rule = self.rules[rid]
                assert rule.check is not None
                # The most specific rule wins: a value already claimed by a value rule of the same category (an Atza|
                # token under access_token) is not counted again by the generic rule; where most are (or are null,
                # which every check fails: tests/detect/test_checks_native.py), the check runs on the others only (a
                # check decides each value alone).
                settled = np.zeros(len(values), bool) if not values.null_count else ~np.asarray(values.is_valid(), bool)
                for other, idx in hits.by_rule.items():
                    if self.rules[other].category == rule.category and idx.size:
                        settled[idx] = True
                rest = np.flatnonzero(~settled)
                if rest.size * 2 < len(values):
                    idx = rest[run_check(rule.check, take(values, rest), rule.check_min, rule.check_max)] if rest.size else rest
                else:
                    idx = np.flatnonzero(run_check(rule.check, values, rule.check_min, rule.check_max) & ~settled)
                if idx.size:
                    hits.by_rule[rid] = idx
                    if rule.category in CLAIMING_CATEGORIES:
                        self._drop_coincidences(hits, rule.category, idx, len(values))
        return hits
