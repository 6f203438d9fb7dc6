"""`spillguard copy` and `spillguard policy init`: thin wrappers over `copy()` and `propose_policy()`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from spillguard.errors import UserError

# The copy machinery is imported by the command, not when it is registered (every command would pay for it).
if TYPE_CHECKING:
    from spillguard.safecopy.run import CopyResult


def _print_text(result: CopyResult) -> None:
    out = sys.stdout.write
    out(f"copied {result.source} -> {result.destination} ({result.mode})\n")
    ck = result.checkpoint
    if ck and ck["resumed"]:
        out(f"resumed from {ck['state']}: {ck['partitions_done_before']} of {ck['partitions']} partitions were already copied\n")
    if result.exposure:
        flag = " (allowed by --allow-exposed-destination)" if result.exposure.get("allowed_by_flag") else ""
        out(f"destination exposure: {result.exposure['verdict']}{flag}\n")
    for d in result.datasets:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(d.to_json()["transforms"].items()))
        how = "" if d.mode == result.mode else f" ({d.mode})"
        out(f"  {d.source} -> {d.destination}: {d.rows} rows{how}; fields: {counts}\n")
        if d.watermark:
            out(f"    watermark {d.watermark['field']}: after {d.watermark['after']} up to {d.watermark['up_to']}\n")
        if d.malformed:
            out(f"    {len(d.malformed)} malformed record(s) not copied (first at line {d.malformed[0]['line']})\n")
        for note, n in sorted(d.notes.items()):
            out(f"    {note}: {n}\n")
    if result.not_in_policy:
        out(f"  not in the policy, not copied: {', '.join(result.not_in_policy)}\n")
    if result.watch:
        how = "added to" if result.watch["added"] else "already in"
        out(f"watch: {result.watch['url']} {how} {result.watch['config']}\n")
    keys = ", ".join(f"{n}={k['key_id']}" for n, k in result.keys.items())
    if keys:
        out(f"keys: {keys}\n")
    v = result.verification
    if not v.ran:
        out("verification: skipped (--no-verify)\n")
        return
    if v.ok:
        out("verification: passed (no secret, no personal data in kept fields, no source identifier in the copy)\n")
        return
    out("verification: FAILED\n")
    for s in v.secrets:
        out(f"  secret survived: {s['dataset']} {s['field']} ({s['rule']}, {s['records']} records)\n")
    for p in v.personal_data:
        out(f"  {p['category']} in {p['transform']} field {p['dataset']} {p['field']} ({p['records']} records)\n")
    for i in v.identifiers:
        out(f"  source identifier values in {i['dataset']} {i['field']}: {i['values']}\n")
    for m in v.incomplete:
        out(f"  not verified: {m}\n")


def register(app: typer.Typer) -> None:
    @app.command("copy")
    def copy_command(
        source: Annotated[str, typer.Argument(help="What to copy from: a path or a store URL, as for scan.")],
        destination: Annotated[str, typer.Argument(help="Where to: a folder, a .jsonl/.parquet file, or a store URL.")],
        policy: Annotated[Path, typer.Option("--policy", "-p", help="The copy policy (TOML); see docs/copy.md.")],
        replace: Annotated[bool, typer.Option("--replace", help="Replace destination tables that exist.")] = False,
        append: Annotated[bool, typer.Option("--append", help="Append to destination tables that exist.")] = False,
        on_new: Annotated[str | None, typer.Option("--on-new", help="A field not in the policy: halt (default), drop or null.")] = None,
        allow_exposed: Annotated[bool, typer.Option("--allow-exposed-destination", help="Copy even to a destination an outsider can read (recorded).")] = False,
        file_format: Annotated[str | None, typer.Option("--file-format", help="jsonl or parquet, for a folder destination.")] = None,
        no_verify: Annotated[bool, typer.Option("--no-verify", help="Skip the proof scan of the destination.")] = False,
        format_: Annotated[str, typer.Option("--format", "-f", help="text or json.")] = "text",
        ask_password: Annotated[bool, typer.Option("--ask-password", help="Prompt for the source's password.")] = False,
        since: Annotated[str | None, typer.Option("--since", help="Watermark field (updated_at, @timestamp): copy only records past the last run's.")] = None,
        state: Annotated[Path | None, typer.Option("--state", help="Checkpoint every finished partition (and keep --since watermarks) in this SQLite FILE (owner-only).")] = None,
        resume: Annotated[bool, typer.Option("--resume", help="Continue the interrupted copy recorded in --state; the result equals an uninterrupted copy.")] = False,
        watch_config: Annotated[Path | None, typer.Option("--watch-config", help="Add the destination to this spillguard.toml's watch list after the copy.")] = None,
        workers: Annotated[int, typer.Option("--workers", "-w", help="Processes that read and transform partitions (default 1).")] = 1,
    ) -> None:
        """Copy datasets through a privacy policy to an analytics store, refuse an exposed destination, prove the result."""
        from spillguard.safecopy.run import CopyInterrupted, copy

        if replace and append:
            raise UserError("--replace and --append exclude each other")
        if workers < 1:
            raise UserError(f"--workers must be at least 1, not {workers}")
        if format_ not in ("text", "json"):
            raise UserError(f"--format must be text or json, not {format_!r}")
        options: dict[str, Any] = {}
        if ask_password:
            import getpass

            options["password"] = getpass.getpass("source password: ")
        try:
            result = copy(
                source, destination, policy=policy, mode="replace" if replace else "append" if append else "create",
                on_new=on_new, allow_exposed_destination=allow_exposed, fmt=file_format, verify=not no_verify,
                since=since, state=state, resume=resume, workers=workers, watch_config=watch_config, **options,
            )
        except CopyInterrupted as exc:
            print(f"spillguard: {exc.advice()}", file=sys.stderr)
            raise typer.Exit(130) from None
        if format_ == "json":
            sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n")
        else:
            _print_text(result)
        if result.exit_code:
            print("spillguard: the copy was written but FAILED verification; see above", file=sys.stderr)
        raise typer.Exit(result.exit_code)

    policy_app = typer.Typer(help="Safe-copy policies.", no_args_is_help=True)
    app.add_typer(policy_app, name="policy")

    @policy_app.command("init")
    def policy_init(
        source: Annotated[str, typer.Argument(help="The source the policy is for: a path or a store URL.")],
        output: Annotated[Path, typer.Option("--output", "-o", help="Policy file to write.")],
        scan: Annotated[Path | None, typer.Option("--scan", help="A `spillguard scan --format json` result of SOURCE (else it is scanned now).")] = None,
        key_env: Annotated[str, typer.Option("--key-env", help="Environment variable the policy reads the key from.")] = "SPILLGUARD_COPY_KEY",
        force: Annotated[bool, typer.Option("--force", help="Overwrite OUTPUT if it exists.")] = False,
    ) -> None:
        """Propose a commented copy policy from a scan: secrets dropped, identifiers pseudonymised, the rest kept."""
        from spillguard.safecopy.propose import propose_policy

        if output.exists() and not force:
            raise UserError(f"{output} exists; use --force to overwrite it")
        if not output.parent.is_dir():
            raise UserError(f"{output}: folder {output.parent} does not exist")
        scan_doc = None
        if scan is not None:
            try:
                scan_doc = json.loads(scan.read_text())
            except (OSError, ValueError) as exc:
                raise UserError(f"{scan}: not a readable scan result ({exc}); write one with `spillguard scan --format json -o FILE`") from None
        text = propose_policy(source, scan_doc, key_env=key_env)
        fd = os.open(output, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        from spillguard.targets import mask_url

        print(f"wrote {output}: review it, then `spillguard copy {mask_url(source)} DEST --policy {output}`", file=sys.stderr)
