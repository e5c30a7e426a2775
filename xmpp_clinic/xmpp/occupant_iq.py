"""IQs to an occupant (``thread/nick``): three content-free queries are passed on (9.6).

Clients ask other occupants for their features (disco#info, to check entity caps), ping
them and ask their client version, as non-anonymous MUCs allow (XEP-0045 7.2.4). The
gateway passes exactly these three on, rebuilt with nothing but their defined fields, to
the occupant's real full JID, and passes the answer back, again rebuilt, to the asker
under the occupant's room address (II.1: no text rides along):

- ``disco#info`` (get, optional ``node``): identities, features and XEP-0232 software
  information forms, each bounded;
- ``ping`` (get): result or error;
- ``jabber:iq:version`` (get): name, version, os, each bounded.

Only present occupants may ask (``not-acceptable`` otherwise, as XEP-0410 wants for a
self-ping); an unknown nick is ``item-not-found`` (XEP-0045); any other IQ from a member
to an occupant is ``feature-not-implemented`` with a sentence. A self-ping stays with
xmpp/selfping.py. Stanzas from non-members go on to the thread's usual handlers, which
answer alike for unknown threads and non-members (no existence oracle, IV.2).

Pending queries are bounded (:data:`MAX_PENDING` in all, :data:`MAX_PER_ASKER` per
session: beyond, ``resource-constraint``) and expire after :data:`TIMEOUT_SECONDS`
with ``remote-server-timeout`` to the asker.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from slixmpp import JID
from slixmpp.xmlstream import StanzaBase

from xmpp_clinic import namespaces as ns
from xmpp_clinic.xmpp import muc_stanzas as ms
from xmpp_clinic.xmpp.threads import ThreadHost

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 30.0
MAX_PENDING = 1000
MAX_PER_ASKER = 20
MAX_TEXT = 256  # characters of one name, version, identity name or field value
MAX_ITEMS = 200  # identities + features + fields of one disco#info answer
SOFTWARE_INFO = "urn:xmpp:dataforms:softwareinfo"
FORWARDED = {ns.DISCO_INFO: "query", ns.PING: "ping", ns.VERSION: "query"}
OTHERS_TEXT = "Only disco#info, ping and version queries reach occupants of a care thread."
# RFC 6120 8.3.3: the only conditions passed back (a tag name could carry text too).
CONDITIONS = frozenset(
    {
        "bad-request",
        "conflict",
        "feature-not-implemented",
        "forbidden",
        "gone",
        "internal-server-error",
        "item-not-found",
        "jid-malformed",
        "not-acceptable",
        "not-allowed",
        "not-authorized",
        "policy-violation",
        "recipient-unavailable",
        "redirect",
        "registration-required",
        "remote-server-not-found",
        "remote-server-timeout",
        "resource-constraint",
        "service-unavailable",
        "subscription-required",
        "undefined-condition",
        "unexpected-request",
    }
)
_NODE = re.compile(r"[!#-;=?-~]{1,512}")  # a URI (caps node#ver) without spaces or quotes


@dataclass
class Pending:
    """One forwarded query: who asked, with which id, and whom it went to."""

    asker: str  # full JID
    asker_id: str
    room_jid: str  # thread/nick of the occupant asked
    target: str  # the occupant's real full JID
    payload_ns: str
    timer: asyncio.TimerHandle | None = None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _bounded(value: str | None) -> str:
    return (value or "")[:MAX_TEXT]


def _query(xml: ET.Element) -> tuple[str, ET.Element] | None:
    """(namespace, element) of one of the three forwarded queries, if ``xml`` carries one."""
    for child in xml:
        namespace = child.tag[1:].split("}", 1)[0] if child.tag.startswith("{") else ""
        if FORWARDED.get(namespace) == _local(child.tag):
            return namespace, child
    return None


def request_payload(namespace: str, query: ET.Element) -> ET.Element:
    """The query as forwarded: an empty element, plus a well-shaped disco ``node``."""
    node = query.get("node", "") if namespace == ns.DISCO_INFO else ""
    attrs = {"node": node} if node and _NODE.fullmatch(node) else {}
    return ET.Element(f"{{{namespace}}}{FORWARDED[namespace]}", attrs)


def answer_payload(namespace: str, answer: ET.Element) -> ET.Element | None:
    """The occupant's answer rebuilt with its defined, bounded fields only (II.1)."""
    found = answer.find(f"{{{namespace}}}{FORWARDED[namespace]}")
    if namespace == ns.PING or found is None:
        return None
    out = ET.Element(found.tag, {"node": found.get("node", "")} if found.get("node") else {})
    if namespace == ns.VERSION:
        for name in ("name", "version", "os"):
            text = found.findtext(f"{{{ns.VERSION}}}{name}")
            if text is not None:
                ET.SubElement(out, f"{{{ns.VERSION}}}{name}").text = _bounded(text)
        return out
    count = itertools.count()
    for identity in found.findall(f"{{{ns.DISCO_INFO}}}identity"):
        if next(count) < MAX_ITEMS:
            attrs = {k: _bounded(identity.get(k)) for k in ("category", "type", "name")}
            lang = identity.get(f"{{{ns.XML}}}lang")
            if lang and re.fullmatch(r"[A-Za-z0-9-]{1,35}", lang):
                attrs[f"{{{ns.XML}}}lang"] = lang
            ET.SubElement(out, identity.tag, {k: v for k, v in attrs.items() if v})
    for feature in found.findall(f"{{{ns.DISCO_INFO}}}feature"):
        if next(count) < MAX_ITEMS and feature.get("var"):
            ET.SubElement(out, feature.tag, {"var": _bounded(feature.get("var"))})
    for form in found.findall(f"{{{ns.DATA}}}x"):
        _software_info(form, out, count)
    return out


