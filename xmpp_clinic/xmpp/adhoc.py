"""XEP-0050 ad-hoc commands, one declarative style for every command of the gateway.

A command is a small class: its ``node``, its ``name``, whether it is ``admin_only``,
the ``fields`` of its form, and ``run``, which calls a domain service (the same one the
CLI uses) and returns the lines the person reads. :class:`CommandSet` offers commands
on the component's JID, checks who may run them (``admin.py``), shows the form, reads
the answer through slixmpp's XEP-0004 Form and turns domain errors into an error note
with the sentence ``errors.py`` gives them. Thread commands (``commands.py``) and device
commands (``device_commands.py``) are declared this way, and so are the ones to come.

Sessions are bounded (I.12, II.1): :class:`CommandSessions` is the session storage of
slixmpp's xep_0050, installed through the plugin's own ``set_backend`` hook (no
monkeypatching: the plugin documents that a replacement storage only needs a dict's
interface). slixmpp keeps every session it ever answered, the completed ones too, and its
own ``timeout`` option sends a *client-side* cancel to the requester instead of freeing a
provider's session, so neither can bound memory. Here a completed session is freed when
slixmpp stores its last answer, a cancelled or failed one at once, an abandoned one after
:data:`SESSION_SECONDS`; a person holds at most :data:`SESSIONS_PER_PERSON` open sessions
and the gateway :data:`SESSIONS_IN_TOTAL`; beyond, a start is refused with
``resource-constraint`` (wait). A step in a session that has ended (or was dropped by
``admin.py``) gets ``bad-request`` with ``<bad-sessionid/>`` (XEP-0050 4.6) instead of
silently starting the command again. Every text field is bounded
(:mod:`xmpp_clinic.limits`, ``forms.check_bounds``) and the error names the limit.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from slixmpp import ComponentXMPP
from slixmpp.exceptions import XMPPError
from slixmpp.plugins.xep_0004 import Form

from xmpp_clinic import namespaces as ns
from xmpp_clinic.config import XmppSettings
from xmpp_clinic.jids import InvalidJid, bare_jid, fast_bare
from xmpp_clinic.limits import MAX_JID_PART_BYTES, MAX_REASON_CHARS
from xmpp_clinic.store import StoreUnavailable
from xmpp_clinic.xmpp import forms
from xmpp_clinic.xmpp.admin import CommandAccess
from xmpp_clinic.xmpp.errors import DOMAIN_ERRORS, error_note

log = logging.getLogger(__name__)

Session = dict[str, Any]  # slixmpp's xep_0050 session
FOR_ADMINS = "This command is for the hospital's IT admins."
FOR_USERS = "This command is for the hospital's own users."
ENDED = "This command session has ended (finished, cancelled or expired); start the command again."

# An abandoned session is freed after ten minutes without a step (I.12).
SESSION_SECONDS = 600.0
SESSIONS_PER_PERSON = 5
SESSIONS_IN_TOTAL = 500
# A bare JID is at most three RFC 7622 parts and two separators.
MAX_JID_CHARS = 3 * MAX_JID_PART_BYTES + 2
# Values one multi-value field may carry (e.g. the members of a new thread).
MAX_FIELD_VALUES = 1000


class CommandSessions(MutableMapping[str, Session]):
    """xep_0050's session storage, bounded in time, per person and in total (I.12, II.1).

    Ordered by the last step, so the oldest sessions are at the front and expiry only
    looks there. Deleting a session that is already gone is not an error: a session may
    expire while its last step runs.
    """

    def __init__(
        self,
        *,
        seconds: float = SESSION_SECONDS,
        per_person: int = SESSIONS_PER_PERSON,
        in_total: int = SESSIONS_IN_TOTAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds, self.per_person, self.in_total = seconds, per_person, in_total
        self._clock = clock
        self._open: dict[str, tuple[float, Session]] = {}

    @classmethod
    def of(cls, xmpp: ComponentXMPP) -> CommandSessions:
        """The component's session storage, installed on first use."""
        adhoc = xmpp.plugin["xep_0050"]
        if not isinstance(adhoc.sessions, CommandSessions):
            adhoc.set_backend(cls())
        sessions: CommandSessions = adhoc.sessions
        return sessions

    def __getitem__(self, sessionid: str) -> Session:
        touched, session = self._open[sessionid]
        if self._clock() - touched > self.seconds:
            del self._open[sessionid]
            raise KeyError(sessionid)
        return session

    def __setitem__(self, sessionid: str, session: Session) -> None:
        self._open.pop(sessionid, None)
        if session.get("next") is None:
            return  # completed: XEP-0050 ends the session with its last answer
        self._open[sessionid] = (self._clock(), session)
        self._expire()

    def __delitem__(self, sessionid: str) -> None:
        self._open.pop(sessionid, None)

    def __iter__(self) -> Iterator[str]:
        self._expire()
        return iter(list(self._open))

    def __len__(self) -> int:
        self._expire()
        return len(self._open)

    def admit(self, session: Session) -> None:
        """Hold a slot for a session that starts now; ``resource-constraint`` when full."""
        self._expire()
        if len(self._open) >= self.in_total:
            log.warning("ad-hoc sessions: the gateway's limit is reached")
            raise XMPPError(
                "resource-constraint",
                "Too many command sessions are open on the gateway; try again in a few minutes.",
                etype="wait",
            )
        owner = _owner(session)
        if sum(_owner(held) == owner for _, held in self._open.values()) >= self.per_person:
            raise XMPPError(
                "resource-constraint",
                f"You have {self.per_person} command sessions open (the limit); finish or "
                f"cancel one, or wait {round(self.seconds / 60)} minutes.",
                etype="wait",
            )
        self._open[session["id"]] = (self._clock(), session)

    def _expire(self) -> None:
        oldest = self._clock() - self.seconds
        for sessionid, (touched, _) in list(self._open.items()):
            if touched >= oldest:
                return
            del self._open[sessionid]


