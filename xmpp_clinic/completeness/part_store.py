"""Part sets in the store: read one, write one, find those due for a notice (II.2).

The state of every set lives in ``part_sets`` (store/models/completeness.py), so a set
begun before a restart is still checked and announced after it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select

from xmpp_clinic.completeness.parts import PartSet
from xmpp_clinic.store import Store
from xmpp_clinic.store.models.completeness import PartSetRow


def _numbers(raw: str) -> frozenset[int]:
    return frozenset(int(n) for n in raw.split(",") if n)


def _part_set(row: PartSetRow) -> PartSet:
    return PartSet(
        row.thread, row.set_id, row.sender, row.nick, row.of, _numbers(row.received),
        row.first_at, row.missing_noticed, row.complete_noticed,
    )  # fmt: skip


class PartSets:
    """Store access for :class:`PartSet` (one row per thread and set id)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, thread: str, set_id: str) -> PartSet | None:
        async with self.store.session() as session:
            row = await session.scalar(
                select(PartSetRow).where(PartSetRow.thread == thread, PartSetRow.set_id == set_id)
            )
            return _part_set(row) if row is not None else None

    async def save(self, part_set: PartSet) -> None:
        """Insert or update ``part_set`` (its thread and set id name the row)."""
        async with self.store.session() as session:
            row = await session.scalar(
                select(PartSetRow).where(
                    PartSetRow.thread == part_set.thread, PartSetRow.set_id == part_set.set_id
                )
            )
            if row is None:
                row = PartSetRow(thread=part_set.thread, set_id=part_set.set_id)
                session.add(row)
            row.sender, row.nick, row.of = part_set.sender, part_set.nick, part_set.of
            row.received = ",".join(str(n) for n in sorted(part_set.received))
            row.first_at = part_set.first_at
            row.missing_noticed = part_set.missing_noticed
            row.complete_noticed = part_set.complete_noticed

    async def waiting(self, now: datetime, timeout_seconds: float) -> list[PartSet]:
        """Sets owed a notice: overdue and unannounced, or completed after an announcement."""
        cutoff = now - timedelta(seconds=timeout_seconds)
        async with self.store.session() as session:
            rows = await session.scalars(
                select(PartSetRow)
                .where(PartSetRow.complete_noticed.is_(False), PartSetRow.first_at <= cutoff)
                .order_by(PartSetRow.first_at)
            )
            found = [_part_set(r) for r in rows]
        return [s for s in found if s.overdue(now, timeout_seconds) or s.late_complete]

    async def forget_before(self, before: datetime) -> int:
        """Delete sets whose first part is older than ``before`` (retention, I.7)."""
        async with self.store.session() as session:
            result = await session.execute(delete(PartSetRow).where(PartSetRow.first_at < before))
            return int(getattr(result, "rowcount", 0) or 0)
