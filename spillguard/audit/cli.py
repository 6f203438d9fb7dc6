"""`spillguard audit` and `spillguard watch`: thin wrappers over `audit()` and `watch()`."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from spillguard.errors import UserError

# Registering these commands must not load the audit machinery (probes, notify sinks, httpx): every other
# command pays for what is imported here. The implementation is imported inside each command.
if TYPE_CHECKING:
    from spillguard.audit.verdict import AuditResult
    from spillguard.config import Config, SinkConfig

DEFAULT_CONFIG = "spillguard.toml"

TargetsArg = Annotated[
    list[str] | None, typer.Argument(help="Target URLs, e.g. redis://HOST:6379 (default: the config's).")
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="spillguard.toml (default: ./spillguard.toml if present)."),
]
InventoryOpt = Annotated[
    list[str] | None, typer.Option("--inventory", "-i", help="Scan inventory JSON of a target (repeatable).")
]
AdminOpt = Annotated[
    list[str] | None,
    typer.Option("--admin", help="Admin URL for the target at the same position (repeatable)."),
]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds per network operation.")]
EndpointOpt = Annotated[
    str | None,
    typer.Option("--endpoint-url", metavar="URL", help="S3 API address for s3:// targets (default: AWS_ENDPOINT_URL, else AWS)."),
]


def _pinned(targets: list[str] | None, endpoint_url: str | None) -> list[str] | None:
    """s3:// targets with their endpoint written in, so verdicts and history name it."""
    from spillguard.s3 import with_endpoint

    return [with_endpoint(t, endpoint_url) for t in targets] if targets else targets


def _config(path: Path | None, targets: list[str] | None) -> Config | None:
    from spillguard.config import load_config

    if path is not None:
        return load_config(path)
    if not targets and Path(DEFAULT_CONFIG).exists():
        return load_config(DEFAULT_CONFIG)
    if not targets:
        raise UserError(f"no targets: give target URLs or write a {DEFAULT_CONFIG} with [[target]] entries")
    return None


def _print(result: AuditResult, fmt: str) -> None:
    if fmt == "json":
        sys.stdout.write(json.dumps(result.to_json(), indent=2, default=str) + "\n")
    else:
        from spillguard.audit.render import render_table

        render_table(result)


def audit_command(
    targets: TargetsArg = None,
    config: ConfigOpt = None,
    inventory: InventoryOpt = None,
    admin: AdminOpt = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
    timeout: TimeoutOpt = 5.0,
    source_address: Annotated[
        str | None,
        typer.Option("--source-address", help="Local address to probe from (Redis, memcached, HTTP)."),
    ] = None,
    endpoint_url: EndpointOpt = None,
) -> None:
    """Probe each target as an anonymous outsider would, read-only, and give a verdict with evidence.

    Exit code: 0 all protected, 1 something exposed, 2 something unreachable/error (or a usage error).
    """
    from spillguard.audit.core import audit

    if fmt not in ("table", "json"):
        raise UserError(f"--format {fmt!r}: use 'table' or 'json'")
    cfg = _config(config, targets)
    result = audit(
        targets or None,
        config=cfg,
        inventory=inventory or [],
        admin=admin or [],
        timeout=timeout,
        source_address=source_address,
        endpoint_url=endpoint_url,
    )
    _print(result, fmt)
    raise typer.Exit(result.exit_code)


def _cli_sinks(
    webhook: list[str],
    webhook_format: str,
    webhook_secret_env: str | None,
    alert_file: list[str],
    alert_command: list[str],
    stdout: bool,
) -> list[SinkConfig]:
    from spillguard.config import SinkConfig, validate_sink

    sinks = [
        SinkConfig(type="webhook", url=u, format=webhook_format, secret_env=webhook_secret_env)
        for u in webhook
    ]
    sinks += [SinkConfig(type="file", path=p) for p in alert_file]
    sinks += [SinkConfig(type="command", command=c) for c in alert_command]
    if stdout:
        sinks.append(SinkConfig(type="stdout"))
    for s in sinks:
        validate_sink(s, f"--{s.type}")
    return sinks


