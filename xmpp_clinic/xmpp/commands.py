"""Ad-hoc commands for care threads: administration for IT admins, direct threads for all.

Declared in the one style of ``adhoc.py``; each calls the thread service (the same the
CLI uses, so changes reach the running gateway the same way) and names the person who
asked as the actor of the audit event. IV.2: membership is managed by the admins listed
in ``xmpp.admins``; any user of ``xmpp.user_domains`` may open a direct thread with a
colleague.
"""

from __future__ import annotations

from xmpp_clinic.jids import check_domain, domain_of
from xmpp_clinic.limits import MAX_TITLE_CHARS
from xmpp_clinic.threads import ThreadError
from xmpp_clinic.xmpp.adhoc import Command, CommandSet, Field, Request
from xmpp_clinic.xmpp.threads import ThreadHost

AFFILIATION_OPTIONS = (("member", "member"), ("admin", "admin"), ("owner", "owner"))
# Thread names are a-z, 0-9, . _ - and at most 64 characters (threads.model.check_name).
MAX_THREAD_NAME_CHARS = 64
THREAD = Field("thread", "Thread name", max_chars=MAX_THREAD_NAME_CHARS)


class ThreadCommand(Command):
    """A command on the threads of one :class:`ThreadHost`."""

    def __init__(self, host: ThreadHost) -> None:
        self.host = host


class CreateThread(ThreadCommand):
    node = "create-thread"
    name = "Create a care thread"
    fields = (
        Field("name", "Thread name (a-z, 0-9, . _ -)", max_chars=MAX_THREAD_NAME_CHARS),
        Field("title", "Title", max_chars=MAX_TITLE_CHARS),
        Field("members", "Members (one JID per line)", "jid-multi"),
        Field("owner", "Owner (optional)", "jid-single"),
    )

    async def run(self, request: Request) -> list[str]:
        thread = await self.host.service.create(
            request.required("name"),
            request.required("title"),
            request.jids("members"),
            owner=request.jid("owner") if request.text("owner") else None,
            actor=request.actor,
        )
        jid = self.host.thread_jid(thread.name)
        return [f"Created {jid} with {len(thread.members)} members."]


class AddMember(ThreadCommand):
    node = "add-member"
    name = "Add a member to a thread"
    fields = (
        THREAD,
        Field("jid", "Member", "jid-single"),
        Field("affiliation", "Affiliation", "list-single", options=AFFILIATION_OPTIONS),
    )

    async def run(self, request: Request) -> list[str]:
        added = await self.host.service.add_member(
            request.required("thread"),
            request.jid("jid"),
            request.text("affiliation") or "member",
            actor=request.actor,
        )
        return [f"{added.jid} is now {added.affiliation}."]


class RemoveMember(ThreadCommand):
    node = "remove-member"
    name = "Remove a member from a thread"
    fields = (THREAD, Field("jid", "Member", "jid-single"))

    async def run(self, request: Request) -> list[str]:
        await self.host.service.remove_member(
            request.required("thread"), request.jid("jid"), actor=request.actor
        )
        return ["Member removed; their sessions were closed."]


class ListThreads(ThreadCommand):
    node = "list-threads"
    name = "List care threads"

    async def run(self, request: Request) -> list[str]:
        threads = await self.host.service.list()
        lines = [f"{t.name} ({t.kind}, {len(t.members)} members): {t.title}" for t in threads]
        return ["\n".join(lines) or "No threads."]


class StartDirect(ThreadCommand):
    node = "start-direct"
    name = "Start a direct thread with a colleague"
    admin_only = False
    fields = (Field("jid", "Colleague", "jid-single"),)

    async def run(self, request: Request) -> list[str]:
        other = request.jid("jid")
        domains = {check_domain(d) for d in self.host.settings.xmpp.user_domains}
        if domain_of(other) not in domains or other == request.requester:
            raise ThreadError("choose a colleague from this hospital")
        thread = await self.host.service.open_direct(request.requester, other, actor=request.actor)
        return [f"Join {self.host.thread_jid(thread.name)} to talk."]


COMMANDS = (CreateThread, AddMember, RemoveMember, ListThreads, StartDirect)


class AdminCommands(CommandSet):
    """The thread commands on the component; each change applies at once (IV.2)."""

    def __init__(self, host: ThreadHost) -> None:
        super().__init__(
            host.xmpp,
            host.settings.xmpp,
            [command(host) for command in COMMANDS],
            after=host.refresh,
        )
