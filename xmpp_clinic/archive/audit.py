"""The audit log: append-only, hash-chained events (I.5, II.2, IV.4).

An event records who did what, when, why (a reason code) and to what (the subject: a
device, a thread) -- never message content, never keys. Each event's hash commits to
the one before it (:mod:`xmpp_clinic.archive.chain`), its sequence number is part of
what is hashed, and one head row holds the last sequence number and hash. So
:func:`verify` finds a modified, deleted (also the newest), inserted or reordered event.

Limit: the chain is not keyed. Someone who can write the database can rebuild every
hash after a change; record the head that ``xmpp-clinic audit verify`` prints somewhere
else (a ticket, a signed report) and compare it with ``--expect-head`` to close that gap.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from xmpp_clinic.archive.chain import GENESIS, link
from xmpp_clinic.clock import as_utc, utcnow
from xmpp_clinic.store.engine import Store
from xmpp_clinic.store.models.audit import AuditEventRecord, AuditHead

HEAD_ID = 1
_LIMITS = {"actor": 320, "action": 64, "reason": 64, "subject": 500, "note": 500}


class AuditUnavailable(Exception):
    """The head row is missing while events exist: the log was tampered with."""


@dataclass(frozen=True)
class AuditEvent:
    """What to record: ``action`` like ``device.revoked``, ``reason`` a stable code."""

    actor: str  # "cli:<user>", "xmpp:<admin JID>", "gateway", or the sender's bare JID
    action: str
    reason: str
    subject: str
    note: str = ""  # operator's words (e.g. "lost phone"); never message content


@dataclass(frozen=True)
class RecordedEvent:
    seq: int
    at: datetime
    actor: str
    action: str
    reason: str
    subject: str
    note: str
    hash: bytes

    def as_json(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "at": _stamp(self.at),
            "actor": self.actor,
            "action": self.action,
            "reason": self.reason,
            "subject": self.subject,
            "note": self.note,
            "hash": self.hash.hex(),
        }


@dataclass(frozen=True)
class ChainReport:
    """The outcome of :func:`verify`; ``broken_seq`` is the first entry that fails."""

    intact: bool
    count: int
    head_seq: int
    head_hash: str
    broken_seq: int | None = None
    problem: str | None = None
    broken: RecordedEvent | None = None


def _stamp(at: datetime) -> str:
    return as_utc(at).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(seq: int, at: datetime, fields: dict[str, str]) -> bytes:
    """The bytes that are hashed: sequence number, time (UTC, microseconds), fields."""
    body = {"seq": seq, "at": _stamp(at), **fields}
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def _fields(record: AuditEventRecord) -> dict[str, str]:
    return {name: getattr(record, name) for name in _LIMITS}


def _recorded(record: AuditEventRecord) -> RecordedEvent:
    return RecordedEvent(
        record.seq,
        record.at,
        record.actor,
        record.action,
        record.reason,
        record.subject,
        record.note,
        record.hash,
    )


async def _lock_head(session: AsyncSession) -> AuditHead:
    # The UPDATE comes first so that it takes the write lock (SQLite) or row lock
    # (PostgreSQL) before the head is read: concurrent appenders queue up here.
    bumped = await session.execute(
        update(AuditHead).where(AuditHead.id == HEAD_ID).values(seq=AuditHead.seq + 1)
    )
    if bumped.rowcount == 0:  # type: ignore[attr-defined]
        if (await session.scalar(select(func.count()).select_from(AuditEventRecord))) != 0:
            raise AuditUnavailable("the audit head is missing; run 'xmpp-clinic audit verify'")
        head = AuditHead(id=HEAD_ID, seq=1, hash=GENESIS, base_seq=0, base_hash=GENESIS)
        session.add(head)
        return head
    locked = await session.get(AuditHead, HEAD_ID, populate_existing=True)
    assert locked is not None
    return locked


async def append(session: AsyncSession, event: AuditEvent, at: datetime | None = None) -> int:
    """Append ``event`` inside the caller's transaction; returns its sequence number."""
    head = await _lock_head(session)
    when = as_utc(at or utcnow())
    fields = {name: str(getattr(event, name))[:limit] for name, limit in _LIMITS.items()}
    digest = link(head.hash, canonical(head.seq, when, fields))
    session.add(AuditEventRecord(seq=head.seq, at=when, hash=digest, **fields))
    head.hash = digest
    await session.flush()
    return head.seq


async def events(
    session: AsyncSession, *, after: int = 0, limit: int | None = None, subject: str | None = None
) -> list[RecordedEvent]:
    """Events in chain order, optionally after a sequence number or about one subject."""
    query = select(AuditEventRecord).where(AuditEventRecord.seq > after)
    if subject is not None:
        query = query.where(AuditEventRecord.subject == subject)
    query = query.order_by(AuditEventRecord.seq).limit(limit)
    return [_recorded(row) for row in (await session.scalars(query)).all()]


