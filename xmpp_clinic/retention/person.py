"""A person's rows in the other rooms' tables, for ``erase --person`` (I.7, II.3).

- The hospital directory (``directory_persons`` with their JIDs and group memberships):
  the person the JID belongs to is deleted with all of it. The directory's source (LDAP,
  CSV) is the hospital's; the receipt says that a later sync brings the person back
  unless they are removed there too.
- Delivery records about the person as a recipient are deleted; records of messages the
  person sent stay with the message under the pseudonym (:mod:`.scrub`).
- Part-set state of the person's split messages is deleted (it names them by JID and
  nick, and nothing is owed to a person who is gone).
- Documentation copies of what the person wrote are medical documentation and stay: the
  sender becomes the pseudonym and the thread's documentation chain is re-linked from its
  anchor (old and new head in the receipt), as the archive's is.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from xmpp_clinic.records.documentation import GENESIS, copy_digest
from xmpp_clinic.retention.scrub import Scrub
from xmpp_clinic.store.changes import bump
from xmpp_clinic.store.models.completeness import DeliveryRow, PartSetRow
from xmpp_clinic.store.models.directory import DirectoryJid, DirectoryMembership, DirectoryPerson
from xmpp_clinic.store.models.records import DocumentationCopy, DocumentationKey

DIRECTORY_TOPIC = "directory"  # directory/service.py TOPIC: a running gateway reloads it


def _count(result: Any) -> int:
    return int(result.rowcount)


async def erase_from_directory(session: AsyncSession, jid: str) -> tuple[dict[str, int], list[str]]:
    """Delete the directory person ``jid`` belongs to, with their JIDs and memberships.

    Returns the row counts and the person's other JIDs (they are gone from the directory;
    the operator erases them too if they name the same person elsewhere).
    """
    person_id = await session.scalar(select(DirectoryJid.person_id).where(DirectoryJid.jid == jid))
    if person_id is None:
        return {}, []
    others = sorted(
        await session.scalars(
            select(DirectoryJid.jid).where(
                DirectoryJid.person_id == person_id, DirectoryJid.jid != jid
            )
        )
    )
    groups = await session.execute(
        delete(DirectoryMembership).where(DirectoryMembership.person_id == person_id)
    )
    jids = await session.execute(delete(DirectoryJid).where(DirectoryJid.person_id == person_id))
    persons = await session.execute(delete(DirectoryPerson).where(DirectoryPerson.id == person_id))
    await bump(session, DIRECTORY_TOPIC)
    counts = {
        "directory_persons": _count(persons),
        "directory_jids": _count(jids),
        "directory_memberships": _count(groups),
    }
    return counts, others


async def erase_completeness(session: AsyncSession, jid: str) -> dict[str, int]:
    """Delete the person's delivery records (as recipient) and their part sets."""
    deliveries = await session.execute(delete(DeliveryRow).where(DeliveryRow.member == jid))
    sets = await session.execute(delete(PartSetRow).where(PartSetRow.sender == jid))
    counts = {"delivery_records": _count(deliveries), "part_sets": _count(sets)}
    return {name: n for name, n in counts.items() if n}


async def pseudonymise_documentation(
    session: AsyncSession, jid: str, scrub: Scrub
) -> list[dict[str, Any]]:
    """Replace ``jid`` as sender of documentation copies and re-link each thread's chain."""
    threads = sorted(
        await session.scalars(
            select(DocumentationCopy.thread).where(DocumentationCopy.sender == jid).distinct()
        )
    )
    changed: list[dict[str, Any]] = []
    for thread in threads:
        key = await session.get(DocumentationKey, thread)
        previous = key.anchor_digest if key is not None else GENESIS
        rows = (
            await session.scalars(
                select(DocumentationCopy)
                .where(DocumentationCopy.thread == thread)
                .order_by(DocumentationCopy.position)
                .with_for_update()
            )
        ).all()
        old_head = f"{rows[-1].position}:{rows[-1].digest.hex()}"
        positions: list[int] = []
        for row in rows:
            sender = scrub(row.sender)
            if sender != row.sender:
                row.sender = sender
                positions.append(row.position)
            if positions:
                row.digest = copy_digest(previous, row)
            previous = row.digest
        changed.append(
            {"thread": thread, "positions": positions, "old_head": old_head,
             "new_head": f"{rows[-1].position}:{previous.hex()}"}
        )  # fmt: skip
    await session.flush()
    return changed
