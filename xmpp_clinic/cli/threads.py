"""``xmpp-clinic threads ...``: create care threads and manage their members (IV.2).

Changes are written to the store; a running gateway applies them before its next
decision (removed members are kicked and lose history at once). Only people of
``xmpp.user_domains`` can be added; with none configured, nobody can (IV.2). JIDs and
titles are checked as they are parsed: a malformed one is bad usage (exit 2).
``create --case VISIT`` binds the new thread to a HIS case, as ``bridge bind`` does (I.6).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from xmpp_clinic.bridge.cases import CaseBook
from xmpp_clinic.cli.common import (
    EXIT_USAGE,
    ConfigOption,
    JsonOption,
    PersonArg,
    actor,
    fail,
    person,
    plural,
    print_json,
    settings_from,
    title_text,
    verb_group,
    with_store,
)
from xmpp_clinic.records import member_jid
from xmpp_clinic.store import Store
from xmpp_clinic.threads import (
    Affiliation,
    InvalidThread,
    MemberInfo,
    ThreadError,
    ThreadInfo,
    ThreadService,
)

GROUP_NAME = "threads"
group = verb_group("Care threads: create, list, and manage members.")

NameArg = Annotated[
    str, typer.Argument(metavar="NAME", help="Thread name (the room JID's localpart).")
]

T = TypeVar("T")


def _with_service(config: Path | None, action: Callable[[ThreadService], Awaitable[T]]) -> T:
    """Migrate the store, run ``action`` with a ThreadService, close the store."""
    return _with_service_and_store(config, lambda service, _store: action(service))


def _with_service_and_store(
    config: Path | None, action: Callable[[ThreadService, Store], Awaitable[T]]
) -> T:
    """As :func:`_with_service`, for an action that also needs the store (cases, I.6)."""
    settings = settings_from(config)

    def service(store: Store) -> Awaitable[T]:
        return action(
            ThreadService(
                store,
                user_domains=settings.xmpp.user_domains,
                directory=settings.directory is not None,
                records_jid=member_jid(settings.records.localpart, settings.xmpp.component_jid),
            ),
            store,
        )

    try:
        return with_store(settings, service)
    except InvalidThread as exc:
        fail(str(exc), EXIT_USAGE)
    except ThreadError as exc:
        fail(str(exc))


def _member_json(member: MemberInfo) -> dict[str, Any]:
    return {"jid": member.jid, "affiliation": member.affiliation, "since": member.since}


def _thread_json(thread: ThreadInfo) -> dict[str, Any]:
    return {
        "name": thread.name,
        "title": thread.title,
        "kind": thread.kind,
        "created_at": thread.created_at,
        "members": [_member_json(m) for m in thread.members],
        "documented": thread.documented,
    }


@group.command("create")
def create(
    name: NameArg,
    title: Annotated[
        str,
        typer.Option(parser=title_text, metavar="TEXT", help="Title shown to clinicians."),
    ],
    member: Annotated[
        list[str] | None,
        typer.Option("--member", parser=person, metavar="JID", help="Member (repeatable)."),
    ] = None,
    group_name: Annotated[
        list[str] | None,
        typer.Option(
            "--group",
            metavar="GROUP",
            help="Directory group whose members the thread follows (repeatable).",
        ),
    ] = None,
    owner: Annotated[str | None, typer.Option(parser=person, metavar="JID", help="Owner.")] = None,
    direct: Annotated[bool, typer.Option("--direct", help="A direct thread (two members)")] = False,
    documented: Annotated[
        bool,
        typer.Option(
            "--documented",
            help="Documented in the patient record: the documentation member takes part.",
        ),
    ] = False,
    case: Annotated[
        str | None,
        typer.Option(
            "--case",
            metavar="VISIT",
            help="Bind to the HIS case (visit number, PV1-19): exports name its patient.",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Create a members-only care thread, bound to a HIS case with ``--case`` (I.6)."""
    if case is not None and not case.strip():
        fail("--case needs a visit number (PV1-19)", EXIT_USAGE)
    who = actor()

    async def make(service: ThreadService, store: Store) -> ThreadInfo:
        thread = await service.create(
            name,
            title,
            member or [],
            owner=owner,
            kind="direct" if direct else "group",
            groups=group_name or [],
            actor=who,
            documented=documented,
        )
        if case is not None:
            await CaseBook(store).bind(thread.name, case, actor=who)
        return thread

    thread = _with_service_and_store(config, make)
    said = ", documented in the patient record" if thread.documented else ""
    said += f", bound to case {case}" if case is not None else ""
    typer.echo(f"created thread {thread.name} with {plural(len(thread.members), 'member')}{said}")


