"""The relay: every groupchat message passes the policy, the archive, then fan-out.

DESIGN.md "the way a message travels": shape check -> occupant check -> policy ->
archive (durable, hash-chained) -> fan-out to occupants with stanza-id, occupant-id and
the archive's sequence number ``<seq n>`` (issue 11), reflected to the sender with its
own id and origin-id. Each member's copy carries only that member's keys (trimming.py,
issue 13; II.3); the archive keeps the whole stanza. A message that cannot be checked
or stored is refused with an error the sender sees; nobody receives it (fail closed,
I.12).

The messages of a thread are decided, archived and fanned out in the order they
arrived, but they overlap: while one waits for its archive commit, the next is already
checked and queued for the same or the next group commit (archive/messages.py). Each
message is fanned out only after its own entry is durable and the previous message of
its thread has been fanned out, so archive order = delivery order (II.2).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from slixmpp import Message

from xmpp_clinic import namespaces as ns
from xmpp_clinic.archive.messages import MessageArchive, NewMessage
from xmpp_clinic.clock import utcnow
from xmpp_clinic.jids import fast_bare
from xmpp_clinic.policy import check_shape
from xmpp_clinic.policy.verdict import (
    Action,
    MessageContext,
    MessagePolicy,
    ReasonCode,
    Refusal,
    Verdict,
    refusal,
)
from xmpp_clinic.store import StoreUnavailable
from xmpp_clinic.threads import ThreadInfo
from xmpp_clinic.trimming import DeviceSource, SplitStanza, split
from xmpp_clinic.xmpp import muc_stanzas as ms
from xmpp_clinic.xmpp.delivery import DeliveryListener
from xmpp_clinic.xmpp.occupants import Occupant
from xmpp_clinic.xmpp.routing import ToThread, handle
from xmpp_clinic.xmpp.threads import ThreadHost

log = logging.getLogger(__name__)

# How long one message may wait on the store (change counters, archive commit, policy)
# before the sender is told to retry: a stalled database must not hold every thread
# silently (I.12).
STORE_TIMEOUT = 15.0

# Told once a message is archived and delivered: (thread name, the sender's message id,
# the sender's bare JID, stanza-id, sequence number). Must not raise.
ArchivedHook = Callable[[str, str, str, str, int], Awaitable[None]]


SEQ = f"{{{ns.CLINIC_SEQ}}}seq"


def with_seq(serialised: str, seq: int) -> str:
    """``serialised`` (a ``<message>`` with children) with the thread's sequence number
    ``<seq xmlns='urn:xmpp-clinic:seq:0' n='N'/>`` as its last child (II.2, issue 11)."""
    body, _, end = serialised.rpartition("</")
    return f'{body}<seq xmlns="{ns.CLINIC_SEQ}" n="{seq}" /></{end}'


def _strip(child: ET.Element) -> bool:
    """Elements a sender may not supply (II.2): the room's own stanza-id, occupant-id,
    muc#user, and a delay, which would make clients show a forged time."""
    # Every sender-supplied stanza-id goes, whatever its "by" says: clients compare JIDs
    # normalised, so a "by" spelled differently would still pass as the room's id.
    # A sequence number is the archive's (II.2): one from a client would fake a gap.
    return child.tag in (
        f"{{{ns.SID}}}stanza-id", f"{{{ns.OCCUPANT_ID}}}occupant-id",
        f"{{{ns.MUC_USER}}}x", f"{{{ns.DELAY}}}delay", SEQ,
    )  # fmt: skip


@dataclass
class _Turn:
    """One message's place in its thread's order: set once decided, once delivered."""

    decided: asyncio.Event = field(default_factory=asyncio.Event)
    delivered: asyncio.Event = field(default_factory=asyncio.Event)

    def finish(self) -> None:
        self.decided.set()
        self.delivered.set()


