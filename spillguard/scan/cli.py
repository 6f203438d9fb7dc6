"""`spillguard scan`, `spillguard demo` and `spillguard rules`."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from spillguard.errors import UserError
from spillguard.outfiles import check_writable, write_private, write_text

# Registering these commands must stay cheap (every `spillguard` command registers them): the scan machinery,
# rich and the output formats are imported inside the commands.

# Exit codes of `spillguard scan` (the table in the README).
EXIT_CLEAN = 0  # everything scanned, nothing at or above --fail-on
EXIT_FINDINGS = 1  # findings at or above --fail-on
EXIT_BAD_INPUT = 2  # bad input, or nothing could be scanned
EXIT_INCOMPLETE = 3  # something was not scanned (malformed records, cut streams, failed datasets); wins over 1
EXIT_INTERRUPTED = 130  # Ctrl-C


if TYPE_CHECKING:
    from spillguard.model import ScanResult


class Format(StrEnum):
    table = "table"
    json = "json"
    ndjson = "ndjson"


class FailOn(StrEnum):
    high = "high"
    medium = "medium"
    low = "low"
    never = "never"


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


class _Progress:
    """A progress bar on stderr, only when stderr is a terminal: bytes of files (with an ETA) when the
    targets are files, records read when they are stores (whose size is not known up front)."""

    def __init__(self, enabled: bool, targets: list[str]) -> None:
        self.bar = None
        if enabled and sys.stderr.isatty():
            total = _total_bytes(targets)  # walks folders: only for a bar someone sees
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                ProgressColumn,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            label = TextColumn("[bold]scanning[/] {task.description}")
            columns: tuple[ProgressColumn, ...]
            if total is not None:
                columns = (label, BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
            else:
                columns = (SpinnerColumn(), label, TextColumn("{task.completed:,.0f} records"), TimeElapsedColumn())
            self.bar = Progress(*columns, console=Console(stderr=True), transient=True)
            self.task = self.bar.add_task("", total=total)

    def __enter__(self) -> _Progress:
        if self.bar:
            self.bar.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.bar:
            self.bar.__exit__(kind, exc, tb)

    def advance(self, n: int) -> None:
        if self.bar:
            self.bar.advance(self.task, n)

    def dataset(self, name: str, _size: int | None) -> None:
        if self.bar:
            self.bar.update(self.task, description=name)


def _total_bytes(targets: list[str]) -> int | None:
    total = 0
    for t in targets:
        if "://" in t:
            return None
        p = Path(t)
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            from spillguard.sources.files import file_kind

            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and file_kind(f))
    return total


def run_scan_command(
    targets: list[str], *, fmt: Format, output: str | None, show_samples: bool, subject_field: str | None,
    rules: list[Path] | None, only: list[str] | None, exclude: list[str] | None, fail_on: FailOn,
    subjects_out: str | None, progress: bool, source_options: dict[str, Any] | None = None,
    workers: int | None = None, state: str | None = None, resume: bool = False,
    target_options: dict[str, dict[str, Any]] | None = None, secrets_out: str | None = None,
    secrets_hmac_key_env: str | None = None, executor: str = "local", ray_address: str | None = None,
    approx_subjects: bool = False, merge_memory: str | None = None,
) -> int:
    from spillguard.scan.inventory import affected_subjects
    from spillguard.scan.options import ScanOptions
    from spillguard.scan.output import render_table, subjects_text, to_json, to_ndjson
    from spillguard.scan.run import ScanInterrupted, run_scan

    # Outputs are checked before the scan (the state file when run_scan opens it): a typo must not cost an hour.
    if output:
        check_writable(output, "--output")
    if subjects_out:
        check_writable(subjects_out, "--subjects-out")
    if secrets_out:
        check_writable(secrets_out, "--secrets-out")
    hmac_label_text = None
    if secrets_hmac_key_env:
        from spillguard.keys import app_hmac_key
        from spillguard.leaked import hmac_label

        if not secrets_out:
            raise UserError("--secrets-hmac-key-env adds a column to the leaked-secret set; give --secrets-out FILE too")
        hmac_label_text = hmac_label(secrets_hmac_key_env, app_hmac_key(secrets_hmac_key_env))  # refuses a missing key now
    options = ScanOptions(
        rule_files=list(rules or []), only=_split(only), exclude=_split(exclude), subject_field=subject_field,
        show_samples=show_samples, subjects_out=subjects_out is not None, source_options=source_options or {},
        workers=workers, state=state, resume=resume, target_options=target_options or {}, secrets_out=secrets_out is not None,
        secrets_hmac_key_env=secrets_hmac_key_env, executor=executor, ray_address=ray_address,
        approx_subjects=approx_subjects, merge_memory=parse_size(merge_memory, "--merge-memory") if merge_memory else None,
    )
    if ray_address and executor != "ray":
        raise UserError("--ray-address is for --executor ray; add --executor ray or drop the address")
    try:
        with _Progress(progress, targets) as bar:
            result, run = run_scan(targets, options, progress=bar.advance, on_dataset=bar.dataset)
    except ScanInterrupted as stop:
        print(f"spillguard: {stop.advice()}", file=sys.stderr)
        # The state file is committed and closed; leave now, past the process pool's exit hook, which can
        # trip over the pipes of the workers just stopped (CPython prints "Exception ignored ... EBADF").
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:  # before the scan began (opening the state file, reading the key)
        print("spillguard: interrupted before the scan began; nothing was saved", file=sys.stderr)
        return EXIT_INTERRUPTED
    if fmt is Format.json:
        write_text(sys.stdout, output, to_json(result))
    elif fmt is Format.ndjson:
        write_text(sys.stdout, output, to_ndjson(result))
    elif output:
        from rich.console import Console

        buf = Console(record=True, width=160, file=open("/dev/null", "w"))  # noqa: SIM115
        render_table(result, buf, show_samples)
        write_private(output, buf.export_text())
    else:
        from rich.console import Console

        # Not a terminal (a pipe, CI): a wide fixed width keeps rows on one line.
        render_table(result, Console() if sys.stdout.isatty() else Console(width=200), show_samples)
    if subjects_out:
        people = affected_subjects(run, result)
        write_private(subjects_out, subjects_text(people, subjects_out))
        print(
            f"spillguard: wrote {len(people):,} affected people to {subjects_out} (owner-only). "
            "This file is personal data: keep it within the incident team and delete it when done.",
            file=sys.stderr,
        )
    if secrets_out:
        from spillguard.keys import fingerprint_key
        from spillguard.leaked import leaked_table, write_leaked

        n = write_leaked(secrets_out, leaked_table(run.states), fingerprint_key(), hmac_label_text)
        print(f"spillguard: wrote {n:,} leaked secrets (digests and fingerprints only) to {secrets_out} (owner-only).", file=sys.stderr)
    return exit_code(result, fail_on)


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str, what: str) -> int:
    """'512M', '2G', '1.5GiB' or a number of bytes."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1:] if t[-1:] in _UNITS else ""
    try:
        value = float(t[: len(t) - len(unit)]) * _UNITS[unit]
    except ValueError:
        value = -1
    if value < 1 << 20:
        raise UserError(f"{what} {text}: give a size of at least 1M, e.g. 512M or 4G")
    return int(value)


