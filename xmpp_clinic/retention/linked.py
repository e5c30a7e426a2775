"""Rows that belong to archived messages go with them (I.7, II.3, II.2, I.6).

Other rooms keep rows about archived messages: delivery records
(``message_deliveries``, completeness), part-set state (``part_sets``, completeness) and
documentation copies (``documentation``, records). Retention owns deletions, so the
queries that remove them live here:

- delivery records of a purged message (its thread and ``seq``) go with it, and every
  delivery record goes after ``retention.delivery_records_days`` anyway (II.3);
- a part set goes when it is settled (complete and announced, or its missing part
  announced) and no archived message that is left still carries its marker;
- documentation copies (with their attachments) go with the thread's range: from the
  start of the thread's documentation chain up to the last copy that is due, and the
  last deleted copy's position and digest become the chain's anchor
  (``documentation_keys``), so the rest still verifies (``records show`` reads from
  the anchor).

Each deletion runs in batches of short transactions, as the archive purge does.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Table, and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from xmpp_clinic.completeness.parts import PART
from xmpp_clinic.namespaces import CLINIC_PARTS
from xmpp_clinic.store import Store
from xmpp_clinic.store.base import Base
from xmpp_clinic.store.models.completeness import DeliveryRow, PartSetRow
from xmpp_clinic.store.models.messages import ArchivedMessage
from xmpp_clinic.store.models.records import DocumentationCopy, DocumentationKey

ATTACHMENTS = "documentation_attachments"  # records' attachments, keyed (thread, position)


def attachments_table() -> Table | None:
    """The documentation copies' attachments table, where the store has one."""
    return Base.metadata.tables.get(ATTACHMENTS)


@dataclass(frozen=True)
class DocumentationRange:
    """Copies ``first..last`` of one thread's documentation, deleted; ``anchor`` is the
    digest of copy ``last``, where the thread's documentation chain now starts."""

    thread: str
    first: int
    last: int
    count: int
    anchor: bytes

    def as_json(self) -> dict[str, object]:
        return {
            "thread": self.thread,
            "first_position": self.first,
            "last_position": self.last,
            "count": self.count,
            "anchor": self.anchor.hex(),
        }


async def purge_deliveries(store: Store, where: ColumnElement[bool], *, batch: int) -> int:
    """Delete delivery records matching ``where`` in batches of ``batch``; how many."""
    total = 0
    while True:
        async with store.session() as session:
            ids = list(await session.scalars(select(DeliveryRow.id).where(where).limit(batch)))
            if ids:
                await session.execute(delete(DeliveryRow).where(DeliveryRow.id.in_(ids)))
        total += len(ids)
        if len(ids) < batch:
            return total


def deliveries_of(thread: str, through: int) -> ColumnElement[bool]:
    """Delivery records of ``thread``'s messages up to seq ``through`` (purged with them)."""
    return and_(DeliveryRow.thread == thread, DeliveryRow.seq <= through)


def deliveries_before(cutoff: datetime) -> ColumnElement[bool]:
    """Delivery records of messages relayed before ``cutoff`` (their own period, II.3)."""
    return DeliveryRow.at < cutoff


def settled(row: PartSetRow) -> bool:
    """Nothing more is owed for this set: complete and (if announced missing) announced
    complete, or incomplete with its missing part announced."""
    complete = len({n for n in row.received.split(",") if n}) >= row.of
    if complete:
        return row.complete_noticed or not row.missing_noticed
    return row.missing_noticed


async def _sets_still_archived(session: AsyncSession, thread_id: int, after: int) -> set[str]:
    """Set ids carried by ``thread_id``'s archived messages after seq ``after``."""
    stanzas = await session.scalars(
        select(ArchivedMessage.stanza).where(
            ArchivedMessage.thread_id == thread_id,
            ArchivedMessage.seq > after,
            ArchivedMessage.stanza.like(f"%{CLINIC_PARTS}%"),
        )
    )
    found: set[str] = set()
    for stanza in stanzas:
        try:
            marker = ET.fromstring(stanza).find(PART)
        except ET.ParseError:
            continue
        if marker is not None and marker.get("set"):
            found.add(str(marker.get("set")))
    return found


async def purge_part_sets(
    store: Store, thread: str, thread_id: int | None, *, through: int, cutoff: datetime
) -> int:
    """Delete ``thread``'s settled part sets begun at or before ``cutoff`` whose parts
    are all purged (no archived message after ``through`` carries the set); how many.

    ``thread_id`` None: the thread is gone, so none of its messages is left either.
    """
    async with store.session() as session:
        candidates = (
            await session.scalars(
                select(PartSetRow).where(PartSetRow.thread == thread, PartSetRow.first_at <= cutoff)
            )
        ).all()
        due = [row for row in candidates if settled(row)]
        if not due:
            return 0
        kept = await _sets_still_archived(session, thread_id, through) if thread_id else set()
        gone = [row.id for row in due if row.set_id not in kept]
        if gone:
            await session.execute(delete(PartSetRow).where(PartSetRow.id.in_(gone)))
        return len(gone)


async def forget_settled_sets(store: Store, cutoff: datetime) -> int:
    """Delete settled part sets begun before ``cutoff`` in any thread (their own period:
    delivery records', II.3); how many."""
    async with store.session() as session:
        rows = (await session.scalars(select(PartSetRow).where(PartSetRow.first_at < cutoff))).all()
        gone = [row.id for row in rows if settled(row)]
        if gone:
            await session.execute(delete(PartSetRow).where(PartSetRow.id.in_(gone)))
        return len(gone)


