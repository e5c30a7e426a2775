"""Building the stanzas a MUC room sends (XEP-0045, XEP-0421), as plain ElementTree.

The room host composes presences and errors here so that the exact wire form (the order
of children, the status codes) lives in one place and is easy to read against the XEPs.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable

from xmpp_clinic import namespaces as ns

XML_NS = "http://www.w3.org/XML/1998/namespace"
_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "'": "&apos;", '"': "&quot;"})
# In an attribute value a parser turns a raw line break or tab into a space (XML 1.0
# 3.3.3): written as character references they come back as sent (issue 8.2).
_ATTR = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", "'": "&apos;", '"': "&quot;"}
    | {"\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
)

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


def serialise(root: ET.Element, xmlns: str = ns.COMPONENT) -> str:
    """One stanza as it goes on the component stream (stream namespace ``xmlns`` implicit).

    The same text as slixmpp's ``tostring`` (namespace declarations where an element's
    differs from its parent's, ``xml:`` attributes, other namespaced attributes left
    out, ``" />"`` for empty elements) with two differences: a line break, carriage
    return or tab inside an attribute value is written as a character reference, so an
    id comes back to its sender exactly as sent (issue 8.2; I.12), and the tree is
    walked with an explicit stack, so no depth can raise ``RecursionError``.
    """
    out: list[str] = []
    pending: list[tuple[ET.Element, str] | str] = [(root, xmlns)]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        node, outer = item
        tag = str(node.tag)
        space, _, name = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
        out.append(f"<{name}")
        if space != outer and (space or node is not root):
            out.append(f' xmlns="{space}"')
        for key, value in node.attrib.items():
            if "}" not in key:
                out.append(f' {key}="{value.translate(_ATTR)}"')
            elif key.startswith(f"{{{XML_NS}}}"):
                out.append(f' xml:{key.rpartition("}")[2]}="{value.translate(_ATTR)}"')
        tail = (node.tail or "").translate(_TEXT)
        if len(node) or node.text:
            out.append(f">{(node.text or '').translate(_TEXT)}")
            pending.append(f"</{name}>{tail}")
            pending.extend((child, space) for child in reversed(node))
        else:
            out.append(f" />{tail}")
    return "".join(out)


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
    return value.translate(_ATTR)
