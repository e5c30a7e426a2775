"""Member lists and room configuration of care threads (XEP-0045 9 and 10; IV.2).

OMEMO clients encrypt for every member, present or not, from the ``muc#admin`` lists:
so every member may read the owner, admin and member lists, with real JIDs. Owners and
admins may change affiliations (through the thread service, like the CLI). The room
configuration is fixed where it matters: a thread never becomes public or anonymous.

Requests are read through slixmpp's XEP-0045 stanza classes and XEP-0004 forms.
"""

from __future__ import annotations

from slixmpp import Iq
from slixmpp.exceptions import XMPPError
from slixmpp.plugins.xep_0004 import Form
from slixmpp.plugins.xep_0045.stanza import (
    MUCAdminItem,
    MUCAdminQuery,
    MUCOwnerDestroy,
    MUCOwnerQuery,
)
from slixmpp.xmlstream import register_stanza_plugin

from xmpp_clinic import namespaces as ns
from xmpp_clinic.jids import bare_jid, fast_bare
from xmpp_clinic.limits import MAX_TITLE_CHARS
from xmpp_clinic.threads import ThreadInfo
from xmpp_clinic.xmpp import forms
from xmpp_clinic.xmpp import muc_stanzas as ms
from xmpp_clinic.xmpp.errors import maps_domain_errors
from xmpp_clinic.xmpp.routing import ToThreadIq, handle
from xmpp_clinic.xmpp.threads import ThreadHost

CONFIG_FORM = f"{ns.MUC}#roomconfig"
LISTABLE = ("owner", "admin", "member", "outcast")
ROLES = ("moderator", "participant", "visitor")

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

register_stanza_plugin(Iq, MUCAdminQuery)
register_stanza_plugin(MUCAdminQuery, MUCAdminItem, iterable=True)
register_stanza_plugin(Iq, MUCOwnerQuery)
register_stanza_plugin(MUCOwnerQuery, Form)
register_stanza_plugin(MUCOwnerQuery, MUCOwnerDestroy)


def _items(query: MUCAdminQuery) -> list[MUCAdminItem]:
    return [item for item in query["substanzas"] if isinstance(item, MUCAdminItem)]


def _item(**attrs: str) -> MUCAdminItem:
    item = MUCAdminItem()
    for name, value in attrs.items():
        item[name] = value
    return item


