"""Client software per occupant session, kept in the store (I.13, III.2, IV.9).

The gateway records what each session said (``xmpp/client_versions.py``); the report and
``devices list`` read it back. Nothing here is message content.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from xmpp_clinic.clock import utcnow
from xmpp_clinic.jids import fast_bare
from xmpp_clinic.report.clients import ClientCheck, ClientSoftware
from xmpp_clinic.store import Store
from xmpp_clinic.store.models.report import ClientSession


@dataclass(frozen=True)
class SessionSoftware:
    """One session's software and whether it was outdated when it joined."""

    jid: str
    software: ClientSoftware
    outdated: bool
    reason: str


class ClientSessions:
    """The ``client_sessions`` table: one row per full JID, replaced on each join."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def record(self, jid: str, software: ClientSoftware, check: ClientCheck) -> None:
        async with self._store.session() as session:
            row = await session.get(ClientSession, jid)
            if row is None:
                row = ClientSession(jid=jid, bare=fast_bare(jid))
                session.add(row)
            row.name = software.name[:200]
            row.version = software.version[:200]
            row.os = software.os[:200]
            row.caps_node = software.caps_node[:500]
            row.seen_at = utcnow()
            row.outdated = check.outdated
            row.reason = check.reason[:500]

    async def of(self, bare: str | None = None) -> list[SessionSoftware]:
        """Every recorded session, or those of one person (for ``devices list``)."""
        query = select(ClientSession).order_by(ClientSession.jid)
        if bare is not None:
            query = query.where(ClientSession.bare == bare)
        async with self._store.session() as session:
            rows = (await session.execute(query)).scalars().all()
        return [
            SessionSoftware(
                row.jid,
                ClientSoftware(row.name, row.version, row.os, row.caps_node),
                row.outdated,
                row.reason,
            )
            for row in rows
        ]
