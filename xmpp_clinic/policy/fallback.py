"""Beside OMEMO, the gateway writes the fallback itself (II.1, II.4).

Clients put a text beside ``<encrypted>`` for readers without OMEMO, each in its own
words (Conversations, Gajim, Dino, Monal, Profanity, Kaidan, slixmpp-omemo all differ),
and a list of known wordings breaks with every client release (issue 9). So nothing a
client writes there is relayed: before archiving and fan-out, every ``<body>`` of a
message with a valid OMEMO element -- whatever its wording, language or number -- is
replaced by one body with :data:`FALLBACK_TEXT`. The XEP-0380 ``<encryption>`` name and
XEP-0428 ``<fallback>`` markers describe that text, so they are the gateway's too: the
name is the OMEMO version's own, the marker says the whole body is a fallback.

A message without OMEMO never gets here: it is refused as plaintext (:mod:`.e2e`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from xmpp_clinic import namespaces as ns
from xmpp_clinic.omemo import Namespace

FALLBACK_TEXT = "This message is encrypted with OMEMO. Open it in an app that supports OMEMO."
FALLBACK_LANG = "en"
XML_LANG = f"{{{ns.XML}}}lang"
STANZA_NAMESPACES = (ns.CLIENT, ns.COMPONENT, ns.SERVER, "")
EME_TAG = f"{{{ns.EME}}}encryption"
MARKER_TAG = f"{{{ns.FALLBACK}}}fallback"


def is_body(element: ET.Element) -> bool:
    """A ``<body>`` of the message itself (in a stanza namespace, as clients write it)."""
    tag = element.tag
    if not isinstance(tag, str):
        return False
    namespace, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    return local == "body" and namespace in STANZA_NAMESPACES


def _body(like: ET.Element) -> ET.Element:
    body = ET.Element(str(like.tag), {XML_LANG: FALLBACK_LANG})
    body.text = FALLBACK_TEXT
    body.tail = like.tail
    return body


def _is_own_body(element: ET.Element) -> bool:
    return (
        element.text == FALLBACK_TEXT
        and element.attrib == {XML_LANG: FALLBACK_LANG}
        and len(element) == 0
    )


def _eme(version: Namespace, like: ET.Element) -> ET.Element:
    attrs = {"namespace": version.uri}
    if "name" in like.attrib:
        attrs["name"] = version.eme_name
    element = ET.Element(EME_TAG, attrs)
    element.tail = like.tail
    return element


def _marker(version: Namespace, like: ET.Element) -> ET.Element:
    element = ET.Element(MARKER_TAG, {"for": version.uri})
    element.tail = like.tail
    return element


def _own(child: ET.Element, version: Namespace) -> ET.Element | None:
    """The gateway's element in place of ``child``; None to keep ``child`` as it is."""
    if child.tag == EME_TAG:
        own = _eme(version, child)
    elif child.tag == MARKER_TAG:
        own = _marker(version, child)
    else:
        return None
    same = own.attrib == child.attrib and len(child) == 0 and not (child.text or "").strip()
    return None if same else own


def write_fallback(message: ET.Element, version: Namespace) -> ET.Element | None:
    """``message`` with the gateway's fallback body, EME name and fallback marker; None
    when it already carries exactly those (II.1).

    The result is a new ``<message>`` that shares its other children with ``message``
    (neither is changed afterwards; :func:`xmpp_clinic.omemo.strip_keys` copies).
    """
    children = list(message)
    bodies = [child for child in children if is_body(child)]
    changed = len(bodies) > 1 or any(not _is_own_body(body) for body in bodies)
    kept: list[ET.Element] = []
    for child in children:
        if is_body(child):
            if child is bodies[0]:
                kept.append(_body(child) if changed else child)
            continue
        own = _own(child, version)
        changed = changed or own is not None
        kept.append(child if own is None else own)
    if not changed:
        return None
    result = ET.Element(message.tag, dict(message.attrib))
    result.text = message.text
    result.extend(kept)
    return result
