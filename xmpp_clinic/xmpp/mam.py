"""XEP-0313 (urn:xmpp:mam:2) on each thread: members read the thread's history (I.6, IV.2).

Only current members may query; by default a member reads from the moment they became a
member (``threads.history_for_new_members``). A paging or range id from outside that
window is answered like an id that never existed (no existence oracle). Results carry
the stanza as it was relayed to the member who asks -- only that member's keys
(trimming.py, issue 13) and the archive's sequence number ``<seq n>`` (issue 11) --
plus the sender's real JID (the thread is non-anonymous), so an OMEMO client can find
the sender's devices for messages whose sender has left. The join history
(history.py) is built the same way.

Requests are read through slixmpp's stanza classes (the MAM query, its XEP-0004 form and
its XEP-0059 result set); the results themselves are built from the archived strings.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import datetime

from slixmpp import JID, Iq
from slixmpp.jid import InvalidJID
from slixmpp.plugins.xep_0004 import Form
from slixmpp.plugins.xep_0059 import Set
from slixmpp.plugins.xep_0082 import format_datetime, parse
from slixmpp.plugins.xep_0313.stanza import MAM, Fin
from slixmpp.xmlstream import register_stanza_plugin

from xmpp_clinic import namespaces as ns
from xmpp_clinic.archive.messages import (
    DEFAULT_PAGE,
    ArchiveEntry,
    ArchivePage,
    ArchiveQuery,
    MessageArchive,
)
from xmpp_clinic.clock import as_utc, utcnow
from xmpp_clinic.store import StoreUnavailable
from xmpp_clinic.threads import MemberInfo, ThreadInfo
from xmpp_clinic.trimming import DeviceIndex, DeviceSource, omemo_header, trim
from xmpp_clinic.xmpp import forms
from xmpp_clinic.xmpp import muc_stanzas as ms
from xmpp_clinic.xmpp.delivery import DeliveryListener
from xmpp_clinic.xmpp.errors import FormError, maps_domain_errors
from xmpp_clinic.xmpp.routing import ToThreadIq, handle
from xmpp_clinic.xmpp.threads import ThreadHost

FIELDS = ("start", "end", "with", "before-id", "after-id", "ids")
FIELD_TYPES = {"with": "jid-single", "ids": "text-multi"}  # the rest are text-single

register_stanza_plugin(Iq, MAM)
register_stanza_plugin(MAM, Form)
register_stanza_plugin(MAM, Set)
register_stanza_plugin(Iq, Fin)
register_stanza_plugin(Fin, Set)


def _time(form: Form | None, var: str) -> datetime | None:
    raw = forms.text(form, var)
    if not raw:
        return None
    try:
        return as_utc(parse(raw))
    except (ValueError, OverflowError):  # OverflowError: out of range once moved to UTC
        raise FormError(f"{var} is not an XEP-0082 timestamp") from None


def _with(raw: str) -> JID:
    """The ``with`` field as a JID; a malformed one is the client's error (XEP-0313 4.1.1)."""
    try:
        return JID(raw)
    except InvalidJID:
        raise FormError("with is not a valid JID") from None


def _page(query: MAM) -> tuple[int, str | None, str | None]:
    """RSM max, after, before (before "" = the last page), XEP-0059."""
    rsm = query.get_plugin("rsm", check=True)
    if not isinstance(rsm, Set):
        return DEFAULT_PAGE, None, None
    limit = DEFAULT_PAGE
    if raw_max := str(rsm["max"]).strip():
        try:
            limit = int(raw_max)
        except ValueError:
            raise FormError("RSM max is not a number") from None
        if limit < 0:
            raise FormError("RSM max is negative")
    after = str(rsm["after"]).strip() or None
    before = rsm["before"]  # True for an empty <before/>, None when absent
    before_id = "" if before is True else (str(before).strip() if before else None)
    return limit, after, before_id


def seq_element(seq: int) -> ET.Element:
    """``<seq xmlns='urn:xmpp-clinic:seq:0' n='N'/>``: the archive's per-thread number (II.2)."""
    return ms.element("seq", ns.CLINIC_SEQ, n=str(seq))


async def device_index(devices: DeviceSource | None, member: str) -> DeviceIndex | None:
    """The current devices of ``member``, None without a source; StoreUnavailable if they
    cannot be read (the member is told to try again; nothing untrimmed is sent, II.3)."""
    if devices is None:
        return None
    try:
        return await devices.snapshot((member,))
    except Exception as exc:
        raise StoreUnavailable("device registry unavailable") from exc


