"""The durable HL7 outbox: an MDM document waits in the store until the HIS answers AA (I.6).

A row names the thread and the document version, not its text: the transcript is built
from the documentation copies at each attempt, so nothing readable sits in the outbox.
AA removes the row (and records ``bridge.mdm-delivered``); AE, AR, a timeout or a refused
connection keep it, with the answer in ``last_result`` and the next attempt after an
exponential backoff. A restart picks up where it stopped: nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select

from xmpp_clinic.archive import audit
from xmpp_clinic.archive.audit import AuditEvent, append
from xmpp_clinic.bridge import fhir, hl7wire, mdm
from xmpp_clinic.bridge.cases import CaseBook
from xmpp_clinic.bridge.records import DocumentationCopies
from xmpp_clinic.clock import utcnow
from xmpp_clinic.settings.bridge import Hl7PushSettings
from xmpp_clinic.store import Store, StoreUnavailable
from xmpp_clinic.store.models.bridge import BridgeOutbox
from xmpp_clinic.threads import ThreadNotFound, ThreadService

log = logging.getLogger(__name__)
DELIVERED = "bridge.mdm-delivered"
QUEUED = "bridge.mdm-queued"


@dataclass(frozen=True)
class Pending:
    """An outbox entry as ``bridge outbox`` shows it."""

    control_id: str
    thread: str
    event: str
    version: int
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    last_result: str

    def as_json(self) -> dict[str, object]:
        return {
            "control_id": self.control_id,
            "thread": self.thread,
            "event": f"MDM^{self.event}",
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.isoformat(),
            "last_result": self.last_result,
        }


def backoff(attempts: int, settings: Hl7PushSettings) -> timedelta:
    """Wait before attempt ``attempts + 1``: first, doubled each time, capped."""
    seconds = settings.retry_first_seconds * 2 ** max(0, attempts - 1)
    return timedelta(seconds=min(seconds, settings.retry_max_seconds))


class Outbox:
    """Queue MDM documents and deliver them to ``[bridge.hl7] host/port``."""

    def __init__(
        self, store: Store, copies: DocumentationCopies, settings: Hl7PushSettings
    ) -> None:
        self._store = store
        self._copies = copies
        self._settings = settings
        self._cases = CaseBook(store)
        self._threads = ThreadService(store, user_domains=())
        self.wake = asyncio.Event()

    async def enqueue(self, thread: str, *, actor: str) -> Pending:
        """Queue the thread's transcript: T02 the first time, T10 (a new version) after."""
        async with self._store.session() as session:
            delivered = sum(
                1 for e in await audit.events(session, subject=thread) if e.action == DELIVERED
            )
            queued = await session.scalar(
                select(func.count()).select_from(BridgeOutbox).where(BridgeOutbox.thread == thread)
            )
            version = delivered + int(queued or 0) + 1
            row = BridgeOutbox(
                control_id=uuid.uuid4().hex[:20],
                thread=thread,
                event="T02" if version == 1 else "T10",
                version=version,
                created_at=utcnow(),
                attempts=0,
                next_attempt_at=utcnow(),
                last_result="",
            )
            session.add(row)
            await append(session, AuditEvent(actor, QUEUED, f"mdm-{row.event}", thread))
            pending = _pending(row)
        self.wake.set()
        return pending

    async def enqueue_documented(self, thread: str, *, actor: str) -> Pending | None:
        """Queue ``thread`` if it is documented (a closed thread's record goes to the HIS)."""
        if not await self._copies.documented(thread):
            return None
        return await self.enqueue(thread, actor=actor)

    async def pending(self) -> list[Pending]:
        async with self._store.session() as session:
            rows = (await session.scalars(select(BridgeOutbox).order_by(BridgeOutbox.id))).all()
            return [_pending(r) for r in rows]

    async def deliver_due(self) -> int:
        """Try every entry that is due, oldest first; how many the HIS accepted."""
        now = utcnow()
        async with self._store.session() as session:
            due = (
                await session.scalars(
                    select(BridgeOutbox)
                    .where(BridgeOutbox.next_attempt_at <= now)
                    .order_by(BridgeOutbox.id)
                )
            ).all()
            entries = [_pending(r) for r in due]
        accepted = 0
        for entry in entries:
            accepted += await self._attempt(entry)
        return accepted

    async def _attempt(self, entry: Pending) -> int:
        try:
            message = await self._message(entry)
        except ThreadNotFound:
            await self._drop(entry, "thread-deleted")
            return 0
        try:
            ack = await hl7wire.send(
                self._settings.host,
                self._settings.port,
                message,
                self._settings.ack_timeout_seconds,
            )
        except TimeoutError:
            result = "timeout: no ACK"
        except OSError as exc:
            result = f"unreachable: {type(exc).__name__}"
        else:
            if ack.accepted:
                await self._drop(entry, "aa")
                return 1
            result = f"{ack.code}: {ack.text}"[:500]
        await self._retry(entry, result)
        return 0

    async def _message(self, entry: Pending) -> str:
        info = await self._threads.get(entry.thread)
        copies = await self._copies.copies(entry.thread)
        document = mdm.MdmDocument(
            entry.control_id,
            entry.event,
            entry.thread,
            entry.version,
            await self._cases.case_of(entry.thread),
            fhir.transcript(entry.thread, info.title, copies),
            max((m.at for m in copies), default=entry.created_at),
        )
        return mdm.build(document, self._settings, utcnow())

    async def _drop(self, entry: Pending, reason: str) -> None:
        async with self._store.session() as session:
            await session.execute(
                delete(BridgeOutbox).where(BridgeOutbox.control_id == entry.control_id)
            )
            action = DELIVERED if reason == "aa" else "bridge.mdm-dropped"
            await append(
                session, AuditEvent("gateway", action, reason, entry.thread, entry.control_id)
            )

    async def _retry(self, entry: Pending, result: str) -> None:
        log.warning(
            "bridge: MDM %s not accepted (%s); will retry", entry.control_id, result.split(":")[0]
        )
        async with self._store.session() as session:
            row = await session.scalar(
                select(BridgeOutbox).where(BridgeOutbox.control_id == entry.control_id)
            )
            if row is None:
                return
            row.attempts += 1
            row.last_result = result
            row.next_attempt_at = utcnow() + backoff(row.attempts, self._settings)

    async def run(self) -> None:
        """Deliver until cancelled: on every enqueue, and every ``poll_seconds``."""
        while True:
            self.wake.clear()  # before the pass: an enqueue during it wakes the next one
            try:
                await self.deliver_due()
            except StoreUnavailable as exc:
                log.error("bridge: outbox paused: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self._settings.poll_seconds)


def _pending(row: BridgeOutbox) -> Pending:
    return Pending(
        row.control_id,
        row.thread,
        row.event,
        row.version,
        row.created_at,
        row.attempts,
        row.next_attempt_at,
        row.last_result,
    )
