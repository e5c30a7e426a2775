"""The records member's PEP, served by the component (XEP-0384, XEP-0163; I.6, II.1).

Clients encrypt for a member after reading its device lists and bundles from PEP. The
records member ``records@<component>`` has no account on the server, so the component
answers those pubsub ``items`` queries itself, for both OMEMO versions, from the
records device (``records/identity.py``): a bundle always carries the pre-keys not yet
used. Writes to its nodes are refused; its disco#info names it as the documentation
service so that people can see what it is (I.6: an announced member).

:class:`PepDirectory` gives the records device the senders' public data from their PEP.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from slixmpp import JID, Iq
from slixmpp.exceptions import XMPPError
from slixmpp.plugins.xep_0030 import DiscoInfo
from slixmpp.xmlstream.matcher.base import MatcherBase

from xmpp_clinic import namespaces as ns
from xmpp_clinic.omemo import LEGACY, OMEMO2, VERSIONS, Namespace
from xmpp_clinic.records.identity import RecordsDevice
from xmpp_clinic.xmpp import muc_stanzas as ms
from xmpp_clinic.xmpp.pep import PepFetcher
from xmpp_clinic.xmpp.routing import handle

NAME = "Documentation service (patient record)"
CURRENT = "current"


class ToJidIq(MatcherBase):
    """Matches ``<iq>`` to exactly ``jid`` (bare or any resource) with a pubsub payload."""

    def __init__(self, jid: str) -> None:
        super().__init__(jid)

    def match(self, xml: ET.Element | object) -> bool:
        stanza_xml = getattr(xml, "xml", xml)
        if not isinstance(stanza_xml, ET.Element) or stanza_xml.tag.rsplit("}", 1)[-1] != "iq":
            return False
        to = stanza_xml.get("to", "").split("/", 1)[0].lower()
        return to == self._criteria and stanza_xml.find(f"{{{ns.PUBSUB}}}pubsub") is not None


class PepDirectory:
    """Senders' OMEMO device lists and bundles from their PEP (the records device's view)."""

    def __init__(self, pep: PepFetcher) -> None:
        self._pep = pep

    async def device_list(self, version: Namespace, jid: str) -> ET.Element | None:
        found = await self._pep.items(jid, version.device_list_node)
        return found[0] if found else None

    async def bundle(self, version: Namespace, jid: str, device_id: int) -> ET.Element | None:
        node, item = version.bundle_node(device_id)
        found = await self._pep.items(jid, node, item)
        return found[0] if found else None


class RecordsPep:
    """Answers pubsub ``items`` queries and disco#info addressed to the records member."""

    def __init__(self, xmpp: Any, device: RecordsDevice) -> None:
        self.xmpp = xmpp
        self.device = device
        self.jid = device.jid

    def attach(self) -> None:
        handle(self.xmpp, "RecordsPep", ToJidIq(self.jid), self._on_pubsub)
        disco = self.xmpp.plugin["xep_0030"]
        disco.api.register(self._get_info, "get_info", jid=JID(self.jid))
        disco.api.register(self._get_items, "get_items", jid=JID(self.jid))

    async def _on_pubsub(self, iq: Iq) -> None:
        pubsub = iq.xml.find(f"{{{ns.PUBSUB}}}pubsub")
        items = pubsub.find(f"{{{ns.PUBSUB}}}items") if pubsub is not None else None
        if iq["type"] != "get" or items is None:
            self._error(iq, "forbidden", "auth", "The documentation service's nodes are read-only.")
            return
        node = items.get("node", "")
        wanted = {i.get("id", "") for i in items.findall(f"{{{ns.PUBSUB}}}item")}
        found = await self._item(node)
        if found is None or (wanted and found[0] not in wanted):
            self._error(iq, "item-not-found", "cancel")
            return
        item_id, payload = found
        out = ms.element("items", ns.PUBSUB, node=node)
        ms_item = ET.SubElement(out, f"{{{ns.PUBSUB}}}item", {"id": item_id})
        ms_item.append(payload)
        wrapper = ms.element("pubsub", ns.PUBSUB)
        wrapper.append(out)
        reply = ms.stanza("iq", self.jid, iq["from"].full, wrapper, type="result", id=iq["id"])
        self.xmpp.send(ms.serialise(reply))

    async def _item(self, node: str) -> tuple[str, ET.Element] | None:
        """(item id, payload) of ``node`` as a client of each version publishes it."""
        device_id = await self.device.device_id()
        for version in VERSIONS:
            if node == version.device_list_node:
                return CURRENT, await self.device.device_list(version)
        legacy_node, _ = LEGACY.bundle_node(device_id)
        if node == legacy_node:
            return CURRENT, await self.device.bundle(LEGACY)
        omemo2_node, omemo2_item = OMEMO2.bundle_node(device_id)
        if node == omemo2_node and omemo2_item is not None:
            return omemo2_item, await self.device.bundle(OMEMO2)
        return None

    def _error(self, iq: Iq, condition: str, etype: str, text: str = "") -> None:
        root = ms.stanza_error(
            "iq", self.jid, iq["from"].full, condition, etype, text, stanza_id=iq["id"]
        )
        self.xmpp.send(ms.serialise(root))

    def _get_info(self, jid: JID, node: str | None, ifrom: JID | None, data: Any) -> DiscoInfo:
        """An announced member: it says what it is to whoever asks (I.6)."""
        if node:
            raise XMPPError("item-not-found", etype="cancel")
        info = DiscoInfo()
        info["node"] = None
        info.add_identity("account", "registered", name=NAME)
        for feature in (ns.DISCO_INFO, ns.PUBSUB):
            info.add_feature(feature)
        return info

    def _get_items(self, jid: JID, node: str | None, ifrom: JID | None, data: Any) -> Any:
        from slixmpp.plugins.xep_0030 import DiscoItems

        return DiscoItems()
