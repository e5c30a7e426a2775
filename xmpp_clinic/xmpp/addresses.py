"""No address may take the component link down: refuse what slixmpp cannot parse (I.12).

Prosody accepts addresses that slixmpp's JID class rejects (an emoji or another code
point unassigned in stringprep's Unicode 3.2 in a resource or localpart, a part over
1023 bytes). slixmpp parses ``to`` and ``from`` lazily, wherever a matcher or handler
first reads them, so such a stanza raised ``InvalidJID`` from whichever code touched it
first: inside the stream reader that dropped the connection and every message in flight.

:class:`AddressGuard` is an incoming filter on the whole component stream. It runs
before any matcher or handler, parses both addresses once and, if either cannot be
parsed, answers from the raw attribute strings (never parsing them again) and drops the
stanza:

- a ``from`` the gateway cannot parse: ``jid-malformed`` ("your address");
- a presence ``to`` a thread whose resource (the nick) cannot be parsed:
  ``not-acceptable`` with a sentence saying the nickname cannot be used;
- any other ``to``: ``jid-malformed``.

Errors, IQ results and ``unavailable`` presences are never answered (RFC 6120 8.3.1: no
error about an error; nothing to refuse in a leave); they are dropped silently, and the
log says so without the address (it may carry anything).

The same filter bounds every stanza's depth and size (:func:`check_shape`, issue 8.7)
before any matcher or handler sees it: slixmpp's ``iq.reply()`` and its error replies
deep-copy the payload, so a 500-deep IQ raised ``RecursionError`` and got no answer. A
stanza over the limits is answered from its top-level attributes alone (nothing copies
the payload) and dropped: an IQ get/set or a message with ``policy-violation`` and the
reason code ``stanza-too-large`` (the relay's refusal, :data:`REFUSALS`), a presence
without a type (a join or an update) with ``not-acceptable`` as the room's join errors.
The relay's and the room's own checks stay as a second line.

On the way out, a stanza slixmpp built itself (an IQ reply, disco) whose attributes hold
a line break, carriage return or tab is written by :func:`muc_stanzas.serialise`, as
everything the gateway builds is: slixmpp writes those characters raw, the server reads
them back as spaces, and the sender could not match the answer to its id (issue 8.2).
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET

from slixmpp import JID, ComponentXMPP
from slixmpp.jid import InvalidJID
from slixmpp.xmlstream import StanzaBase

from xmpp_clinic import namespaces as ns
from xmpp_clinic.policy import check_shape
from xmpp_clinic.xmpp import muc_stanzas as ms

log = logging.getLogger(__name__)
_CONTROL = re.compile("[\n\r\t]")

BAD_FROM = "Your address cannot be used with this service (unsupported characters or length)."
BAD_TO = "That address is not valid (unsupported characters or length)."
BAD_NICK = (
    "That nickname cannot be used here: it has characters this service cannot represent "
    "(for example emoji) or is too long. Choose a nickname of letters, digits and spaces."
)


def _parses(value: str) -> bool:
    try:
        JID(value)
    except InvalidJID:
        return False
    return True


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _is_thread_nick(to: str, domain: str) -> bool:
    """``to`` is ``thread@domain/<resource>`` with a bare part that parses on its own."""
    bare, slash, _resource = to.partition("/")
    return bool(slash) and "@" in bare and bare.rsplit("@", 1)[1] == domain and _parses(bare)


def refusal(xml: ET.Element, domain: str) -> tuple[str, str, str] | None:
    """(condition, type, text) for a stanza whose addresses cannot be parsed, else None.

    Only a presence (a join or a nick change) is told that the nickname is the problem;
    a message or IQ to such an address is to nobody, so its address is malformed.
    """
    frm, to = xml.get("from", ""), xml.get("to", "")
    if not _parses(frm):
        return ("jid-malformed", "modify", BAD_FROM)
    if not _parses(to):
        if _local(xml.tag) == "presence" and _is_thread_nick(to, domain):
            return ("not-acceptable", "modify", BAD_NICK)
        return ("jid-malformed", "modify", BAD_TO)
    return None


def shape_refusal(xml: ET.Element) -> tuple[str, str, str, str] | None:
    """(condition, type, text, reason code or "") for a stanza too deep or too large.

    Walks the tree without recursion and stops at the first limit (policy/shape.py).
    """
    shape = check_shape(xml)
    if not shape.rejected:
        return None
    if _local(xml.tag) == "presence":
        return ("not-acceptable", "modify", shape.text, "")
    found = shape.refusal
    return (found.condition, found.type, found.text, str(shape.reason) if found.tagged else "")


def _control_in_attributes(xml: ET.Element) -> bool:
    return any(_CONTROL.search(value) for node in xml.iter() for value in node.attrib.values())


def _answerable(xml: ET.Element) -> bool:
    kind, stype = _local(xml.tag), xml.get("type", "")
    if kind not in ("message", "presence", "iq") or stype == "error":
        return False
    if kind == "iq":
        return stype in ("get", "set")
    return not (kind == "presence" and stype == "unavailable")


class AddressGuard:
    """Answers and drops every stanza with an address slixmpp cannot parse or a shape
    over the limits (I.12); writes slixmpp's own stanzas with line breaks in attributes."""

    def __init__(self, xmpp: ComponentXMPP, domain: str) -> None:
        self.xmpp = xmpp
        self.domain = domain

    def attach(self) -> None:
        self.xmpp.add_filter("in", self.check)
        self.xmpp.add_filter("out", self.outgoing)

    def check(self, stanza: StanzaBase) -> StanzaBase | None:
        """The stanza itself if both addresses parse and its shape is within the limits;
        else None (answered or dropped).

        Runs inside the stream reader: nothing may raise out of it. A bug here drops the
        stanza (fail closed) and is logged; the link stays up.
        """
        try:
            return self._check(stanza)
        except Exception:
            log.exception("address check failed; stanza dropped")
            return None

    def outgoing(self, stanza: StanzaBase) -> StanzaBase | None:
        """``stanza`` unchanged, or None after writing it with character references for
        the line breaks and tabs in its attributes (issue 8.2).

        Runs in slixmpp's send queue, which writes the stanza next anyway: writing it
        here keeps its place in the stream.
        """
        try:
            if not _control_in_attributes(stanza.xml):
                return stanza
            self.xmpp.send_raw(ms.serialise(stanza.xml, self.xmpp.default_ns))
        except Exception:
            log.exception("outgoing stanza not written; dropped")
        return None

    def _check(self, stanza: StanzaBase) -> StanzaBase | None:
        xml = stanza.xml
        kind = _local(xml.tag)
        found = refusal(xml, self.domain)
        if found is not None:
            condition, etype, text = found
            muc = kind == "presence" and xml.find(f"{{{ns.MUC}}}x") is not None
            self._answer(xml, "unparsable address", condition, etype, text, muc=muc)
            return None
        too_big = shape_refusal(xml)
        if too_big is None:
            return stanza
        condition, etype, text, reason = too_big
        if kind == "presence" and xml.get("type", "") != "":
            log.info("stanza too large; dropped", extra={"stanza": kind})
            return None  # only a join or an update is answered (the room ignores the rest)
        self._answer(
            xml, "stanza too large", condition, etype, text, muc=kind == "presence", tag=reason
        )
        return None

    def _answer(
        self,
        xml: ET.Element,
        what: str,
        condition: str,
        etype: str,
        text: str,
        *,
        muc: bool,
        tag: str = "",
    ) -> None:
        """Answer ``xml`` from its top-level attributes (never its payload) and drop it."""
        kind = _local(xml.tag)
        if not _answerable(xml):
            log.info("%s; dropped", what, extra={"stanza": kind})
            return
        log.info("%s; refused", what, extra={"stanza": kind, "condition": condition})
        error = ms.stanza_error(
            kind,
            xml.get("to", ""),
            xml.get("from", ""),
            condition,
            etype,
            text,
            stanza_id=xml.get("id", ""),
            muc=muc,
        )
        for name in ("from", "to"):
            if not error.get(name):
                del error.attrib[name]
        element = error.find(f"{{{ns.COMPONENT}}}error")
        if tag and element is not None:
            ET.SubElement(element, f"{{{ns.CLINIC_POLICY}}}{tag}")
        # The raw strings go back as they came: the server accepted them, so it routes them.
        self.xmpp.send(ms.serialise(error))
