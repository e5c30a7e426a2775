"""Delivery tracking on the wire: hooks for the relay and MAM, displayed markers, the
not-delivered notice, and the "who has my message?" ad-hoc command (II.2).

- The relay calls :meth:`DeliveryTracker.relayed` after each fan-out with the members
  whose joined sessions got the message; the MAM server calls
  :meth:`DeliveryTracker.fetched` with the archive ids a member's query returned (both
  :class:`DeliveryListener`; they only queue the write, the message path never waits).
- :meth:`DeliveryTracker.gate` sees XEP-0333 ``<displayed id>`` markers that clients
  send to the room and marks that message and every earlier one read for the sender.
- A watcher sends a member who has neither received nor fetched a message
  ``delivery.notify_after_minutes`` after it was relayed one direct chat message from
  the gateway: "There are unread messages in Ward 4B." (the title only, II.1).
- ``thread-delivery`` ("Who has my message?"): per member, delivered / fetched / read /
  not yet, for the requester's last message in a thread or the archive id given.
"""

from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

from xmpp_clinic import namespaces as ns
from xmpp_clinic.clock import utcnow
from xmpp_clinic.completeness.delivery import notices_due, report_lines, tracked, unread_notice
from xmpp_clinic.completeness.delivery_store import Deliveries
from xmpp_clinic.periodic import Periodic
from xmpp_clinic.policy.verdict import MessageContext, MessagePolicy, Verdict
from xmpp_clinic.settings.completeness import DeliverySettings
from xmpp_clinic.store import StoreUnavailable
from xmpp_clinic.threads import ThreadInfo
from xmpp_clinic.xmpp import muc_stanzas as ms
from xmpp_clinic.xmpp.adhoc import Command, CommandSet, Field, Request
from xmpp_clinic.xmpp.errors import FormError
from xmpp_clinic.xmpp.threads import ThreadHost

log = logging.getLogger(__name__)

DISPLAYED = f"{{{ns.CHAT_MARKERS}}}displayed"
MAX_TICK_SECONDS = 60.0
# How long delivery rows wait for the rows of the next messages before they are written:
# at 200 msg/s a transaction (and an fsync on the archive's SQLite) per message was half
# of the relay's write transactions, queued behind and ahead of the archive's commits
# (bench/relay.py, issue 13). Nothing reads the rows sooner: the "who has my message?"
# command and the unread notices wait for what was queued before them.
BATCH_SECONDS = 0.05


class DeliveryListener(Protocol):
    """What the relay and the MAM server tell delivery tracking (must not block)."""

    def relayed(
        self,
        thread: ThreadInfo,
        seq: int,
        stanza_id: str,
        sender: str,
        live: Iterable[str],
        stanza: ET.Element,
    ) -> None: ...

    def fetched(self, thread: ThreadInfo, member: str, stanza_ids: Iterable[str]) -> None: ...


