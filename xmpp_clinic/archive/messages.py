"""The thread message archive: hash-chained appends and MAM-style queries (II.2, I.6).

A message is appended before anyone receives it (DESIGN.md, archive before fan-out).
Each entry's digest commits to the previous entry of the same thread (chain.py), so an
auditor can prove that nothing was changed, removed or reordered. The chain head of each
thread is kept in memory.

Appends are group-committed: the appends that arrive while a commit is in flight are
written together in the next transaction, so a burst costs one durable commit instead
of one per message (bench/README.md). Each caller still waits for its own row to be
durable, and a failed commit fails every caller in it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from xmpp_clinic.archive.chain import GENESIS, first_break, link
from xmpp_clinic.clock import as_utc
from xmpp_clinic.store import Store, StoreUnavailable
from xmpp_clinic.store.models.messages import ArchivedMessage
from xmpp_clinic.store.models.retention import ArchiveAnchor

log = logging.getLogger(__name__)

DEFAULT_PAGE = 50
MAX_PAGE = 250
# RSM's <count/> is optional (XEP-0059): an exact count above this many would cost a scan
# of the thread's archive on every page, so a page of a larger result set carries none.
COUNT_CAP = 10_000


class UnknownId(LookupError):
    """A paging or range id that the thread's archive does not hold (MAM item-not-found)."""


@dataclass(frozen=True)
class NewMessage:
    """What the relay hands the archive: the relayed stanza and who really sent it."""

    thread_id: int
    stanza_id: str
    at: datetime
    sender: str  # real bare JID
    sender_resource: str
    nick: str
    occupant_id: str
    stanza: str  # the relayed <message> without "to", as serialised for fan-out


@dataclass(frozen=True)
class ArchiveEntry:
    """One archived message, as MAM serves it."""

    seq: int
    stanza_id: str
    at: datetime
    sender: str
    sender_resource: str
    nick: str
    stanza: str


@dataclass(frozen=True)
class ArchiveQuery:
    """A MAM query (XEP-0313 form fields + RSM) already limited to what the member may see."""

    thread_id: int
    start: datetime | None = None
    end: datetime | None = None
    sender: str | None = None  # real bare JID ("with")
    nick: str | None = None  # occupant nick ("with" = thread/nick)
    after_id: str | None = None  # exclusive bounds (urn:xmpp:mam:2#extended)
    before_id: str | None = None
    ids: tuple[str, ...] = ()
    not_before: datetime | None = None  # membership start (threads.history_for_new_members)
    page_after: str | None = None  # RSM <after>
    page_before: str | None = None  # RSM <before>; "" = the last page
    limit: int = DEFAULT_PAGE


@dataclass(frozen=True)
class ArchivePage:
    entries: list[ArchiveEntry]
    complete: bool  # no more results in the paging direction
    count: int | None  # results matching the query without paging; None above COUNT_CAP


def _canonical(seq: int, item: NewMessage) -> bytes:
    fields = [
        item.thread_id, seq, item.stanza_id, as_utc(item.at).isoformat(), item.sender,
        item.sender_resource, item.nick, item.occupant_id, item.stanza,
    ]  # fmt: skip
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()


def row_canonical(r: ArchivedMessage) -> bytes:
    """The hashed bytes of a stored row (for verification and re-chaining)."""
    item = NewMessage(
        r.thread_id, r.stanza_id, r.at, r.sender, r.sender_resource, r.nick, r.occupant_id,
        r.stanza,
    )  # fmt: skip
    return _canonical(r.seq, item)


_TABLE: Table = ArchivedMessage.__table__  # type: ignore[assignment]


def _entry(row: ArchivedMessage) -> ArchiveEntry:
    return ArchiveEntry(
        row.seq, row.stanza_id, as_utc(row.at), row.sender, row.sender_resource, row.nick,
        row.stanza,
    )  # fmt: skip


def _written(row: dict[str, Any]) -> ArchiveEntry:
    """The entry of a row :func:`_row` made (as committed)."""
    return ArchiveEntry(
        row["seq"], row["stanza_id"], as_utc(row["at"]), row["sender"], row["sender_resource"],
        row["nick"], row["stanza"],
    )  # fmt: skip


@dataclass
class _Pending:
    """An append waiting for the next group commit."""

    item: NewMessage
    done: asyncio.Future[ArchiveEntry]