class MemberLists:
    """Answers muc#admin and muc#owner queries on threads."""

    def __init__(self, host: ThreadHost) -> None:
        self.host = host

    def attach(self) -> None:
        xmpp, domain = self.host.xmpp, self.host.domain
        handle(xmpp, "ThreadAdmin", ToThreadIq(domain, ns.MUC_ADMIN), self._on_admin)
        handle(xmpp, "ThreadOwner", ToThreadIq(domain, ns.MUC_OWNER), self._on_owner)

    # ---------------------------------------------------------------- muc#admin
    @maps_domain_errors
    async def _on_admin(self, iq: Iq) -> None:
        thread, member = await self.host.member_thread(iq["to"], iq["from"])
        items = _items(iq["mucadmin_query"])
        if iq["type"] == "get":
            self._reply_list(iq, thread, items)
        elif iq["type"] == "set":
            await self._change(iq, thread, member.affiliation, items)

    @staticmethod
    def _actor(iq: Iq) -> str:
        """Who changed it, as the audit log names people acting over XMPP (IV.4)."""
        return f"xmpp:{fast_bare(iq['from'].full)}"

    def _reply_list(self, iq: Iq, thread: ThreadInfo, items: list[MUCAdminItem]) -> None:
        """The complete list for one affiliation or role, with real JIDs (XEP-0045 9.5)."""
        if len(items) != 1:
            raise XMPPError("bad-request", "Ask for one affiliation or role.", etype="modify")
        wanted_aff, wanted_role = items[0]["affiliation"], items[0]["role"]
        reply = iq.reply()
        answer: MUCAdminQuery = reply["mucadmin_query"]
        if wanted_aff in LISTABLE:
            for member in thread.members:
                if member.affiliation == wanted_aff:
                    answer.append(_item(affiliation=member.affiliation, jid=member.jid))
        elif wanted_role in ROLES:
            for nick, occupant in self.host.room(thread.name).nicks().items():
                aff = self.host.affiliation(thread, occupant.bare)
                if ms.ROLE_OF.get(aff) == wanted_role:
                    answer.append(
                        _item(role=wanted_role, nick=nick, jid=occupant.jid, affiliation=aff)
                    )
        else:
            raise XMPPError("bad-request", "Unknown affiliation or role.", etype="modify")
        reply.send()

    async def _change(
        self, iq: Iq, thread: ThreadInfo, requester: str, items: list[MUCAdminItem]
    ) -> None:
        """Owners change any affiliation, admins add or remove plain members (XEP-0045 9, 10)."""
        if requester not in ("owner", "admin"):
            raise XMPPError("forbidden", "Only owners and admins change membership.", etype="auth")
        actor = self._actor(iq)
        for item in items:
            jid, aff = str(item["jid"]), item["affiliation"]
            if not jid or aff not in ("owner", "admin", "member", "none"):
                raise XMPPError("not-acceptable", "Give a JID and an affiliation.", etype="modify")
            bare = bare_jid(jid)  # malformed: jid-malformed (xmpp/errors.py)
            current = self.host.affiliation(thread, bare)
            if requester == "admin" and {aff, current} - {"member", "none"}:
                raise XMPPError("not-allowed", "Admins may only manage members.", etype="cancel")
            if aff == "none":
                if current != "none":
                    await self.host.service.remove_member(thread.name, bare, actor=actor)
            else:
                # The service refuses people outside xmpp.user_domains (IV.2).
                await self.host.service.add_member(thread.name, bare, aff, actor=actor)
        await self.host.refresh()
        iq.reply().send()

    # ---------------------------------------------------------------- muc#owner
    @maps_domain_errors
    async def _on_owner(self, iq: Iq) -> None:
        thread, member = await self.host.member_thread(iq["to"], iq["from"])
        if member.affiliation != "owner":
            raise XMPPError("forbidden", "Only owners configure a thread.", etype="auth")
        query: MUCOwnerQuery = iq["mucowner_query"]
        if query.get_plugin("destroy", check=True) is not None:
            raise XMPPError("forbidden", "Threads are closed by the administrators.", etype="auth")
        if iq["type"] == "get":
            reply = iq.reply()
            reply["mucowner_query"].append(config_form(thread))
            reply.send()
            return
        form = forms.form_of(query)
        if form is not None and form["type"] == "submit":
            values = forms.all_values(form)
            for var, fixed in FIXED_CONFIG.items():
                given = values.get(var)
                if given is not None and _TRUTHY.get(given, given) != fixed:
                    raise XMPPError(
                        "not-acceptable", f"{var} is fixed for care threads.", etype="modify"
                    )
            title = values.get("muc#roomconfig_roomname")
            if title and len(title) > MAX_TITLE_CHARS:  # said before the store is asked (8.8)
                raise XMPPError(
                    "not-acceptable",
                    f"A thread title has at most {MAX_TITLE_CHARS} characters.",
                    etype="modify",
                )
            if title and title != thread.title:
                await self.host.service.set_title(thread.name, title, actor=self._actor(iq))
                await self.host.refresh()
        iq.reply().send()


def config_form(thread: ThreadInfo) -> Form:
    """The thread's configuration as a muc#roomconfig form (what owners see)."""
    form = Form()
    form["type"] = "form"
    form.add_field(var="FORM_TYPE", ftype="hidden", value=CONFIG_FORM)
    form.add_field(var="muc#roomconfig_roomname", ftype="text-single", value=thread.title)
    for var, value in FIXED_CONFIG.items():
        ftype = "boolean" if value in "01" else "list-single"
        form.add_field(var=var, ftype=ftype, value=value)
    return form