def _software_info(form: ET.Element, out: ET.Element, count: itertools.count[int]) -> None:
    """An XEP-0232 software information form (it is part of the caps hash), bounded."""
    fields = form.findall(f"{{{ns.DATA}}}field")
    types = [f for f in fields if f.get("var") == "FORM_TYPE"]
    if not types or types[0].findtext(f"{{{ns.DATA}}}value") != SOFTWARE_INFO:
        return
    copy = ET.SubElement(out, form.tag, {"type": "result"})
    for field in fields:
        if next(count) >= MAX_ITEMS or not field.get("var"):
            continue
        attrs = {"var": _bounded(field.get("var"))}
        if field.get("type") == "hidden":
            attrs["type"] = "hidden"
        kept = ET.SubElement(copy, field.tag, attrs)
        for value in field.findall(f"{{{ns.DATA}}}value")[:4]:
            ET.SubElement(kept, value.tag).text = _bounded(value.text)


class OccupantIq:
    """Forwards the three allowed queries to occupants and their answers back (9.6)."""

    def __init__(self, host: ThreadHost, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self.host = host
        self.timeout = timeout
        self.pending: dict[str, Pending] = {}

    def attach(self) -> None:
        self.host.xmpp.add_filter("in", self.check)

    def check(self, stanza: StanzaBase) -> StanzaBase | None:
        """None for the IQs handled here; every other stanza goes on unchanged.

        An incoming filter runs inside the stream reader: nothing may raise out of it
        (I.12). A bug here drops the IQ and is logged; the link stays up.
        """
        try:
            return self._check(stanza)
        except Exception:
            log.exception("occupant query not handled; dropped")
            return None

    def _check(self, stanza: StanzaBase) -> StanzaBase | None:
        xml = stanza.xml
        if _local(xml.tag) != "iq":
            return stanza
        to = JID(xml.get("to", ""))  # the address guard ran first: these parse
        if not (to.user and to.resource and to.domain == self.host.domain):
            return stanza
        if xml.get("type") in ("result", "error"):
            return None if self._answered(xml) else stanza
        return None if self._asked(xml, to, JID(xml.get("from", ""))) else stanza

    # ---------------------------------------------------------------- queries
    def _asked(self, xml: ET.Element, to: JID, sender: JID) -> bool:
        """Handle a get/set to ``thread/nick`` from a member; False to pass it on."""
        thread = self.host.thread_for(to)
        if thread is None or thread.member(sender.bare) is None:
            return False  # the thread's usual handlers answer as for any outsider
        room = self.host.room(thread.name)
        asker = room.get(sender.full)
        query = _query(xml) if xml.get("type") == "get" else None
        if query is None:
            self._error(xml, "feature-not-implemented", "cancel", OTHERS_TEXT)
            return True
        namespace, element = query
        if namespace == ns.PING and (asker is None or asker.nick == to.resource):
            return False  # a self-ping, or one XEP-0410 refuses: xmpp/selfping.py
        if asker is None:
            self._error(xml, "not-acceptable", "cancel", "Join the thread first.")
            return True
        target = room.nicks().get(to.resource)
        if target is None:
            self._error(xml, "item-not-found", "cancel")
            return True
        if len(self.pending) >= MAX_PENDING or self._count(sender.full) >= MAX_PER_ASKER:
            self._error(xml, "resource-constraint", "wait", "Too many queries waiting.")
            return True
        forward_id = f"occ-{secrets.token_hex(8)}"
        entry = Pending(sender.full, xml.get("id", ""), to.full, target.jid, namespace)
        entry.timer = self.host.xmpp.loop.call_later(self.timeout, self._expired, forward_id)
        self.pending[forward_id] = entry
        frm = f"{self.host.thread_jid(thread.name)}/{asker.nick}"
        root = ms.stanza("iq", frm, target.jid, type="get", id=forward_id)
        root.append(request_payload(namespace, element))
        self.host.send(root)
        return True

    def _count(self, asker: str) -> int:
        return sum(1 for p in self.pending.values() if p.asker == asker)

    # ---------------------------------------------------------------- answers
    def _answered(self, xml: ET.Element) -> bool:
        """Route an occupant's answer back to the asker; False if it is not one."""
        entry = self.pending.get(xml.get("id", ""))
        if entry is None or xml.get("from") != entry.target:
            return False
        del self.pending[xml.get("id", "")]
        if entry.timer is not None:
            entry.timer.cancel()
        if xml.get("type") == "error":
            condition, etype = _condition(xml)
            self.host.send(
                ms.stanza_error(
                    "iq", entry.room_jid, entry.asker, condition, etype, stanza_id=entry.asker_id
                )
            )
            return True
        root = ms.stanza("iq", entry.room_jid, entry.asker, type="result", id=entry.asker_id)
        payload = answer_payload(entry.payload_ns, xml)
        if payload is not None:
            root.append(payload)
        self.host.send(root)
        return True

    def _expired(self, forward_id: str) -> None:
        entry = self.pending.pop(forward_id, None)
        if entry is not None:
            self.host.send(
                ms.stanza_error(
                    "iq",
                    entry.room_jid,
                    entry.asker,
                    "remote-server-timeout",
                    "wait",
                    "The occupant did not answer.",
                    stanza_id=entry.asker_id,
                )
            )

    def _error(self, xml: ET.Element, condition: str, etype: str, text: str = "") -> None:
        self.host.send(
            ms.stanza_error(
                "iq",
                xml.get("to", ""),
                xml.get("from", ""),
                condition,
                etype,
                text,
                stanza_id=xml.get("id", ""),
            )
        )


def _condition(xml: ET.Element) -> tuple[str, str]:
    """The defined condition and type of an error answer (its text is not passed on)."""
    for error in xml:
        if _local(error.tag) == "error":
            etype = error.get("type", "cancel")
            if etype not in ("auth", "cancel", "continue", "modify", "wait"):
                etype = "cancel"
            for child in error:
                if child.tag.startswith(f"{{{ns.STANZAS}}}") and _local(child.tag) in CONDITIONS:
                    return _local(child.tag), etype
    return "undefined-condition", "cancel"
