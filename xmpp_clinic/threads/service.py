"""The thread service: create threads and manage members over the store (IV.2).

Every change bumps the "threads" change counter and appends a content-free audit event
(threads/events.py) in the same transaction, so a running gateway applies it before its
next decision (store/changes.py) and ``xmpp-clinic audit events`` shows who did it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from xmpp_clinic.clock import utcnow
from xmpp_clinic.directory import store as directory_tables
from xmpp_clinic.directory.model import InvalidGroup, check_group
from xmpp_clinic.limits import MAX_TITLE_CHARS
from xmpp_clinic.store import Store, StoreConflict
from xmpp_clinic.store.changes import bump
from xmpp_clinic.store.models.directory import BoundMember, ThreadBinding
from xmpp_clinic.store.models.records import DocumentedThread
from xmpp_clinic.store.models.threads import Member, Thread
from xmpp_clinic.threads.binding import bindings_of, reconcile_all
from xmpp_clinic.threads.events import UNKNOWN_ACTOR, ThreadEvent, record
from xmpp_clinic.threads.model import (
    Affiliation,
    ConcurrentChange,
    InvalidThread,
    Kind,
    MemberInfo,
    MemberNotFound,
    NotInDirectory,
    ThreadExists,
    ThreadInfo,
    ThreadNotFound,
    check_affiliation,
    check_jid,
    check_name,
    check_title,
    check_user_domain,
    direct_name,
)

TOPIC = "threads"


def _group(name: str) -> str:
    try:
        return check_group(name)
    except InvalidGroup as exc:
        raise InvalidThread(str(exc)) from None


_Columns = tuple[int, str, str, str, str, datetime]  # id, name, title, kind, subject, created


def _entry(
    columns: _Columns,
    members: Iterable[MemberInfo],
    documented_since: datetime | None,
    records_jid: str | None,
) -> ThreadInfo:
    """The thread as plain data. A documented thread (I.6) lists the documentation member
    ``records_jid`` (when known) like any member, so that clients encrypt for it."""
    listed = tuple(members)
    if documented_since is not None and records_jid:
        listed += (MemberInfo(records_jid, "member", documented_since),)
    id_, name, title, kind, subject, created_at = columns
    shape: Kind = "direct" if kind == "direct" else "group"
    return ThreadInfo(
        id_, name, title, shape, subject, created_at, listed,
        documented=documented_since is not None,
    )  # fmt: skip


def _info(
    thread: Thread, documented_since: datetime | None = None, records_jid: str | None = None
) -> ThreadInfo:
    columns = (thread.id, thread.name, thread.title, thread.kind, thread.subject,
               thread.created_at)  # fmt: skip
    members = (MemberInfo(m.jid, check_affiliation(m.affiliation), m.since) for m in thread.members)
    return _entry(columns, members, documented_since, records_jid)


async def _load(session: AsyncSession, name: str) -> Thread:
    query = select(Thread).where(Thread.name == name).options(selectinload(Thread.members))
    thread = (await session.execute(query)).scalar_one_or_none()
    if thread is None:
        raise ThreadNotFound(f"no thread named {name!r}")
    return thread


class ThreadService:
    """Threads and memberships; the only code that writes the thread tables.

    ``user_domains`` (``xmpp.user_domains``) are the only domains whose people may become
    members; other domains are refused, and an empty list refuses everyone (IV.2, I.12).
    Every change takes the ``actor`` who asked (``cli:<user>``, ``xmpp:<JID>``) for its
    audit event. With ``directory`` (``[directory]`` configured), only persons in the
    directory may become members, and threads can be bound to its groups (IV.2).
    """

    def __init__(
        self,
        store: Store,
        *,
        user_domains: Iterable[str],
        directory: bool = False,
        records_jid: str | None = None,
    ) -> None:
        self._store = store
        self._user_domains = frozenset(d.strip().lower() for d in user_domains if d.strip())
        self._directory = directory
        # The documentation member (I.6): listed as a member of documented threads; its
        # localpart is reserved, so no thread takes its address.
        self._records_jid = records_jid

    async def _documented(
        self, session: AsyncSession, thread_ids: Iterable[int]
    ) -> dict[int, datetime]:
        """Since when each documented thread among ``thread_ids`` is documented."""
        ids = list(thread_ids)
        if not ids:
            return {}
        rows = await session.execute(
            select(DocumentedThread.thread_id, DocumentedThread.since).where(
                DocumentedThread.thread_id.in_(ids)
            )
        )
        return {tid: since for tid, since in rows}

    async def _documented_info(self, session: AsyncSession, thread: Thread) -> ThreadInfo:
        since = (await self._documented(session, [thread.id])).get(thread.id)
        return _info(thread, since, self._records_jid)

    def _check_not_reserved(self, name: str) -> None:
        if self._records_jid is not None and name == self._records_jid.split("@", 1)[0]:
            raise InvalidThread(
                f"the name {name!r} is reserved for the documentation member ([records] localpart)"
            )

    async def _check_in_directory(self, session: AsyncSession, jids: Iterable[str]) -> None:
        """Refuse anyone the directory does not hold (IV.2); no-op in small deployment mode."""
        if not self._directory:
            return
        known = (await directory_tables.load(session)).jids
        for jid in jids:
            if jid not in known:
                raise NotInDirectory(f"cannot add {jid}: not a person in the hospital directory")

    async def create(
        self,
        name: str,
        title: str,
        members: Sequence[str],
        *,
        owner: str | None = None,
        kind: Kind = "group",
        groups: Sequence[str] = (),
        actor: str = UNKNOWN_ACTOR,
        documented: bool = False,
    ) -> ThreadInfo:
        """Create a thread with its first members (IV.2); a direct thread has exactly two.

        ``documented`` flags it for the patient record from the start (I.6).

        ``groups`` binds the thread to directory groups: their members join it now and
        whenever the directory changes (threads/binding.py).

        A name already taken is :class:`ThreadExists`, also when another request took it
        a moment earlier (the store's unique name decides, not a look-ahead).
        """
        name = check_name(name)
        self._check_not_reserved(name)
        title = check_title(title, name)
        affiliations: dict[str, Affiliation] = {check_jid(j): "member" for j in members}
        if owner is not None:
            affiliations[check_jid(owner)] = "owner"
        bound = sorted({_group(g) for g in groups})
        if kind == "direct" and (len(affiliations) != 2 or bound):
            raise InvalidThread("a direct thread has exactly two members and no groups")
        if not affiliations and not bound:
            raise InvalidThread("a thread needs at least one member or group")
        for jid in affiliations:
            check_user_domain(jid, self._user_domains)
        try:
            async with self._store.session() as session:
                await self._check_in_directory(session, affiliations)
                now = utcnow()
                thread = Thread(name=name, title=title, kind=kind, subject="", created_at=now)
                thread.members = [
                    Member(jid=jid, affiliation=aff, since=now) for jid, aff in affiliations.items()
                ]
                session.add(thread)
                await session.flush()  # the unique name is checked here
                await record(session, actor, ThreadEvent.CREATED, name, kind)
                for jid, aff in affiliations.items():
                    await record(session, actor, ThreadEvent.MEMBER_ADDED, name, aff, jid)
                if documented:
                    session.add(DocumentedThread(thread_id=thread.id, since=now))
                    await record(session, actor, ThreadEvent.DOCUMENTED, name, "on")
                await bump(session, TOPIC)
                if bound:
                    await self._bind(session, thread, bound, actor)
                    thread = await _load(session, name)
                return await self._documented_info(session, thread)
        except StoreConflict:
            if await self._exists(name):
                raise ThreadExists(f"a thread named {name!r} already exists") from None
            raise ConcurrentChange(f"creating {name!r} met another change; try again") from None

    async def _exists(self, name: str) -> bool:
        async with self._store.session() as session:
            return (await session.scalar(select(Thread.id).where(Thread.name == name))) is not None

    async def open_direct(
        self, first: str, second: str, *, actor: str = UNKNOWN_ACTOR
    ) -> ThreadInfo:
        """The direct thread between two people, created on first use."""
        name = direct_name(first, second)
        try:
            return await self.get(name)
        except ThreadNotFound:
            pass
        title = f"{check_jid(first)} / {check_jid(second)}"[:MAX_TITLE_CHARS]
        try:
            return await self.create(name, title, [first, second], kind="direct", actor=actor)
        except ThreadExists:  # both people opened it at the same moment
            return await self.get(name)

    async def list(self) -> list[ThreadInfo]:
        """Every thread with its members (the gateway's thread book).

        Read as column tuples, not ORM objects: at 10 000 threads the ORM's identity map
        and instance state cost about 40 MB more to load (bench/memory.py, issue 13).
        """
        async with self._store.session() as session:
            query = select(
                Thread.id, Thread.name, Thread.title, Thread.kind, Thread.subject, Thread.created_at
            ).order_by(Thread.name)
            threads = (await session.execute(query)).all()
            members: dict[int, list[MemberInfo]] = {}
            people: dict[str, str] = {}  # one string per person, however many threads
            rows = await session.execute(
                select(Member.thread_id, Member.jid, Member.affiliation, Member.since).order_by(
                    Member.id
                )
            )
            for thread_id, jid, affiliation, since in rows:
                jid = people.setdefault(jid, jid)
                member = MemberInfo(jid, check_affiliation(affiliation), since)
                members.setdefault(thread_id, []).append(member)
            documented = await self._documented(session, [t.id for t in threads])
        return [
            _entry(t.tuple(), members.get(t.id, ()), documented.get(t.id), self._records_jid)
            for t in threads
        ]

    async def get(self, name: str) -> ThreadInfo:
        async with self._store.session() as session:
            return await self._documented_info(session, await _load(session, check_name(name)))

    async def set_documented(
        self, name: str, documented: bool, *, actor: str = UNKNOWN_ACTOR
    ) -> ThreadInfo:
        """Flag a thread for the patient record, or stop (I.6).

        On: the records member joins the member list from now on (clients then encrypt
        for it); off: it leaves, and later messages are not decrypted. Each change is
        one audit event; setting the flag it already has changes nothing.
        """
        async with self._store.session() as session:
            thread = await _load(session, check_name(name))
            row = await session.get(DocumentedThread, thread.id)
            if documented and row is None:
                session.add(DocumentedThread(thread_id=thread.id, since=utcnow()))
            elif not documented and row is not None:
                await session.delete(row)
            else:
                return await self._documented_info(session, thread)
            await record(
                session, actor, ThreadEvent.DOCUMENTED, thread.name, "on" if documented else "off"
            )
            await bump(session, TOPIC)
            await session.flush()
            return await self._documented_info(session, thread)

    async def add_member(
        self, name: str, jid: str, affiliation: str = "member", *, actor: str = UNKNOWN_ACTOR
    ) -> MemberInfo:
        """Add a member or change an existing member's affiliation (IV.2).

        Only people of the user domains can be added; other domains are refused.
        """
        jid, aff = check_jid(jid), check_affiliation(affiliation)
        check_user_domain(jid, self._user_domains)
        try:
            async with self._store.session() as session:
                await self._check_in_directory(session, [jid])
                thread = await _load(session, check_name(name))
                existing = next((m for m in thread.members if m.jid == jid), None)
                if existing is None:
                    if thread.kind == "direct":
                        raise InvalidThread("a direct thread has exactly two members")
                    existing = Member(jid=jid, affiliation=aff, since=utcnow())
                    thread.members.append(existing)
                    await record(session, actor, ThreadEvent.MEMBER_ADDED, thread.name, aff, jid)
                elif existing.affiliation == aff:
                    return MemberInfo(jid, aff, existing.since)
                else:
                    change = f"{existing.affiliation}-to-{aff}"
                    await record(
                        session, actor, ThreadEvent.MEMBER_CHANGED, thread.name, change, jid
                    )
                    existing.affiliation = aff
                await bump(session, TOPIC)
                await session.flush()
                return MemberInfo(jid, aff, existing.since)
        except StoreConflict:
            raise ConcurrentChange(
                f"{jid} was added to {name!r} by another change at the same moment; try again"
            ) from None

    async def remove_member(self, name: str, jid: str, *, actor: str = UNKNOWN_ACTOR) -> None:
        """Remove a member; a running gateway kicks them and closes their history (IV.2).

        A member who is there through a bound group is refused: the next import would
        bring them back, so the change belongs in the directory or the binding.
        """
        jid = check_jid(jid)
        async with self._store.session() as session:
            thread = await _load(session, check_name(name))
            existing = next((m for m in thread.members if m.jid == jid), None)
            if existing is None:
                raise MemberNotFound(f"{jid} is not a member of {thread.name!r}")
            bound = await session.scalar(
                select(BoundMember.id).where(
                    BoundMember.thread_id == thread.id, BoundMember.jid == jid
                )
            )
            if bound is not None:
                groups = ", ".join(await bindings_of(session, thread.id))
                raise InvalidThread(
                    f"{jid} is a member of {thread.name!r} through its group(s) {groups}; "
                    "change the directory or unbind the group"
                )
            thread.members.remove(existing)
            await record(
                session, actor, ThreadEvent.MEMBER_REMOVED, thread.name, existing.affiliation, jid
            )
            await bump(session, TOPIC)

    async def set_title(self, name: str, title: str, *, actor: str = UNKNOWN_ACTOR) -> None:
        """Rename a thread (what clients show as the room name); one line, bounded."""
        async with self._store.session() as session:
            thread = await _load(session, check_name(name))
            thread.title = check_title(title, thread.name)
            await record(session, actor, ThreadEvent.TITLE_CHANGED, thread.name, "renamed")
            await bump(session, TOPIC)

    async def bind(self, name: str, group: str, *, actor: str = UNKNOWN_ACTOR) -> ThreadInfo:
        """Bind a thread to a directory group: its members join now and follow it (IV.2)."""
        async with self._store.session() as session:
            thread = await _load(session, check_name(name))
            if thread.kind == "direct":
                raise InvalidThread("a direct thread cannot be bound to a group")
            await self._bind(session, thread, [_group(group)], actor)
            return await self._documented_info(session, await _load(session, thread.name))

    async def unbind(self, name: str, group: str, *, actor: str = UNKNOWN_ACTOR) -> ThreadInfo:
        """Unbind a group: members who were there only through it leave (kicked, 321)."""
        group = _group(group)
        async with self._store.session() as session:
            thread = await _load(session, check_name(name))
            rows = (
                await session.scalars(
                    select(ThreadBinding).where(
                        ThreadBinding.thread_id == thread.id, ThreadBinding.group == group
                    )
                )
            ).all()
            if not rows:
                raise InvalidThread(f"thread {thread.name!r} is not bound to group {group!r}")
            for row in rows:
                await session.delete(row)
            await session.flush()
            await self._reconcile(session, actor)
            return await self._documented_info(session, await _load(session, thread.name))

    async def groups_of(self, name: str) -> tuple[str, ...]:
        """The directory groups a thread is bound to."""
        async with self._store.session() as session:
            return tuple(await bindings_of(session, (await _load(session, check_name(name))).id))

    async def _bind(
        self, session: AsyncSession, thread: Thread, groups: Sequence[str], actor: str
    ) -> None:
        if not self._directory:
            raise InvalidThread("binding threads to groups needs a [directory] in the config")
        directory = await directory_tables.load(session)
        for group in groups:
            if group not in directory.groups:
                raise InvalidThread(f"no group named {group!r} in the directory")
        have = set(await bindings_of(session, thread.id))
        session.add_all(
            ThreadBinding(thread_id=thread.id, group=g) for g in groups if g not in have
        )
        await session.flush()
        await self._reconcile(session, actor)

    async def _reconcile(self, session: AsyncSession, actor: str) -> None:
        directory = await directory_tables.load(session)
        allowed = directory.jids if self._directory else None
        await reconcile_all(session, directory.groups, allowed, actor=actor)
