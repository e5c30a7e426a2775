"""Member lists and room configuration of care threads (XEP-0045 9 and 10; IV.2).

OMEMO clients encrypt for every member, present or not, from the ``muc#admin`` lists:
so every member may read the owner, admin and member lists, with real JIDs. Owners and
admins may change affiliations (through the thread service, like the CLI). The room
configuration is fixed where it matters: a thread never becomes public or anonymous.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from slixmpp import JID, Iq
from slixmpp.exceptions import XMPPError
from slixmpp.jid import InvalidJID

from xmpp_clinic.store import StoreUnavailable
from xmpp_clinic.threads import ThreadError, ThreadInfo
from xmpp_clinic.xmpp import muc_stanzas as ms
from xmpp_clinic.xmpp.threads import ThreadHost, ToThreadIq, handle

NS_DATA = "jabber:x:data"
CONFIG_FORM = "http://jabber.org/protocol/muc#roomconfig"
LISTABLE = ("owner", "admin", "member", "outcast")

# Configuration a thread keeps whatever an owner submits: (field, required value).
FIXED_CONFIG = {
    "muc#roomconfig_membersonly": "1",
    "muc#roomconfig_whois": "anyone",
    "muc#roomconfig_publicroom": "0",
    "muc#roomconfig_persistentroom": "1",
    "muc#roomconfig_passwordprotectedroom": "0",
    "muc#roomconfig_allowpm": "none",
    "muc#roomconfig_enablearchiving": "1",
}
_TRUTHY = {"1": "1", "true": "1", "0": "0", "false": "0"}


class MemberLists:
    """Answers muc#admin and muc#owner queries on threads."""

    def __init__(self, host: ThreadHost) -> None:
        self.host = host

    def attach(self) -> None:
        xmpp, domain = self.host.xmpp, self.host.domain
        handle(xmpp, "ThreadAdmin", ToThreadIq(domain, ms.NS_MUC_ADMIN), self._on_admin)
        handle(xmpp, "ThreadOwner", ToThreadIq(domain, ms.NS_MUC_OWNER), self._on_owner)

    async def _member_thread(self, iq: Iq) -> tuple[ThreadInfo, str]:
        """The addressed thread and the requester's affiliation; outsiders learn nothing."""
        try:
            thread = await self.host.find(iq["to"])
        except StoreUnavailable:
            raise _store_unavailable() from None
        member = thread.member(iq["from"].bare) if thread is not None else None
        if thread is None or member is None or iq["to"].resource:
            raise XMPPError("item-not-found", etype="cancel")
        return thread, member.affiliation

    # ---------------------------------------------------------------- muc#admin
    async def _on_admin(self, iq: Iq) -> None:
        thread, requester = await self._member_thread(iq)
        query = iq.xml.find(f"{{{ms.NS_MUC_ADMIN}}}query")
        assert query is not None
        items = query.findall(f"{{{ms.NS_MUC_ADMIN}}}item")
        if iq["type"] == "get":
            self._reply_list(iq, thread, items)
        elif iq["type"] == "set":
            await self._change(iq, thread, requester, items)

    def _reply_list(self, iq: Iq, thread: ThreadInfo, items: list[ET.Element]) -> None:
        """The complete list for one affiliation or role, with real JIDs (XEP-0045 9.5)."""
        if len(items) != 1:
            raise XMPPError("bad-request", "Ask for one affiliation or role.", etype="modify")
        wanted_aff, wanted_role = items[0].get("affiliation"), items[0].get("role")
        answer = ET.Element(f"{{{ms.NS_MUC_ADMIN}}}query")
        if wanted_aff in LISTABLE:
            for member in thread.members:
                if member.affiliation == wanted_aff:
                    attrs = {"affiliation": member.affiliation, "jid": member.jid}
                    ET.SubElement(answer, f"{{{ms.NS_MUC_ADMIN}}}item", attrs)
        elif wanted_role in ("moderator", "participant", "visitor"):
            for nick, occupant in self.host.room(thread.name).nicks().items():
                aff = self.host.affiliation(thread, occupant.bare)
                if ms.ROLE_OF.get(aff) == wanted_role:
                    attrs = {"role": wanted_role, "nick": nick, "jid": occupant.jid}
                    attrs["affiliation"] = aff
                    ET.SubElement(answer, f"{{{ms.NS_MUC_ADMIN}}}item", attrs)
        else:
            raise XMPPError("bad-request", "Unknown affiliation or role.", etype="modify")
        reply = iq.reply()
        reply.set_payload(answer)
        reply.send()

    async def _change(
        self, iq: Iq, thread: ThreadInfo, requester: str, items: list[ET.Element]
    ) -> None:
        """Owners change any affiliation, admins add or remove plain members (XEP-0045 9, 10)."""
        if requester not in ("owner", "admin"):
            raise XMPPError("forbidden", "Only owners and admins change membership.", etype="auth")
        for item in items:
            jid, aff = item.get("jid"), item.get("affiliation")
            if not jid or aff not in ("owner", "admin", "member", "none"):
                raise XMPPError("not-acceptable", "Give a JID and an affiliation.", etype="modify")
            bare = _bare(jid)
            current = self.host.affiliation(thread, bare)
            if requester == "admin" and {aff, current} - {"member", "none"}:
                raise XMPPError("not-allowed", "Admins may only manage members.", etype="cancel")
            try:
                if aff == "none":
                    if current != "none":
                        await self.host.service.remove_member(thread.name, bare)
                else:
                    # The service refuses people outside xmpp.user_domains (IV.2).
                    await self.host.service.add_member(thread.name, bare, aff)
            except ThreadError as exc:
                raise XMPPError("not-acceptable", str(exc), etype="modify") from None
            except StoreUnavailable:
                raise _store_unavailable() from None
        await self.host.refresh()
        iq.reply().send()

    # ---------------------------------------------------------------- muc#owner
    async def _on_owner(self, iq: Iq) -> None:
        thread, requester = await self._member_thread(iq)
        if requester != "owner":
            raise XMPPError("forbidden", "Only owners configure a thread.", etype="auth")
        query = iq.xml.find(f"{{{ms.NS_MUC_OWNER}}}query")
        assert query is not None
        if query.find(f"{{{ms.NS_MUC_OWNER}}}destroy") is not None:
            raise XMPPError("forbidden", "Threads are closed by the administrators.", etype="auth")
        if iq["type"] == "get":
            reply = iq.reply()
            answer = ET.Element(f"{{{ms.NS_MUC_OWNER}}}query")
            answer.append(config_form(thread))
            reply.set_payload(answer)
            reply.send()
            return
        form = query.find(f"{{{NS_DATA}}}x")
        if form is not None and form.get("type") == "submit":
            values = _form_values(form)
            for var, required in FIXED_CONFIG.items():
                given = values.get(var)
                if given is not None and _TRUTHY.get(given, given) != required:
                    raise XMPPError(
                        "not-acceptable", f"{var} is fixed for care threads.", etype="modify"
                    )
            title = values.get("muc#roomconfig_roomname")
            if title and title != thread.title:
                await self.host.service.set_title(thread.name, title)
                await self.host.refresh()
        iq.reply().send()


