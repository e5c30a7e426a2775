"""XEP-0050 ad-hoc commands: thread administration for IT admins, direct threads for all.

Each command is a small declarative class: its node, its name, who may run it, the form
fields it asks for, and ``run`` which calls the thread service (the same service the
CLI uses, so changes reach the running gateway the same way). IV.2: membership is
managed by the admins listed in ``xmpp.admins``; any user of ``xmpp.user_domains`` may
open a direct thread with a colleague. Who may run or continue a command is decided in
``admin.py``, shared with the device commands. Bad input and an unavailable store end a
command with an error note, never with a generic failure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from slixmpp import JID
from slixmpp.exceptions import XMPPError
from slixmpp.jid import InvalidJID
from slixmpp.plugins.xep_0004 import Form

from xmpp_clinic.store import StoreUnavailable
from xmpp_clinic.threads import InvalidThread, ThreadError
from xmpp_clinic.xmpp.admin import CommandAccess
from xmpp_clinic.xmpp.threads import ThreadHost

log = logging.getLogger(__name__)

STORE_DOWN = "The thread store is unavailable right now. Try again shortly."


@dataclass(frozen=True)
class Field:
    var: str
    label: str
    ftype: str = "text-single"
    options: tuple[str, ...] = ()


class Command:
    """One ad-hoc command; subclasses set the class attributes and implement ``run``."""

    node: ClassVar[str]
    name: ClassVar[str]
    admin_only: ClassVar[bool] = True
    fields: ClassVar[tuple[Field, ...]] = ()

    async def run(self, host: ThreadHost, requester: str, values: dict[str, Any]) -> str:
        raise NotImplementedError


def _text(values: dict[str, Any], var: str) -> str:
    value = values.get(var)
    if isinstance(value, list):
        value = value[0] if value else ""
    if not value:
        raise ThreadError(f"'{var}' is required")
    return str(value).strip()


def _jids(values: dict[str, Any], var: str) -> list[str]:
    value = values.get(var) or []
    items = value if isinstance(value, list) else str(value).split()
    return [str(v).strip() for v in items if str(v).strip()]


def _bare(raw: str) -> str:
    try:
        return JID(raw).bare
    except InvalidJID:
        raise InvalidThread(f"{raw!r} is not a valid JID") from None


class CreateThread(Command):
    node = "create-thread"
    name = "Create a care thread"
    fields = (
        Field("name", "Thread name (a-z, 0-9, . _ -)"),
        Field("title", "Title"),
        Field("members", "Members (one JID per line)", "jid-multi"),
        Field("owner", "Owner (optional)", "jid-single"),
    )

    async def run(self, host: ThreadHost, requester: str, values: dict[str, Any]) -> str:
        owner = _jids(values, "owner")
        thread = await host.service.create(
            _text(values, "name"),
            _text(values, "title"),
            _jids(values, "members"),
            owner=owner[0] if owner else None,
        )
        return f"Created {host.thread_jid(thread.name)} with {len(thread.members)} members."


class AddMember(Command):
    node = "add-member"
    name = "Add a member to a thread"
    fields = (
        Field("thread", "Thread name"),
        Field("jid", "Member", "jid-single"),
        Field("affiliation", "Affiliation", "list-single", ("member", "admin", "owner")),
    )

    async def run(self, host: ThreadHost, requester: str, values: dict[str, Any]) -> str:
        affiliation = str(values.get("affiliation") or "member")
        added = await host.service.add_member(
            _text(values, "thread"), _text(values, "jid"), affiliation
        )
        return f"{added.jid} is now {added.affiliation}."


class RemoveMember(Command):
    node = "remove-member"
    name = "Remove a member from a thread"
    fields = (Field("thread", "Thread name"), Field("jid", "Member", "jid-single"))

    async def run(self, host: ThreadHost, requester: str, values: dict[str, Any]) -> str:
        await host.service.remove_member(_text(values, "thread"), _text(values, "jid"))
        return "Member removed; their sessions were closed."


class ListThreads(Command):
    node = "list-threads"
    name = "List care threads"

    async def run(self, host: ThreadHost, requester: str, values: dict[str, Any]) -> str:
        threads = await host.service.list()
        lines = [f"{t.name} ({t.kind}, {len(t.members)} members): {t.title}" for t in threads]
        return "\n".join(lines) or "No threads."


class StartDirect(Command):
    node = "start-direct"
    name = "Start a direct thread with a colleague"
    admin_only = False
    fields = (Field("jid", "Colleague", "jid-single"),)

    async def run(self, host: ThreadHost, requester: str, values: dict[str, Any]) -> str:
        other = _bare(_text(values, "jid"))
        domains = {d.lower() for d in host.settings.xmpp.user_domains}
        if JID(other).domain not in domains or other == requester:
            raise ThreadError("choose a colleague from this hospital")
        thread = await host.service.open_direct(requester, other)
        return f"Join {host.thread_jid(thread.name)} to talk."


COMMANDS: tuple[Command, ...] = (
    CreateThread(),
    AddMember(),
    RemoveMember(),
    ListThreads(),
    StartDirect(),
)


class AdminCommands:
    """Registers :data:`COMMANDS` on the component and enforces who may run them."""

    def __init__(self, host: ThreadHost, commands: tuple[Command, ...] = COMMANDS) -> None:
        self.host = host
        self.commands = commands
        self.access = CommandAccess(host.settings.xmpp)

    def attach(self) -> None:
        adhoc = self.host.xmpp.plugin["xep_0050"]
        for command in self.commands:
            adhoc.add_command(
                jid=self.host.xmpp.boundjid, node=command.node, name=command.name,
                handler=self._starter(command),
            )  # fmt: skip
        self.access.guard(self.host.xmpp, {c.node: c.admin_only for c in self.commands})

    def _allowed(self, command: Command, requester: JID) -> bool:
        return self.access.may_run(requester, admin_only=command.admin_only)

    def _starter(self, command: Command) -> Any:
        async def start(iq: Any, session: dict[str, Any]) -> dict[str, Any]:
            if not self._allowed(command, iq["from"]):
                raise XMPPError("forbidden", "This command is for the hospital's IT admins.")
            if not command.fields:
                return await self._finish(command, session, {})
            form = Form()
            form["type"] = "form"
            form["title"] = command.name
            for field in command.fields:
                added = form.add_field(var=field.var, ftype=field.ftype, label=field.label)
                for option in field.options:
                    added.add_option(value=option, label=option)
            session.update(payload=form, next=self._submitter(command), has_next=False)
            return session

        return start

    def _submitter(self, command: Command) -> Any:
        async def submit(payload: Any, session: dict[str, Any]) -> dict[str, Any]:
            form = payload[0] if isinstance(payload, list) else payload
            return await self._finish(command, session, dict(form.get_values()))

        return submit

    async def _finish(
        self, command: Command, session: dict[str, Any], values: dict[str, Any]
    ) -> dict[str, Any]:
        requester = JID(session["from"]).bare
        try:
            text = await command.run(self.host, requester, values)
        except ThreadError as exc:
            session.update(payload=None, next=None, notes=[("error", str(exc))])
            return session
        except StoreUnavailable:
            log.warning("ad-hoc command failed: store unavailable", extra={"command": command.node})
            session.update(payload=None, next=None, notes=[("error", STORE_DOWN)])
            return session
        log.info("ad-hoc command done", extra={"command": command.node})
        try:
            await self.host.refresh()  # apply at once, like the CLI
        except StoreUnavailable:  # done and committed; the change poller applies it later
            log.warning("store unavailable; change applied on the next refresh")
        session.update(payload=None, next=None, notes=[("info", text)])
        return session