async def verify(session: AsyncSession, batch: int = 1000) -> ChainReport:
    """Walk the chain from its base to the head; the first broken entry, or intact (II.2)."""
    head = await session.get(AuditHead, HEAD_ID)
    if head is None:
        count = await session.scalar(select(func.count()).select_from(AuditEventRecord))
        intact = count == 0
        problem = None if intact else "the audit head record is missing"
        return ChainReport(intact, int(count or 0), 0, GENESIS.hex(), None, problem)
    previous, expected = head.base_hash, head.base_seq + 1
    last = head.base_seq
    while True:
        rows = await events(session, after=last, limit=batch)
        for row in rows:
            problem = _check(row, expected, previous)
            if problem is not None:
                return _broken(head, expected - head.base_seq - 1, expected, problem, row)
            previous, expected = row.hash, expected + 1
        if len(rows) < batch:
            break
        last = rows[-1].seq
    count = expected - head.base_seq - 1
    if expected - 1 != head.seq:
        problem = f"the head says {head.seq} events, the log ends at {expected - 1}"
        return _broken(head, count, min(expected, head.seq + 1), problem + " (deleted)", None)
    if previous != head.hash:
        return _broken(head, count, head.seq, "the last event does not match the head", None)
    return ChainReport(True, count, head.seq, head.hash.hex())


def _check(row: RecordedEvent, expected: int, previous: bytes) -> str | None:
    if row.seq != expected:
        return f"event {expected} is missing (next is {row.seq})"
    fields = {name: getattr(row, name) for name in _LIMITS}
    if link(previous, canonical(row.seq, row.at, fields)) != row.hash:
        return f"event {row.seq} was modified, or events were reordered or inserted"
    return None


def _broken(
    head: AuditHead, count: int, seq: int, problem: str, row: RecordedEvent | None
) -> ChainReport:
    broken = row if row is not None and row.seq == seq else None
    return ChainReport(False, count, head.seq, head.hash.hex(), seq, problem, broken)


async def prune(session: AsyncSession, before: datetime) -> int:
    """Delete events older than ``before`` (II.3) and move the chain's base past them."""
    query = select(AuditEventRecord.seq).where(AuditEventRecord.at < before)
    last = await session.scalar(query.order_by(AuditEventRecord.seq.desc()).limit(1))
    return 0 if last is None else await prune_through(session, last)


async def prune_through(session: AsyncSession, seq: int) -> int:
    """Delete events up to ``seq`` and move the chain's base past them (I.7, II.3).

    Also how a restore re-applies a prune recorded in a receipt after its backup.
    """
    last = await session.get(AuditEventRecord, seq)
    if last is None:
        return 0
    await _lock_head(session)
    head = await session.get(AuditHead, HEAD_ID, populate_existing=True)
    assert head is not None
    head.seq -= 1  # undo the lock's increment: pruning appends nothing
    removed = await session.execute(
        delete(AuditEventRecord).where(AuditEventRecord.seq <= last.seq)
    )
    head.base_seq, head.base_hash = last.seq, last.hash
    return int(removed.rowcount)  # type: ignore[attr-defined]


class AuditLog:
    """The audit log over the store, for callers without a transaction of their own."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def record(self, event: AuditEvent) -> int:
        async with self._store.session() as session:
            return await append(session, event)

    async def events(
        self, *, after: int = 0, limit: int | None = None, subject: str | None = None
    ) -> Sequence[RecordedEvent]:
        async with self._store.session() as session:
            return await events(session, after=after, limit=limit, subject=subject)

    async def verify(self) -> ChainReport:
        async with self._store.session() as session:
            return await verify(session)


@dataclass(frozen=True)
class Rewrite:
    """What :func:`rewrite` changed: which events, and the chain head before and after."""

    seqs: tuple[int, ...]
    old_head: str
    new_head: str

    def as_json(self) -> dict[str, object]:
        return {"events": list(self.seqs), "old_head": self.old_head, "new_head": self.new_head}


async def rewrite(session: AsyncSession, scrub: Callable[[str], str]) -> Rewrite:
    """Apply ``scrub`` to every event's actor, subject and note, then re-chain (I.7, II.3).

    For erasure: a person's or a thread's name is replaced by a pseudonym in the events
    that name them, and every hash from the first changed event on is recomputed. The
    head lock is held throughout, so no append interleaves. The chain verifies again;
    the old and new heads go into the signed erasure receipt, which is what ties a head
    recorded earlier (``--expect-head``) to the rewritten chain.
    """
    await _lock_head(session)
    head = await session.get(AuditHead, HEAD_ID, populate_existing=True)
    assert head is not None
    head.seq -= 1  # undo the lock's increment: rewriting appends nothing
    old_head = f"{head.seq}:{head.hash.hex()}"
    rows = (
        await session.scalars(
            select(AuditEventRecord)
            .where(AuditEventRecord.seq > head.base_seq)
            .order_by(AuditEventRecord.seq)
        )
    ).all()
    changed: list[int] = []
    previous = head.base_hash
    for row in rows:
        fields = {"actor": row.actor, "subject": row.subject, "note": row.note}
        scrubbed = {name: scrub(value) for name, value in fields.items()}
        if scrubbed != fields:
            row.actor, row.subject, row.note = (
                scrubbed["actor"], scrubbed["subject"], scrubbed["note"]
            )  # fmt: skip
            changed.append(row.seq)
        if changed:
            row.hash = link(previous, canonical(row.seq, row.at, _fields(row)))
        previous = row.hash
    if changed:
        head.hash = previous
    await session.flush()
    return Rewrite(tuple(changed), old_head, f"{head.seq}:{head.hash.hex()}")
