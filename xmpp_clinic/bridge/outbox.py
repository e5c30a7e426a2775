"""The durable HL7 outbox: an MDM document waits in the store until the HIS answers AA (I.6).

A row names the thread and the document version, not its text: the transcript is built
from the documentation copies at each attempt, so nothing readable sits in the outbox.
AA removes the row (and records ``bridge.mdm-delivered``); AE, AR, a timeout or a refused
connection keep it, with the answer in ``last_result`` and the next attempt after an
exponential backoff. A restart picks up where it stopped: nothing is lost.

:meth:`Outbox.push_if_new` is what closing a thread (``threads close``, A03) and the
schedule (``[bridge.hl7] push_interval_minutes``) call: it queues a documented thread
only when it has copies the HIS has not yet accepted and nothing of it is waiting
already (a waiting document is built when it is sent, so it carries them). The delivered
event notes how far the document reached (``through-seq N``), so the next push knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select

from xmpp_clinic.archive import audit
from xmpp_clinic.archive.audit import AuditEvent, append
from xmpp_clinic.bridge import fhir, hl7wire, mdm
from xmpp_clinic.bridge.cases import CaseBook
from xmpp_clinic.bridge.records import DocumentationCopies, DocumentedMessage
from xmpp_clinic.clock import utcnow
from xmpp_clinic.settings.bridge import Hl7PushSettings
from xmpp_clinic.store import Store, StoreUnavailable
from xmpp_clinic.store.models.bridge import BridgeOutbox
from xmpp_clinic.threads import ThreadNotFound, ThreadService

log = logging.getLogger(__name__)
DELIVERED = "bridge.mdm-delivered"
QUEUED = "bridge.mdm-queued"
_THROUGH = re.compile(r"through-seq (\d+)")


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

    async def push_if_new(self, thread: str, *, actor: str) -> Pending | None:
        """Queue ``thread``'s transcript if it is documented, has copies the HIS has not
        accepted yet, and has no document waiting (closing, schedule; I.6)."""
        if not await self._copies.documented(thread):
            return None
        async with self._store.session() as session:
            waiting = await session.scalar(
                select(func.count()).select_from(BridgeOutbox).where(BridgeOutbox.thread == thread)
            )
            sent = [e for e in await audit.events(session, subject=thread) if e.action == DELIVERED]
        if waiting:
            return None
        reached = max((int(m.group(1)) for e in sent if (m := _THROUGH.search(e.note))), default=0)
        if through(await self._copies.copies(thread)) <= reached:
            return None
        return await self.enqueue(thread, actor=actor)

    async def push_documented(self, *, actor: str) -> list[Pending]:
        """The schedule's pass: :meth:`push_if_new` for every thread."""
        queued = []
        for info in await self._threads.list():
            pushed = await self.push_if_new(info.name, actor=actor)
            if pushed is not None:
                queued.append(pushed)
        return queued

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
            message, reached = await self._message(entry)
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
                await self._drop(entry, "aa", reached)
                return 1
            result = f"{ack.code}: {ack.text}"[:500]
        await self._retry(entry, result)
        return 0

    async def _message(self, entry: Pending) -> tuple[str, int]:
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
        return mdm.build(document, self._settings, utcnow()), through(copies)

    async def _drop(self, entry: Pending, reason: str, reached: int = 0) -> None:
        async with self._store.session() as session:
            await session.execute(
                delete(BridgeOutbox).where(BridgeOutbox.control_id == entry.control_id)
            )
            action = DELIVERED if reason == "aa" else "bridge.mdm-dropped"
            note = (
                f"{entry.control_id} through-seq {reached}" if reason == "aa" else entry.control_id
            )
            await append(session, AuditEvent("gateway", action, reason, entry.thread, note))

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


async def schedule(outbox: Outbox, seconds: float, *, actor: str = "gateway") -> None:
    """Every ``seconds`` (``push_interval_minutes``): queue what documented threads
    wrote since their last push (I.6)."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await outbox.push_documented(actor=actor)
        except StoreUnavailable as exc:
            log.error("bridge: scheduled push skipped: %s", exc)


def through(copies: Sequence[DocumentedMessage]) -> int:
    """The highest copy position ``copies`` reach (a reassembled set: its last part)."""
    return max((max(m.seq, m.through_seq) for m in copies), default=0)


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
