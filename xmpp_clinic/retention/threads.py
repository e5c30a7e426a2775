"""A thread's own retention: its message period and when that period starts (I.7).

``threads set-retention NAME --messages 30d`` and ``threads close NAME`` write here; the
purge reads it (:mod:`.purge`). Each change is an audit event naming the thread, in the
same transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from xmpp_clinic.archive.audit import AuditEvent, append
from xmpp_clinic.clock import as_utc, utcnow
from xmpp_clinic.retention.policy import format_period
from xmpp_clinic.store import Store
from xmpp_clinic.store.models.retention import ThreadRetention
from xmpp_clinic.store.models.threads import Thread
from xmpp_clinic.threads import ThreadNotFound

RETENTION_SET = "thread.retention-set"
CLOSED = "thread.closed"


class ThreadRetentionService:
    """Per-thread retention periods and closing (I.7)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def set_period(self, name: str, minutes: int | None, *, actor: str) -> None:
        """Give thread ``name`` its own message period; None returns it to the default."""
        async with self._store.session() as session:
            row = await self._row(session, name)
            row.messages_minutes = minutes
            reason = format_period(minutes) if minutes is not None else "default"
            await append(session, AuditEvent(actor, RETENTION_SET, reason, name))

    async def close(self, name: str, *, actor: str, at: datetime | None = None) -> datetime:
        """Start thread ``name``'s period now (a case ended, I.7); returns the start."""
        when = as_utc(at or utcnow())
        async with self._store.session() as session:
            row = await self._row(session, name)
            row.closed_at = when
            await append(session, AuditEvent(actor, CLOSED, "period-started", name))
        return when

    async def _row(self, session: AsyncSession, name: str) -> ThreadRetention:
        thread_id = await session.scalar(select(Thread.id).where(Thread.name == name))
        if thread_id is None:
            raise ThreadNotFound(f"no thread named {name!r}")
        row = await session.get(ThreadRetention, thread_id)
        if row is None:
            row = ThreadRetention(thread_id=thread_id)
            session.add(row)
        return row
