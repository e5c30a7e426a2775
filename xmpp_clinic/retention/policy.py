"""Retention policies as plain data: periods, and the cutoff each one implies (I.7, IV.8, II.3).

A period is minute-granular (``30d``, ``12h``, ``90m``). A thread's messages older than
its period are purged; a closed thread (``threads close``) keeps everything until
``closed_at + period`` and then loses all of it (a case ends, its period starts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from xmpp_clinic.settings.retention import RetentionSettings

_PERIOD = re.compile(r"^\s*(\d{1,7})\s*([dhm])\s*$")
_MINUTES = {"d": 24 * 60, "h": 60, "m": 1}
MAX_PERIOD_MINUTES = 100 * 365 * 24 * 60  # a century: longer is a typo


class InvalidPeriod(ValueError):
    """A period that is not ``<number>d``, ``<number>h`` or ``<number>m``."""


def parse_period(raw: str) -> int:
    """Minutes in ``raw`` (``30d``, ``12h``, ``90m``); at least one minute (I.7)."""
    match = _PERIOD.match(raw)
    if match is None:
        raise InvalidPeriod(f"{raw!r} is not a period; write it as 30d, 12h or 90m")
    minutes = int(match.group(1)) * _MINUTES[match.group(2)]
    if not 1 <= minutes <= MAX_PERIOD_MINUTES:
        raise InvalidPeriod(f"{raw!r} is out of range (1 minute to 100 years)")
    return minutes


def format_period(minutes: int) -> str:
    """The shortest exact spelling: 43200 -> ``30d``, 90 -> ``90m``."""
    for unit in ("d", "h"):
        if minutes % _MINUTES[unit] == 0:
            return f"{minutes // _MINUTES[unit]}{unit}"
    return f"{minutes}m"


@dataclass(frozen=True)
class ThreadPolicy:
    """One thread's message retention: its period and, once closed, when it started."""

    minutes: int
    rule: str  # "default" (retention.messages_days) or "thread" (set-retention)
    closed_at: datetime | None = None

    def cutoff(self, now: datetime) -> datetime | None:
        """Messages at or before this instant are due; None: nothing is due yet (I.7).

        Open thread: everything older than the period. Closed thread: nothing until
        ``closed_at + period``, then everything (messages after the close included).
        """
        period = timedelta(minutes=self.minutes)
        if self.closed_at is None:
            return now - period
        if now < self.closed_at + period:
            return None
        return now

    def describe(self) -> str:
        closed = f", period started {self.closed_at.isoformat()}" if self.closed_at else ""
        return f"{format_period(self.minutes)} ({self.rule}){closed}"


def thread_policy(
    settings: RetentionSettings, minutes: int | None, closed_at: datetime | None
) -> ThreadPolicy:
    """A thread's policy: its own period if set, else the hospital default (I.7)."""
    if minutes is not None:
        return ThreadPolicy(minutes, "thread", closed_at)
    return ThreadPolicy(settings.messages_days * _MINUTES["d"], "default", closed_at)


@dataclass(frozen=True)
class MetadataCutoffs:
    """Cutoffs for what is not message content (II.3, IV.8)."""

    audit: datetime
    pending_devices: datetime
    inactive_devices: datetime
    delivery_records: datetime


def metadata_cutoffs(settings: RetentionSettings, now: datetime) -> MetadataCutoffs:
    """Audit events, pending and inactive devices, delivery records older than these go."""
    return MetadataCutoffs(
        audit=now - timedelta(days=settings.audit_metadata_days),
        pending_devices=now - timedelta(days=settings.pending_devices_days),
        inactive_devices=now - timedelta(days=settings.inactive_devices_days),
        delivery_records=now - timedelta(days=settings.delivery_records_days),
    )
