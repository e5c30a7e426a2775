"""What of a member's presence the other occupants see: content-free elements only (II.1).

A presence in a care thread is copied to every occupant; text in it would reach them
unencrypted and unaudited (issue 8.4). So nothing is copied: the room builds fresh
elements from the few values below, each checked for its real shape, and drops
everything else (``<status>`` text, links, unknown extensions, attributes):

============================  =====================================================
element                       kept when
============================  =====================================================
``<show>``                    one of ``away``, ``chat``, ``dnd``, ``xa``
``<priority>``                an integer -128..127 (RFC 6121 4.7.2.3)
``<c xmlns=caps>`` (XEP-0115)  ``hash`` a hash name, ``node`` a URI without spaces
                              (at most 256 characters), ``ver`` base64 (at most 128)
``<x xmlns=vcard-temp:x:update>`` (XEP-0153)  ``<photo>`` empty or a 40-digit SHA-1 hex
============================  =====================================================

The room adds its own ``<x xmlns=muc#user>`` and ``<occupant-id>``; whatever the member
sent in those namespaces is dropped like the rest. The caps let other clients discover
the member's features (disco#info to the occupant JID is forwarded, xmpp/occupant_iq.py);
the avatar hash lets them show the picture from the member's own vCard, not from the room.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from xmpp_clinic import namespaces as ns

VCARD_UPDATE = "vcard-temp:x:update"
SHOWS = frozenset({"away", "chat", "dnd", "xa"})
_STREAMS = (ns.COMPONENT, ns.CLIENT)
_HASH = re.compile(r"[A-Za-z0-9-]{1,32}")
_NODE = re.compile(r"[!#-;=?-~]{1,256}")  # printable ASCII without space, ", < and >
_VER = re.compile(r"[A-Za-z0-9+/]{1,126}={0,2}")
_PHOTO = re.compile(r"[0-9a-fA-F]{40}")


def _text(xml: ET.Element, tag: str) -> str | None:
    for stream in _STREAMS:
        found = xml.find(f"{{{stream}}}{tag}")
        if found is not None:
            return (found.text or "").strip()
    return None


def _show(xml: ET.Element) -> ET.Element | None:
    value = _text(xml, "show")
    if value not in SHOWS:
        return None
    element = ET.Element(f"{{{ns.COMPONENT}}}show")
    element.text = value
    return element


def _priority(xml: ET.Element) -> ET.Element | None:
    value = _text(xml, "priority")
    if value is None or not re.fullmatch(r"[+-]?[0-9]{1,3}", value):
        return None
    number = int(value)
    if not -128 <= number <= 127:
        return None
    element = ET.Element(f"{{{ns.COMPONENT}}}priority")
    element.text = str(number)
    return element


def _caps(xml: ET.Element) -> ET.Element | None:
    found = xml.find(f"{{{ns.CAPS}}}c")
    if found is None:
        return None
    values = {name: found.get(name, "") for name in ("hash", "node", "ver")}
    if not (
        _HASH.fullmatch(values["hash"])
        and _NODE.fullmatch(values["node"])
        and _VER.fullmatch(values["ver"])
    ):
        return None
    return ET.Element(f"{{{ns.CAPS}}}c", values)


def _avatar(xml: ET.Element) -> ET.Element | None:
    found = xml.find(f"{{{VCARD_UPDATE}}}x")
    if found is None:
        return None
    photo = found.find(f"{{{VCARD_UPDATE}}}photo")
    if photo is None:
        return None
    value = (photo.text or "").strip()
    if value and not _PHOTO.fullmatch(value):
        return None
    update = ET.Element(f"{{{VCARD_UPDATE}}}x")
    ET.SubElement(update, f"{{{VCARD_UPDATE}}}photo").text = value or None
    return update


def member_payload(xml: ET.Element) -> list[ET.Element]:
    """Fresh copies of the allowed, well-shaped elements of presence ``xml`` (II.1)."""
    built = (_show(xml), _priority(xml), _caps(xml), _avatar(xml))
    return [element for element in built if element is not None]