def _row(item: NewMessage, heads: dict[int, tuple[int, bytes]]) -> dict[str, Any]:
    """The next link of ``item``'s thread, as the columns of its row; advances ``heads``."""
    seq, previous = heads[item.thread_id]
    seq += 1
    digest = link(previous, _canonical(seq, item))
    heads[item.thread_id] = (seq, digest)
    return {
        "thread_id": item.thread_id, "seq": seq, "stanza_id": item.stanza_id, "at": item.at,
        "sender": item.sender, "sender_resource": item.sender_resource, "nick": item.nick,
        "occupant_id": item.occupant_id, "stanza": item.stanza, "digest": digest,
    }  # fmt: skip


def _fail(pending: _Pending, why: str) -> None:
    """Refuse a queued append with StoreUnavailable (never cancel: the relay then tells the
    sender, instead of the message vanishing without an answer, I.12)."""
    if not pending.done.done():
        pending.done.set_exception(StoreUnavailable(why))


async def anchor(session: AsyncSession, thread_id: int) -> tuple[int, bytes]:
    """Sequence and digest a thread's chain continues from: its purge anchor, or genesis."""
    found = await session.get(ArchiveAnchor, thread_id)
    return (found.seq, found.digest) if found is not None else (0, GENESIS)


class MessageArchive:
    """Appends and queries thread messages; the only code that touches thread_messages."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._heads: dict[int, tuple[int, bytes]] = {}
        self._queue: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None

    async def append(self, item: NewMessage) -> ArchiveEntry:
        """Store ``item`` durably as the next link of its thread's chain (II.2).

        Returns once the transaction holding the entry has committed. Raises
        StoreUnavailable when the store cannot commit; the caller must then refuse the
        message (nobody may receive what is not archived, I.12).
        """
        return await self.submit(item)

    def submit(self, item: NewMessage) -> asyncio.Future[ArchiveEntry]:
        """Queue ``item`` for the next group commit; the future is :meth:`append`'s outcome.

        Entries of a thread are chained in the order of the ``submit`` calls, so a caller
        can fix the order of several messages before awaiting any of them (the relay does,
        to overlap their commits without reordering them).
        """
        done: asyncio.Future[ArchiveEntry] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(item, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_batches())
        return done

    async def forget_heads(self) -> None:
        """Reload chain heads from the store before the next append.

        For the "archive" change counter: an erasure re-chained a thread (I.7), so the
        head held in memory is no longer the stored one.
        """
        self._heads.clear()

    async def drain(self) -> None:
        """Wait until every append submitted so far has its outcome (committed or refused).

        For shutdown (``Gateway.stop``): the store is closed only after the group-commit
        writer has finished, so no caller is left waiting and no commit is cut off (II.2).
        Appends submitted while draining are waited for too.
        """
        while self._writer is not None and not self._writer.done():
            await asyncio.wait({self._writer})  # never raises, never cancels the writer

    async def _write_batches(self) -> None:
        """Commit what is queued, one transaction at a time, until the queue is empty.

        One writer at a time keeps the chain order equal to the queue order, and everything
        queued during a commit goes into the next one (group commit).
        """
        try:
            while self._queue:
                batch = [p for p in self._queue if not p.done.done()]  # skip cancelled callers
                self._queue = []
                if batch:
                    await self._commit(batch)
        finally:
            for pending in self._queue:  # only left when the writer itself was cancelled
                _fail(pending, "archive writer stopped")
            self._queue = []

    async def _commit(self, batch: list[_Pending]) -> None:
        """One transaction for ``batch``; every caller learns the outcome (II.2, I.12)."""
        entries: list[ArchiveEntry] = []
        try:
            heads = {
                thread_id: self._heads.get(thread_id) or await self._head(thread_id)
                for thread_id in dict.fromkeys(p.item.thread_id for p in batch)
            }
            rows = [_row(pending.item, heads) for pending in batch]
            entries = [_written(row) for row in rows]
            async with self._store.writing() as connection:
                # The table, not ORM objects: one executemany, no identity bookkeeping
                # (the relay needs no row id back; issue 13).
                await connection.execute(insert(_TABLE), rows)
        except BaseException as exc:
            # The heads are unknown now (the commit may or may not have happened): the next
            # batch reloads them from the store.
            for thread_id in {p.item.thread_id for p in batch}:
                self._heads.pop(thread_id, None)
            if not isinstance(exc, Exception):  # cancelled (shutdown): callers are refused
                for pending in batch:
                    _fail(pending, "archive writer stopped")
                raise
            if not isinstance(exc, StoreUnavailable):
                log.exception("archive commit failed", extra={"messages": len(batch)})
            for pending in batch:
                if not pending.done.done():
                    # One exception object per caller: each one raises it in its own task.
                    failure = StoreUnavailable(f"archive commit failed ({type(exc).__name__})")
                    failure.__cause__ = exc
                    pending.done.set_exception(failure)
            return
        self._heads.update(heads)
        for pending, entry in zip(batch, entries, strict=True):
            if not pending.done.done():
                pending.done.set_result(entry)

    async def _head(self, thread_id: int) -> tuple[int, bytes]:
        async with self._store.session() as session:
            query = (
                select(ArchivedMessage.seq, ArchivedMessage.digest)
                .where(ArchivedMessage.thread_id == thread_id)
                .order_by(ArchivedMessage.seq.desc())
                .limit(1)
            )
            row = (await session.execute(query)).first()
            if row is not None:
                return (row[0], row[1])
            return await anchor(session, thread_id)

    async def verify(self, thread_id: int) -> int | None:
        """The seq of the first missing entry or of the first entry whose digest does not
        match, whichever comes first; None if intact (II.2).

        The chain starts at the thread's purge anchor (I.7): the last purged message's
        sequence and digest, or the genesis hash when nothing was purged.
        """
        async with self._store.session() as session:
            start = await anchor(session, thread_id)
            query = (
                select(ArchivedMessage)
                .where(ArchivedMessage.thread_id == thread_id)
                .order_by(ArchivedMessage.seq)
            )
            rows = list((await session.execute(query)).scalars())
        pairs = [(row_canonical(r), r.digest) for r in rows]
        broken = first_break(pairs, start[1])
        gap = next((i for i, r in enumerate(rows) if r.seq != start[0] + 1 + i), None)
        if gap is not None and (broken is None or gap <= broken):
            return start[0] + 1 + gap  # the first missing seq: a deleted row is named
        return rows[broken].seq if broken is not None else None

    async def query(self, q: ArchiveQuery) -> ArchivePage:
        """One page of a thread's archive in chronological order (XEP-0313 + XEP-0059)."""
        limit = max(0, min(q.limit, MAX_PAGE))
        async with self._store.session() as session:
            base = select(ArchivedMessage).where(ArchivedMessage.thread_id == q.thread_id)
            base = await self._filtered(session, base, q)
            # Ordered, so the capped count walks the (thread_id, id) index and stops at
            # the cap whatever the planner believes about the table's size.
            capped = (
                base.with_only_columns(ArchivedMessage.id)
                .order_by(ArchivedMessage.id)
                .limit(COUNT_CAP + 1)
            )
            count: int | None = (
                await session.execute(select(func.count()).select_from(capped.subquery()))
            ).scalar_one()
            if count is not None and count > COUNT_CAP:
                count = None
            if limit == 0:
                return ArchivePage([], count == 0, count)
            backwards = q.page_before is not None
            paged = base
            if q.page_after:
                paged = paged.where(ArchivedMessage.id > await self._row(session, q, q.page_after))
            if q.page_before:
                paged = paged.where(ArchivedMessage.id < await self._row(session, q, q.page_before))
            order = ArchivedMessage.id.desc() if backwards else ArchivedMessage.id.asc()
            rows = list((await session.execute(paged.order_by(order).limit(limit + 1))).scalars())
        complete = len(rows) <= limit
        rows = rows[:limit]
        if backwards:
            rows.reverse()
        return ArchivePage([_entry(r) for r in rows], complete, count)

    async def _filtered(
        self, session: AsyncSession, base: Select[Any], q: ArchiveQuery
    ) -> Select[Any]:
        col = ArchivedMessage
        for bound in (q.start, q.not_before):
            if bound is not None:
                base = base.where(col.at >= bound)
        if q.end is not None:
            base = base.where(col.at <= q.end)
        if q.sender is not None:
            base = base.where(col.sender == q.sender)
        if q.nick is not None:
            base = base.where(col.nick == q.nick)
        if q.ids:
            base = base.where(col.stanza_id.in_(q.ids))
        if q.after_id:
            base = base.where(col.id > await self._row(session, q, q.after_id))
        if q.before_id:
            base = base.where(col.id < await self._row(session, q, q.before_id))
        return base

    async def _row(self, session: AsyncSession, q: ArchiveQuery, stanza_id: str) -> int:
        """The row of a paging or range id the member may see; one from before their
        membership is as unknown as an id that never existed (no existence oracle, IV.2)."""
        query = select(ArchivedMessage.id).where(
            ArchivedMessage.thread_id == q.thread_id, ArchivedMessage.stanza_id == stanza_id
        )
        if q.not_before is not None:
            query = query.where(ArchivedMessage.at >= q.not_before)
        row = (await session.execute(query)).first()
        if row is None:
            raise UnknownId(stanza_id)
        return int(row[0])
