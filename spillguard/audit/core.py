"""`audit()`: probe every target concurrently, as an anonymous outsider, and rank the verdicts by stakes."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from spillguard.audit.probes import ProbeContext, probe_for
from spillguard.audit.probes.base import Unreachable, is_unreachable_error
from spillguard.audit.stakes import Inventory, dataset_hints, load_inventory, stakes_for
from spillguard.audit.verdict import AuditResult, ExposureVerdict, utc_now
from spillguard.config import Config, TargetConfig
from spillguard.errors import UserError
from spillguard.targets import Target, mask_url, parse_target
from spillguard.verdicts import SEVERITY, Verdict

MAX_CONCURRENCY = 8  # probes in flight at once: bounds what one audit sends to a network


def resolve_targets(
    targets: Iterable[str | TargetConfig | Target], admin_urls: Sequence[str] = ()
) -> list[Target]:
    """Turn URLs and config entries into Targets. `admin_urls` pair with URL targets by position."""
    out: list[Target] = []
    for i, t in enumerate(targets):
        if isinstance(t, Target):
            out.append(t)
            continue
        if isinstance(t, TargetConfig):
            target = parse_target(t.url, name=t.name, password=t.password())
            target.include = list(t.include)
            if t.admin_url:
                target.admin = parse_target(t.admin_url, password=t.admin_password())
            out.append(target)
            continue
        target = parse_target(str(t))
        if i < len(admin_urls) and admin_urls[i]:
            target.admin = parse_target(admin_urls[i])
        out.append(target)
    for target in out:
        if target.admin is not None and target.admin.protocol != target.protocol:
            raise UserError(
                f"admin URL {target.admin.masked!r} speaks {target.admin.protocol}, target {target.masked!r} "
                f"speaks {target.protocol}; give an admin URL of the same kind"
            )
    return out


def probe_target(target: Target, ctx: ProbeContext) -> ExposureVerdict:
    """One target's verdict; never raises: every failure becomes `unreachable` or `error` with a reason."""
    started = time.perf_counter()
    result = ExposureVerdict(
        target=target.masked, name=target.name, protocol=target.protocol, verdict=Verdict.ERROR,
        tls=target.tls, host=target.host, port=target.port, history_key=target.history_key,
    )  # fmt: skip
    try:
        outcome = probe_for(target.protocol)(target, ctx)
        result.verdict = outcome.verdict
        result.evidence = outcome.evidence
        result.tls = outcome.tls
        result.server_version = outcome.server_version
    except Exception as exc:  # one bad target must not stop the audit of the others
        reason = _scrub(str(exc) if isinstance(exc, Unreachable) else f"{type(exc).__name__}: {exc}", target)
        if is_unreachable_error(exc) or _looks_unreachable(exc):
            result.verdict = Verdict.UNREACHABLE
        result.evidence = {"reason": reason}
    result.evidence.setdefault("plaintext", not result.tls)
    result.total_ms = (time.perf_counter() - started) * 1000
    return result


def _looks_unreachable(exc: BaseException) -> bool:
    cause = exc.__cause__ or exc.__context__
    return cause is not None and is_unreachable_error(cause)


def _scrub(text: str, target: Target) -> str:
    # Driver messages sometimes echo the DSN: never let a password through.
    for t in (target, target.admin):
        if t is not None:
            text = text.replace(t.url, mask_url(t.url))
            for secret in t.secrets():
                text = text.replace(secret, "***")
    return text[:500]


def audit(
    targets: Iterable[str | TargetConfig | Target] | None = None,
    *,
    config: Config | str | Path | None = None,
    inventory: Iterable[str | Path] = (),
    admin: Sequence[str] = (),
    timeout: float = 5.0,
    mqtt_listen: float = 1.0,
    concurrency: int = MAX_CONCURRENCY,
    source_address: str | None = None,
    endpoint_url: str | None = None,
) -> AuditResult:
    """Audit `targets` (URLs) or the targets of `config`, and rank them by what they expose.

    `inventory` lists `spillguard scan --format json` files; a target they cover gets `stakes`.
    `source_address` makes the Redis, memcached and HTTP probes connect from that local address.
    `endpoint_url` is the S3 API address of `s3://` targets that do not name one (as --endpoint-url).
    """
    if isinstance(config, str | Path):
        from spillguard.config import load_config

        config = load_config(config)
    from spillguard.s3 import with_endpoint

    items: list[str | TargetConfig | Target] = [with_endpoint(t, endpoint_url) if isinstance(t, str) else t for t in targets or []]
    inventory_paths = [str(p) for p in inventory]
    if config is not None:
        if not items:
            items = list(config.targets)
        inventory_paths += config.inventory
        inventory_paths += [t.inventory for t in config.targets if t.inventory]
    if not items:
        raise UserError("no targets: give target URLs or a spillguard.toml with [[target]] entries")
    resolved = resolve_targets(items, admin)
    inventories: list[Inventory] = [load_inventory(p) for p in dict.fromkeys(inventory_paths)]
    checked_at = utc_now()

    def one(target: Target) -> ExposureVerdict:
        hints = dataset_hints(target.store_key, inventories) + list(target.include)
        ctx = ProbeContext(
            timeout=timeout, dataset_hints=hints, mqtt_listen=mqtt_listen, source_address=source_address
        )
        return probe_target(target, ctx)

    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(resolved)))) as pool:
        verdicts = list(pool.map(one, resolved))
    for target, v in zip(resolved, verdicts, strict=True):
        v.stakes = stakes_for(target.store_key, inventories)
    return AuditResult(checked_at=checked_at, targets=rank(verdicts))


def rank(verdicts: list[ExposureVerdict]) -> list[ExposureVerdict]:
    """Exposed targets first, the most people (then records) at stake first, then by severity."""
    if not any(v.stakes for v in verdicts):
        return sorted(verdicts, key=lambda v: SEVERITY[v.verdict])

    def key(v: ExposureVerdict) -> tuple[int, int, int, int]:
        s = v.stakes or {}
        return (
            0 if v.exposed else 1,
            -(s.get("subjects") or 0),
            -(s.get("records") or 0),
            SEVERITY[v.verdict],
        )

    return sorted(verdicts, key=key)
