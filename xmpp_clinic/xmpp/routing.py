"""Which stanzas reach the care-thread services: matchers on thread addresses (IV.2).

Each service (room host, relay, MAM, member lists) registers its coroutine handler for
the stanzas addressed to a thread (a JID with a localpart at the component's domain);
the component's own address stays with slixmpp's plugins (disco, ad-hoc, ping).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from typing import Any, cast

from slixmpp import JID, ComponentXMPP
from slixmpp.jid import InvalidJID
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import CoroutineCallback
from slixmpp.xmlstream.matcher.base import MatcherBase


def handle(
    xmpp: ComponentXMPP, name: str, matcher: MatcherBase, handler: Callable[[Any], Awaitable[None]]
) -> None:
    """Register a coroutine stanza handler (slixmpp types handlers as taking StanzaBase)."""
    callback = cast(Callable[[StanzaBase], Awaitable[None]], handler)
    xmpp.register_handler(CoroutineCallback(name, matcher, callback))


class ToThread(MatcherBase):
    """Matches ``kind`` stanzas addressed to a thread (a JID with a localpart) at ``domain``."""

    def __init__(self, kind: str, domain: str) -> None:
        super().__init__((kind, domain))

    def match(self, xml: ET.Element | object) -> bool:
        stanza_xml = getattr(xml, "xml", xml)
        if not isinstance(stanza_xml, ET.Element):
            return False
        kind, domain = self._criteria
        if stanza_xml.tag.rsplit("}", 1)[-1] != kind:
            return False
        try:
            to = JID(stanza_xml.get("to", ""))
        except InvalidJID:  # not a thread's address; never an exception in the stream
            return False
        return bool(to.user) and to.domain == domain


class ToThreadIq(ToThread):
    """Matches ``<iq>`` to a thread JID whose payload is ``{ns}tag``."""

    def __init__(self, domain: str, ns: str, tag: str = "query") -> None:
        MatcherBase.__init__(self, ("iq", domain))
        self._payload = f"{{{ns}}}{tag}"

    def match(self, xml: ET.Element | object) -> bool:
        stanza_xml = getattr(xml, "xml", xml)
        return (
            super().match(xml)
            and isinstance(stanza_xml, ET.Element)
            and stanza_xml.find(self._payload) is not None
        )