class Relay:
    """Relays groupchat messages in the threads of one :class:`ThreadHost`."""

    def __init__(
        self,
        host: ThreadHost,
        archive: MessageArchive,
        policy: MessagePolicy,
        *,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        devices: DeviceSource | None = None,
        archived: ArchivedHook | None = None,
        delivery: DeliveryListener | None = None,
    ) -> None:
        self.delivery = delivery  # who got each message live (II.2, issue 11)
        self.host = host
        self.archive = archive
        self.policy = policy
        self.devices = devices  # whose keys each member's copy keeps (trimming.py)
        self.archived = archived  # told of each archived message (records documentation)
        self._new_id = new_id  # stanza-ids; tests pass a counter
        # The latest message of each thread with one still in flight: the next waits for
        # it at each step, so archive order = delivery order = arrival order (II.2).
        self._last: dict[str, _Turn] = {}

    def attach(self) -> None:
        handle(
            self.host.xmpp, "ThreadMessage", ToThread("message", self.host.domain), self._on_message
        )

    async def _on_message(self, msg: Message) -> None:
        # First, before anything copies or walks it: a stanza nested too deep or too
        # large gets its refusal, never a recursion error in the stream (I.12).
        shape = check_shape(msg.xml)
        if shape.rejected:
            if msg["type"] != "error":  # never answer an error with an error (RFC 6120)
                self._refuse(msg, shape.reason, shape.refusal)
            return
        to, sender = msg["to"], msg["from"]
        thread = self.host.book.get(to.user)
        if msg["type"] == "error":
            if thread is not None:  # a bouncing occupant is gone (XEP-0045 16.4)
                self.host.leave_session(thread, sender.full, bounced=True)
            return
        if to.resource:
            self._refuse(msg, ReasonCode.PRIVATE_MESSAGE)
            return
        if msg["type"] != "groupchat":
            self._refuse(msg, ReasonCode.NOT_GROUPCHAT)
            return
        if thread is None and await self.host.find(to) is None:
            # Unknown threads are refused before they cost a turn (and, within the book's
            # freshness window, before they cost a store read).
            self._refuse(msg, ReasonCode.NOT_OCCUPANT)
            return
        previous, turn = self._last.get(to.user), _Turn()
        self._last[to.user] = turn
        try:
            await self._relay(msg, previous, turn)
        finally:
            turn.finish()  # never hold up the next message, whatever happened to this one
            if self._last.get(to.user) is turn:
                del self._last[to.user]

    def _refuse(self, msg: Message, reason: ReasonCode, found: Refusal | None = None) -> None:
        """An error to the sender, as :data:`policy.verdict.REFUSALS` says for ``reason``
        (or ``found``, a verdict's own); a tagged refusal carries the reason code as
        ``<CODE xmlns=urn:xmpp-clinic:policy:0/>`` inside ``<error>`` (II.1, I.4)."""
        error = found or refusal(reason)
        root = ms.stanza_error(
            "message", msg["to"].full, msg["from"].full, error.condition, error.type,
            error.text, stanza_id=msg["id"],
        )  # fmt: skip
        element = root.find(f"{{{ns.COMPONENT}}}error")
        if error.tagged and element is not None:
            ET.SubElement(element, f"{{{ns.CLINIC_POLICY}}}{reason}")
        self.host.send(root)

    async def _relay(self, msg: Message, previous: _Turn | None, turn: _Turn) -> None:
        sender = msg["from"]
        try:
            # Before waiting for the previous message: concurrent messages share one read
            # of the change counters, which still starts after this message arrived (I.5).
            await asyncio.wait_for(asyncio.shield(self.host.refresh()), STORE_TIMEOUT)
        except Exception as exc:  # store down or stalled, or a reload failed: fail closed
            if not isinstance(exc, StoreUnavailable):
                log.exception("applying administrative changes failed; message refused")
            self._refuse(msg, ReasonCode.NOT_CHECKED)
            return
        if previous is not None:
            await previous.decided.wait()
        found = self._sender_in_thread(msg)
        if found is None:
            return
        thread, occupant = found
        if msg.xml.find(f"{{{ns.COMPONENT}}}subject") is not None:
            self._refuse(msg, ReasonCode.SUBJECT_BY_ADMINS)
            return
        verdict = await self._decide(thread, sender.bare, msg)
        if verdict is None:
            return
        if verdict.rejected:
            log.info(
                "message refused", extra={"care_thread": thread.name, "reason": verdict.reason}
            )
            self._refuse(msg, verdict.reason, verdict.refusal)
            return
        if verdict.action is Action.MODIFY and verdict.stanza is None:
            log.error("policy changed a message but gave none; refused (fail closed)")
            self._refuse(msg, ReasonCode.NOT_CHECKED)
            return
        source = verdict.stanza if verdict.stanza is not None else msg.xml
        # The policy may have waited (PEP discovery): a member removed meanwhile, or an
        # occupant who left, must not get this message through (IV.2).
        found = self._sender_in_thread(msg)
        if found is None:
            return
        thread, occupant = found
        if not await self._deliver(thread, occupant, msg, source, previous, turn):
            return
        for notice in verdict.notices:
            self._notify(thread, sender.full, notice)

    def _sender_in_thread(self, msg: Message) -> tuple[ThreadInfo, Occupant] | None:
        """The thread and the sender's occupancy as they are now, or None after refusing:
        only a current member who has joined may send (IV.2)."""
        sender = msg["from"]
        thread = self.host.book.get(msg["to"].user)
        occupant = self.host.room(thread.name).get(sender.full) if thread is not None else None
        if thread is None or occupant is None or thread.member(sender.bare) is None:
            self._refuse(msg, ReasonCode.NOT_OCCUPANT)
            return None
        return thread, occupant

    async def _decide(self, thread: ThreadInfo, sender: str, msg: Message) -> Verdict | None:
        stanza = copy.deepcopy(msg.xml)
        for forged in stanza.findall(SEQ):  # the archive's to give (II.2): dropped, not refused
            stanza.remove(forged)
        ctx = MessageContext(self.host.thread_jid(thread.name), sender, thread.member_jids, stanza)
        try:
            return await asyncio.wait_for(self.policy.evaluate(ctx), 2 * STORE_TIMEOUT)
        except Exception:
            log.exception("policy failed; message refused", extra={"care_thread": thread.name})
            self._refuse(msg, ReasonCode.NOT_CHECKED)
            return None

    async def _deliver(
        self,
        thread: ThreadInfo,
        occupant: Occupant,
        msg: Message,
        source: ET.Element,
        previous: _Turn | None,
        turn: _Turn,
    ) -> bool:
        """Archive, then fan out (DESIGN.md); False when the archive refused the message.

        The archive keeps the whole stanza; each member's copy carries only that
        member's keys (trimming.py, issue 13) and the archive's sequence number.
        """
        thread_jid = self.host.thread_jid(thread.name)
        stanza_id = self._new_id()
        attrs = {"from": f"{thread_jid}/{occupant.nick}", "type": "groupchat"}
        if msg["id"]:
            attrs["id"] = msg["id"]
        root = ET.Element(f"{{{ns.COMPONENT}}}message", attrs)
        # Shared, not copied: ``source`` is the policy's own copy or the received stanza,
        # neither used again; split() puts back what it changes (a copy was 6 % of the CPU).
        root.extend(c for c in source if not _strip(c))
        root.append(ms.element("stanza-id", ns.SID, id=stanza_id, by=thread_jid))
        root.append(ms.occupant_id(occupant.occupant_id))
        cut = split(root, ms.serialise) if self.devices is not None else None
        serialised = cut.whole if cut is not None else ms.serialise(root)
        copies = await self._copies(msg, thread, cut, serialised)
        if copies is None:
            return False
        record = NewMessage(
            thread.id, stanza_id, utcnow(), occupant.bare, occupant.jid.partition("/")[2],
            occupant.nick, occupant.occupant_id, serialised,
        )  # fmt: skip
        stored = self.archive.submit(record)  # chain position fixed here, in arrival order
        turn.decided.set()
        try:
            # A commit that finishes after the timeout leaves the message archived but
            # undelivered, which DESIGN.md allows; delivered but unarchived never happens.
            entry = await asyncio.wait_for(asyncio.shield(stored), STORE_TIMEOUT)
        except (StoreUnavailable, TimeoutError):
            log.error("archive unavailable; message refused", extra={"care_thread": thread.name})
            self._refuse(msg, ReasonCode.NOT_STORED)
            return False
        if previous is not None:
            await previous.delivered.wait()
        current = self.host.book.get(thread.name)
        built: dict[str, str] = {}  # one copy per member, shared by their sessions
        out: list[str] = []
        for recipient in self.host.room(thread.name).sessions():
            # Only current members: a removal applied while this message committed wins.
            if current is None or current.member(recipient.bare) is None:
                continue
            member = fast_bare(recipient.bare)
            text = built.get(member)
            if text is None:
                text = built[member] = with_seq(copies(member), entry.seq)
            out.append(ms.address(text, recipient.jid))
        if out:
            # All copies in one write, in order: one system call and one read on the
            # server's side instead of one per occupant (bench/relay.py, issue 13).
            self.host.xmpp.send("".join(out))
        turn.delivered.set()  # the next message need not wait for the hooks below
        if self.delivery is not None:
            self.delivery.relayed(
                current or thread, entry.seq, stanza_id, fast_bare(occupant.bare), built, root
            )
        if self.archived is not None:
            sender = fast_bare(occupant.bare)
            try:
                await self.archived(thread.name, msg["id"], sender, stanza_id, entry.seq)
            except Exception:
                log.warning("archived hook failed", extra={"care_thread": thread.name})
        return True

    async def _copies(
        self, msg: Message, thread: ThreadInfo, cut: SplitStanza | None, serialised: str
    ) -> Callable[[str], str] | None:
        """Member (bare JID) -> that member's serialised copy; None after refusing.

        Without a device source (tests of other parts) every member gets the whole text.
        The snapshot is the policy's own cached one, read before archiving: a message
        whose copies cannot be built is not archived either (fail closed, I.12).
        """
        if cut is None or self.devices is None:
            return lambda _member: serialised
        try:
            members = thread.member_jids
            index = await asyncio.wait_for(self.devices.snapshot(members), STORE_TIMEOUT)
        except Exception:
            log.warning("device registry unavailable; message refused")
            self._refuse(msg, ReasonCode.NOT_CHECKED)
            return None
        now, namespace = utcnow(), cut.namespace
        return lambda member: cut.for_member(member, index.usable_ids(member, namespace, now))

    def _notify(self, thread: ThreadInfo, to: str, text: str) -> None:
        """A policy notice for the sender, as a normal message from the thread (not an error)."""
        root = ms.stanza("message", self.host.thread_jid(thread.name), to, type="normal")
        ET.SubElement(root, f"{{{ns.COMPONENT}}}body").text = text
        self.host.send(root)