async def documentation_due(
    session: AsyncSession, thread: str, *, through: int, cutoff: datetime
) -> int | None:
    """The last position of ``thread``'s documentation that is due: a copy at or before
    ``cutoff`` or linked to an archived message up to ``through``. None: none is."""
    found = await session.scalar(
        select(func.max(DocumentationCopy.position)).where(
            DocumentationCopy.thread == thread,
            or_(
                DocumentationCopy.at <= cutoff,
                and_(DocumentationCopy.seq.is_not(None), DocumentationCopy.seq <= through),
            ),
        )
    )
    return int(found) if found is not None else None


async def purge_documentation(
    store: Store, thread: str, last: int, *, batch: int
) -> DocumentationRange | None:
    """Delete ``thread``'s copies up to position ``last`` from the front, in batches;
    each batch moves the chain's anchor in its own transaction (I.7). None: none left."""
    first: int | None = None
    total, position, digest = 0, 0, b""
    while True:
        async with store.session() as session:
            key = await session.get(DocumentationKey, thread)
            if key is None:
                break
            start = key.anchor_position
            upto = min(last, start + batch)
            if upto <= start:
                break
            row = (
                await session.execute(
                    select(DocumentationCopy.position, DocumentationCopy.digest)
                    .where(DocumentationCopy.thread == thread, DocumentationCopy.position <= upto)
                    .order_by(DocumentationCopy.position.desc())
                    .limit(1)
                )
            ).first()
            if row is None or row[0] <= start:
                break
            removed = await session.execute(
                delete(DocumentationCopy).where(
                    DocumentationCopy.thread == thread, DocumentationCopy.position <= row[0]
                )
            )
            files = attachments_table()
            if files is not None:  # a copy's attachments go with it
                await session.execute(
                    delete(files).where(files.c.thread == thread, files.c.position <= row[0])
                )
            key.anchor_position, key.anchor_digest = row[0], row[1]
        first = start + 1 if first is None else first
        total += int(removed.rowcount)  # type: ignore[attr-defined]
        position, digest = row[0], row[1]
    if first is None:
        return None
    return DocumentationRange(thread, first, position, total, digest)


async def documentation_anchor(store: Store, thread: str) -> tuple[int, bytes] | None:
    """Position and digest where ``thread``'s documentation chain starts now."""
    async with store.session() as session:
        key = await session.get(DocumentationKey, thread)
    return (key.anchor_position, key.anchor_digest) if key is not None else None


async def orphan_documentation(store: Store, threads: set[str]) -> list[str]:
    """Names with documentation copies but no thread among ``threads`` (the thread was
    deleted or renamed; its copies follow the hospital's default period)."""
    async with store.session() as session:
        names = await session.scalars(select(DocumentationCopy.thread).distinct())
        return sorted(n for n in names if n not in threads)


@dataclass
class LinkedCounts:
    """What one purge run removed besides archived messages."""

    deliveries: int = 0
    part_sets: int = 0
    documentation: int = 0


class LinkedPurger:
    """Purges the rows that belong to a thread's purged range, and those past their own
    period; returns the receipt items (I.7)."""

    def __init__(self, store: Store, batch: int) -> None:
        self._store = store
        self._batch = batch

    async def threads_with_rows(self) -> set[str]:
        """Names of the threads that have part sets or documentation copies: a purge round
        skips the others when none of their messages is due (bench/memory.py)."""
        async with self._store.session() as session:
            sets = await session.scalars(select(PartSetRow.thread).distinct())
            names = set(sets)
            copies = await session.scalars(select(DocumentationCopy.thread).distinct())
            names.update(copies)
        return names

    async def with_range(
        self,
        counts: LinkedCounts,
        thread: str,
        thread_id: int | None,
        through: int,
        cutoff: datetime,
    ) -> list[dict[str, object]]:
        """Rows of ``thread``'s messages up to seq ``through`` and copies due at ``cutoff``."""
        items: list[dict[str, object]] = []
        found = await purge_deliveries(
            self._store, deliveries_of(thread, through), batch=self._batch
        )
        if found:
            counts.deliveries += found
            items.append(
                {"what": "delivery-records", "thread": thread, "through_seq": through,
                 "count": found}
            )  # fmt: skip
        sets = await purge_part_sets(self._store, thread, thread_id, through=through, cutoff=cutoff)
        if sets:
            counts.part_sets += sets
            items.append(
                {"what": "part-sets", "thread": thread, "through_seq": through,
                 "cutoff": cutoff.isoformat(), "count": sets}
            )  # fmt: skip
        async with self._store.session() as session:
            last = await documentation_due(session, thread, through=through, cutoff=cutoff)
        if last is not None:
            copies = await purge_documentation(self._store, thread, last, batch=self._batch)
            if copies is not None:
                counts.documentation += copies.count
                items.append(
                    {"what": "documentation", "cutoff": cutoff.isoformat(), **copies.as_json()}
                )
        return items

    async def expired(self, counts: LinkedCounts, cutoff: datetime) -> list[dict[str, object]]:
        """Delivery records and settled part sets older than their own period (II.3)."""
        items: list[dict[str, object]] = []
        found = await purge_deliveries(self._store, deliveries_before(cutoff), batch=self._batch)
        if found:
            counts.deliveries += found
            items.append({"what": "delivery-records", "cutoff": cutoff.isoformat(), "count": found})
        sets = await forget_settled_sets(self._store, cutoff)
        if sets:
            counts.part_sets += sets
            items.append({"what": "part-sets", "cutoff": cutoff.isoformat(), "count": sets})
        return items
