"""UTC, once: the current time and the one way stored times are read back.

Everything the gateway stores is UTC. SQLite hands back naive datetimes, so every value
read from the store or compared with "now" goes through :func:`as_utc`; the store's
``UtcDateTime`` column type does it at the boundary.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """``value`` as aware UTC; a naive value is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC for operator output (``--json``); None stays None."""
    return as_utc(value).isoformat() if value is not None else None
