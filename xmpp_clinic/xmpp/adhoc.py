"""XEP-0050 ad-hoc commands, one declarative style for every command of the gateway.

A command is a small class: its ``node``, its ``name``, whether it is ``admin_only``,
the ``fields`` of its form, and ``run``, which calls a domain service (the same one the
CLI uses) and returns the lines the person reads. :class:`CommandSet` offers commands
on the component's JID, checks who may run them (``admin.py``), shows the form, reads
the answer through slixmpp's XEP-0004 Form and turns domain errors into an error note
with the sentence ``errors.py`` gives them. Thread commands (``commands.py``) and device
commands (``device_commands.py``) are declared this way, and so are the ones to come.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from slixmpp import ComponentXMPP
from slixmpp.exceptions import XMPPError
from slixmpp.plugins.xep_0004 import Form

from xmpp_clinic.config import XmppSettings
from xmpp_clinic.jids import InvalidJid, bare_jid, fast_bare
from xmpp_clinic.store import StoreUnavailable
from xmpp_clinic.xmpp import forms
from xmpp_clinic.xmpp.admin import CommandAccess
from xmpp_clinic.xmpp.errors import DOMAIN_ERRORS, error_note

log = logging.getLogger(__name__)

Session = dict[str, Any]  # slixmpp's xep_0050 session
FOR_ADMINS = "This command is for the hospital's IT admins."
FOR_USERS = "This command is for the hospital's own users."


@dataclass(frozen=True)
class Field:
    """One field of a command's form (XEP-0004)."""

    var: str
    label: str
    ftype: str = "text-single"
    required: bool = False
    options: tuple[tuple[str, str], ...] = ()  # (value, label) of a list field

    def add_to(self, form: Form) -> None:
        field = form.add_field(
            var=self.var, ftype=self.ftype, label=self.label, required=self.required
        )
        for value, label in self.options:
            field.add_option(value=value, label=label)


@dataclass(frozen=True)
class Request:
    """One submitted command: who asked, and the form they sent back (None: no form)."""

    requester: str  # the bare JID of the person running the command
    form: Form | None = None

    @property
    def actor(self) -> str:
        """Who did it, as the audit log names people acting over XMPP (IV.4)."""
        return f"xmpp:{self.requester}"

    def text(self, var: str) -> str:
        """The field's value, stripped; ``""`` when left empty."""
        return forms.text(self.form, var)

    def required(self, var: str) -> str:
        """The field's value; a form error naming the field when it is empty."""
        return forms.required(self.form, var)

    def jid(self, var: str) -> str:
        """A person's bare JID from a required field (:func:`jids.bare_jid`).

        A malformed JID, or a full one, is an error note: people are named by their
        bare JID, as on the CLI.
        """
        return _person(self.required(var))

    def jids(self, var: str) -> list[str]:
        """Bare JIDs from a multi-value field (one per value or per line)."""
        given = [word for value in forms.values(self.form, var) for word in value.split()]
        return [_person(raw) for raw in given]


def _person(raw: str) -> str:
    if "/" in raw:
        raise InvalidJid(f"{raw!r} has a resource; give the bare JID (name@domain)")
    return bare_jid(raw)


class Command:
    """One ad-hoc command; subclasses set the class attributes and implement ``run``."""

    node: ClassVar[str]
    name: ClassVar[str]
    admin_only: ClassVar[bool] = True
    fields: ClassVar[tuple[Field, ...]] = ()

    async def run(self, request: Request) -> list[str]:
        """Do it; the lines the person reads (each an info note)."""
        raise NotImplementedError

    def form(self) -> Form:
        form = Form()
        form["type"] = "form"
        form["title"] = self.name
        for field in self.fields:
            field.add_to(form)
        return form


class CommandSet:
    """Offers ``commands`` on the component's JID and runs them for who may (IV.2, I.5).

    ``after`` runs after every command that succeeded (the thread host's refresh, so a
    change applies at once, like the CLI's); if it fails on an unavailable store the
    change is applied on the next refresh instead.
    """

    def __init__(
        self,
        xmpp: ComponentXMPP,
        settings: XmppSettings,
        commands: Sequence[Command],
        *,
        after: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.xmpp = xmpp
        self.commands = tuple(commands)
        self.access = CommandAccess(settings)
        self._after = after

    def attach(self) -> None:
        adhoc = self.xmpp.plugin["xep_0050"]
        for command in self.commands:
            adhoc.add_command(
                jid=self.xmpp.boundjid, node=command.node, name=command.name,
                handler=self._starter(command),
            )  # fmt: skip
        self.access.guard(self.xmpp, {c.node: c.admin_only for c in self.commands})

    def _starter(self, command: Command) -> Callable[[Any, Session], Awaitable[Session]]:
        async def start(iq: Any, session: Session) -> Session:
            if not self.access.may_run(iq["from"], admin_only=command.admin_only):
                raise XMPPError("forbidden", FOR_ADMINS if command.admin_only else FOR_USERS)
            if not command.fields:
                return await self._finish(command, session, None)
            session.update(payload=command.form(), next=self._submitter(command), has_next=False)
            return session

        return start

    def _submitter(self, command: Command) -> Callable[[Any, Session], Awaitable[Session]]:
        async def submit(payload: Any, session: Session) -> Session:
            # xep_0050 hands over one payload as itself and several as a list.
            items = payload if isinstance(payload, list) else [payload]
            form = next((item for item in items if isinstance(item, Form)), None)
            return await self._finish(command, session, form)

        return submit

    async def _finish(self, command: Command, session: Session, form: Form | None) -> Session:
        request = Request(fast_bare(session["from"].full), form)
        try:
            lines = await command.run(request)
        except DOMAIN_ERRORS as exc:
            if isinstance(exc, StoreUnavailable):
                log.warning(
                    "ad-hoc command failed: store unavailable", extra={"command": command.node}
                )
            session.update(payload=None, next=None, notes=[("error", error_note(exc))])
            return session
        log.info("ad-hoc command done", extra={"command": command.node})
        if self._after is not None:
            try:
                await self._after()
            except StoreUnavailable:  # done and committed; the change poller applies it later
                log.warning("store unavailable; change applied on the next refresh")
        session.update(payload=None, next=None, notes=[("info", line) for line in lines])
        return session
