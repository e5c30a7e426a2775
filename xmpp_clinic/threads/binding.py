"""Threads bound to directory groups: who their members must be (IV.2).

A bound thread's members are the union of its groups' members plus the people added by
hand. Whenever the directory or a binding changes, :func:`reconcile_all` brings every
thread in line inside the same transaction and bumps the "threads" counter, so a running
gateway applies it before its next decision: people who left are kicked (status 321) and
lose history, people who arrived can join and read from their ``since``. With a
directory, nobody outside it stays a member of any thread, hand-added or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from xmpp_clinic.clock import utcnow
from xmpp_clinic.store.changes import bump
from xmpp_clinic.store.models.directory import BoundMember, ThreadBinding
from xmpp_clinic.store.models.threads import Member, Thread
from xmpp_clinic.threads.events import ThreadEvent, record

TOPIC = "threads"


@dataclass(frozen=True)
class Reconciled:
    """One thread's members after reconciling: who joins, who leaves, who is bound."""

    add: frozenset[str]
    remove: frozenset[str]
    bound: frozenset[str]


def reconcile(
    current: frozenset[str],
    bound_before: frozenset[str],
    from_groups: frozenset[str],
    allowed: frozenset[str] | None,
) -> Reconciled:
    """The membership a thread must have (pure).

    ``current``: its members now; ``bound_before``: those of them who came from groups;
    ``from_groups``: the members of its bound groups now; ``allowed``: every JID in the
    directory, or None without a directory (small deployment mode: nobody is removed
    for being absent from it). A person added by hand who is also in a group stays a
    hand-added member: leaving the group does not remove them.
    """
    by_hand = current - bound_before
    if allowed is not None:
        by_hand &= allowed
        from_groups &= allowed
    wanted = by_hand | from_groups
    return Reconciled(add=wanted - current, remove=current - wanted, bound=from_groups - by_hand)


@dataclass(frozen=True)
class ThreadChange:
    """Members one reconcile added to and removed from one thread."""

    thread: str
    added: tuple[str, ...]
    removed: tuple[str, ...]


async def bindings_of(session: AsyncSession, thread_id: int) -> list[str]:
    query = select(ThreadBinding.group).where(ThreadBinding.thread_id == thread_id)
    return sorted((await session.scalars(query)).all())


async def reconcile_all(
    session: AsyncSession,
    groups: Mapping[str, frozenset[str]],
    allowed: frozenset[str] | None,
    *,
    actor: str,
) -> list[ThreadChange]:
    """Bring every thread in line with its groups and the directory (IV.2).

    Runs inside the caller's transaction (the import that changed the directory, or the
    binding), records one audit event per member added or removed, and bumps the
    "threads" counter when anything changed.
    """
    threads = (await session.scalars(select(Thread).options(selectinload(Thread.members)))).all()
    binding_rows = (
        await session.execute(select(ThreadBinding.thread_id, ThreadBinding.group))
    ).all()
    bound_rows = (await session.execute(select(BoundMember.thread_id, BoundMember.jid))).all()
    bindings: dict[int, set[str]] = {}
    for thread_id, group in binding_rows:
        bindings.setdefault(thread_id, set()).add(group)
    bound: dict[int, set[str]] = {}
    for thread_id, jid in bound_rows:
        bound.setdefault(thread_id, set()).add(jid)
    changes: list[ThreadChange] = []
    for thread in threads:
        from_groups = frozenset().union(
            *(groups.get(g, frozenset()) for g in bindings.get(thread.id, ()))
        )
        result = reconcile(
            frozenset(m.jid for m in thread.members),
            frozenset(bound.get(thread.id, ())),
            from_groups,
            allowed,
        )
        await _apply(session, thread, result, frozenset(bound.get(thread.id, ())), actor)
        if result.add or result.remove:
            changes.append(
                ThreadChange(thread.name, tuple(sorted(result.add)), tuple(sorted(result.remove)))
            )
    if changes:
        await bump(session, TOPIC)
    return changes


async def _apply(
    session: AsyncSession,
    thread: Thread,
    result: Reconciled,
    bound_before: frozenset[str],
    actor: str,
) -> None:
    now = utcnow()
    for member in [m for m in thread.members if m.jid in result.remove]:
        thread.members.remove(member)
        await record(
            session, actor, ThreadEvent.MEMBER_REMOVED, thread.name, member.affiliation, member.jid
        )
    for jid in sorted(result.add):
        thread.members.append(Member(jid=jid, affiliation="member", since=now))
        await record(session, actor, ThreadEvent.MEMBER_ADDED, thread.name, "member", jid)
    if result.bound != bound_before:
        await session.execute(delete(BoundMember).where(BoundMember.thread_id == thread.id))
        session.add_all(BoundMember(thread_id=thread.id, jid=jid) for jid in sorted(result.bound))
    await session.flush()
