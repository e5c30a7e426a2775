"""Presence to a care thread: joins, re-joins, presence updates, nick changes (XEP-0045 7).

The members-only gate, the nick rules and the presence allowlist meet here (IV.2, II.1):

- **Join** (7.2): the present occupants' presences, then the joiner's own with 110, then
  the history the client asked for (the ``history_sender`` of the host), then the
  subject, which clients take as the end of the join.
- **Re-join** of a session that is already present, with ``<x xmlns=muc>``: a full
  resync in the same order (XEP-0045 7.2.1 "MUST"; Prosody does the same), so the
  client does not conclude that everyone else has left (issue 9.4).
- **Presence update** (a present session without ``<x xmlns=muc>``): the new, filtered
  presence to everyone.
- **Nick change** (7.6): unavailable with 303 and the new nick to everyone (110 for the
  person's own sessions), then the presence under the new nick (issue 9.5).

Every nick goes through :func:`xmpp_clinic.nicks.prepare` (PRECIS, length) and may not be
the same as, or look like, another person's nick, present or bound (issue 8.6). What a
member's presence carries to others is rebuilt by :mod:`presence_filter` (issue 8.4),
after :func:`check_shape` bounded it (issue 8.7).
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from slixmpp import JID, Presence

from xmpp_clinic import namespaces as ns
from xmpp_clinic.nicks import Nick, NickProblem, prepare
from xmpp_clinic.policy import check_shape
from xmpp_clinic.threads import ThreadInfo
from xmpp_clinic.xmpp import muc_stanzas as ms
from xmpp_clinic.xmpp.errors import NotAMember, maps_domain_errors
from xmpp_clinic.xmpp.occupants import Occupant, Room, make_occupant_id
from xmpp_clinic.xmpp.presence_filter import member_payload

if TYPE_CHECKING:
    from xmpp_clinic.xmpp.threads import ThreadHost

log = logging.getLogger(__name__)

# Presence refusals (XEP-0045 7.2): condition -> error type.
ERROR_TYPES = {
    "registration-required": "auth",
    "conflict": "cancel",
    "jid-malformed": "modify",
    "not-acceptable": "modify",
}
NOT_JOINS = ("subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe")
JOINED = (ms.NON_ANONYMOUS, ms.LOGGED, ms.SELF)


def clash_text(wanted: Nick, other: str, present: bool) -> str:
    """Why ``wanted`` is refused: it is, or looks like, ``other``, another person's nick."""
    same = prepare(other).key == wanted.key
    if same and present:
        return "That nickname is in use."
    if same:
        return "That nickname belongs to another member of this thread."
    return (
        f"That nickname looks like '{other}', the nickname of another member of this "
        "thread. Choose one that cannot be mistaken for it."
    )


