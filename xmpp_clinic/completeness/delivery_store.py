"""Message deliveries in the store: written as the gateway relays, serves MAM and sees
displayed markers; read for notices, "who has my message?" and the CLI (II.2)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Table, delete, insert, select, update

from xmpp_clinic.completeness.delivery import Delivery
from xmpp_clinic.store import Store
from xmpp_clinic.store.models.completeness import DeliveryRow


def _delivery(row: DeliveryRow) -> Delivery:
    return Delivery(
        row.thread, row.seq, row.stanza_id, row.sender, row.member, row.at,
        row.delivered_at, row.fetched_at, row.read_at, row.notified_at,
    )  # fmt: skip


_TABLE: Table = DeliveryRow.__table__  # type: ignore[assignment]


class Deliveries:
    """Store access for :class:`Delivery` (one row per message and member)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def rows(
        thread: str,
        seq: int,
        stanza_id: str,
        sender: str,
        at: datetime,
        members: Iterable[str],
        live: Iterable[str],
    ) -> list[dict[str, Any]]:
        """The rows of one relayed message: one per member but the sender; ``live`` got
        it now."""
        got = set(live)
        return [
            {"thread": thread, "seq": seq, "stanza_id": stanza_id, "sender": sender,
             "member": member, "at": at, "delivered_at": at if member in got else None}
            for member in sorted(set(members) - {sender})
        ]  # fmt: skip

    async def insert(self, rows: list[dict[str, Any]]) -> None:
        """Rows of :meth:`rows`, of any number of messages, in one transaction (one
        multi-row insert: the relay writes a row per member of every message)."""
        if rows:
            async with self.store.writing() as connection:
                # The table, not the ORM class: a plain executemany, without the ORM's
                # bulk bookkeeping per row (a third of the cost, py-spy; issue 13).
                await connection.execute(insert(_TABLE), rows)

    async def fetched(self, member: str, stanza_ids: Iterable[str], at: datetime) -> None:
        """``member``'s MAM query returned these messages."""
        ids = list(stanza_ids)
        if not ids:
            return
        async with self.store.session() as session:
            await session.execute(
                update(DeliveryRow)
                .where(
                    DeliveryRow.member == member,
                    DeliveryRow.stanza_id.in_(ids),
                    DeliveryRow.fetched_at.is_(None),
                )
                .values(fetched_at=at)
            )

    async def read(self, thread: str, member: str, stanza_id: str, at: datetime) -> int:
        """A displayed marker for ``stanza_id``: it and every earlier message are read."""
        async with self.store.session() as session:
            seq = await session.scalar(
                select(DeliveryRow.seq).where(
                    DeliveryRow.thread == thread,
                    DeliveryRow.member == member,
                    DeliveryRow.stanza_id == stanza_id,
                )
            )
            if seq is None:
                return 0
            result = await session.execute(
                update(DeliveryRow)
                .where(
                    DeliveryRow.thread == thread,
                    DeliveryRow.member == member,
                    DeliveryRow.seq <= seq,
                    DeliveryRow.read_at.is_(None),
                )
                .values(read_at=at)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    async def outstanding(self) -> list[Delivery]:
        """Rows neither received, fetched nor read, and not yet notified."""
        query = select(DeliveryRow).where(
            DeliveryRow.delivered_at.is_(None),
            DeliveryRow.fetched_at.is_(None),
            DeliveryRow.read_at.is_(None),
            DeliveryRow.notified_at.is_(None),
        )
        return await self._rows(query.order_by(DeliveryRow.at))

    async def notified(self, thread: str, member: str, at: datetime) -> None:
        """``member`` was told about ``thread``: none of its waiting rows owes another."""
        async with self.store.session() as session:
            await session.execute(
                update(DeliveryRow)
                .where(
                    DeliveryRow.thread == thread,
                    DeliveryRow.member == member,
                    DeliveryRow.notified_at.is_(None),
                )
                .values(notified_at=at)
            )

    async def of_message(self, stanza_id: str) -> list[Delivery]:
        return await self._rows(select(DeliveryRow).where(DeliveryRow.stanza_id == stanza_id))

    async def last_of(self, thread: str, sender: str) -> str | None:
        """The archive id of ``sender``'s latest message in ``thread``."""
        async with self.store.session() as session:
            found = await session.scalar(
                select(DeliveryRow.stanza_id)
                .where(DeliveryRow.thread == thread, DeliveryRow.sender == sender)
                .order_by(DeliveryRow.seq.desc())
                .limit(1)
            )
            return str(found) if found is not None else None

    async def in_thread(self, thread: str, since: datetime | None = None) -> list[Delivery]:
        query = select(DeliveryRow).where(DeliveryRow.thread == thread)
        if since is not None:
            query = query.where(DeliveryRow.at >= since)
        return await self._rows(query.order_by(DeliveryRow.seq, DeliveryRow.member))

    async def forget_before(self, before: datetime) -> int:
        """Delete rows of messages relayed before ``before`` (delivery_records_days, I.7)."""
        async with self.store.session() as session:
            result = await session.execute(delete(DeliveryRow).where(DeliveryRow.at < before))
            return int(getattr(result, "rowcount", 0) or 0)

    async def _rows(self, query: Select[DeliveryRow]) -> list[Delivery]:
        async with self.store.session() as session:
            return [_delivery(row) for row in await session.scalars(query)]
