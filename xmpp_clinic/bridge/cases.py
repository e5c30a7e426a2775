"""Cases from the HIS (ADT) and the threads bound to them (I.6, I.7).

A case is a visit number (PV1-19) of a patient (PID-3) on a ward (PV1-3). A thread is
bound to at most one case (``threads create NAME --case VISIT``, or ``bridge bind``);
its FHIR resources and MDM documents then name that patient and encounter. Discharge
(A03) closes every bound thread, which starts its retention period (I.7). Every change
is an audit event naming the visit, never the patient's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from xmpp_clinic.archive.audit import AuditEvent, append
from xmpp_clinic.clock import as_utc, utcnow
from xmpp_clinic.retention.threads import ThreadRetentionService
from xmpp_clinic.store import Store
from xmpp_clinic.store.models.bridge import BridgeCase, BridgeThreadCase
from xmpp_clinic.threads import ThreadNotFound, ThreadService


class CaseError(Exception):
    """A case operation that cannot be done; ``str()`` is one sentence."""


@dataclass(frozen=True)
class Case:
    visit: str
    patient: str
    ward: str
    admitted_at: datetime | None
    discharged_at: datetime | None


@dataclass(frozen=True)
class Binding:
    """A thread and the case it belongs to (None: not bound)."""

    thread: str
    case: Case | None


def _case(row: BridgeCase) -> Case:
    return Case(row.visit, row.patient, row.ward, row.admitted_at, row.discharged_at)


class CaseBook:
    """Admit, update, discharge and merge cases; bind threads to them."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._threads = ThreadService(store, user_domains=())
        self._retention = ThreadRetentionService(store)

    async def admit(
        self, visit: str, patient: str, ward: str, *, at: datetime | None, actor: str
    ) -> Case:
        """A01: the case exists (again) for ``patient`` on ``ward``."""
        async with self._store.session() as session:
            row = await session.get(BridgeCase, visit)
            if row is None:
                row = BridgeCase(visit=visit, patient=patient, ward=ward)
                session.add(row)
            row.patient, row.ward, row.updated_at = patient, ward, utcnow()
            row.admitted_at = as_utc(at) if at else utcnow()
            row.discharged_at = None
            await append(session, AuditEvent(actor, "bridge.case-admitted", "adt-a01", visit))
            return _case(row)

    async def update(self, visit: str, patient: str, ward: str, *, actor: str) -> Case:
        """A08: patient or ward of a known case changed; an unknown case is created."""
        async with self._store.session() as session:
            row = await session.get(BridgeCase, visit)
            if row is None:
                row = BridgeCase(visit=visit, patient=patient, ward=ward)
                session.add(row)
            row.patient, row.ward, row.updated_at = patient, ward or row.ward, utcnow()
            await append(session, AuditEvent(actor, "bridge.case-updated", "adt-a08", visit))
            return _case(row)

    async def discharge(self, visit: str, *, at: datetime | None, actor: str) -> list[str]:
        """A03: the case ends; each bound thread is closed (retention starts, I.7)."""
        when = as_utc(at) if at else utcnow()
        async with self._store.session() as session:
            row = await session.get(BridgeCase, visit)
            if row is None:
                raise CaseError(f"unknown visit {visit!r}")
            row.discharged_at, row.updated_at = when, utcnow()
            await append(session, AuditEvent(actor, "bridge.case-discharged", "adt-a03", visit))
            threads = list(
                await session.scalars(
                    select(BridgeThreadCase.thread).where(BridgeThreadCase.visit == visit)
                )
            )
        closed = []
        for thread in sorted(threads):
            try:
                await self._retention.close(thread, actor=actor, at=when)
            except ThreadNotFound:
                continue  # deleted since it was bound: nothing left to keep
            closed.append(thread)
        return closed

    async def merge(self, surviving: str, merged: str, *, actor: str) -> int:
        """A40: the cases of patient ``merged`` now belong to ``surviving``; how many moved."""
        async with self._store.session() as session:
            moved = await session.execute(
                update(BridgeCase)
                .where(BridgeCase.patient == merged)
                .values(patient=surviving, updated_at=utcnow())
            )
            count = int(moved.rowcount)  # type: ignore[attr-defined]
            await append(
                session, AuditEvent(actor, "bridge.patients-merged", f"moved-{count}", surviving)
            )
            return count

    async def bind(self, thread: str, visit: str, *, actor: str) -> None:
        """Bind ``thread`` to case ``visit`` (the case may arrive later by ADT)."""
        await self._threads.get(thread)  # ThreadNotFound names it
        async with self._store.session() as session:
            row = await session.get(BridgeThreadCase, thread)
            if row is None:
                session.add(BridgeThreadCase(thread=thread, visit=visit))
            else:
                row.visit, row.bound_at = visit, utcnow()
            await append(session, AuditEvent(actor, "bridge.thread-bound", visit, thread))

    async def case(self, visit: str) -> Case | None:
        """The case of ``visit``, None if the HIS never sent it."""
        async with self._store.session() as session:
            row = await session.get(BridgeCase, visit)
            return _case(row) if row else None

    async def threads_of(self, visit: str) -> list[str]:
        """The threads bound to ``visit``."""
        async with self._store.session() as session:
            found = await session.scalars(
                select(BridgeThreadCase.thread).where(BridgeThreadCase.visit == visit)
            )
            return sorted(found)

    async def case_of(self, thread: str) -> Case | None:
        async with self._store.session() as session:
            visit = await session.scalar(
                select(BridgeThreadCase.visit).where(BridgeThreadCase.thread == thread)
            )
            row = await session.get(BridgeCase, visit) if visit else None
            return _case(row) if row else (Case(visit, "", "", None, None) if visit else None)

    async def bindings(self) -> dict[str, Case]:
        """Every bound thread and its case (a case not yet admitted has no patient)."""
        async with self._store.session() as session:
            pairs = (
                await session.execute(select(BridgeThreadCase.thread, BridgeThreadCase.visit))
            ).all()
            cases = {r.visit: _case(r) for r in (await session.scalars(select(BridgeCase))).all()}
        return {t: cases.get(v, Case(v, "", "", None, None)) for t, v in pairs}
