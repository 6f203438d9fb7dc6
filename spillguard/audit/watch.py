"""`watch`: re-audit on a jittered interval, remember every verdict, alert on transitions, remind, recover.

Alert events:
    exposed    a target became readable by outsiders (or is on the first look)
    changed    any other change of verdict (e.g. open-metadata → open-read, protected → unreachable)
    recovered  an exposed target is protected again
    reminder   still exposed `remind_every` seconds after the last alert
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spillguard.audit.alerts import alert_message
from spillguard.audit.core import audit, resolve_targets
from spillguard.audit.history import History, Observation, parse_ts
from spillguard.audit.verdict import AuditResult, ExposureVerdict, exit_code_for
from spillguard.config import Config, SinkConfig, TargetConfig
from spillguard.errors import UserError
from spillguard.keys import fingerprint_key
from spillguard.notify import Message, Sink, SinkError, build_sink
from spillguard.targets import Target, credentials_tag
from spillguard.verdicts import Verdict, is_exposed

MIN_INTERVAL = 1.0  # seconds: the floor that keeps a watch from hammering a store


@dataclass(slots=True)
class WatchOptions:
    interval: float = 60.0
    jitter: float = 0.1
    remind_every: float = 3600.0
    timeout: float = 5.0
    inventory: list[str] = field(default_factory=list)
    admin: Sequence[str] = ()


def history_key(target: Target, key: bytes) -> str:
    """A watched target's identity: its store and path (two clusters behind one proxy are two targets), and
    which login watches it (a keyed hash, never the credential), so two targets that differ only by
    password keep two histories."""
    where = target.store_key + target.path.rstrip("/")
    if target.user is None and target.password is None:
        return where
    return f"{where} login:{credentials_tag(key, target.user, target.password)}"


def alert_event(alerted: str | None, current: str, first_look: bool) -> str | None:
    """Which alert, if any, a verdict deserves given the verdict last alerted for that target."""
    if alerted == current:
        return None
    if is_exposed(current):
        return "changed" if is_exposed(alerted) else "exposed"
    if current == Verdict.PROTECTED:
        return "recovered" if is_exposed(alerted) else (None if first_look or alerted is None else "changed")
    # unreachable / error: worth saying, except when nothing was ever alerted and nothing was exposed.
    return "changed"


def build_alert(event: str, v: ExposureVerdict, obs: Observation, at: str) -> dict[str, Any]:
    first = obs.state.first_exposed_at
    exposed_for = (parse_ts(at) - parse_ts(first)).total_seconds() if first else None
    return {
        "event": event,
        "target": v.target,
        "name": v.name,
        "protocol": v.protocol,
        "old_verdict": obs.state.alerted_verdict if event != "reminder" else v.verdict.value,
        "new_verdict": v.verdict.value,
        "new_exposed": v.exposed,
        "at": at,
        "first_exposed_at": first,
        "exposed_for_s": exposed_for,
        "stakes": v.stakes,
        "evidence": v.evidence,
        "server_version": v.server_version,
        "tls": v.tls,
    }


def _log(message: str) -> None:
    print(f"spillguard watch: {message}", file=sys.stderr, flush=True)


def deliver(sinks: Sequence[Sink], message: Message) -> bool:
    """Send to every sink; the alert counts as delivered when at least one sink took it."""
    ok = False
    for sink in sinks:
        try:
            sink.send(message)
            ok = True
        except SinkError as exc:
            _log(f"alert not delivered to {sink.name}: {exc}")
    return ok or not sinks


def run_cycle(
    targets: list[str | TargetConfig | Target],
    history: History,
    sinks: Sequence[Sink],
    opts: WatchOptions,
    config: Config | None = None,
) -> AuditResult:
    """One audit of every target, recorded, with alerts sent: what `--once` runs."""
    resolved = resolve_targets(targets, opts.admin)
    # The fingerprint key is only needed (and made) when a target carries credentials.
    key = fingerprint_key() if any(t.user is not None or t.password is not None for t in resolved) else b""
    for t in resolved:
        t.history_key = history_key(t, key)
    result = audit(resolved, config=config, inventory=opts.inventory, timeout=opts.timeout)
    for v in result.targets:
        obs = history.record(v, result.checked_at)
        alerted = obs.state.alerted_verdict
        event = alert_event(alerted, v.verdict.value, first_look=obs.previous is None and alerted is None)
        if event is None and v.exposed and obs.state.last_alert_at:
            since = (parse_ts(result.checked_at) - parse_ts(obs.state.last_alert_at)).total_seconds()
            if since >= opts.remind_every:
                event = "reminder"
        if event is None:
            if alerted is None and obs.previous is None:
                # Nothing to say on the first look at a protected target, but remember we looked.
                history.mark_alerted(obs.target, v.verdict.value, None)
            continue
        alert = build_alert(event, v, obs, result.checked_at)
        if deliver(sinks, alert_message(alert, since=obs.state.since)):
            history.mark_alerted(obs.target, v.verdict.value, result.checked_at)
        # Not delivered: alerted_verdict stays, so the next cycle tries again.
    return result


def watch(
    targets: Iterable[str | TargetConfig | Target] | None = None,
    *,
    config: Config | None = None,
    state: str | Path | None = None,
    sinks: Sequence[Sink] | None = None,
    sink_configs: Sequence[SinkConfig] = (),
    options: WatchOptions | None = None,
    once: bool = False,
    stop: threading.Event | None = None,
    on_cycle: Callable[[AuditResult], None] | None = None,
) -> int:
    """Watch until `stop` is set (or one cycle with `once`); returns the exit code of the last cycle."""
    opts = options or WatchOptions()
    if opts.interval < MIN_INTERVAL:
        raise UserError(f"--interval {opts.interval}: must be at least {MIN_INTERVAL:.0f} second")
    items: list[str | TargetConfig | Target] = list(targets or [])
    if not items and config is not None:
        items = list(config.targets)
    if not items:
        raise UserError("no targets to watch: give target URLs or a spillguard.toml with [[target]] entries")
    if config is not None:
        opts.inventory = (
            list(opts.inventory) + config.inventory + [t.inventory for t in config.targets if t.inventory]
        )
    active_sinks = list(sinks) if sinks is not None else [build_sink(c) for c in sink_configs]
    state_path = state or (config.watch.state if config else "spillguard-watch.sqlite")
    stop = stop or threading.Event()
    code = 0
    with History(state_path) as history:
        while True:
            started = time.monotonic()
            result = run_cycle(items, history, active_sinks, opts)
            code = exit_code_for([t.verdict for t in result.targets])
            if on_cycle is not None:
                on_cycle(result)
            if once:
                return code
            # Jitter spreads many watchers (and cron-like alignment) so they never probe in lockstep.
            delay = opts.interval * (1 + random.uniform(-opts.jitter, opts.jitter)) - (
                time.monotonic() - started
            )
            if stop.wait(max(0.0, delay)):
                return code
