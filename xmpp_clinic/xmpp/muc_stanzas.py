"""Building the stanzas a MUC room sends (XEP-0045, XEP-0421), as plain ElementTree.

The room host composes presences and errors here so that the exact wire form (the order
of children, the status codes) lives in one place and is easy to read against the XEPs.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable

from slixmpp.xmlstream import tostring

from xmpp_clinic import namespaces as ns

# XEP-0045 status codes the threads use.
SELF = "110"
NON_ANONYMOUS = "100"
LOGGED = "170"
NICK_CHANGED = "303"
REMOVED_AFFILIATION = "321"
SHUTDOWN = "332"

ROLE_OF = {"owner": "moderator", "admin": "moderator", "member": "participant"}


def element(tag: str, ns: str, **attrs: str) -> ET.Element:
    return ET.Element(f"{{{ns}}}{tag}", {k: v for k, v in attrs.items() if v})


def muc_user(
    affiliation: str,
    role: str,
    jid: str | None,
    statuses: Iterable[str] = (),
    *,
    nick: str = "",
) -> ET.Element:
    """``<x xmlns=muc#user><item .../><status code/>...</x>`` (real JID: non-anonymous).

    ``nick`` is the new nick of a nick change (XEP-0045 7.6, with status 303).
    """
    x = element("x", ns.MUC_USER)
    item = ET.SubElement(x, f"{{{ns.MUC_USER}}}item", {"affiliation": affiliation, "role": role})
    if jid:
        item.set("jid", jid)
    if nick:
        item.set("nick", nick)
    for code in statuses:
        ET.SubElement(x, f"{{{ns.MUC_USER}}}status", {"code": code})
    return x


def occupant_id(value: str) -> ET.Element:
    return element("occupant-id", ns.OCCUPANT_ID, id=value)


def stanza(kind: str, frm: str, to: str, *children: ET.Element, **attrs: str) -> ET.Element:
    """A top-level stanza in the stream namespace with ``children`` appended in order."""
    root = ET.Element(f"{{{ns.COMPONENT}}}{kind}", {"from": frm, "to": to, **attrs})
    root.extend(children)
    return root


def stanza_error(
    kind: str,
    frm: str,
    to: str,
    condition: str,
    etype: str,
    text: str = "",
    *,
    stanza_id: str = "",
    muc: bool = False,
) -> ET.Element:
    """An error stanza; ``muc`` adds ``<x xmlns=muc/>`` as join errors carry it (XEP-0045 7.2)."""
    attrs = {"type": "error"}
    if stanza_id:
        attrs["id"] = stanza_id
    root = stanza(kind, frm, to, **attrs)
    if muc:
        root.append(element("x", ns.MUC))
    error = ET.SubElement(root, f"{{{ns.COMPONENT}}}error", {"type": etype})
    ET.SubElement(error, f"{{{ns.STANZAS}}}{condition}")
    if text:
        ET.SubElement(error, f"{{{ns.STANZAS}}}text").text = text
    return root


def serialise(root: ET.Element) -> str:
    """One stanza as it goes on the component stream (stream namespace left implicit)."""
    return str(tostring(root, xmlns=ns.COMPONENT, top_level=True))


def address(serialised: str, to: str) -> str:
    """``serialised`` (a ``<message ...>`` without ``to``) addressed to ``to``.

    Fan-out serialises a relayed message once and addresses the string per occupant: the
    cost of a message stays flat in the number of occupants (bench/relay.py).
    """
    kind, rest = serialised.split(" ", 1)
    return f'{kind} to="{_attr(to)}" {rest}'


def as_client(serialised: str) -> str:
    """A stored stanza re-rooted in ``jabber:client``, for embedding in ``<forwarded>``."""
    kind, rest = serialised.split(" ", 1)
    return f'{kind} xmlns="{ns.CLIENT}" {rest}'


def _attr(value: str) -> str:
    return (
        value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
    )
