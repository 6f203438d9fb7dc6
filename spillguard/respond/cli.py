"""`spillguard respond plan|execute|verify` and `spillguard journal verify|export`."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import orjson
import typer

from spillguard.errors import UserError


class Fmt(StrEnum):
    table = "table"
    json = "json"


class ExportFmt(StrEnum):
    md = "md"
    json = "json"


class ScopeOpt(StrEnum):
    exact = "exact"
    all = "all"


respond_app = typer.Typer(help="Revoke leaked credentials, end sessions, unlink integrations; journaled and verified.",
                          no_args_is_help=True)
journal_app = typer.Typer(help="Check and export a response journal.", no_args_is_help=True)

PlaybookArg = Annotated[Path, typer.Argument(help="The playbook (respond.toml).", show_default=False)]
ScopeArg = Annotated[ScopeOpt | None, typer.Option("--scope", help="exact: only what leaked and affected people; all: everything. Default: the playbook's.")]
FmtArg = Annotated[Fmt, typer.Option("--format", "-f", help="Output format.")]
JournalArg = Annotated[Path | None, typer.Option("--journal", help="Journal file (default: the playbook's `journal`).")]


def _print_json(doc: dict) -> None:
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")


def _plan_table(resp: object, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from spillguard.respond.runner import Response

    assert isinstance(resp, Response)
    console = Console() if sys.stdout.isatty() else Console(width=200)
    t = Table(title=title, header_style="bold")
    for col in ("action", "kind", "store", "scope", "count", "steps", "done before"):
        t.add_column(col, justify="right" if col in ("count", "steps", "done before") else "left")
    for a in resp.actions:
        t.add_row(a.id, a.kind, a.target, a.scope, f"{a.count:,}", f"{len(a.steps):,}", f"{a.done_before:,}")
    console.print(t)
    for a in resp.actions:
        for note in a.notes:
            console.print(f"note: {a.id}: {note}")


@respond_app.command("plan")
def plan(playbook: PlaybookArg, scope: ScopeArg = None, fmt: FmtArg = Fmt.table, journal: JournalArg = None) -> None:
    """What would happen, with exact counts per action and store. Changes nothing."""
    from spillguard.respond.runner import open_response, plan_response

    resp = open_response(playbook, scope=scope.value if scope else None, journal_path=journal)
    try:
        plan_response(resp)
        if fmt is Fmt.json:
            _print_json(resp.plan_dict())
        else:
            _plan_table(resp, f"Response plan for incident {resp.ctx.incident} (nothing changed; run `respond execute --execute`)")
    finally:
        resp.close()


@respond_app.command("execute")
def execute(
    playbook: PlaybookArg, scope: ScopeArg = None, fmt: FmtArg = Fmt.table, journal: JournalArg = None,
    do_it: Annotated[bool, typer.Option("--execute", help="Really change the stores. Without it, only the plan is shown.")] = False,
    actor: Annotated[str, typer.Option("--actor", help="Who runs the response (recorded in the journal).")] = "spillguard",
    preview: Annotated[str | None, typer.Option("--preview", metavar="ADDRESS", help="Send the notify actions' messages to this one test address instead of the recipients (the first of each template; all with --preview-every). Nothing else runs, nothing is recorded as sent.")] = None,
    preview_every: Annotated[bool, typer.Option("--preview-every", help="With --preview: every message of the plan, each person's own text, not one per template.")] = False,
) -> None:
    """Run the plan: set-based, retried, journaled; a rerun after a crash finishes without repeating anything."""
    from spillguard.respond.runner import execute_response, open_response, plan_response

    if preview is not None and do_it:
        raise UserError("--preview sends test messages only; run it without --execute")
    if preview_every and preview is None:
        raise UserError("--preview-every needs --preview ADDRESS (the test address)")
    resp = open_response(playbook, scope=scope.value if scope else None, execute=do_it, journal_path=journal, actor=actor)
    try:
        if preview is not None:
            _preview(resp, preview, preview_every, fmt)
            return
        plan_response(resp)
        if not do_it:
            if fmt is Fmt.json:
                _print_json(resp.plan_dict())
            else:
                _plan_table(resp, "Dry run: nothing changed. Add --execute to run this plan.")
            print("spillguard: dry run, nothing changed; add --execute to run the plan", file=sys.stderr)
            raise typer.Exit(0)
        execute_response(resp)
        doc = resp.execute_dict()
        if fmt is Fmt.json:
            _print_json(doc)
        else:
            from rich.console import Console
            from rich.table import Table

            console = Console() if sys.stdout.isatty() else Console(width=200)
            t = Table(title=f"Response executed for incident {resp.ctx.incident} ({doc['seconds']:.1f} s)", header_style="bold")
            for col in ("action", "store", "scope", "planned", "done", "failed"):
                t.add_column(col)
            for a in doc["actions"]:
                t.add_row(a["action"], a["target"], a["scope"], f"{a['count']:,}", f"{a['done']:,}", f"{a['failed']:,}")
            console.print(t)
            console.print(f"Journal: {doc['journal']}. Next: spillguard respond verify {playbook}")
        failed = sum(a["failed"] for a in doc["actions"])
        if failed:
            print(f"spillguard: {failed:,} items failed; rerun `respond execute --execute` to retry them", file=sys.stderr)
            raise typer.Exit(3)
    finally:
        resp.close()


def _notify_actions(resp: object) -> list:
    from spillguard.respond.runner import Response

    assert isinstance(resp, Response)
    found = [a for a in resp.playbook.actions if getattr(a, "kind", "") == "notify"]
    if not found:
        raise UserError(f"{resp.playbook.path}: no action of kind \"notify\"; --preview and --bounces work on notifications")
    return found


def _preview(resp: object, address: str, every: bool, fmt: Fmt) -> None:
    """Every notify action's plan to one test address; the ledger and the journal are not written."""
    from spillguard.detect.masking import mask_email
    from spillguard.respond.runner import Response

    assert isinstance(resp, Response)
    results = {a.id: a.preview(resp.ctx, address, every=every) for a in _notify_actions(resp)}
    if fmt is Fmt.json:
        _print_json({"incident": resp.ctx.incident, "preview_to": mask_email(address),
                     "actions": [{"action": k, **r.to_json()} for k, r in results.items()]})
    else:
        for k, r in results.items():
            per = ", ".join(f"{t}: {n}" for t, n in sorted(r.by_template.items())) or "none"
            print(f"{k}: sent {r.previews:,} previews of {r.people:,} planned messages to {mask_email(address)} ({per})")
    print("spillguard: preview only: no recipient was mailed and nothing was recorded as sent", file=sys.stderr)


