"""XEP-0313 (urn:xmpp:mam:2) on each thread: members read the thread's history (I.6, IV.2).

Only current members may query; by default a member reads from the moment they became a
member (``threads.history_for_new_members``). Results carry the stanza exactly as it was
relayed plus the sender's real JID (the thread is non-anonymous), so an OMEMO client can
find the sender's devices for messages whose sender has left.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import datetime

from slixmpp import JID, Iq
from slixmpp.exceptions import XMPPError
from slixmpp.jid import InvalidJID
from slixmpp.plugins.xep_0082 import format_datetime, parse

from xmpp_clinic.archive.messages import (
    DEFAULT_PAGE,
    ArchiveEntry,
    ArchivePage,
    ArchiveQuery,
    MessageArchive,
    UnknownId,
)
from xmpp_clinic.store import StoreUnavailable
from xmpp_clinic.threads import MemberInfo, ThreadInfo
from xmpp_clinic.threads.model import as_utc
from xmpp_clinic.xmpp import muc_stanzas as ms
from xmpp_clinic.xmpp.threads import ThreadHost, ToThreadIq, handle

NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_DATA = "jabber:x:data"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
FIELDS = ("start", "end", "with", "before-id", "after-id", "ids")


def _fields(query: ET.Element) -> dict[str, list[str]]:
    form = query.find(f"{{{NS_DATA}}}x")
    values: dict[str, list[str]] = {}
    for field in form.findall(f"{{{NS_DATA}}}field") if form is not None else ():
        var = field.get("var")
        if var:
            values[var] = [v.text or "" for v in field.findall(f"{{{NS_DATA}}}value")]
    return values


def _one(fields: dict[str, list[str]], var: str) -> str | None:
    value = fields.get(var)
    return value[0].strip() if value and value[0].strip() else None


def _time(fields: dict[str, list[str]], var: str) -> datetime | None:
    raw = _one(fields, var)
    if raw is None:
        return None
    try:
        return as_utc(parse(raw))
    except (ValueError, OverflowError):  # OverflowError: out of range once moved to UTC
        raise XMPPError(
            "bad-request", f"{var} is not an XEP-0082 timestamp", etype="modify"
        ) from None


def _with(raw: str) -> JID:
    """The ``with`` field as a JID; a malformed one is the client's error (XEP-0313 4.1.1)."""
    try:
        return JID(raw)
    except InvalidJID:
        raise XMPPError("bad-request", "with is not a valid JID", etype="modify") from None


def _rsm(query: ET.Element) -> tuple[int, str | None, str | None]:
    """RSM max, after, before (before "" = last page), XEP-0059."""
    rsm = query.find(f"{{{NS_RSM}}}set")
    if rsm is None:
        return DEFAULT_PAGE, None, None
    limit, after, before = (
        DEFAULT_PAGE,
        rsm.find(f"{{{NS_RSM}}}after"),
        rsm.find(f"{{{NS_RSM}}}before"),
    )
    raw_max = rsm.findtext(f"{{{NS_RSM}}}max")
    if raw_max is not None:
        try:
            limit = int(raw_max)
        except ValueError:
            raise XMPPError("bad-request", "RSM max is not a number", etype="modify") from None
        if limit < 0:
            raise XMPPError("bad-request", "RSM max is negative", etype="modify")
    after_id = (after.text or "").strip() or None if after is not None else None
    before_id = (before.text or "").strip() if before is not None else None
    return limit, after_id, before_id


