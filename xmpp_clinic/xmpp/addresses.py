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
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

from slixmpp import JID, ComponentXMPP
from slixmpp.jid import InvalidJID
from slixmpp.xmlstream import StanzaBase

from xmpp_clinic import namespaces as ns
from xmpp_clinic.xmpp import muc_stanzas as ms

log = logging.getLogger(__name__)

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


def _answerable(xml: ET.Element) -> bool:
    kind, stype = _local(xml.tag), xml.get("type", "")
    if kind not in ("message", "presence", "iq") or stype == "error":
        return False
    if kind == "iq":
        return stype in ("get", "set")
    return not (kind == "presence" and stype == "unavailable")


class AddressGuard:
    """Answers and drops every stanza with an address slixmpp cannot parse (I.12)."""

    def __init__(self, xmpp: ComponentXMPP, domain: str) -> None:
        self.xmpp = xmpp
        self.domain = domain

    def attach(self) -> None:
        self.xmpp.add_filter("in", self.check)

    def check(self, stanza: StanzaBase) -> StanzaBase | None:
        """The stanza itself if both addresses parse; else None (answered or dropped).

        Runs inside the stream reader: nothing may raise out of it. A bug here drops the
        stanza (fail closed) and is logged; the link stays up.
        """
        try:
            return self._check(stanza)
        except Exception:
            log.exception("address check failed; stanza dropped")
            return None

    def _check(self, stanza: StanzaBase) -> StanzaBase | None:
        xml = stanza.xml
        found = refusal(xml, self.domain)
        if found is None:
            return stanza
        condition, etype, text = found
        kind = _local(xml.tag)
        if not _answerable(xml):
            log.info("unparsable address; dropped", extra={"stanza": kind})
            return None
        log.info("unparsable address; refused", extra={"stanza": kind, "condition": condition})
        error = ms.stanza_error(
            kind,
            xml.get("to", ""),
            xml.get("from", ""),
            condition,
            etype,
            text,
            stanza_id=xml.get("id", ""),
            muc=kind == "presence" and xml.find(f"{{{ns.MUC}}}x") is not None,
        )
        for name in ("from", "to"):
            if not error.get(name):
                del error.attrib[name]
        # The raw strings go back as they came: the server accepted them, so it routes them.
        self.xmpp.send(ms.serialise(error))
        return None
