"""Re-chaining a thread's archive after pseudonymising rows (erasure, I.7, II.2).

Erasure replaces a person's JID in the rows that name them, and the occupant nick of the
messages they sent (``Dr Alice`` names her as well as her JID does); each changed row and every
row after it gets a new digest, so the chain verifies again from the thread's anchor.
The old and new heads go into the signed erasure receipt. A running gateway must reload
its in-memory heads (``MessageArchive.forget_heads`` on the "archive" change counter).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from xml.sax.saxutils import escape

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from xmpp_clinic.archive.chain import link
from xmpp_clinic.archive.messages import anchor, row_canonical
from xmpp_clinic.store.models.messages import ArchivedMessage

Scrub = Callable[[str], str]


@dataclass(frozen=True)
class ThreadRewrite:
    """One thread's rewritten messages and its chain head before and after."""

    thread_id: int
    seqs: tuple[int, ...]
    old_head: str
    new_head: str


_FROM = re.compile(r'^(<message\b[^>]*?\sfrom=(["\']))([^"\'/]*)/[^"\']*\2')


def renamed(stanza: str, nick: str) -> str:
    """``stanza`` (as archived) sent under occupant nick ``nick`` instead."""
    return _FROM.sub(lambda m: f"{m.group(1)}{m.group(3)}/{escape(nick)}{m.group(2)}", stanza, 1)


async def rewrite_thread(
    session: AsyncSession,
    thread_id: int,
    scrub: Scrub,
    *,
    sender: str | None = None,
    nick: str | None = None,
) -> ThreadRewrite | None:
    """Apply ``scrub`` to sender, resource and stanza of every row; rows ``sender`` sent
    also get occupant nick ``nick`` (their nick names them too); re-chain. None: no change.
    """
    rows = (
        await session.scalars(
            select(ArchivedMessage)
            .where(ArchivedMessage.thread_id == thread_id)
            .order_by(ArchivedMessage.seq)
            .with_for_update()
        )
    ).all()
    if not rows:
        return None
    _, previous = await anchor(session, thread_id)
    old_head = f"{rows[-1].seq}:{rows[-1].digest.hex()}"
    changed: list[int] = []
    for row in rows:
        own = nick is not None and row.sender == sender
        stanza = renamed(row.stanza, nick) if own and nick is not None else row.stanza
        new = (
            scrub(row.sender), scrub(row.sender_resource), scrub(stanza),
            nick if own and nick is not None else row.nick,
        )  # fmt: skip
        if new != (row.sender, row.sender_resource, row.stanza, row.nick):
            row.sender, row.sender_resource, row.stanza, row.nick = new
            changed.append(row.seq)
        if changed:
            row.digest = link(previous, row_canonical(row))
        previous = row.digest
    if not changed:
        return None
    await session.flush()
    return ThreadRewrite(thread_id, tuple(changed), old_head, f"{rows[-1].seq}:{previous.hex()}")


async def threads_naming(session: AsyncSession, needle: str) -> list[int]:
    """Threads with an archived row whose sender or stanza contains ``needle``."""
    pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    query = (
        select(ArchivedMessage.thread_id)
        .where(
            ArchivedMessage.sender.like(pattern, escape="\\")
            | ArchivedMessage.stanza.like(pattern, escape="\\")
            | ArchivedMessage.sender_resource.like(pattern, escape="\\")
        )
        .distinct()
    )
    return sorted(int(t) for t in (await session.scalars(query)).all())
