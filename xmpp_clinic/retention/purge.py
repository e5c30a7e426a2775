"""The purge: messages past their period, old audit metadata, stale devices (I.7, IV.8, II.3).

One run decides per thread what is due (:mod:`.policy`), deletes it in batches from the
front of the chain (:mod:`xmpp_clinic.archive.purge`) together with the rows that belong
to that range (delivery records, settled part sets, documentation copies:
:mod:`.linked`), deletes delivery records past ``retention.delivery_records_days``,
prunes audit events older than
``retention.audit_metadata_days`` (the audit chain's base moves past them), forgets
pending and inactive devices, then writes one signed receipt and one audit event
(``retention.purged``, subject ``receipt:<id>``: the event names no thread or person).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from xmpp_clinic.archive import audit
from xmpp_clinic.archive.purge import PurgedRange, due_range, purge_through
from xmpp_clinic.clock import utcnow
from xmpp_clinic.retention.linked import LinkedCounts, LinkedPurger, orphan_documentation
from xmpp_clinic.retention.policy import ThreadPolicy, metadata_cutoffs, thread_policy
from xmpp_clinic.retention.receipts import ReceiptBook, SignedReceipt
from xmpp_clinic.retention.server_mam import ServerArchive, ServerPurge, ServerRequest
from xmpp_clinic.settings.retention import RetentionSettings
from xmpp_clinic.store import Store
from xmpp_clinic.store.changes import bump
from xmpp_clinic.store.models.audit import AuditEventRecord, AuditHead
from xmpp_clinic.store.models.devices import DeviceRecord
from xmpp_clinic.store.models.retention import ThreadRetention
from xmpp_clinic.store.models.threads import Member, Thread

PURGED = "retention.purged"
MEMBER_REMOVED = "thread.member-removed"  # threads/events.py ThreadEvent.MEMBER_REMOVED
KEPT = (
    "Nothing is kept of the deleted messages but their count, sequence range and the "
    "chain anchor; the server's own archive is purged separately (see server items)."
)

Progress = Callable[[int], None]


@dataclass(frozen=True)
class ThreadDue:
    """What a purge would remove from one thread now."""

    thread_id: int
    name: str
    policy: ThreadPolicy
    cutoff: datetime | None
    first: int
    last: int
    count: int

    @property
    def through(self) -> int:
        """The last seq gone after a purge now: the anchor, or the last one due."""
        return max(self.first - 1, self.last)


@dataclass
class PurgeOutcome:
    """What one run did (or, for ``--dry-run``, would do)."""

    threads: list[ThreadDue] = field(default_factory=list)
    ranges: list[PurgedRange] = field(default_factory=list)
    audit_events: int = 0
    devices: int = 0
    linked: LinkedCounts = field(default_factory=LinkedCounts)
    server: list[ServerPurge] = field(default_factory=list)
    receipt: SignedReceipt | None = None

    @property
    def messages(self) -> int:
        return sum(r.count for r in self.ranges)


class Purger:
    """Runs purges over the store; the only code that applies retention periods (I.7)."""

    def __init__(
        self,
        store: Store,
        settings: RetentionSettings,
        receipts: ReceiptBook,
        *,
        server: ServerArchive | None = None,
        component: str | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._receipts = receipts
        self._server = server  # with ``component``: also purge the server's copies
        self._component = component
        self._linked = LinkedPurger(store, settings.purge_batch)

    async def due(self, now: datetime, thread: str | None = None) -> list[ThreadDue]:
        """Per thread: its policy, cutoff and the range a purge would remove."""
        async with self._store.session() as session:
            query = select(Thread.id, Thread.name, ThreadRetention).outerjoin(
                ThreadRetention, ThreadRetention.thread_id == Thread.id
            )
            if thread is not None:
                query = query.where(Thread.name == thread)
            rows = (await session.execute(query.order_by(Thread.name))).all()
            found: list[ThreadDue] = []
            for thread_id, name, own in rows:  # one session for all: 10 000 threads
                policy = thread_policy(
                    self._settings,
                    own.messages_minutes if own is not None else None,
                    own.closed_at if own is not None else None,
                )
                cutoff = policy.cutoff(now)
                first, last, count = (
                    await due_range(session, thread_id, cutoff) if cutoff else (0, 0, 0)
                )
                found.append(ThreadDue(thread_id, name, policy, cutoff, first, last, count))
        return found

    async def run(
        self,
        *,
        actor: str,
        rule: str,
        thread: str | None = None,
        dry_run: bool = False,
        now: datetime | None = None,
        progress: Progress | None = None,
    ) -> PurgeOutcome:
        """Purge what is due; a signed receipt and an audit event record the run (I.7)."""
        now = now or utcnow()
        outcome = PurgeOutcome(threads=await self.due(now, thread))
        cuts = metadata_cutoffs(self._settings, now)
        if dry_run:
            async with self._store.session() as session:
                query = select(func.count()).select_from(AuditEventRecord)
                found = await session.scalar(query.where(AuditEventRecord.at < cuts.audit))
                outcome.audit_events = int(found or 0)
            return outcome
        items: list[dict[str, Any]] = []
        with_rows = await self._linked.threads_with_rows()
        for due in outcome.threads:
            if due.cutoff is None:
                continue
            through = due.through
            if through == 0 and due.name not in with_rows:
                # Never purged, nothing due, no part sets or documentation: nothing of it
                # can be deleted (its delivery records all have a seq above 0).
                continue
            if due.count:
                purged = await purge_through(
                    self._store, due.thread_id, through,
                    batch=self._settings.purge_batch, progress=progress,
                    rest=self._settings.purge_rest,
                )  # fmt: skip
                if purged is not None:
                    outcome.ranges.append(purged)
                    items.append(
                        {"what": "messages", "thread": due.name, "policy": due.policy.describe(),
                         "cutoff": due.cutoff.isoformat(), **purged.as_json()}
                    )  # fmt: skip
            items += await self._linked.with_range(
                outcome.linked, due.name, due.thread_id, through, due.cutoff
            )
        if thread is None:
            default = thread_policy(self._settings, None, None).cutoff(now)
            assert default is not None
            names = {d.name for d in outcome.threads}
            for name in await orphan_documentation(self._store, names):
                items += await self._linked.with_range(outcome.linked, name, None, 0, default)
            items += await self._metadata(outcome, cuts.audit, cuts.pending_devices,
                                          cuts.inactive_devices)  # fmt: skip
            items += await self._linked.expired(outcome.linked, cuts.delivery_records)
        server_items: list[dict[str, Any]] = []
        if self._server is not None and self._component is not None and thread is None:
            server_items = await self._server_purge(outcome, now)
        if not items and not any(i["done"] or i["action"] == "remove-peer" for i in server_items):
            return outcome  # nothing deleted: no receipt, no event (a quiet schedule)
        items += server_items
        receipt = self._receipts.sign("purge", actor, items, rule=rule, kept=KEPT)
        async with self._store.session() as session:
            session.add(self._receipts.row(receipt))
            linked = outcome.linked
            note = (
                f"{outcome.messages} messages, {outcome.audit_events} audit events, "
                f"{outcome.devices} devices, {linked.deliveries} delivery records, "
                f"{linked.part_sets} part sets, {linked.documentation} documentation copies"
            )
            await audit.append(
                session, audit.AuditEvent(actor, PURGED, rule, f"receipt:{receipt.id}", note)
            )
        self._receipts.write_file(receipt)
        outcome.receipt = receipt
        return outcome

    async def _server_purge(self, outcome: PurgeOutcome, now: datetime) -> list[dict[str, Any]]:
        """The server's MAM copies of ended memberships and expired ranges (I.7, IV.8).

        Ended memberships are the ``thread.member-removed`` events since the last purge
        event (each run that handles one writes a purge event, so none is handled twice).
        """
        assert self._server is not None
        peer = f"@{self._component}"
        async with self._store.session() as session:
            last = await session.scalar(
                select(func.max(AuditEventRecord.seq)).where(AuditEventRecord.action == PURGED)
            )
            removed = (
                await session.execute(
                    select(AuditEventRecord.subject, AuditEventRecord.note).where(
                        AuditEventRecord.action == MEMBER_REMOVED,
                        AuditEventRecord.seq > (last or 0),
                    )
                )
            ).all()
            requests = [
                ServerRequest(jid, thread + peer)
                for thread, jid in removed
                if not jid.startswith("erased-") and not thread.startswith("erased-")
            ]
            expiring = [d for d in outcome.threads if d.cutoff is not None]
            for due in expiring if self._server.can_expire else []:
                members = await session.scalars(
                    select(Member.jid).where(Member.thread_id == due.thread_id)
                )
                requests += [ServerRequest(j, due.name + peer, due.cutoff) for j in members]
        outcome.server = await self._server.purge(requests)
        if expiring and not self._server.can_expire:
            outcome.server += await self._server.purge([ServerRequest("*", "*" + peer, now)])
        return [{"what": "server-archive", **r.as_json()} for r in outcome.server
                if r.action == "remove-peer" or r.count or not r.done]  # fmt: skip

    async def _metadata(
        self, outcome: PurgeOutcome, audit_cut: datetime, pending: datetime, inactive: datetime
    ) -> list[dict[str, Any]]:
        """Audit events and devices past their periods (II.3, IV.8)."""
        items: list[dict[str, Any]] = []
        async with self._store.session() as session:
            before = await session.get(AuditHead, audit.HEAD_ID)
            base = before.base_seq if before is not None else 0
            outcome.audit_events = await audit.prune(session, audit_cut)
            if outcome.audit_events:
                head = await session.get(AuditHead, audit.HEAD_ID)
                assert head is not None
                items.append(
                    {"what": "audit-events", "first_seq": base + 1, "last_seq": head.base_seq,
                     "count": outcome.audit_events, "anchor": head.base_hash.hex(),
                     "cutoff": audit_cut.isoformat()}
                )  # fmt: skip
        async with self._store.session() as session:
            outcome.devices = await forget_devices(session, pending, inactive)
            if outcome.devices:
                items.append(
                    {"what": "devices", "count": outcome.devices,
                     "pending_cutoff": pending.isoformat(), "inactive_cutoff": inactive.isoformat()}
                )  # fmt: skip
        return items


async def forget_devices(session: AsyncSession, pending: datetime, inactive: datetime) -> int:
    """Delete devices pending since before ``pending`` or unused since before ``inactive``
    (IV.8); a running gateway reloads the registry ("devices" counter)."""
    stale = or_(
        and_(DeviceRecord.state == "pending",
             func.coalesce(DeviceRecord.last_seen, DeviceRecord.first_seen) < pending),
        and_(DeviceRecord.state != "pending",
             func.coalesce(DeviceRecord.last_seen, DeviceRecord.state_changed_at) < inactive),
    )  # fmt: skip
    removed = await session.execute(delete(DeviceRecord).where(stale))
    count = int(removed.rowcount)  # type: ignore[attr-defined]
    if count:
        await bump(session, "devices")
    return count
