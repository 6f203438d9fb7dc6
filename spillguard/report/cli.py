"""`spillguard report`: a thin wrapper over `build_report` and `render`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from spillguard.errors import UserError
from spillguard.outfiles import write_private

# The report machinery (jinja2 templates, the model) is imported by the command, not when it is registered.
_SUFFIX_FORMATS = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md", ".json": "json"}


def choose_format(format_: str | None, output: Path | None) -> str:
    if format_:
        from spillguard.report.rendering import FORMATS

        if format_ not in FORMATS:
            raise UserError(f"unknown report format {format_!r}; use --format html, md or json")
        return format_
    if output is not None and output.suffix.lower() in _SUFFIX_FORMATS:
        return _SUFFIX_FORMATS[output.suffix.lower()]
    return "html"


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        scans: Annotated[
            list[Path],
            typer.Argument(help="Scan results written by `spillguard scan --format json` (one per store)."),
        ],
        format_: Annotated[
            str | None,
            typer.Option(
                "--format", "-f", help="html, md or json (default: from the -o extension, else html)."
            ),
        ] = None,
        output: Annotated[
            Path | None,
            typer.Option("--output", "-o", help="File to write (created owner-only); default stdout."),
        ] = None,
        audit: Annotated[
            list[Path] | None,
            typer.Option("--audit", help="Audit result JSON (repeatable): exposure at check time."),
        ] = None,
        history: Annotated[
            Path | None, typer.Option("--history", help="Watch state database (`spillguard watch --state`).")
        ] = None,
        baseline: Annotated[
            Path | None,
            typer.Option("--baseline", help="An older scan JSON: show what appeared and went away."),
        ] = None,
        organisation: Annotated[
            str | None, typer.Option("--organisation", help="Controller name printed on the report.")
        ] = None,
        contact: Annotated[
            str | None,
            typer.Option("--contact", help="Contact point for the notifications (DPO name, e-mail, phone)."),
        ] = None,
        journal: Annotated[
            Path | None,
            typer.Option("--journal", help="Response journal (`spillguard respond execute`): measures taken and their times."),
        ] = None,
    ) -> None:
        """Impact report: who was exposed, to what, since when, with GDPR Art. 33/34 notification drafts."""
        from spillguard.report.inputs import load_audit, load_scan
        from spillguard.report.model import build_report
        from spillguard.report.rendering import render

        fmt = choose_format(format_, output)
        rep = build_report(
            [load_scan(p) for p in scans],
            [load_audit(p) for p in audit or []],
            str(history) if history else None,
            load_scan(baseline) if baseline else None,
            organisation=organisation,
            contact=contact,
        )
        if journal is not None:
            from spillguard.keys import fingerprint_key
            from spillguard.respond.measures import apply_to_report, measures_from_journal

            apply_to_report(rep, *measures_from_journal(journal, fingerprint_key()))
        text = render(rep, fmt)
        if output is None:
            sys.stdout.write(text)
        else:
            write_private(output, text)
            print(
                f"spillguard: wrote {fmt} report to {output} ({rep.summary['people_affected']} people affected)",
                file=sys.stderr,
            )
