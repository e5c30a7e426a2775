"""XEP-0055 search on the component: finding colleagues in the directory (I.3, IV.2).

A person of the directory asks the component (``jabber:iq:search``) for the form, fills
in name, ward or role, and gets the matching colleagues as a data form result (JID,
name, role, wards). Anyone else (another domain, or an account not in the directory) is
answered ``forbidden``: the directory is not published to outsiders. slixmpp's
xep_0055 plugin carries the protocol; this module supplies the form and the answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slixmpp import ComponentXMPP, Iq
from slixmpp.exceptions import XMPPError

from xmpp_clinic.directory.model import Directory
from xmpp_clinic.directory.search import Query, find
from xmpp_clinic.xmpp.forms import form_of, text

FIELDS = (("name", "Name"), ("ward", "Ward or team"), ("role", "Role"))
REPORTED = (("jid", "JID"), ("name", "Name"), ("role", "Role"), ("wards", "Wards and teams"))


class DirectorySearch:
    """Answers XEP-0055 searches addressed to the component's domain."""

    def __init__(
        self, component: ComponentXMPP, directory: Callable[[], Awaitable[Directory]]
    ) -> None:
        self._xmpp = component
        self._directory = directory

    def attach(self) -> None:
        self._xmpp.register_plugin("xep_0055")
        api = self._xmpp.plugin["xep_0055"].api
        api.register(self._form, "search_get_form")
        api.register(self._results, "search_query")

    async def _asker(self, iq: Iq) -> Directory:
        """The directory, if the asker is in it; else forbidden (IV.2)."""
        if iq["to"].bare != self._xmpp.boundjid.bare:
            raise XMPPError("service-unavailable", etype="cancel")
        directory = await self._directory()
        if directory.person_of(iq["from"].bare) is None:
            raise XMPPError(
                "forbidden", "Only persons in the hospital directory may search it.", "auth"
            )
        return directory

    async def _form(self, _jid: Any, _node: Any, _ifrom: Any, iq: Iq) -> Iq:
        await self._asker(iq)
        reply: Iq = iq.reply()
        form = reply["search"]["form"]
        form["type"] = "form"
        form["title"] = "Find a colleague"
        form["instructions"] = "Give part of a name, a ward or team, or a role."
        for var, label in FIELDS:
            form.add_field(var=var, ftype="text-single", label=label)
        return reply

    async def _results(self, _jid: Any, _node: Any, _ifrom: Any, iq: Iq) -> Iq:
        directory = await self._asker(iq)
        submitted = form_of(iq["search"])
        query = Query(text(submitted, "name"), text(submitted, "ward"), text(submitted, "role"))
        if query.empty:
            raise XMPPError("bad-request", "Give a name, a ward or team, or a role.", "modify")
        reply: Iq = iq.reply()
        form = reply["search"]["form"]
        form["type"] = "result"
        for var, label in REPORTED:
            form.add_reported(var, label=label)
        for person in find(directory, query):
            wards = ", ".join(sorted(g for g in person.groups if not g.startswith("role-")))
            for jid in person.jids:
                form.add_item(
                    {"jid": jid, "name": person.name, "role": person.role, "wards": wards}
                )
        return reply