def _bare(jid: str) -> str:
    """The bare JID of an item; a malformed one is the client's error (XEP-0045 9)."""
    try:
        return JID(jid).bare
    except InvalidJID:
        raise XMPPError("jid-malformed", f"{jid!r} is not a valid JID.", etype="modify") from None


def _store_unavailable() -> XMPPError:
    return XMPPError(
        "internal-server-error", "The thread store is unavailable; try again.", etype="wait"
    )


def _form_values(form: ET.Element) -> dict[str, str]:
    values: dict[str, str] = {}
    for field in form.findall(f"{{{NS_DATA}}}field"):
        value = field.find(f"{{{NS_DATA}}}value")
        if field.get("var") and value is not None:
            values[str(field.get("var"))] = (value.text or "").strip()
    return values


def config_form(thread: ThreadInfo) -> ET.Element:
    """The thread's configuration as a muc#roomconfig form (what owners see)."""
    form = ET.Element(f"{{{NS_DATA}}}x", {"type": "form"})
    fields = [
        ("FORM_TYPE", "hidden", CONFIG_FORM),
        ("muc#roomconfig_roomname", "text-single", thread.title),
    ]
    fields += [
        (var, "boolean" if value in "01" else "list-single", value)
        for var, value in FIXED_CONFIG.items()
    ]
    for var, ftype, value in fields:
        field = ET.SubElement(form, f"{{{NS_DATA}}}field", {"var": var, "type": ftype})
        ET.SubElement(field, f"{{{NS_DATA}}}value").text = value
    return form