def _import_bounces(resp: object, mailbox: Path) -> None:
    """RFC 3464 bounces into each notify action's ledger (each ledger once)."""
    from spillguard.respond.notify import Ledger, import_bounces, read_mailbox

    messages = list(read_mailbox(mailbox))  # bounces are few; each ledger is matched against all of them
    read, recorded = len(messages), 0
    seen: set[Path] = set()
    for action in _notify_actions(resp):
        path = action.ledger_path.resolve()
        if path in seen:
            continue
        seen.add(path)
        ledger = Ledger(path)
        try:
            recorded += import_bounces(ledger, messages)
        finally:
            ledger.close()
    print(f"spillguard: {mailbox}: read {read:,} messages, recorded {recorded:,} bounces of this incident's notices",
          file=sys.stderr)


@respond_app.command("verify")
def verify(
    playbook: PlaybookArg, scope: ScopeArg = None, fmt: FmtArg = Fmt.table, journal: JournalArg = None,
    bounces: Annotated[Path | None, typer.Option("--bounces", metavar="MAILBOX", help="First record the delivery status notifications (RFC 3464 bounces) in this mbox file or folder of .eml files in the notify ledgers; bounced people count as not told.")] = None,
) -> None:
    """Check that revoked tokens, ended sessions and unlinked integrations are gone. Exit 1 if anything is still active."""
    from spillguard.respond.runner import open_response, verify_response

    resp = open_response(playbook, scope=scope.value if scope else None, journal_path=journal)
    try:
        if bounces is not None:
            _import_bounces(resp, bounces)
        verify_response(resp)
        doc = resp.verify_dict()
        if fmt is Fmt.json:
            _print_json(doc)
        else:
            from rich.console import Console

            console = Console() if sys.stdout.isatty() else Console(width=200)
            for v in doc["actions"]:
                mark = "[green]ok[/]" if not v["still_active"] else "[red]STILL ACTIVE[/]"
                console.print(f"{mark} {v['action']}: {v['still_active']:,} still active")
                for d in v["details"]:
                    console.print(f"    {d}")
        if doc["still_active"]:
            print(f"spillguard: {doc['still_active']:,} items still active", file=sys.stderr)
            raise typer.Exit(1)
    finally:
        resp.close()


def _open_journal(path: Path) -> object:
    from spillguard.keys import fingerprint_key
    from spillguard.respond.journal import Journal

    return Journal(path, fingerprint_key(), create=False)


@journal_app.command("verify")
def journal_verify(
    path: Annotated[Path, typer.Argument(help="The journal file.", show_default=False)],
    expect_head: Annotated[str | None, typer.Option("--expect-head", help="A head hash recorded earlier: fail if the journal no longer contains it.")] = None,
) -> None:
    """Check the hash chain: any edited, removed or reordered entry fails (exit 1)."""
    journal = _open_journal(path)
    try:
        check = journal.verify()  # type: ignore[attr-defined]
        problems = list(check.problems)
        if expect_head and not any(e.hash == expect_head for e in journal.entries()):  # type: ignore[attr-defined]
            problems.append(f"head {expect_head[:16]}… recorded earlier is not in the journal (entries removed or replaced)")
    finally:
        journal.close()  # type: ignore[attr-defined]
    if problems:
        for p in problems:
            print(f"spillguard: journal {path}: {p}", file=sys.stderr)
        print(f"journal {path}: BROKEN ({len(problems)} problems, {check.entries} entries)")
        raise typer.Exit(1)
    print(f"journal {path}: intact, {check.entries} entries, head {check.head}")


@journal_app.command("export")
def journal_export(
    path: Annotated[Path, typer.Argument(help="The journal file.", show_default=False)],
    fmt: Annotated[ExportFmt, typer.Option("--format", "-f", help="md or json.")] = ExportFmt.md,
    output: Annotated[str | None, typer.Option("--output", "-o", help="Write to FILE (owner-only) instead of stdout.")] = None,
) -> None:
    """The response timeline, with the chain's state."""
    from spillguard.outfiles import write_text
    from spillguard.respond.journal import export_json, export_markdown

    journal = _open_journal(path)
    try:
        text = export_json(journal) if fmt is ExportFmt.json else export_markdown(journal)  # type: ignore[arg-type]
    finally:
        journal.close()  # type: ignore[attr-defined]
    write_text(sys.stdout, output, text)


def register(app: typer.Typer) -> None:
    app.add_typer(respond_app, name="respond")
    app.add_typer(journal_app, name="journal")


__all__ = ["UserError", "register"]
