"""spillguard: find personal data and secrets in data stores and count the people affected.

The Python API is what the CLI wraps:

    >>> import spillguard
    >>> [m.category for m in spillguard.scan_value("mail me: Jane@Example.COM")]
    ['email']
    >>> result = spillguard.scan(["./exports"], subject_field="user_id")   # doctest: +SKIP
    >>> result.to_json()["summary"]["categories"]["email"]["subjects"]      # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

# The scan and respond packages are loaded before `scan()` and `respond()` are defined below: loading a package
# sets the parent's attribute of the same name, so this order makes `spillguard.scan` and `spillguard.respond` the
# functions, for good. Import those packages' modules by their full names (`from spillguard.scan.run import run_scan`).
import spillguard.respond
import spillguard.scan  # noqa: F401
from spillguard.errors import UserError
from spillguard.model import CATEGORIES, SCHEMA_VERSION, Finding, Match, ScanError, ScanResult

__version__ = "0.1.0"


@lru_cache(maxsize=8)
def _default_ruleset(only: tuple[str, ...] | None = None, exclude: tuple[str, ...] | None = None) -> Any:
    from spillguard.detect.engine import RuleSet
    from spillguard.rules import select_rules

    return RuleSet(select_rules((), only, exclude))


def scan_value(value: str, field: str | None = None, *, rules: Any = None) -> list[Match]:
    """Every match in one value (optionally under a field name), with its position; a rule that matches twice
    (two e-mail addresses) gives two matches; where matches overlap the most specific rule wins."""
    import pyarrow as pa  # loaded on use: `spillguard --help` and `audit` need no Arrow

    from spillguard.detect.state import confidence_for

    ruleset = rules or _default_ruleset()
    path = field or "value"
    plan = ruleset.plan(path)
    hits = ruleset.scan_column(pa.array([value], pa.string()), plan, want_spans=True)
    matches = []
    for rid in hits.by_rule:
        rule = ruleset.rules[rid]
        conf = confidence_for(
            specific=rule.specific, value_rule=rule.is_value_rule, named=rid in plan.named_rules,
            requires_field=rule.requires_field, share=0.3, text=rule.text is not None,
        )
        for start, end in hits.all_spans.get((rid, 0)) or [hits.spans.get((rid, 0), (0, len(value)))]:
            matches.append(Match(rule.category, rule.id, start, end, conf))  # type: ignore[arg-type]
    matches.sort(key=lambda m: (m.start, m.end))
    return matches


def scan(
    targets: Sequence[str | Path] | str | Path,
    *,
    rules: Sequence[str | Path] = (),
    only: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    subject_field: str | None = None,
    show_samples: bool = False,
    workers: int | None = 1,
    state: str | Path | None = None,
    resume: bool = False,
    executor: str = "local",
    ray_address: str | None = None,
    approx_subjects: bool = False,
    merge_memory: int | None = None,
    endpoint_url: str | None = None,
    **source_options: Any,
) -> ScanResult:
    """Scan files, folders or store URLs; returns what `spillguard scan --format json` prints.

    `workers` defaults to 1 here (in-process, friendly to notebooks and tests); the CLI defaults to one
    worker per core. `state`/`resume` checkpoint and continue a long scan. `executor="ray"` (with
    `ray_address`) runs partitions on a Ray cluster; `approx_subjects` counts people with HyperLogLog sketches;
    `merge_memory` (bytes) bounds the subject hashes kept in memory before spilling. Other keywords go to the
    sources: `sample=N`, `include=[...]`, `exclude_datasets=[...]`, `connect_timeout=...`, `read_timeout=...`,
    `retry_budget=...`, `max_rps=...`. `endpoint_url` is the S3 API address of `s3://` targets (as --endpoint-url).
    """
    from spillguard.s3 import with_endpoint
    from spillguard.scan.options import ScanOptions
    from spillguard.scan.run import run_scan

    if isinstance(targets, str | Path):
        targets = [targets]
    targets = [with_endpoint(str(t), endpoint_url) if isinstance(t, str) else t for t in targets]
    if "exclude_datasets" in source_options:  # `exclude` names rules here, as --except does on the CLI
        source_options["exclude"] = source_options.pop("exclude_datasets")
    options = ScanOptions(
        rule_files=list(rules), only=only, exclude=exclude, subject_field=subject_field,
        show_samples=show_samples, source_options=source_options, workers=workers, state=state, resume=resume,
        executor=executor, ray_address=ray_address, approx_subjects=approx_subjects, merge_memory=merge_memory,
    )
    result, _run = run_scan([str(t) for t in targets], options)
    return result


def audit(targets: Sequence[str], **options: Any) -> Any:
    """Probe stores as an anonymous outsider would; see `spillguard.audit.audit`."""
    from spillguard.audit import audit as _audit

    return _audit(targets, **options)


def copy(source: str, destination: str, **options: Any) -> Any:
    """A safe copy through a policy (`policy=...` required); see `spillguard.safecopy.copy`."""
    from spillguard.safecopy import copy as _copy

    return _copy(source, destination, **options)


def respond(playbook: str | Path, *, step: str = "plan", execute: bool = False, scope: str | None = None,
            journal: str | Path | None = None) -> dict[str, Any]:
    """One step of a response (`plan`, `execute` or `verify`) from a `respond.toml` playbook; the dict is what
    `spillguard respond STEP --format json` prints. `execute` changes stores only with `execute=True`."""
    from spillguard.respond.runner import execute_response, open_response, plan_response, verify_response

    if step not in ("plan", "execute", "verify"):
        raise UserError(f"respond step {step!r}: use plan, execute or verify")
    resp = open_response(playbook, scope=scope, execute=step == "execute" and execute, journal_path=journal)
    try:
        if step == "verify":
            return verify_response(resp).verify_dict()
        plan_response(resp)
        if step == "plan" or not execute:  # nothing changes without execute=True: the plan is the answer
            return resp.plan_dict()
        return execute_response(resp).execute_dict()
    finally:
        resp.close()


def build_report(scans: Sequence[dict[str, Any]], **options: Any) -> Any:
    """The impact report model from scan results (and audit/watch history); see `spillguard.report`."""
    from spillguard.report import build_report as _build

    return _build(scans, **options)


def render_report(report: Any, fmt: str = "html") -> str:
    """Render a report as html, md or json."""
    from spillguard.report import render as _render

    return _render(report, fmt)


__all__ = [
    "CATEGORIES", "SCHEMA_VERSION", "Finding", "Match", "ScanError", "ScanResult", "UserError",
    "audit", "build_report", "copy", "render_report", "respond", "scan", "scan_value",
]
