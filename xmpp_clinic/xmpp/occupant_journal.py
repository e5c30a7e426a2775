"""Who is joined, written down, so a restart after kill -9 leaves no one out (8.10; I.12).

The room host tells the journal when a thread's occupants or nick bindings change; the
journal rewrites that thread's rows a moment later, many changes in one transaction, so
a burst of joins costs one write. On start (:meth:`ThreadHost.restore`), the sessions
still written down are the ones that believe they are joined: each gets the status-332
unavailable presence (XEP-0045 "the room is shutting down"), which makes clients rejoin,
and nick bindings come back into memory.

A store fault is logged and the rows are written with the next change: the journal is
a help for restarts, never a reason to refuse a join (messages stay fail-closed, I.12).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from sqlalchemy import delete, select

from xmpp_clinic.store import Store, StoreUnavailable
from xmpp_clinic.store.models.occupants import BoundNick, JoinedSession

log = logging.getLogger(__name__)

# How long changes gather before one write.
BATCH_SECONDS = 0.2


@dataclass
class ThreadRows:
    """What the journal holds of one thread: sessions (full JID -> nick), bindings."""

    sessions: dict[str, str] = field(default_factory=dict)
    bindings: dict[str, str] = field(default_factory=dict)  # bare JID -> nick


class OccupantJournal:
    """Batched writes of :class:`JoinedSession` and :class:`BoundNick` rows per thread."""

    def __init__(self, store: Store, *, batch_seconds: float = BATCH_SECONDS) -> None:
        self.store = store
        self.batch_seconds = batch_seconds
        self._dirty: dict[str, ThreadRows] = {}
        self._writer: asyncio.Task[None] | None = None

    def changed(self, thread: str, rows: ThreadRows) -> None:
        """``thread`` now has ``rows``; written within :data:`BATCH_SECONDS`."""
        self._dirty[thread] = rows
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write_soon())

    async def _write_soon(self) -> None:
        await asyncio.sleep(self.batch_seconds)
        await self.flush()

    async def flush(self) -> None:
        """Write every pending change now (also at shutdown)."""
        while self._dirty:
            batch, self._dirty = self._dirty, {}
            try:
                async with self.store.session() as session:
                    for thread, rows in batch.items():
                        await session.execute(
                            delete(JoinedSession).where(JoinedSession.thread == thread)
                        )
                        await session.execute(delete(BoundNick).where(BoundNick.thread == thread))
                        session.add_all(
                            JoinedSession(thread=thread, jid=jid, nick=nick)
                            for jid, nick in rows.sessions.items()
                        )
                        session.add_all(
                            BoundNick(thread=thread, jid=bare, nick=nick)
                            for bare, nick in rows.bindings.items()
                        )
            except StoreUnavailable:
                log.warning("occupant journal not written; retried with the next change")
                self._dirty = {**batch, **self._dirty}  # newer changes win
                return

    async def load(self) -> dict[str, ThreadRows]:
        """Every thread's written rows."""
        found: dict[str, ThreadRows] = {}
        async with self.store.session() as session:
            for joined in (await session.execute(select(JoinedSession))).scalars():
                found.setdefault(joined.thread, ThreadRows()).sessions[joined.jid] = joined.nick
            for bound in (await session.execute(select(BoundNick))).scalars():
                found.setdefault(bound.thread, ThreadRows()).bindings[bound.jid] = bound.nick
        return found
