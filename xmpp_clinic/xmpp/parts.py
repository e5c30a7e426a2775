"""Part sets on the wire: the policy check and the room's missing-part notices (II.2).

:meth:`PartTracker.gate` puts the part check behind the relay's policy (like
``client_versions.gate``): a message that the inner policy accepts and that carries a
``<part xmlns='urn:xmpp-clinic:parts:0' set n of/>`` marker is judged against the set's
state in the store (``completeness/parts.py``); a bad marker is refused with
``part-out-of-range``, a repeated part with ``part-duplicate``, a changed size or
sender with ``part-set-changed``, before anything is archived or delivered.

A watcher posts, from the thread's own bare JID (type groupchat, so every stock client
shows it as a room message), "Part 2 of 3 of Dr Alice's message of 14:02 has not
arrived." once a set is incomplete ``parts.timeout_seconds`` after its first part, and
"All 3 parts ... have now arrived" when the last part comes after that. Notices are
archived like messages (hash chain, ``<seq>``), so a member who reads by MAM later sees
them too; they hold the nick and a time, never content (II.1).

The part is counted when the policy accepts it, just before the relay archives it: a
part whose archive write then fails counts as received (its sender was told to retry,
and the retry is refused as a duplicate). The relay owner may close that gap with a
hook after the archive commit (see docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime

from xmpp_clinic import namespaces as ns
from xmpp_clinic.archive.messages import MessageArchive, NewMessage
from xmpp_clinic.clock import utcnow
from xmpp_clinic.completeness.part_store import PartSets
from xmpp_clinic.completeness.parts import (
    MarkerError,
    complete_notice,
    judge,
    missing_notice,
    read_marker,
    receive,
)
from xmpp_clinic.jids import fast_bare
from xmpp_clinic.periodic import Periodic
from xmpp_clinic.policy.verdict import MessageContext, MessagePolicy, ReasonCode, Verdict
from xmpp_clinic.settings.completeness import PartsSettings
from xmpp_clinic.store import StoreUnavailable
from xmpp_clinic.threads import ThreadInfo
from xmpp_clinic.xmpp import muc_stanzas as ms
from xmpp_clinic.xmpp.threads import ThreadHost

log = logging.getLogger(__name__)

# The watcher looks for overdue sets this often at most (and a quarter of the timeout
# when that is shorter), so a notice comes at most this late.
MAX_TICK_SECONDS = 5.0


class PartTracker:
    """Part sets of one gateway's threads: the check, the state, the notices (II.2)."""

    def __init__(
        self,
        host: ThreadHost,
        archive: MessageArchive,
        sets: PartSets,
        settings: PartsSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.host = host
        self._now = clock  # tests move time
        self.archive = archive
        self.sets = sets
        self.settings = settings
        # One gateway process owns a set's row at a time: the check and the watcher never
        # read-modify-write the same row at once.
        self._lock = asyncio.Lock()
        self._watcher = Periodic(self._round, lambda: self.tick, name="part set notices")

    def gate(self, inner: MessagePolicy) -> MessagePolicy:
        """``inner``, then the part check (the relay's policy)."""
        return PartGate(inner, self)

    def start(self) -> None:
        self._watcher.start()

    async def stop(self) -> None:
        """Between rounds: a notice being posted is posted and its flag saved first."""
        await self._watcher.stop()

    @property
    def tick(self) -> float:
        return min(MAX_TICK_SECONDS, self.settings.timeout_seconds / 4)

    async def check(self, ctx: MessageContext) -> Verdict | None:
        """None when ``ctx`` has no marker or its part is counted; else the refusal."""
        try:
            marker = read_marker(ctx.stanza, self.settings.max_parts)
        except MarkerError as exc:
            return Verdict.reject(exc.reason, "")
        if marker is None:
            return None
        name = ctx.thread.partition("@")[0]
        occupant = self.host.room(name).get(ctx.stanza.get("from", ""))
        nick = occupant.nick if occupant is not None else ctx.sender
        async with self._lock:
            try:
                known = await self.sets.get(name, marker.set_id)
                refused = judge(marker, known, ctx.sender)
                if refused is not None:
                    log.info("part refused", extra={"care_thread": name, "reason": refused})
                    return Verdict.reject(refused, "")
                after = receive(
                    marker, known, thread=name, sender=ctx.sender, nick=nick, at=self._now()
                )
                await self.sets.save(after)
            except StoreUnavailable:
                return Verdict.reject(ReasonCode.STORE_UNAVAILABLE, "")
        if after.late_complete:
            self._watcher.wake()  # the "complete" notice follows the part, not minutes later
        return None

    async def _round(self) -> None:
        # The part that completed a set is archived right after its check: let it be,
        # so the notice follows it in the thread (both are archived in order).
        await asyncio.sleep(min(0.2, self.tick))
        try:
            await self.post_due()
        except StoreUnavailable:
            log.warning("part sets not checked: store unavailable")

    async def post_due(self) -> int:
        """Post every notice owed now (missing parts, late completion); how many."""
        posted = 0
        for waiting in await self.sets.waiting(self._now(), self.settings.timeout_seconds):
            async with self._lock:
                part_set = await self.sets.get(waiting.thread, waiting.set_id)
                if part_set is None:
                    continue
                if part_set.overdue(self._now(), self.settings.timeout_seconds):
                    text, after = (
                        missing_notice(part_set),
                        dataclasses.replace(part_set, missing_noticed=True),
                    )
                elif part_set.late_complete:
                    text, after = (
                        complete_notice(part_set),
                        dataclasses.replace(part_set, complete_noticed=True),
                    )
                else:
                    continue
                thread = self.host.book.get(part_set.thread)
                if thread is not None:
                    await self._post(thread, text)
                    posted += 1
                await self.sets.save(after)
        return posted

    async def _post(self, thread: ThreadInfo, text: str) -> None:
        """``text`` from the thread itself: archived, then to every joined member (II.2)."""
        thread_jid = self.host.thread_jid(thread.name)
        stanza_id = str(uuid.uuid4())
        attrs = {"from": thread_jid, "type": "groupchat", "id": stanza_id}
        root = ET.Element(f"{{{ns.COMPONENT}}}message", attrs)  # "to" per copy
        ET.SubElement(root, f"{{{ns.COMPONENT}}}body").text = text
        root.append(ms.element("stanza-id", ns.SID, id=stanza_id, by=thread_jid))
        serialised = ms.serialise(root)
        record = NewMessage(thread.id, stanza_id, self._now(), thread_jid, "", "", "", serialised)
        entry = await self.archive.append(record)
        log.info("part set notice posted", extra={"care_thread": thread.name})
        current = self.host.book.get(thread.name) or thread
        text_seq = _with_seq(serialised, entry.seq)
        for recipient in self.host.room(thread.name).sessions():
            if current.member(fast_bare(recipient.bare)) is not None:
                self.host.xmpp.send(ms.address(text_seq, recipient.jid))


def _with_seq(serialised: str, seq: int) -> str:
    """The notice with the archive's sequence number, as every relayed message has it."""
    body, _, end = serialised.rpartition("</")
    return f'{body}<seq xmlns="{ns.CLINIC_SEQ}" n="{seq}" /></{end}'


class PartGate:
    """The inner policy first (membership, e2e, devices), then the part check (II.2)."""

    def __init__(self, inner: MessagePolicy, tracker: PartTracker) -> None:
        self.inner = inner
        self.tracker = tracker

    async def evaluate(self, ctx: MessageContext) -> Verdict:
        verdict = await self.inner.evaluate(ctx)
        if verdict.rejected:
            return verdict
        refused = await self.tracker.check(ctx)
        return refused if refused is not None else verdict
