"""The `spillguard` command line: a thin layer over the Python API."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

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
    from spillguard.scan import cli as scan_cli

    scan_cli.register(app)
    # Each pillar registers its own commands; a pillar that is not installed is skipped.
    for module in ("spillguard.audit.cli", "spillguard.report.cli", "spillguard.respond.cli", "spillguard.safecopy.cli"):
        try:
            mod = __import__(module, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        mod.register(app)


_register_commands()


def _print_version(value: bool) -> None:
    if value:
        from spillguard import __version__

        print(f"spillguard {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_print_version)
    ] = False,
) -> None:
    pass


def _plain_flags(command: Any) -> None:
    """Typer prints a value type beside every option, `<bool>` beside flags, which take no value: none there."""
    for param in command.params:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    help_option = command.get_help_option

    def plain_help_option(ctx: Any) -> Any:
        option = help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = plain_help_option
    for sub in getattr(command, "commands", {}).values():
        _plain_flags(sub)


def _collect_from_here(command: Any) -> None:
    """In the `spillguard` process, each command's work starts with the cyclic collector on, over only what the
    work makes: what start-up made (modules, the parsed options) lives for the whole run and is frozen, so no
    collection walks it again, nor does a forked scan worker (whose pages then stay shared). Not for a caller's
    own process (tests invoking `command()`): frozen objects are never collected."""
    subcommands = getattr(command, "commands", None)
    if subcommands is not None:  # a group: its own callback runs before the chosen command's options are parsed
        for sub in subcommands.values():
            _collect_from_here(sub)
        return
    callback = command.callback

    def run(*args: Any, **kwargs: Any) -> Any:
        gc.freeze()
        gc.enable()
        return callback(*args, **kwargs)

    command.callback = run


def _command_name(info: Any) -> str:
    return info.name or typer.main.get_command_name(info.callback.__name__ if info.callback else "")


def _invoked(argv: Sequence[str]) -> str | None:
    """The command `argv` (the arguments after `spillguard`) runs, when it is one of the registered ones."""
    if not argv or argv[0].startswith("-"):
        return None
    names = {_command_name(c) for c in app.registered_commands} | {g.name for g in app.registered_groups}
    return argv[0] if argv[0] in names else None


def command(argv: Sequence[str] | None = None) -> Any:
    """The click command `spillguard` runs (what `app()` would run, with plain flags in help screens). Given the
    arguments, and when they name a command, the group holds that command alone: typer reads every command's
    options from its signature and annotations, ~30 ms of each start for the commands not run. The root's own
    options, a missing or mistyped command: the whole group (its help lists every command)."""
    invoked = _invoked(argv) if argv is not None else None
    commands, groups = app.registered_commands, app.registered_groups
    if invoked is not None:
        app.registered_commands = [c for c in commands if _command_name(c) == invoked]
        app.registered_groups = [g for g in groups if g.name == invoked]
    try:
        cmd = typer.main.get_command(app)
    finally:
        app.registered_commands, app.registered_groups = commands, groups
    _plain_flags(cmd)
    return cmd


def main() -> None:
    # Start-up (imports, option parsing) makes objects that live until exit: no cyclic collection walks them
    # (they are frozen when the command's work starts), nor the collections of the interpreter's exit (a
    # tenth of a small scan's CPU).
    gc.disable()
    # numpy's OpenBLAS starts a thread for every other core, which spins for about 0.1 s of CPU once loaded;
    # spillguard runs no linear algebra (numpy sorts and masks), so one thread: that core stays the scan's.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # Click's standalone mode handles usage errors (exit 2), Ctrl-C and typer.Exit codes; a UserError
    # raised by any command ends here as one line on stderr and exit 2, never a traceback.
    try:
        cmd = command(sys.argv[1:])
        _collect_from_here(cmd)
        cmd(prog_name="spillguard")
    except UserError as exc:
        print(f"spillguard: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        gc.freeze()