class ThreadArchive:
    """Serves each thread's archive to its current members."""

    def __init__(self, host: ThreadHost, archive: MessageArchive) -> None:
        self.host = host
        self.archive = archive

    def attach(self) -> None:
        handle(self.host.xmpp, "ThreadMAM", ToThreadIq(self.host.domain, NS_MAM), self._on_query)

    async def _member(self, iq: Iq) -> tuple[ThreadInfo, MemberInfo]:
        try:
            thread = await self.host.find(iq["to"])
        except StoreUnavailable:
            raise XMPPError("internal-server-error", etype="wait") from None
        member = thread.member(iq["from"].bare) if thread is not None else None
        if thread is None or member is None or iq["to"].resource:
            # Non-members and unknown threads get the same answer (IV.2).
            raise XMPPError("item-not-found", etype="cancel")
        return thread, member

    async def _on_query(self, iq: Iq) -> None:
        thread, member = await self._member(iq)
        if iq["type"] == "get":
            self._reply_form(iq)
            return
        query = iq.xml.find(f"{{{NS_MAM}}}query")
        assert query is not None
        request = self._request(thread, member, query)
        try:
            page = await self.archive.query(request)
        except UnknownId:
            raise XMPPError("item-not-found", "No such message in this archive.") from None
        except StoreUnavailable:
            raise XMPPError("internal-server-error", etype="wait") from None
        queryid = query.get("queryid", "")
        for entry in page.entries:
            self.host.send(self._result(thread, iq["from"].full, queryid, entry))
        self._reply_fin(iq, page)

    def _request(self, thread: ThreadInfo, member: MemberInfo, query: ET.Element) -> ArchiveQuery:
        fields = _fields(query)
        form_type = _one(fields, "FORM_TYPE")
        if form_type not in (None, NS_MAM):
            raise XMPPError("bad-request", "Unsupported FORM_TYPE", etype="modify")
        limit, page_after, page_before = _rsm(query)
        sender = nick = None
        if (with_raw := _one(fields, "with")) is not None:
            with_jid = _with(with_raw)
            if with_jid.bare == self.host.thread_jid(thread.name) and with_jid.resource:
                nick = with_jid.resource
            else:
                sender = with_jid.bare
        history = self.host.settings.threads.history_for_new_members
        return ArchiveQuery(
            thread_id=thread.id,
            start=_time(fields, "start"),
            end=_time(fields, "end"),
            sender=sender,
            nick=nick,
            after_id=_one(fields, "after-id"),
            before_id=_one(fields, "before-id"),
            ids=tuple(v.strip() for v in fields.get("ids", []) if v.strip()),
            not_before=member.since if history == "none" else None,
            page_after=page_after,
            page_before=page_before,
            limit=limit,
        )

    def _result(self, thread: ThreadInfo, to: str, queryid: str, entry: ArchiveEntry) -> ET.Element:
        """``<message><result><forwarded><delay/><message as relayed/>`` + the real JID."""
        archived = ET.fromstring(ms.as_client(entry.stanza))
        real = f"{entry.sender}/{entry.sender_resource}" if entry.sender_resource else entry.sender
        archived.append(ms.muc_user(self.host.affiliation(thread, entry.sender), "none", real))
        result = ms.element("result", NS_MAM, queryid=queryid, id=entry.stanza_id)
        forwarded = ET.SubElement(result, f"{{{NS_FORWARD}}}forwarded")
        ET.SubElement(forwarded, f"{{{NS_DELAY}}}delay", {"stamp": format_datetime(entry.at)})
        forwarded.append(archived)
        thread_jid = self.host.thread_jid(thread.name)
        return ms.stanza("message", thread_jid, to, result, id=str(uuid.uuid4()))

    def _reply_fin(self, iq: Iq, page: ArchivePage) -> None:
        fin = ms.element("fin", NS_MAM)
        if page.complete:
            fin.set("complete", "true")
        rsm = ET.SubElement(fin, f"{{{NS_RSM}}}set")
        if page.entries:
            ET.SubElement(rsm, f"{{{NS_RSM}}}first").text = page.entries[0].stanza_id
            ET.SubElement(rsm, f"{{{NS_RSM}}}last").text = page.entries[-1].stanza_id
        ET.SubElement(rsm, f"{{{NS_RSM}}}count").text = str(page.count)
        reply = iq.reply()
        reply.set_payload(fin)
        reply.send()

    def _reply_form(self, iq: Iq) -> None:
        """The fields this archive understands (XEP-0313 5.1)."""
        query = ms.element("query", NS_MAM)
        form = ET.SubElement(query, f"{{{NS_DATA}}}x", {"type": "form"})
        hidden = ET.SubElement(form, f"{{{NS_DATA}}}field", {"var": "FORM_TYPE", "type": "hidden"})
        ET.SubElement(hidden, f"{{{NS_DATA}}}value").text = NS_MAM
        for var in FIELDS:
            ftype = "text-multi" if var == "ids" else "text-single"
            if var == "with":
                ftype = "jid-single"
            ET.SubElement(form, f"{{{NS_DATA}}}field", {"var": var, "type": ftype})
        reply = iq.reply()
        reply.set_payload(query)
        reply.send()
