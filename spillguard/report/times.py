"""Times in the report's inputs and outputs: ISO 8601 in, UTC out, one human form."""

from __future__ import annotations

from datetime import UTC, datetime

from spillguard.errors import UserError


def parse_time(value: str) -> datetime:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise UserError(
            f"timestamp {value!r} in the inputs is not ISO 8601; regenerate the input file"
        ) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def human(ts: str | None) -> str:
    if not ts:
        return "an unknown time"
    return parse_time(ts).strftime("%d %b %Y %H:%M UTC")
