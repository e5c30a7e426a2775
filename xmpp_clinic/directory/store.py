"""The directory's tables: read a snapshot, write a diff (IV.2).

The only code that writes ``directory_*`` tables. Runs inside the caller's transaction.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from xmpp_clinic.clock import utcnow
from xmpp_clinic.directory.model import Directory, DirectoryDiff, Person
from xmpp_clinic.store.models.directory import DirectoryJid, DirectoryMembership, DirectoryPerson


def _person(row: DirectoryPerson) -> Person:
    return Person(
        key=row.key,
        name=row.name,
        staff_id=row.staff_id,
        role=row.role,
        jids=tuple(sorted(j.jid for j in row.jids)),
        groups=frozenset(m.group for m in row.groups),
    )


async def load(session: AsyncSession) -> Directory:
    """The directory as the last import left it (empty before the first)."""
    query = select(DirectoryPerson).options(
        selectinload(DirectoryPerson.jids), selectinload(DirectoryPerson.groups)
    )
    return Directory(_person(row) for row in (await session.scalars(query)).all())


async def is_empty(session: AsyncSession) -> bool:
    return (await session.scalar(select(DirectoryPerson.id).limit(1))) is None


async def write(session: AsyncSession, change: DirectoryDiff) -> None:
    """Apply ``change`` to the tables: removals first, so a JID can move between persons."""
    gone = [p.key for p in change.removed]
    if gone:
        await session.execute(delete(DirectoryPerson).where(DirectoryPerson.key.in_(gone)))
    now = utcnow()
    moved: list[tuple[DirectoryPerson, Person]] = []
    for before, after in change.changed:
        row = (
            await session.scalars(
                select(DirectoryPerson)
                .where(DirectoryPerson.key == before.key)
                .options(selectinload(DirectoryPerson.jids))
            )
        ).one()
        row.name, row.staff_id, row.role, row.updated_at = (
            after.name,
            after.staff_id,
            after.role,
            now,
        )
        if set(before.jids) != set(after.jids):
            row.jids.clear()
            moved.append((row, after))
    await session.flush()  # every JID given up is gone before any is taken
    for row, after in moved:
        row.jids.extend(DirectoryJid(jid=j) for j in after.jids)
    await session.flush()
    for person in change.added:
        session.add(
            DirectoryPerson(
                key=person.key,
                name=person.name,
                staff_id=person.staff_id,
                role=person.role,
                updated_at=now,
                jids=[DirectoryJid(jid=j) for j in person.jids],
                groups=[],
            )
        )
    await session.flush()
    rows = await session.execute(select(DirectoryPerson.key, DirectoryPerson.id))
    ids: dict[str, int] = {key: id_ for key, id_ in rows}
    for m in change.memberships_removed:
        if m.person in ids:
            await session.execute(
                delete(DirectoryMembership).where(
                    DirectoryMembership.person_id == ids[m.person],
                    DirectoryMembership.group == m.group,
                )
            )
    session.add_all(
        DirectoryMembership(person_id=ids[m.person], group=m.group)
        for m in change.memberships_added
    )
    await session.flush()
