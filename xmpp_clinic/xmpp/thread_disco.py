"""Service discovery for threads (XEP-0030, XEP-0045 6; IV.2).

The component lists only the threads the requester is a member of (threads are hidden);
a thread describes itself only to its members. Everything else falls through to
slixmpp's static disco data (the component's identity, ad-hoc command nodes, ...).
"""

from __future__ import annotations

from typing import Any

from slixmpp import JID
from slixmpp.exceptions import XMPPError
from slixmpp.plugins.xep_0004 import Form
from slixmpp.plugins.xep_0030 import DiscoInfo, DiscoItems

from xmpp_clinic import namespaces as ns
from xmpp_clinic.threads import ThreadInfo
from xmpp_clinic.xmpp.errors import NotAMember, maps_domain_errors
from xmpp_clinic.xmpp.threads import ThreadHost

THREAD_FEATURES = (
    ns.MUC,
    "muc_membersonly",
    "muc_nonanonymous",
    "muc_persistent",
    "muc_hidden",
    "muc_unmoderated",
    "muc_unsecured",
    ns.MAM,
    f"{ns.MAM}#extended",
    ns.SID,
    ns.OCCUPANT_ID,
    f"{ns.MUC}#stable_id",
    f"{ns.MUC}#self-ping-optimization",
    ns.DISCO_INFO,
    ns.PING,
)
ROOMINFO = f"{ns.MUC}#roominfo"
RESERVED_NICK = "x-roomuser-item"  # XEP-0045 7.12: "what is my nick here?"


class ThreadDisco:
    """Answers disco#info and disco#items for thread JIDs and the component's item list."""

    def __init__(self, host: ThreadHost) -> None:
        self.host = host

    def attach(self) -> None:
        disco = self.host.xmpp.plugin["xep_0030"]
        self._static_info = disco.static.get_info
        self._static_items = disco.static.get_items
        disco.api.register(self._get_info, "get_info")
        disco.api.register(self._get_items, "get_items")

    async def _allowed(self, jid: JID, ifrom: JID | None) -> ThreadInfo:
        """The thread at ``jid`` if ``ifrom`` is a member; outsiders learn nothing (IV.2)."""
        if ifrom is None:
            raise NotAMember(jid.bare)
        thread, _member = await self.host.member_thread(jid, ifrom)
        return thread

    @maps_domain_errors
    async def _get_info(
        self, jid: JID | None, node: str | None, ifrom: JID | None, data: Any
    ) -> Any:
        if jid is None or not jid.user or jid.domain != self.host.domain:
            return self._static_info(jid, node, ifrom, data)
        thread = await self._allowed(jid, ifrom)
        if node == RESERVED_NICK and ifrom is not None:
            return self._reserved_nick(thread, ifrom.bare)
        if node:
            raise XMPPError("item-not-found", etype="cancel")
        info = DiscoInfo()
        info.add_identity("conference", "text", name=thread.title)
        for feature in THREAD_FEATURES:
            info.add_feature(feature)
        info.append(self._roominfo(thread))
        return info

    def _reserved_nick(self, thread: ThreadInfo, bare: str) -> DiscoInfo:
        """The nick bound to ``bare`` in this thread (XEP-0045 7.12), if one is.

        A nick stays bound to the person who used it (issue 8.6), so this is the nick
        their clients should join with; with none bound, no identity (any free nick).
        """
        info = DiscoInfo()
        info["node"] = RESERVED_NICK
        nick = self.host.room(thread.name).bindings().get(bare)
        if nick:
            info.add_identity("conference", "text", name=nick)
        return info

    def _roominfo(self, thread: ThreadInfo) -> Form:
        form = Form()
        form["type"] = "result"
        form.add_field(var="FORM_TYPE", ftype="hidden", value=ROOMINFO)
        form.add_field(var="muc#roomconfig_roomname", ftype="text-single", value=thread.title)
        form.add_field(var="muc#roominfo_description", ftype="text-single", value=thread.title)
        occupants = len(self.host.room(thread.name).nicks())
        form.add_field(var="muc#roominfo_occupants", ftype="text-single", value=str(occupants))
        form.add_field(var="muc#roomconfig_whois", ftype="list-single", value="anyone")
        form.add_field(var="muc#roominfo_subject", ftype="text-single", value=thread.subject)
        return form

    @maps_domain_errors
    async def _get_items(
        self, jid: JID | None, node: str | None, ifrom: JID | None, data: Any
    ) -> Any:
        if jid is None:
            return self._static_items(jid, node, ifrom, data)
        if jid.user and jid.domain == self.host.domain:
            await self._allowed(jid, ifrom)
            return DiscoItems()  # occupants are not listed; members see them by presence
        if jid.bare != self.host.domain or node or ifrom is None:
            return self._static_items(jid, node, ifrom, data)
        await self.host.refresh()
        items = DiscoItems()
        static = self._static_items(jid, node, ifrom, data)
        for item in static["items"] if static is not None else ():
            items.add_item(*item)  # keep what other services published on the domain
        for thread in self.host.book.threads_of(ifrom.bare):
            items.add_item(JID(self.host.thread_jid(thread.name)), name=thread.title)
        return items