SHOWN_ERRORS = 20  # failed datasets listed on stderr; the result holds them all


def exit_code(result: ScanResult, fail_on: FailOn) -> int:
    """The exit code of a finished scan; says on stderr why, when it is not 0 or 1."""
    if not result.complete:
        # Whatever the output format (JSON to a file, a table on stdout), what was not scanned shows on stderr.
        failed = [e for e in result.errors if e.kind == "error"]
        for e in failed[:SHOWN_ERRORS]:
            print(f"spillguard: error: {e.target}{': ' + e.dataset if e.dataset else ''}: {e.message}", file=sys.stderr)
        if len(failed) > SHOWN_ERRORS:
            print(f"spillguard: error: ... and {len(failed) - SHOWN_ERRORS:,} more failed datasets (see the result's errors)", file=sys.stderr)
        what = result.unscanned()
        if result.records_scanned == 0:
            print(f"spillguard: error: nothing could be scanned in {', '.join(result.targets)}: {what}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"spillguard: incomplete: not everything was scanned ({what}); counts are lower bounds (exit {EXIT_INCOMPLETE})", file=sys.stderr)
        return EXIT_INCOMPLETE
    if fail_on is not FailOn.never:
        from spillguard.detect.state import at_least

        if any(at_least(f.confidence, fail_on.value) for f in result.findings):
            return EXIT_FINDINGS
    return EXIT_CLEAN


def _config_targets(path: Path | None) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Targets of a spillguard.toml and their own options (patterns, subject fields, password)."""
    if path is None:
        return [], {}
    from spillguard.config import load_config

    cfg = load_config(path)
    targets: list[str] = []
    per_target: dict[str, dict[str, Any]] = {}
    for t in cfg.targets:
        opts: dict[str, Any] = {}
        if t.include:
            opts["include"] = list(t.include)
        if t.exclude:
            opts["exclude"] = list(t.exclude)
        if t.subject_fields:
            opts["subject_fields"] = dict(t.subject_fields)
        password = t.password()
        if password is not None:
            opts["password"] = password
            opts["password_env"] = t.password_env  # the name, for workers that read their own environment (Ray)
        for extra in ("sample", "include_views", "include_hidden"):
            value = getattr(t, extra, None)
            if value is not None:
                opts[extra] = value
        targets.append(t.url)
        per_target[t.url] = opts
    return targets, per_target


def register(app: typer.Typer) -> None:
    @app.command()
    def scan(
        fmt: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
        output: Annotated[str | None, typer.Option("--output", "-o", help="Write the result to FILE (owner-only) instead of stdout.")] = None,
        show_samples: Annotated[bool, typer.Option("--show-samples", help="Up to 3 masked samples per finding.")] = False,
        subject_field: Annotated[str | None, typer.Option("--subject-field", help="Field identifying a person (default: auto-detect user_id, account_id, email ...).")] = None,
        rules: Annotated[list[Path] | None, typer.Option("--rules", help="Extra rule file (TOML); repeatable.")] = None,
        only: Annotated[list[str] | None, typer.Option("--only", help="Only these rule ids or categories (comma-separated or repeated).")] = None,
        exclude: Annotated[list[str] | None, typer.Option("--except", help="Skip these rule ids or categories.")] = None,
        fail_on: Annotated[FailOn, typer.Option("--fail-on", help="Exit 1 when a finding has at least this confidence.")] = FailOn.medium,
        subjects_out: Annotated[str | None, typer.Option("--subjects-out", help="Write affected people (CSV or JSONL by extension) to FILE, owner-only.")] = None,
        no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar even on a terminal.")] = False,
        sample: Annotated[int | None, typer.Option("--sample", min=1, help="Scan a true random sample of N records per dataset (stores only).")] = None,
        full: Annotated[bool, typer.Option("--full", help="Read every record (the default when --sample is not given).")] = False,
        workers: Annotated[int | None, typer.Option("--workers", min=1, help="Worker processes over partitions (default: one per core).")] = None,
        state: Annotated[str | None, typer.Option("--state", help="Checkpoint every finished partition into this SQLite FILE (owner-only).")] = None,
        resume: Annotated[bool, typer.Option("--resume", help="Continue the scan recorded in --state; results equal an uninterrupted run.")] = False,
        config: Annotated[Path | None, typer.Option("--config", help="spillguard.toml naming targets, include/exclude patterns and subject fields.")] = None,
        connect_timeout: Annotated[float, typer.Option("--connect-timeout", min=0.1, help="Seconds to connect and log in to a store (TCP, TLS, login).")] = 10.0,
        read_timeout: Annotated[float, typer.Option("--read-timeout", min=0.1, help="Seconds a store read may wait for the server to send anything.")] = 120.0,
        retry_budget: Annotated[float, typer.Option("--retry-budget", min=0.0, help="Seconds a store may keep failing (retried) before its unscanned partitions are given up.")] = 30.0,
        max_rps: Annotated[float | None, typer.Option("--max-rps", min=0.01, help="At most this many requests a second to a store, per worker.")] = None,
        include: Annotated[list[str] | None, typer.Option("--include", help="Only datasets (tables, indices, collections, key patterns) matching these globs.")] = None,
        exclude_ds: Annotated[list[str] | None, typer.Option("--exclude", help="Skip datasets matching these globs.")] = None,
        include_views: Annotated[bool, typer.Option("--include-views", help="Also scan SQL views.")] = False,
        include_hidden: Annotated[bool, typer.Option("--include-hidden", help="Also scan hidden/system ('.'-prefixed) indices.")] = False,
        partition_rows: Annotated[int, typer.Option("--partition-rows", min=100, help="Records per partition of an exhaustive store read.")] = 50_000,
        secrets_out: Annotated[str | None, typer.Option("--secrets-out", help="Write every leaked secret's fingerprint and SHA-256 (never the value) to FILE (owner-only), for `spillguard respond`.")] = None,
        secrets_hmac_key_env: Annotated[str | None, typer.Option("--secrets-hmac-key-env", metavar="VAR", help="Also keep each leaked secret's HMAC-SHA-256 hex under the application's key, read from environment variable VAR (never printed or stored), for token stores that keep HMAC(app key, token).")] = None,
        ask_password: Annotated[bool, typer.Option("--ask-password", help="Prompt for the store password (never echoed).")] = False,
        executor: Annotated[str, typer.Option("--executor", help="Where partitions run: local (a process pool), in-process, pool, or ray (needs spillguard[ray]).")] = "local",
        ray_address: Annotated[str | None, typer.Option("--ray-address", help="Ray cluster for --executor ray: auto, or ray://HOST:10001 (default: start Ray on this machine with --workers CPUs).")] = None,
        approx_subjects: Annotated[bool, typer.Option("--approx-subjects", help="Count people with HyperLogLog sketches (about 0.8 %% standard error, stated in the output) instead of exact hashes.")] = False,
        merge_memory: Annotated[str | None, typer.Option("--merge-memory", metavar="SIZE", help="Subject hashes kept in memory while merging before spilling to a private temp folder (default 1G).")] = None,
        endpoint_url: Annotated[str | None, typer.Option("--endpoint-url", metavar="URL", help="S3 API address for s3:// targets (MinIO, Ceph, ...; default: AWS_ENDPOINT_URL, else AWS).")] = None,
        targets: Annotated[list[str] | None, typer.Argument(help="Files, folders or store URLs to scan.", show_default=False)] = None,
    ) -> None:
        """Find personal data and secrets; count records and distinct people per field and category."""
        if sample is not None and full:
            raise UserError("--sample and --full exclude each other; pick one (--full is the default)")
        all_targets, target_options = _config_targets(config)
        all_targets += list(targets or [])
        if not all_targets:
            raise UserError("no target given; pass a file, a folder or a store URL, or --config spillguard.toml")
        from spillguard.s3 import with_endpoint

        pinned = [with_endpoint(t, endpoint_url) for t in all_targets]  # results name the endpoint of s3:// targets
        target_options = {with_endpoint(t, endpoint_url): o for t, o in target_options.items()}
        all_targets = pinned
        source_options: dict[str, Any] = {
            "sample": sample, "connect_timeout": connect_timeout, "read_timeout": read_timeout, "retry_budget": retry_budget,
            "max_rps": max_rps, "include": _split(include) or [],
            "exclude": _split(exclude_ds) or [], "include_views": include_views, "include_hidden": include_hidden,
            "partition_rows": partition_rows,
        }
        if ask_password:
            import getpass

            source_options["password"] = getpass.getpass("store password: ")
        code = run_scan_command(
            all_targets, fmt=fmt, output=output, show_samples=show_samples, subject_field=subject_field, rules=rules,
            only=only, exclude=exclude, fail_on=fail_on, subjects_out=subjects_out, progress=not no_progress,
            source_options={k: v for k, v in source_options.items() if v is not None}, workers=workers, state=state,
            resume=resume, target_options=target_options, secrets_out=secrets_out,
            secrets_hmac_key_env=secrets_hmac_key_env, executor=executor, ray_address=ray_address,
            approx_subjects=approx_subjects, merge_memory=merge_memory,
        )
        raise typer.Exit(code)

    @app.command()
    def demo(
        folder: Annotated[Path, typer.Option("--dir", help="Where to write the sample data.")] = Path("spillguard-demo"),
        users: Annotated[int, typer.Option("--users", min=10, help="How many synthetic customers.")] = 5000,
        seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 2019,
    ) -> None:
        """Generate a synthetic IoT customer dataset (no server needed) and scan it."""
        from rich.console import Console

        from spillguard.demo import generate

        console = Console()
        truth = generate(folder, users=users, seed=seed)
        console.print(f"[bold]spillguard demo[/]: wrote {sum(truth.records.values()):,} synthetic records of {users:,} customers to {folder}/")
        run_scan_command(
            [str(folder)], fmt=Format.table, output=None, show_samples=True, subject_field=None, rules=None, only=None,
            exclude=None, fail_on=FailOn.never, subjects_out=None, progress=True,
        )
        console.print(
            f"\nNext: [bold]spillguard scan {folder} --format json -o scan.json[/]"
            " for pipelines, [bold]--subjects-out people.csv[/] for the notification list."
        )

    @app.command("rules")
    def list_rules(
        rules: Annotated[list[Path] | None, typer.Option("--rules", help="Extra rule file (spillguard TOML, or a gitleaks config); repeatable.")] = None,
        category: Annotated[list[str] | None, typer.Option("--category", help="Only rules of these categories (e.g. secret; comma-separated or repeated).")] = None,
        fmt: Annotated[str, typer.Option("--format", "-f", help="table or tsv (one rule a line: provider, id, category, matches, description).")] = "table",
    ) -> None:
        """List the detection rules (built-in and from --rules files), by provider within a category."""
        from rich.console import Console
        from rich.table import Table

        from spillguard.rules import rule_listing

        if fmt not in ("table", "tsv"):
            raise UserError(f"--format {fmt}: use table or tsv")
        rows = rule_listing(rules or [], _split(category))
        if fmt == "tsv":
            sys.stdout.write("".join("\t".join(row) + "\n" for row in rows))
            return
        table = Table(header_style="bold")
        for col in ("provider", "id", "category", "matches", "description"):
            table.add_column(col, overflow="fold")
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        Console(stderr=True).print(f"{len(rows)} rules")


__all__ = ["UserError", "register"]
