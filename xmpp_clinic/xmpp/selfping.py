"""Pings to the gateway and XEP-0410 self-pings to ``thread/nick``.

slixmpp's XEP-0199 plugin answers every ping with success, whatever the address; a
client's self-ping must instead fail once it is no longer an occupant, or it would never
rejoin. So this module takes over the ping handler of the component connection: the
component's own domain still answers, thread addresses answer by XEP-0410's rules.
Pings from one occupant to another are passed on by xmpp/occupant_iq.py, which this
module attaches (it sees IQs to occupants before any handler).
"""

from __future__ import annotations

from slixmpp import Iq
from slixmpp.exceptions import XMPPError
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from xmpp_clinic.xmpp.occupant_iq import OccupantIq
from xmpp_clinic.xmpp.threads import ThreadHost


class SelfPing:
    """Answers pings: the domain always; ``thread/nick`` only for that thread's occupants."""

    def __init__(self, host: ThreadHost) -> None:
        self.host = host

    def attach(self) -> None:
        OccupantIq(self.host).attach()
        xmpp = self.host.xmpp
        xmpp.register_plugin("xep_0199")  # registers the stanza class and the disco feature
        xmpp.remove_handler("Ping")
        xmpp.register_handler(Callback("Ping", StanzaPath("iq@type=get/ping"), self._ping))

    def _ping(self, stanza: StanzaBase) -> None:
        assert isinstance(stanza, Iq)
        self._on_ping(stanza)

    def _on_ping(self, iq: Iq) -> None:
        to = iq["to"]
        if to.user and to.domain == self.host.domain:
            thread = self.host.book.get(to.user)
            occupant = (
                self.host.room(thread.name).get(iq["from"].full) if thread is not None else None
            )
            if occupant is None:
                raise XMPPError("not-acceptable", "Not an occupant of this thread.", etype="cancel")
            if to.resource and not self.host.room(to.user).with_nick(to.resource):
                raise XMPPError("item-not-found", etype="cancel")
        iq.reply().send()