def member_copy(
    entry: ArchiveEntry, member: str, devices: DeviceIndex | None, *, stream: str = ns.CLIENT
) -> ET.Element:
    """The archived stanza as ``member`` may have it: rooted in ``stream`` (jabber:client
    inside a MAM result), only their keys (when ``devices`` is given), and the archive's
    sequence number (II.3, II.2)."""
    kind, rest = entry.stanza.split(" ", 1)
    archived = ET.fromstring(f'{kind} xmlns="{stream}" {rest}')
    found = omemo_header(archived) if devices is not None else None
    if devices is not None and found is not None:
        trim(archived, member, devices.usable_ids(member, found[0], utcnow()))
    archived.append(seq_element(entry.seq))
    return archived


class ThreadArchive:
    """Serves each thread's archive to its current members."""

    def __init__(
        self,
        host: ThreadHost,
        archive: MessageArchive,
        *,
        devices: DeviceSource | None = None,
        delivery: DeliveryListener | None = None,
    ) -> None:
        self.host = host
        self.archive = archive
        self.devices = devices  # whose keys each result keeps (trimming.py)
        self.delivery = delivery  # which archive ids each member fetched (II.2, issue 11)

    def attach(self) -> None:
        handle(self.host.xmpp, "ThreadMAM", ToThreadIq(self.host.domain, ns.MAM), self._on_query)

    @maps_domain_errors
    async def _on_query(self, iq: Iq) -> None:
        thread, member = await self.host.member_thread(iq["to"], iq["from"])
        if iq["type"] == "get":
            self._reply_form(iq)
            return
        query: MAM = iq["mam"]
        page = await self.archive.query(self._request(thread, member, query))
        index = await device_index(self.devices, member.jid) if page.entries else None
        for entry in page.entries:
            archived = member_copy(entry, member.jid, index)
            self.host.send(self._result(thread, iq["from"].full, query["queryid"], entry, archived))
        if self.delivery is not None and page.entries:
            self.delivery.fetched(thread, member.jid, [e.stanza_id for e in page.entries])
        self._reply_fin(iq, page)

    def _request(self, thread: ThreadInfo, member: MemberInfo, query: MAM) -> ArchiveQuery:
        form = forms.form_of(query)
        if forms.text(form, "FORM_TYPE") not in ("", ns.MAM):
            raise FormError("Unsupported FORM_TYPE")
        limit, page_after, page_before = _page(query)
        sender = nick = None
        if with_raw := forms.text(form, "with"):
            with_jid = _with(with_raw)
            if with_jid.bare == self.host.thread_jid(thread.name) and with_jid.resource:
                nick = with_jid.resource
            else:
                sender = with_jid.bare
        history = self.host.settings.threads.history_for_new_members
        return ArchiveQuery(
            thread_id=thread.id,
            start=_time(form, "start"),
            end=_time(form, "end"),
            sender=sender,
            nick=nick,
            after_id=forms.text(form, "after-id") or None,
            before_id=forms.text(form, "before-id") or None,
            ids=tuple(v.strip() for v in forms.values(form, "ids") if v.strip()),
            not_before=member.since if history == "none" else None,
            page_after=page_after,
            page_before=page_before,
            limit=limit,
        )

    def _result(
        self, thread: ThreadInfo, to: str, queryid: str, entry: ArchiveEntry, archived: ET.Element
    ) -> ET.Element:
        """``<message><result><forwarded><delay/><message as relayed/>`` + the real JID."""
        real = f"{entry.sender}/{entry.sender_resource}" if entry.sender_resource else entry.sender
        archived.append(ms.muc_user(self.host.affiliation(thread, entry.sender), "none", real))
        result = ms.element("result", ns.MAM, queryid=queryid, id=entry.stanza_id)
        forwarded = ET.SubElement(result, f"{{{ns.FORWARD}}}forwarded")
        ET.SubElement(forwarded, f"{{{ns.DELAY}}}delay", {"stamp": format_datetime(entry.at)})
        forwarded.append(archived)
        thread_jid = self.host.thread_jid(thread.name)
        return ms.stanza("message", thread_jid, to, result, id=str(uuid.uuid4()))

    def _reply_fin(self, iq: Iq, page: ArchivePage) -> None:
        reply = iq.reply()
        fin: Fin = reply["mam_fin"]
        if page.complete:
            fin["complete"] = "true"
        rsm: Set = fin["rsm"]
        if page.entries:
            rsm["first"] = page.entries[0].stanza_id
            rsm["last"] = page.entries[-1].stanza_id
        if page.count is not None:
            rsm["count"] = str(page.count)
        reply.send()

    def _reply_form(self, iq: Iq) -> None:
        """The fields this archive understands (XEP-0313 5.1)."""
        reply = iq.reply()
        form: Form = reply["mam"]["form"]
        form.add_field(var="FORM_TYPE", ftype="hidden", value=ns.MAM)
        for var in FIELDS:
            form.add_field(var=var, ftype=FIELD_TYPES.get(var, "text-single"))
        reply.send()