class Joins:
    """The presence handler of the room host."""

    def __init__(self, host: ThreadHost) -> None:
        self.host = host

    @maps_domain_errors
    async def on_presence(self, pres: Presence) -> None:
        host, ptype = self.host, pres["type"]
        if ptype in NOT_JOINS:
            return
        to, sender = pres["to"], pres["from"]
        # slixmpp's JID prepares the resource (stringprep drops invisible characters), so
        # the nick is read from the attribute as sent: the room must not silently give
        # the client a nick other than the one it asked for.
        asked = str(pres.xml.get("to", ""))
        known = host.book.get(to.user)
        if ptype in ("error", "unavailable"):
            if known is not None:
                host.leave_session(known, sender.full, bounced=ptype == "error")
            return
        shape = check_shape(pres.xml)  # before anything reads or copies the payload
        if shape.rejected:
            self.refuse(asked, sender, "not-acceptable", shape.text)
            return
        try:
            thread, _member = await host.member_thread(to, sender, nick=True)
        except NotAMember:
            # Same answer for a missing thread and a non-member: no existence oracle.
            self.refuse(asked, sender, "registration-required", "Members only.")
            return
        await self.arrive(thread, to, sender, pres.xml, asked)

    def refuse(self, asked: str, sender: JID, condition: str, text: str) -> None:
        """A presence error from ``asked``, the address as the client wrote it."""
        etype = ERROR_TYPES[condition]
        self.host.send(
            ms.stanza_error("presence", asked, sender.full, condition, etype, text, muc=True)
        )

    async def arrive(
        self, thread: ThreadInfo, to: JID, sender: JID, xml: ET.Element, asked: str
    ) -> None:
        """A member's join, re-join, presence update or nick change.

        ``asked`` is the ``to`` as the client wrote it (``to.resource`` is stringprepped).
        """
        raw_nick = asked.partition("/")[2]
        if not raw_nick:
            self.refuse(asked, sender, "jid-malformed", "A nickname is required.")
            return
        try:
            nick = prepare(raw_nick)
            if nick.shown != to.resource:
                raise NickProblem(f"That nickname is not in its normal form: use '{to.resource}'.")
        except NickProblem as problem:
            self.refuse(asked, sender, "not-acceptable", str(problem))
            return
        room = self.host.room(thread.name)
        current = room.get(sender.full)
        if current is None or current.nick != nick.shown:
            clash = room.clash(sender.bare, nick)
            if clash is not None:
                self.refuse(asked, sender, "conflict", clash_text(nick, *clash))
                return
        payload = member_payload(xml)
        muc = xml.find(f"{{{ns.MUC}}}x")
        if current is None:
            await self.join(thread, room, sender, nick, payload, muc)
        elif current.nick != nick.shown:
            current.payload = payload
            self.change_nick(thread, room, current, nick)
        else:
            current.payload = payload
            if muc is not None:
                await self.resync(thread, room, current, muc)
            else:
                self.host.broadcast_presence(thread, current)

    async def join(
        self,
        thread: ThreadInfo,
        room: Room,
        sender: JID,
        nick: Nick,
        payload: list[ET.Element],
        muc: ET.Element | None,
    ) -> None:
        """A new session (XEP-0045 7.2); others see the nick once, from its first session."""
        host = self.host
        occupant = Occupant(
            sender.full,
            sender.bare,
            nick.shown,
            make_occupant_id(host.thread_jid(thread.name), sender.bare),
            payload,
        )
        first_session = not room.with_nick(nick.shown)
        self._others_to(thread, room, occupant)
        room.add(occupant)
        room.bind(sender.bare, nick)
        host.occupants_changed(thread, room)
        if first_session:
            self._to_others(thread, room, occupant)
        host.send(host.occupant_presence(thread, occupant, occupant.jid, JOINED))
        await host.send_history(thread, occupant, muc)
        host.send_subject(thread, occupant.jid)
        log.info("occupant joined", extra={"care_thread": thread.name})
        host.member_arrived(sender.bare)

    async def resync(
        self, thread: ThreadInfo, room: Room, occupant: Occupant, muc: ET.Element
    ) -> None:
        """A join from a session already present: everything a join sends, again (9.4)."""
        host = self.host
        self._others_to(thread, room, occupant)
        if room.nicks().get(occupant.nick) is occupant:  # others see a nick's first session
            self._to_others(thread, room, occupant)  # its presence may have changed
        host.send(host.occupant_presence(thread, occupant, occupant.jid, JOINED))
        await host.send_history(thread, occupant, muc)
        host.send_subject(thread, occupant.jid)

    def change_nick(self, thread: ThreadInfo, room: Room, current: Occupant, nick: Nick) -> None:
        """XEP-0045 7.6: every session of the person moves to ``nick`` (issue 9.5)."""
        host, old = self.host, current.nick
        movers = room.with_nick(old)  # the person's sessions: a nick is one person's
        head = movers[0]
        for recipient in room.sessions():
            mine = recipient.bare == current.bare
            shown = recipient if mine else head
            gone = (ms.NICK_CHANGED, ms.SELF) if mine else (ms.NICK_CHANGED,)
            host.send(self._nick_gone(thread, shown, recipient.jid, gone, nick.shown))
        for mover in movers:
            mover.nick = nick.shown
        room.bind(current.bare, nick)
        host.occupants_changed(thread, room)
        for recipient in room.sessions():
            mine = recipient.bare == current.bare
            shown = recipient if mine else head
            statuses = (ms.SELF,) if mine else ()
            host.send(host.occupant_presence(thread, shown, recipient.jid, statuses))
        log.info("occupant changed nick", extra={"care_thread": thread.name})

    def _nick_gone(
        self, thread: ThreadInfo, occupant: Occupant, to: str, statuses: tuple[str, ...], new: str
    ) -> ET.Element:
        """The old nick's unavailable presence, naming the new nick (role kept)."""
        host = self.host
        aff = host.affiliation(thread, occupant.bare)
        frm = f"{host.thread_jid(thread.name)}/{occupant.nick}"
        root = ms.stanza("presence", frm, to, type="unavailable")
        role = ms.ROLE_OF.get(aff, "none")
        root.append(ms.muc_user(aff, role, occupant.jid, statuses, nick=new))
        root.append(ms.occupant_id(occupant.occupant_id))
        return root

    def _others_to(self, thread: ThreadInfo, room: Room, occupant: Occupant) -> None:
        """Every other nick's presence to ``occupant`` (from its first session)."""
        for other_nick, other in room.nicks().items():
            if other_nick != occupant.nick:
                self.host.send(self.host.occupant_presence(thread, other, occupant.jid))

    def _to_others(self, thread: ThreadInfo, room: Room, occupant: Occupant) -> None:
        """``occupant``'s presence to every other session."""
        for other in room.sessions():
            if other.jid != occupant.jid:
                self.host.send(self.host.occupant_presence(thread, occupant, other.jid))