def watch_command(
    targets: TargetsArg = None,
    config: ConfigOpt = None,
    state: Annotated[
        str | None,
        typer.Option(
            "--state", help="SQLite history file (default from config, else spillguard-watch.sqlite)."
        ),
    ] = None,
    interval: Annotated[
        float | None, typer.Option("--interval", help="Seconds between audits (default 60, jittered ±10%).")
    ] = None,
    remind_every: Annotated[
        float | None,
        typer.Option("--remind-every", help="Seconds between reminders while exposed (default 3600)."),
    ] = None,
    once: Annotated[
        bool,
        typer.Option("--once", help="One audit, alerts, exit code by the worst verdict (for cron and CI)."),
    ] = False,
    webhook: Annotated[list[str] | None, typer.Option("--webhook", help="Webhook URL (repeatable).")] = None,
    webhook_format: Annotated[str, typer.Option("--webhook-format", help="slack or json.")] = "json",
    webhook_secret_env: Annotated[
        str | None, typer.Option("--webhook-secret-env", help="Env var holding the HMAC key.")
    ] = None,
    alert_file: Annotated[
        list[str] | None, typer.Option("--alert-file", help="Append alerts as JSON lines here.")
    ] = None,
    alert_command: Annotated[
        list[str] | None, typer.Option("--alert-command", help="Run this with the alert on stdin.")
    ] = None,
    inventory: InventoryOpt = None,
    admin: AdminOpt = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Seconds per network operation.")] = None,
    endpoint_url: EndpointOpt = None,
) -> None:
    """Re-audit on an interval, keep history in SQLite, alert on every verdict change.

    Alerts go to the sinks of the config and of the options; with none, JSON lines on stdout.
    Exit code (with --once): 0 all protected, 1 something exposed, 2 something unreachable/error or a usage error.
    """
    from spillguard.audit.watch import WatchOptions, watch
    from spillguard.config import SinkConfig

    if webhook_format not in ("slack", "json"):
        raise UserError(f"--webhook-format {webhook_format!r}: use 'slack' or 'json'")
    cfg = _config(config, targets)
    targets = _pinned(targets, endpoint_url)
    wcfg = cfg.watch if cfg else None
    sinks = list(wcfg.sinks) if wcfg else []
    sinks += _cli_sinks(
        webhook or [], webhook_format, webhook_secret_env, alert_file or [], alert_command or [], False
    )
    if not sinks:
        sinks = [SinkConfig(type="stdout")]
    opts = WatchOptions(
        interval=interval if interval is not None else (wcfg.interval if wcfg else 60.0),
        jitter=wcfg.jitter if wcfg else 0.1,
        remind_every=remind_every if remind_every is not None else (wcfg.remind_every if wcfg else 3600.0),
        timeout=timeout if timeout is not None else (wcfg.timeout if wcfg else 5.0),
        inventory=list(inventory or []),
        admin=admin or [],
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    # SIGTERM (systemd stop) ends the loop between cycles, so the history is never cut mid-write.
    previous = signal.signal(signal.SIGTERM, on_signal)

    def on_cycle(result: AuditResult) -> None:
        worst = result.worst()
        print(f"spillguard watch: {result.checked_at} {len(result.targets)} target(s), worst {worst.value if worst else '-'}",
              file=sys.stderr, flush=True)  # fmt: skip

    try:
        code = watch(
            targets or None, config=cfg, state=state, sink_configs=sinks, options=opts, once=once, stop=stop,
            on_cycle=on_cycle,
        )  # fmt: skip
    except KeyboardInterrupt:
        code = 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    raise typer.Exit(code if once else (code if code == 130 else 0))


def register(app: typer.Typer) -> None:
    app.command("audit")(audit_command)
    app.command("watch")(watch_command)


__all__ = ["register"]