@group.command("list")
def list_threads(json: JsonOption = False, config: ConfigOption = None) -> None:
    """List all threads."""
    threads = _with_service(config, lambda s: s.list())
    if json:
        print_json([_thread_json(t) for t in threads])
        return
    for t in threads:
        title = " ".join(t.title.split())  # titles stored before they were checked
        typer.echo(f"{t.name}\t{t.kind}\t{plural(len(t.members), 'member')}\t{title}")


@group.command("members")
def members(
    name: NameArg,
    json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List a thread's members with their affiliations."""
    thread = _with_service(config, lambda s: s.get(name))
    if json:
        print_json([_member_json(m) for m in thread.members])
        return
    for m in thread.members:
        typer.echo(f"{m.jid}\t{m.affiliation}\tsince {m.since:%Y-%m-%d %H:%M:%S}")


@group.command("add-member")
def add_member(
    name: NameArg,
    jid: PersonArg,
    affiliation: Annotated[Affiliation, typer.Option(help="The member's affiliation.")] = "member",
    config: ConfigOption = None,
) -> None:
    """Add a member (or change a member's affiliation)."""
    added = _with_service(config, lambda s: s.add_member(name, jid, affiliation, actor=actor()))
    typer.echo(f"{added.jid} is {added.affiliation} of {name}")


@group.command("remove-member")
def remove_member(
    name: NameArg,
    jid: PersonArg,
    config: ConfigOption = None,
) -> None:
    """Remove a member; a running gateway kicks them and closes their history."""
    _with_service(config, lambda s: s.remove_member(name, jid, actor=actor()))
    typer.echo(f"removed {jid} from {name}")


GroupArg = Annotated[str, typer.Argument(metavar="GROUP", help="Directory group, e.g. ward-4b.")]


@group.command("bind")
def bind(name: NameArg, group_name: GroupArg, config: ConfigOption = None) -> None:
    """Bind a thread to a directory group: its members join now and follow the directory."""
    thread = _with_service(config, lambda s: s.bind(name, group_name, actor=actor()))
    typer.echo(f"{thread.name} follows {group_name}; {plural(len(thread.members), 'member')} now")


@group.command("unbind")
def unbind(name: NameArg, group_name: GroupArg, config: ConfigOption = None) -> None:
    """Unbind a group; members there only through it leave (a running gateway kicks them)."""
    thread = _with_service(config, lambda s: s.unbind(name, group_name, actor=actor()))
    typer.echo(
        f"{thread.name} no longer follows {group_name}; {plural(len(thread.members), 'member')} now"
    )


@group.command("set-documented")
def set_documented(
    name: NameArg,
    state: Annotated[
        str, typer.Argument(metavar="on|off", help="on: documented in the patient record.")
    ],
    config: ConfigOption = None,
) -> None:
    """Flag a thread for the patient record (on) or stop (off); audited (I.6).

    On, the documentation member joins the member list and a running gateway posts a
    notice in the thread; off, it leaves and later messages are not documented.
    """
    if state not in ("on", "off"):
        fail(f"set-documented takes on or off, not {state!r}", EXIT_USAGE)
    thread = _with_service(config, lambda s: s.set_documented(name, state == "on", actor=actor()))
    if thread.documented:
        typer.echo(f"{thread.name} is documented in the patient record")
    else:
        typer.echo(f"{thread.name} is not documented")
