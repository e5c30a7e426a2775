"""Documented threads on the wire: the ad-hoc command and the room notice (I.6, I.1).

IT flags a thread for the patient record with ``threads set-documented`` or the
``set-documented`` ad-hoc command here (both through the thread service, audited).
When the running gateway sees a thread's flag change (its "threads" change counter),
:class:`DocumentationNotices` tells everyone present in the room, as a message from the
room itself, and the member-list change that adds or removes ``records@<component>``
reaches clients as an affiliation change (``ThreadHost``), so they encrypt for it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from xmpp_clinic import namespaces as ns
from xmpp_clinic.threads import ThreadError
from xmpp_clinic.xmpp import muc_stanzas as ms
from xmpp_clinic.xmpp.adhoc import Command, CommandSet, Field, Request
from xmpp_clinic.xmpp.commands import THREAD
from xmpp_clinic.xmpp.threads import ThreadHost

NOTICE_ON = (
    "This thread is documented in the patient record; the documentation service "
    "receives every message from now on."
)
NOTICE_OFF = (
    "This thread is no longer documented in the patient record; the documentation "
    "service has left and receives no further messages."
)
ON_OFF = (("on", "on"), ("off", "off"))


class SetDocumented(Command):
    node = "set-documented"
    name = "Document a thread in the patient record (on/off)"
    fields = (THREAD, Field("state", "Documented", "list-single", options=ON_OFF))

    def __init__(self, host: ThreadHost) -> None:
        self.host = host

    async def run(self, request: Request) -> list[str]:
        state = request.text("state")
        if state not in ("on", "off"):
            raise ThreadError("choose on or off")
        thread = await self.host.service.set_documented(
            request.required("thread"), state == "on", actor=request.actor
        )
        if thread.documented:
            return [f"{thread.name} is documented in the patient record."]
        return [f"{thread.name} is not documented."]


class RecordsCommands(CommandSet):
    """The documentation command for ``xmpp.admins``; applies at once (I.6)."""

    def __init__(self, host: ThreadHost) -> None:
        super().__init__(host.xmpp, host.settings.xmpp, [SetDocumented(host)], after=host.refresh)


class DocumentationNotices:
    """Posts the room notice when a thread's documentation flag changes (I.6, I.1)."""

    def __init__(self, host: ThreadHost) -> None:
        self.host = host
        self._documented: frozenset[str] | None = None  # None: not looked yet

    def _now(self) -> frozenset[str]:
        return frozenset(t.name for t in self.host.book if t.documented)

    async def check(self) -> None:
        """Compare the host's thread book with the last look; notify changed rooms.

        The first look only remembers: flags set before the gateway started were
        announced when they were set (or are announced to joiners by the member list).
        """
        now = self._now()
        before, self._documented = self._documented, now
        if before is None:
            return
        for name in sorted(now - before):
            self._notify(name, NOTICE_ON)
        for name in sorted(before - now):
            self._notify(name, NOTICE_OFF)

    def _notify(self, name: str, text: str) -> None:
        frm = self.host.thread_jid(name)
        for occupant in self.host.room(name).sessions():
            root = ms.stanza("message", frm, occupant.jid, type="groupchat")
            ET.SubElement(root, f"{{{ns.COMPONENT}}}body").text = text
            self.host.send(root)
