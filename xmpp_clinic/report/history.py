"""Reports kept over time, hash-chained like the audit log, and what changed (IV.4).

Each saved report's hash commits to its body and to every report saved before it
(``archive.chain``), so a regular review can show the measures as they were, and a
deleted or edited report breaks the chain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import func, select

from xmpp_clinic.archive.chain import GENESIS, first_break
from xmpp_clinic.archive.chain import link as chain_link
from xmpp_clinic.report.model import Report
from xmpp_clinic.store import Store
from xmpp_clinic.store.models.report import SavedReport


def canonical(report: Report) -> str:
    """The report's JSON with sorted keys: the bytes the chain commits to."""
    return json.dumps(report.as_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Saved:
    seq: int
    hash: str
    report: Report


class ReportHistory:
    """The saved reports of one gateway, in the store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def save(self, report: Report) -> Saved:
        """Append ``report`` to the chain."""
        body = canonical(report)
        async with self._store.session() as session:
            last = (
                await session.execute(select(SavedReport).order_by(SavedReport.seq.desc()).limit(1))
            ).scalar_one_or_none()
            seq = 1 if last is None else last.seq + 1
            previous = GENESIS if last is None else last.hash
            digest = chain_link(previous, body.encode())
            session.add(SavedReport(seq=seq, body=body, hash=digest))
        return Saved(seq, digest.hex(), report)

    async def latest(self, before: int | None = None) -> Saved | None:
        """The newest saved report (or the newest before seq ``before``)."""
        query = select(SavedReport).order_by(SavedReport.seq.desc()).limit(1)
        if before is not None:
            query = query.where(SavedReport.seq < before)
        async with self._store.session() as session:
            row = (await session.execute(query)).scalar_one_or_none()
        if row is None:
            return None
        return Saved(row.seq, row.hash.hex(), Report.from_json(json.loads(row.body)))

    async def count(self) -> int:
        async with self._store.session() as session:
            return int((await session.execute(select(func.count(SavedReport.seq)))).scalar_one())

    async def verify(self) -> int | None:
        """The seq of the first saved report whose hash does not match, or None."""
        async with self._store.session() as session:
            rows = (await session.execute(select(SavedReport).order_by(SavedReport.seq))).scalars()
            entries = [(row.seq, row.body.encode(), row.hash) for row in rows]
        for expected, (seq, _body, _hash) in enumerate(entries, start=1):
            if seq != expected:
                return expected
        index = first_break((body, digest) for _seq, body, digest in entries)
        return None if index is None else entries[index][0]


# Evidence that changes with every report only because time passed: not a change.
AGES = frozenset({"server facts observed"})


@dataclass(frozen=True)
class Change:
    """One difference between two reports."""

    id: str  # a requirement ID, or "weakened"
    before: str
    after: str


def diff(old: Report, new: Report) -> list[Change]:
    """Status changes per ID (with the reason), evidence changes, weakened controls."""
    changes: list[Change] = []
    before = {w for w in old.weakened}
    after = {w for w in new.weakened}
    changes += [Change("weakened", "", w) for w in sorted(after - before)]
    changes += [Change("weakened", w, "") for w in sorted(before - after)]
    old_by_id = {f.id: f for f in old.findings}
    for finding in new.findings:
        was = old_by_id.get(finding.id)
        if was is None:
            changes.append(Change(finding.id, "", f"{finding.status.value}: {finding.reason}"))
            continue
        if (was.status, was.reason) != (finding.status, finding.reason):
            changes.append(
                Change(
                    finding.id,
                    f"{was.status.value}: {was.reason}",
                    f"{finding.status.value}: {finding.reason}",
                )
            )
        old_ev = {e.label: e.value for e in was.evidence}
        for piece in finding.evidence:
            if piece.label in AGES:
                continue
            if old_ev.get(piece.label, piece.value) != piece.value:
                changes.append(
                    Change(
                        finding.id,
                        f"{piece.label} = {old_ev[piece.label]}",
                        f"{piece.label} = {piece.value}",
                    )
                )
    return changes
