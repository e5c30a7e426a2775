"""The care-thread room host: join, leave, presence, membership changes (XEP-0045; IV.2).

Threads are hosted by the gateway itself at ``<name>@<component>`` and behave as
persistent, members-only, non-anonymous, hidden MUC rooms, which is what stock OMEMO
clients require before they encrypt in a room. Membership comes from the store (a
:class:`ThreadBook` snapshot reloaded on every "threads" change); who is present lives
in memory (:class:`Room`) and is written down in batches (:mod:`occupant_journal`) so a
restart after kill -9 can tell those sessions to rejoin. Presence to a thread (joins,
re-joins, nick changes) is handled by :mod:`joins`; stanzas with addresses slixmpp cannot
parse never get this far (:mod:`addresses`). Relay, MAM, member lists and discovery are
sibling modules that share this host.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable

from slixmpp import JID, ComponentXMPP

from xmpp_clinic import namespaces as ns
from xmpp_clinic.config import Settings
from xmpp_clinic.nicks import NickProblem, prepare, warm_up
from xmpp_clinic.store import Store, StoreUnavailable
from xmpp_clinic.threads import (
    MemberInfo,
    MembershipChange,
    ThreadBook,
    ThreadInfo,
    ThreadService,
)
from xmpp_clinic.xmpp import muc_stanzas as ms
from xmpp_clinic.xmpp.addresses import AddressGuard
from xmpp_clinic.xmpp.errors import NotAMember
from xmpp_clinic.xmpp.joins import Joins
from xmpp_clinic.xmpp.occupant_journal import OccupantJournal, ThreadRows
from xmpp_clinic.xmpp.occupants import Occupant, Room, make_occupant_id
from xmpp_clinic.xmpp.routing import ToThread, handle

log = logging.getLogger(__name__)

# Called with a member's bare JID when they join a thread or are added to one.
ArrivalListener = Callable[[str], None]
# Sends the history a joining occupant asked for in <x xmlns=muc> (None: nothing asked).
HistorySender = Callable[[ThreadInfo, Occupant, ET.Element | None], Awaitable[None]]

# How long a checked book is trusted for names it does not know: stanzas to unknown
# threads read the store at most this often, whoever sends them (the poller in app.py
# picks up CLI changes within about a second anyway).
FRESH_SECONDS = 0.5


class ThreadHost:
    """Hosts every care thread of one gateway on one component connection."""

    def __init__(
        self,
        xmpp: ComponentXMPP,
        settings: Settings,
        service: ThreadService,
        *,
        refresh: Callable[[], Awaitable[object]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        store: Store | None = None,
    ) -> None:
        self.xmpp = xmpp
        self.settings = settings
        self.service = service
        self.domain = settings.xmpp.component_jid
        self.book = ThreadBook()
        self.rooms: dict[str, Room] = {}
        self._refresh = refresh
        self._reloading = asyncio.Lock()
        self._arrival_listeners: list[ArrivalListener] = []
        self._clock = clock
        self._checked_at: float | None = None  # when the book was last known current
        self._unknown_check: asyncio.Future[None] | None = None
        # Sends the join history (XEP-0045 7.2.15) after the self-presence and before
        # the subject: the history module sets it (None: no history on join).
        self.history_sender: HistorySender | None = None
        # Who is joined, written down for restarts (8.10): the threads' own store unless
        # another is given (ThreadService keeps the store it was built with).
        journal_store = store if store is not None else getattr(service, "_store", None)
        self.journal = OccupantJournal(journal_store) if journal_store is not None else None

    # ------------------------------------------------------------------ set-up
    def attach(self) -> None:
        """Register the presence handler; relay, MAM and the rest attach themselves.

        The address guard comes first: no stanza with an address slixmpp cannot parse
        reaches any handler of the component (I.12).
        """
        AddressGuard(self.xmpp, self.domain).attach()
        self.xmpp.add_event_handler("session_start", self._on_session_start)
        joins = Joins(self)
        handle(self.xmpp, "ThreadPresence", ToThread("presence", self.domain), joins.on_presence)

    def on_member_arrival(self, listener: ArrivalListener) -> None:
        """Call ``listener(bare_jid)`` when a member joins a thread or is added to one.

        The device registry listens to learn the person's OMEMO devices (I.4); listeners
        must not block (start a task for slow work).
        """
        self._arrival_listeners.append(listener)

    def member_arrived(self, bare: str) -> None:
        for listener in self._arrival_listeners:
            try:
                listener(bare)
            except Exception:
                log.exception("member arrival listener failed")

    async def load(self) -> None:
        """Load the thread snapshot at start (nobody is present yet: nothing to announce)."""
        warm_up()  # the nick lookalike tables, before the first join waits for them
        started = self._clock()
        self.book = ThreadBook(await self.service.list())
        self._checked(started)

    async def reload(self) -> None:
        """Load the thread snapshot and act on membership changes (IV.2)."""
        async with self._reloading:  # one diff at a time, so each change is applied once
            started = self._clock()
            new = ThreadBook(await self.service.list())
            old, changes = self.book, self.book.changes_to(new)
            self.book = new
            self._checked(started)
            for change in changes:
                self._apply(change, old)

    async def refresh(self) -> None:
        """Bring the snapshot up to date before a decision (a CLI change applies at once)."""
        started = self._clock()
        if self._refresh is not None:
            await self._refresh()
        else:
            await self.reload()
        self._checked(started)

    async def find(self, jid: JID) -> ThreadInfo | None:
        """The thread at ``jid``, current enough to decide on (IV.2).

        A known thread is refreshed first: its members may have changed a moment ago. An
        unknown one is refused from memory unless the book may be stale, and concurrent
        lookups share that one store read, so nobody can make the gateway query the
        store once per stanza by addressing threads that do not exist.
        """
        if self.thread_for(jid) is not None:
            await self.refresh()
        elif self._may_be_stale():
            if self._unknown_check is None or self._unknown_check.done():
                self._unknown_check = asyncio.ensure_future(self.refresh())
            await asyncio.shield(self._unknown_check)
        return self.thread_for(jid)

    async def member_thread(
        self, to: JID, sender: JID, *, nick: bool = False
    ) -> tuple[ThreadInfo, MemberInfo]:
        """The thread at ``to`` and ``sender``'s membership of it (IV.2).

        The one members-only gate of joining, MAM, member lists and discovery. An
        unknown thread and a non-member both raise :class:`NotAMember`, which every
        caller answers alike, so nobody learns which threads exist. ``to`` is the thread
        itself; with ``nick`` (a join) it is an occupant address ``thread/nick``.
        """
        thread = await self.find(to)
        member = thread.member(sender.bare) if thread is not None else None
        if thread is None or member is None or (bool(to.resource) and not nick):
            raise NotAMember(to.bare)
        return thread, member

    def _checked(self, started: float) -> None:
        if self._checked_at is None or started > self._checked_at:
            self._checked_at = started

    def _may_be_stale(self) -> bool:
        return self._checked_at is None or self._clock() - self._checked_at >= FRESH_SECONDS

    # ------------------------------------------------------------------- lookups
    def thread_jid(self, name: str) -> str:
        return f"{name}@{self.domain}"

    def thread_for(self, jid: JID) -> ThreadInfo | None:
        if jid.domain != self.domain or not jid.user:
            return None
        return self.book.get(jid.user)

    def room(self, name: str) -> Room:
        return self.rooms.setdefault(name, Room())

    def affiliation(self, thread: ThreadInfo, bare: str) -> str:
        member = thread.member(bare)
        return member.affiliation if member is not None else "none"

    def send(self, root: ET.Element) -> None:
        # Through slixmpp's send queue, so these stanzas keep their order relative to the
        # replies slixmpp sends itself (iq results, disco).
        self.xmpp.send(ms.serialise(root))

    def occupant_presence(
        self,
        thread: ThreadInfo,
        occupant: Occupant,
        to: str,
        statuses: tuple[str, ...] = (),
        *,
        unavailable: bool = False,
        affiliation: str | None = None,
    ) -> ET.Element:
        """The presence of ``occupant`` as the room shows it to ``to`` (real JID included)."""
        aff = affiliation or self.affiliation(thread, occupant.bare)
        role = "none" if unavailable else ms.ROLE_OF.get(aff, "none")
        attrs = {"type": "unavailable"} if unavailable else {}
        payload = [] if unavailable else [copy.deepcopy(e) for e in occupant.payload]
        frm = f"{self.thread_jid(thread.name)}/{occupant.nick}"
        root = ms.stanza("presence", frm, to, *payload, **attrs)
        root.append(ms.muc_user(aff, role, occupant.jid, statuses))
        root.append(ms.occupant_id(occupant.occupant_id))
        return root

    # ------------------------------------------------------------------ presence
    def send_subject(self, thread: ThreadInfo, to: str) -> None:
        """The subject, even empty: clients take it as the end of the join."""
        root = ms.stanza("message", self.thread_jid(thread.name), to, type="groupchat")
        ET.SubElement(root, f"{{{ns.COMPONENT}}}subject").text = thread.subject or None
        self.send(root)

    async def send_history(
        self, thread: ThreadInfo, occupant: Occupant, muc: ET.Element | None
    ) -> None:
        """The join history (XEP-0045 7.2.15), by :attr:`history_sender` if one is set.

        A failure there is logged and the join goes on: the subject still ends it.
        """
        if self.history_sender is None:
            return
        try:
            await self.history_sender(thread, occupant, muc)
        except Exception:
            log.exception("join history failed", extra={"care_thread": thread.name})

    def broadcast_presence(self, thread: ThreadInfo, occupant: Occupant) -> None:
        """``occupant``'s presence to every session (110 to itself)."""
        for other in self.room(thread.name).sessions():
            statuses = (ms.SELF,) if other.jid == occupant.jid else ()
            self.send(self.occupant_presence(thread, occupant, other.jid, statuses))

    def occupants_changed(self, thread: ThreadInfo, room: Room) -> None:
        """Someone joined, left or changed nick in ``thread``: the journal writes it.

        Only current members' nick bindings are written: a former member's binding keeps
        guarding their nick in memory (8.6), but is never written back to the store after
        ``erase --person`` deleted it (I.7).
        """
        if self.journal is not None:
            current = self.book.get(thread.name) or thread
            sessions = {o.jid: o.nick for o in room.sessions()}
            bindings = {b: n for b, n in room.bindings().items() if current.member(b)}
            self.journal.changed(thread.name, ThreadRows(sessions, bindings))

    # ------------------------------------------------------------------ restarts
    async def _on_session_start(self, _event: object) -> None:
        try:
            await self.restore()
        except StoreUnavailable:
            log.warning("occupants of the last run not read; they rejoin when they next send")

    async def restore(self) -> None:
        """After a start: bindings back, and 332 to sessions that think they are joined.

        Sessions still in memory (a reconnect of the component link) are not told
        anything: for them nothing changed. Everyone else written down was joined when
        the gateway stopped without saying so (kill -9): status 332 makes clients rejoin
        (issue 8.10). A session that missed it still gets ``not-acceptable`` for its next
        message or self-ping, which makes clients rejoin as well (XEP-0410).
        """
        if self.journal is None:
            return
        for name, rows in (await self.journal.load()).items():
            thread = self.book.get(name)
            if thread is None:  # deleted since: its rows go
                self.journal.changed(name, ThreadRows())
                continue
            room = self.room(name)
            for bare, shown in rows.bindings.items():
                if bare not in room.bindings():
                    try:
                        room.bind(bare, prepare(shown))
                    except NickProblem:
                        continue
            thread_jid = self.thread_jid(name)
            for jid, nick in rows.sessions.items():
                if room.get(jid) is None:
                    bare = jid.split("/", 1)[0]
                    gone = Occupant(jid, bare, nick, make_occupant_id(thread_jid, bare))
                    statuses = (ms.SHUTDOWN, ms.SELF)
                    self.send(self.occupant_presence(thread, gone, jid, statuses, unavailable=True))
            self.occupants_changed(thread, room)

    def leave_session(
        self,
        thread: ThreadInfo,
        jid: str,
        *,
        bounced: bool = False,
        statuses: tuple[str, ...] = (),
        affiliation: str | None = None,
    ) -> None:
        """Remove one session; others see the nick go only when its last session leaves."""
        room = self.room(thread.name)
        occupant = room.remove(jid)
        if occupant is None:
            return
        self.occupants_changed(thread, room)
        if not bounced:
            self.send(
                self.occupant_presence(
                    thread, occupant, jid, (*statuses, ms.SELF),
                    unavailable=True, affiliation=affiliation,
                )
            )  # fmt: skip
        if not room.with_nick(occupant.nick):
            for other in room.sessions():
                self.send(
                    self.occupant_presence(
                        thread, occupant, other.jid, statuses,
                        unavailable=True, affiliation=affiliation,
                    )
                )  # fmt: skip

    # --------------------------------------------------------- membership changes
    def _apply(self, change: MembershipChange, old: ThreadBook) -> None:
        """Kick removed members (321); tell occupants and absent members (XEP-0045 9).

        A thread gone from the new book (deleted) is found in ``old``: its occupants are
        kicked like any removed member, never left in a room that no longer exists (IV.2).
        """
        thread = self.book.get(change.thread) or old.get(change.thread)
        if thread is None:
            return
        room = self.room(thread.name)
        present = room.sessions_of(change.jid)
        if change.after is None:
            for occupant in present:
                self.leave_session(
                    thread, occupant.jid, statuses=(ms.REMOVED_AFFILIATION,), affiliation="none"
                )
            log.info("member removed; sessions closed", extra={"care_thread": thread.name})
        else:
            for occupant in present:
                self.broadcast_presence(thread, occupant)
            if change.before is None:
                self.member_arrived(change.jid)
        gone = self.book.get(change.thread) is None
        self._announce(thread, change, gone=gone)
        if gone and not room.sessions():
            self.rooms.pop(thread.name, None)

    def _announce(self, thread: ThreadInfo, change: MembershipChange, *, gone: bool) -> None:
        """An affiliation message to occupants and to members who are not present (of a
        deleted thread: to occupants and the person removed only).

        Clients rebuild the list of people they encrypt for from these (OMEMO in rooms).
        """
        room = self.room(thread.name)
        targets = [o.jid for o in room.sessions()]
        present = {o.bare for o in room.sessions()}
        if not gone:
            targets += sorted(m.jid for m in thread.members if m.jid not in present)
        if change.after is None and change.jid not in present:
            targets.append(change.jid)
        for to in targets:
            root = ms.stanza("message", self.thread_jid(thread.name), to)
            root.append(ms.muc_user(change.after or "none", "none", change.jid))
            self.send(root)

    # ------------------------------------------------------------------ shutdown
    async def shutdown(self) -> None:
        """Tell every occupant the service is going away (status 332) so clients rejoin."""
        for name, room in self.rooms.items():
            thread = self.book.get(name)
            if thread is None:
                continue
            for occupant in room.sessions():
                self.send(
                    self.occupant_presence(
                        thread, occupant, occupant.jid, (ms.SHUTDOWN, ms.SELF), unavailable=True
                    )
                )
            room.clear()
            self.occupants_changed(thread, room)
        if self.journal is not None:
            await self.journal.flush()