class DeliveryTracker:
    """Per message and member: delivered, fetched, read; notices when neither (II.2)."""

    def __init__(
        self,
        host: ThreadHost,
        deliveries: Deliveries,
        settings: DeliverySettings,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.host = host
        self.deliveries = deliveries
        self.settings = settings
        self._now = clock
        self._writes: set[asyncio.Task[None]] = set()
        self._queue: deque[list[dict[str, Any]] | Callable[[], Awaitable[object]]] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._watcher = Periodic(self._round, self._tick, name="delivery notices")

    # ------------------------------------------------------------- the hooks
    def relayed(
        self,
        thread: ThreadInfo,
        seq: int,
        stanza_id: str,
        sender: str,
        live: Iterable[str],
        stanza: ET.Element,
    ) -> None:
        """``stanza`` (as archived) went live to the members in ``live``."""
        if not tracked(stanza):
            return
        members = [m.jid for m in thread.members]
        now = self._now()
        self._enqueue(self.deliveries.rows(thread.name, seq, stanza_id, sender, now, members, live))

    def fetched(self, thread: ThreadInfo, member: str, stanza_ids: Iterable[str]) -> None:
        ids, now = list(stanza_ids), self._now()
        self._enqueue(lambda: self.deliveries.fetched(member, ids, now))

    def _enqueue(self, item: list[dict[str, Any]] | Callable[[], Awaitable[object]]) -> None:
        """Writes go in order through one worker; the rows of every message relayed
        meanwhile go in one multi-row insert, not one transaction per message (issue 13:
        a commit per message cost the relay more than all its checks)."""
        self._queue.append(item)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.ensure_future(self._drain())
            self._writes.add(self._worker)
            self._worker.add_done_callback(self._writes.discard)

    async def _drain(self) -> None:
        while self._queue:
            if isinstance(self._queue[0], list):
                await asyncio.sleep(BATCH_SECONDS)  # the next messages' rows join this insert
            item = self._queue.popleft()
            if isinstance(item, list):
                rows = list(item)
                while self._queue and isinstance(self._queue[0], list):
                    more = self._queue.popleft()
                    assert isinstance(more, list)
                    rows.extend(more)
                work: Awaitable[object] = self.deliveries.insert(rows)
            else:
                work = item()
            try:
                await work
            except StoreUnavailable:
                log.warning("delivery not recorded: store unavailable")
            except Exception:
                log.exception("delivery not recorded")

    async def flush(self) -> None:
        """Wait until nothing is queued or being written (tests, shutdown)."""
        while self._writes:
            await asyncio.gather(*list(self._writes))

    async def settle(self) -> None:
        """Wait for the writes queued before this call, not for those queued later:
        under traffic the queue is never empty (who-has-my-message, unread notices)."""
        written = asyncio.get_running_loop().create_future()

        async def mark() -> None:
            if not written.done():
                written.set_result(None)

        self._enqueue(mark)
        await written

    def gate(self, inner: MessagePolicy) -> MessagePolicy:
        """``inner``, then the displayed markers of accepted messages are recorded."""
        return DisplayedMarkers(inner, self)

    def displayed(self, ctx: MessageContext) -> None:
        """Queue the read marker of an accepted message behind the rows of the messages
        it marks; not written on the message path."""
        marker = ctx.stanza.find(DISPLAYED)
        if marker is None or not marker.get("id"):
            return
        name, stanza_id, now = ctx.thread.partition("@")[0], marker.get("id", ""), self._now()
        self._enqueue(lambda: self.deliveries.read(name, ctx.sender, stanza_id, now))

    # ------------------------------------------------------------- notices
    def start(self) -> None:
        self._watcher.start()

    async def stop(self) -> None:
        await self._watcher.stop()
        await self.flush()

    def _tick(self) -> float:
        return min(MAX_TICK_SECONDS, self.settings.notify_after_minutes * 60 / 4)

    async def _round(self) -> None:
        try:
            await self.notify_due()
        except StoreUnavailable:
            log.warning("delivery notices not checked: store unavailable")

    async def notify_due(self) -> int:
        """Send every not-delivered notice owed now; how many."""
        await self.settle()
        now = self._now()
        due = notices_due(
            await self.deliveries.outstanding(), now, self.settings.notify_after_minutes
        )
        for thread_name, member in due:
            thread = self.host.book.get(thread_name)
            if thread is not None and thread.member(member) is not None:
                self._notify(member, unread_notice(thread.title))
                log.info("not-delivered notice sent", extra={"care_thread": thread_name})
            await self.deliveries.notified(thread_name, member, now)
        return len(due)

    def _notify(self, member: str, text: str) -> None:
        """A chat message from the gateway to the member's bare JID (offline: stored)."""
        xmpp = self.host.xmpp
        root = ms.stanza("message", xmpp.boundjid.bare, member, type="chat")
        ET.SubElement(root, f"{{{ns.COMPONENT}}}body").text = text
        self.host.send(root)


class DisplayedMarkers:
    """The inner policy decides; a displayed marker of an accepted message is recorded."""

    def __init__(self, inner: MessagePolicy, tracker: DeliveryTracker) -> None:
        self.inner = inner
        self.tracker = tracker

    async def evaluate(self, ctx: MessageContext) -> Verdict:
        verdict = await self.inner.evaluate(ctx)
        if not verdict.rejected:
            self.tracker.displayed(ctx)
        return verdict


THREAD = Field("thread", "Thread (name or address)", required=True, max_chars=320)
MESSAGE = Field("message", "Archive id of the message (empty: your last one)", max_chars=128)


class WhoHasMyMessage(Command):
    """Per member: delivered / fetched / read / not yet, for the sender only (II.2)."""

    node = "thread-delivery"
    name = "Who has my message?"
    admin_only = False
    fields = (THREAD, MESSAGE)

    def __init__(self, host: ThreadHost, tracker: DeliveryTracker) -> None:
        self.host = host
        self.tracker = tracker
        self.deliveries = tracker.deliveries

    async def run(self, request: Request) -> list[str]:
        name = request.required("thread").partition("@")[0].lower()
        thread = self.host.book.get(name)
        if thread is None or thread.member(request.requester) is None:
            raise FormError("you are not a member of a thread of that name")
        await self.tracker.settle()  # the rows of a message relayed just now are written
        stanza_id = request.text("message") or await self.deliveries.last_of(
            name, request.requester
        )
        rows = await self.deliveries.of_message(stanza_id) if stanza_id else []
        if not rows:
            return ["No message of yours in this thread is known to delivery tracking."]
        if any(row.sender != request.requester or row.thread != name for row in rows):
            raise FormError("only the sender of a message may ask who has it")
        return [f"Message {stanza_id}:", *report_lines(rows)]


def attach_commands(host: ThreadHost, tracker: DeliveryTracker) -> CommandSet:
    """Offer "Who has my message?" on the component to the hospital's users."""
    commands = CommandSet(host.xmpp, host.settings.xmpp, [WhoHasMyMessage(host, tracker)])
    commands.attach()
    return commands