def _owner(session: Session) -> str:
    sender = session.get("from")
    return str(getattr(sender, "bare", sender or ""))


@dataclass(frozen=True)
class Field:
    """One field of a command's form (XEP-0004)."""

    var: str
    label: str
    ftype: str = "text-single"
    required: bool = False
    options: tuple[tuple[str, str], ...] = ()  # (value, label) of a list field
    max_chars: int = 0  # 0: by type (a JID's length, else limits.MAX_REASON_CHARS)

    @property
    def limit(self) -> int:
        """The most characters one value may have (I.12)."""
        if self.max_chars:
            return self.max_chars
        return MAX_JID_CHARS if self.ftype.startswith("jid-") else MAX_REASON_CHARS

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
        self.sessions = CommandSessions.of(self.xmpp)
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
            if iq["command"]["sessionid"]:
                # xep_0050 starts afresh when it does not know the session (it ended,
                # expired, or someone else's was dropped): say so (XEP-0050 4.6).
                raise XMPPError(
                    "bad-request", ENDED, extension="bad-sessionid", extension_ns=ns.COMMANDS
                )
            self.sessions.admit(session)
            with self._freed_on_error(session):
                if not command.fields:
                    return await self._finish(command, session, None)
                session.update(
                    payload=command.form(), next=self._submitter(command), has_next=False
                )
                return session

        return start

    def _submitter(self, command: Command) -> Callable[[Any, Session], Awaitable[Session]]:
        async def submit(payload: Any, session: Session) -> Session:
            # xep_0050 hands over one payload as itself and several as a list.
            items = payload if isinstance(payload, list) else [payload]
            form = next((item for item in items if isinstance(item, Form)), None)
            with self._freed_on_error(session):
                return await self._finish(command, session, form)

        return submit

    @contextlib.contextmanager
    def _freed_on_error(self, session: Session) -> Iterator[None]:
        """A step that fails (slixmpp then answers with an error) ends its session."""
        try:
            yield
        except BaseException:
            del self.sessions[session["id"]]
            raise

    async def _finish(self, command: Command, session: Session, form: Form | None) -> Session:
        request = Request(fast_bare(session["from"].full), form)
        try:
            for field in command.fields:
                forms.check_bounds(form, field.var, field.limit, MAX_FIELD_VALUES)
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
