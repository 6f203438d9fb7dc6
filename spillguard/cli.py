"""The `spillguard` command line: a thin layer over the Python API."""

from __future__ import annotations

import sys

import typer

from spillguard.errors import UserError

app = typer.Typer(
    name="spillguard",
    help="Find personal data and secrets in data stores, count the people affected, watch for exposure.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    from spillguard import scan_cli

    scan_cli.register(app)
    # Each pillar registers its own commands; a pillar that is not installed is skipped.
    for module in ("spillguard.audit.cli", "spillguard.report.cli", "spillguard.respond.cli"):
        try:
            mod = __import__(module, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        mod.register(app)


_register_commands()


def main() -> None:
    # Click's standalone mode handles usage errors (exit 2), Ctrl-C and typer.Exit codes; a UserError
    # raised by any command ends here as one line on stderr and exit 2, never a traceback.
    try:
        app()
    except UserError as exc:
        print(f"spillguard: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
