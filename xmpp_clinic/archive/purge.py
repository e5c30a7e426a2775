"""Purging a thread's archive from the front, leaving a provable chain (I.7, II.2).

Only a prefix of a thread's chain is ever purged: everything up to the last message that
is due, stopping at the first message that is not. The last purged message's sequence
and digest become the thread's anchor (``archive_anchors``), where verification of the
remaining chain starts. Each batch is its own short transaction, so the relay's appends
never wait behind a long delete (bench/README.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from xmpp_clinic.archive.messages import anchor
from xmpp_clinic.clock import utcnow
from xmpp_clinic.store import Store
from xmpp_clinic.store.models.messages import ArchivedMessage
from xmpp_clinic.store.models.retention import ArchiveAnchor

Progress = Callable[[int], None]


@dataclass(frozen=True)
class PurgedRange:
    """What one purge removed from one thread: sequence numbers ``first..last``."""

    thread_id: int
    first: int
    last: int
    count: int
    anchor: bytes  # the digest of message ``last``: the new start of the chain

    def as_json(self) -> dict[str, object]:
        return {
            "first_seq": self.first,
            "last_seq": self.last,
            "count": self.count,
            "anchor": self.anchor.hex(),
        }


async def due_through(session: AsyncSession, thread_id: int, cutoff: datetime) -> int:
    """The highest seq such that it and every message before it is at or before ``cutoff``."""
    first_kept = await session.scalar(
        select(func.min(ArchivedMessage.seq)).where(
            ArchivedMessage.thread_id == thread_id, ArchivedMessage.at > cutoff
        )
    )
    if first_kept is not None:
        return int(first_kept) - 1
    last = await session.scalar(
        select(func.max(ArchivedMessage.seq)).where(ArchivedMessage.thread_id == thread_id)
    )
    return int(last or 0)


async def due_range(
    session: AsyncSession, thread_id: int, cutoff: datetime
) -> tuple[int, int, int]:
    """``(first, last, count)`` of what a purge at ``cutoff`` would remove, in ``session``.

    A thread with no message at or before ``cutoff`` (most threads, most of the time)
    costs three index lookups: its anchor, one probe of ``(thread_id, at)`` and its lowest
    seq, never a walk over the messages it keeps (10 000 threads every purge interval).
    """
    start, _ = await anchor(session, thread_id)
    old = await session.scalar(
        select(ArchivedMessage.seq)
        .where(ArchivedMessage.thread_id == thread_id, ArchivedMessage.at <= cutoff)
        .limit(1)
    )
    if old is None:  # every message is newer than the cutoff: the first one is kept
        lowest = await session.scalar(
            select(func.min(ArchivedMessage.seq)).where(ArchivedMessage.thread_id == thread_id)
        )
        return start + 1, int(lowest) - 1 if lowest is not None else 0, 0
    through = await due_through(session, thread_id, cutoff)
    count = await session.scalar(
        select(func.count()).where(
            ArchivedMessage.thread_id == thread_id,
            ArchivedMessage.seq > start,
            ArchivedMessage.seq <= through,
        )
    )
    return start + 1, through, int(count or 0)


async def purge_through(
    store: Store,
    thread_id: int,
    through: int,
    *,
    batch: int,
    progress: Progress | None = None,
    rest: float = 0.0,
) -> PurgedRange | None:
    """Delete a thread's messages up to seq ``through`` in batches; None if none were left.

    Every batch moves the anchor in the same transaction as its delete, so an interrupted
    purge leaves a chain that verifies and the next run continues where it stopped. After
    each batch the purge rests ``rest`` times as long as the batch took: the store's write
    lock is then free for the relay's appends for that share of the time (bench/purge.py).
    """
    first: int | None = None
    total = 0
    digest = b""
    last = 0
    while True:
        began = time.monotonic()
        async with store.session() as session:
            start, _ = await anchor(session, thread_id)
            upto = min(through, start + batch)
            if upto <= start:
                break
            row = (
                await session.execute(
                    select(ArchivedMessage.seq, ArchivedMessage.digest)
                    .where(ArchivedMessage.thread_id == thread_id, ArchivedMessage.seq <= upto)
                    .order_by(ArchivedMessage.seq.desc())
                    .limit(1)
                )
            ).first()
            if row is None or row[0] <= start:
                break
            removed = await session.execute(
                delete(ArchivedMessage).where(
                    ArchivedMessage.thread_id == thread_id, ArchivedMessage.seq <= row[0]
                )
            )
            await set_anchor(session, thread_id, row[0], row[1])
        count = int(removed.rowcount)  # type: ignore[attr-defined]
        first = start + 1 if first is None else first
        total, last, digest = total + count, row[0], row[1]
        if progress is not None:
            progress(count)
        if rest > 0:
            await asyncio.sleep(rest * (time.monotonic() - began))
    if first is None:
        return None
    return PurgedRange(thread_id, first, last, total, digest)


async def set_anchor(session: AsyncSession, thread_id: int, seq: int, digest: bytes) -> None:
    """Record that ``thread_id``'s chain now starts after ``seq`` with ``digest`` (I.7)."""
    found = await session.get(ArchiveAnchor, thread_id)
    if found is None:
        session.add(ArchiveAnchor(thread_id=thread_id, seq=seq, digest=digest))
    else:
        found.seq, found.digest, found.purged_at = seq, digest, utcnow()
