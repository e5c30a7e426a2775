"""The thread service: create threads and manage members over the store (IV.2).

Every change bumps the "threads" change counter and appends a content-free audit event
(threads/events.py) in the same transaction, so a running gateway applies it before its
next decision (store/changes.py) and ``xmpp-clinic audit events`` shows who did it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from xmpp_clinic.clock import utcnow
from xmpp_clinic.limits import MAX_TITLE_CHARS
from xmpp_clinic.store import Store, StoreConflict
from xmpp_clinic.store.changes import bump
from xmpp_clinic.store.models.threads import Member, Thread
from xmpp_clinic.threads.events import UNKNOWN_ACTOR, ThreadEvent, record
from xmpp_clinic.threads.model import (
    Affiliation,
    ConcurrentChange,
    InvalidThread,
    Kind,
    MemberInfo,
    MemberNotFound,
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


def _info(thread: Thread) -> ThreadInfo:
    members = tuple(
        MemberInfo(m.jid, check_affiliation(m.affiliation), m.since) for m in thread.members
    )
    kind: Kind = "direct" if thread.kind == "direct" else "group"
    return ThreadInfo(
        thread.id, thread.name, thread.title, kind, thread.subject, thread.created_at, members
    )


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
    audit event.
    """

    def __init__(self, store: Store, *, user_domains: Iterable[str]) -> None:
        self._store = store
        self._user_domains = frozenset(d.strip().lower() for d in user_domains if d.strip())

    async def create(
        self,
        name: str,
        title: str,
        members: Sequence[str],
        *,
        owner: str | None = None,
        kind: Kind = "group",
        actor: str = UNKNOWN_ACTOR,
    ) -> ThreadInfo:
        """Create a thread with its first members (IV.2); a direct thread has exactly two.

        A name already taken is :class:`ThreadExists`, also when another request took it
        a moment earlier (the store's unique name decides, not a look-ahead).
        """
        name = check_name(name)
        title = check_title(title, name)
        affiliations: dict[str, Affiliation] = {check_jid(j): "member" for j in members}
        if owner is not None:
            affiliations[check_jid(owner)] = "owner"
        if kind == "direct" and len(affiliations) != 2:
            raise InvalidThread("a direct thread has exactly two members")
        if not affiliations:
            raise InvalidThread("a thread needs at least one member")
        for jid in affiliations:
            check_user_domain(jid, self._user_domains)
        try:
            async with self._store.session() as session:
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
                await bump(session, TOPIC)
                return _info(thread)
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
        async with self._store.session() as session:
            query = select(Thread).options(selectinload(Thread.members)).order_by(Thread.name)
            return [_info(t) for t in (await session.execute(query)).scalars()]

    async def get(self, name: str) -> ThreadInfo:
        async with self._store.session() as session:
            return _info(await _load(session, check_name(name)))

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
        """Remove a member; a running gateway kicks them and closes their history (IV.2)."""
        jid = check_jid(jid)
        async with self._store.session() as session:
            thread = await _load(session, check_name(name))
            existing = next((m for m in thread.members if m.jid == jid), None)
            if existing is None:
                raise MemberNotFound(f"{jid} is not a member of {thread.name!r}")
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
