"""The device registry service: approval, revocation, expiry, discovery results (I.4, I.5, III.3).

Every state change is one transaction that also appends an audit event, queues the
person's notice and bumps the "devices" change counter, so a running gateway applies a
change made by the CLI to the very next message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from xmpp_clinic.clock import utcnow
from xmpp_clinic.config import PolicySettings
from xmpp_clinic.jids import InvalidJid, bare_jid
from xmpp_clinic.limits import MAX_VALID_DAYS, MIN_VALID_DAYS
from xmpp_clinic.omemo import NAMESPACES
from xmpp_clinic.registry import notices, rules
from xmpp_clinic.registry.model import (
    MAX_ASSET_CHARS,
    Device,
    DeviceKey,
    DeviceState,
    Notice,
    ObservedDevice,
)
from xmpp_clinic.registry.observation import GATEWAY, MAX_LISTED_DEVICES, Observation
from xmpp_clinic.registry.records import audit, person_records, queue, set_approved, to_device
from xmpp_clinic.registry.snapshot import RegistrySnapshot
from xmpp_clinic.store.changes import bump
from xmpp_clinic.store.engine import Store
from xmpp_clinic.store.models.devices import DeviceNoticeRecord, DeviceRecord

log = logging.getLogger(__name__)

_IN_CHUNK = 500  # bound parameters per IN (SQLite allows 32766; PostgreSQL 32767)

EXPIRY_WARNING = timedelta(days=14)
# Devices whose last_seen one UPDATE sets: well under SQLite's bound-variable limit.
SEEN_BATCH = 300


class RegistryError(Exception):
    """A registry request that cannot be done; ``str()`` is one line for the operator."""


class UnknownDevice(RegistryError):
    pass


class AmbiguousDevice(RegistryError):
    pass


class DeviceLimitReached(RegistryError):
    pass


class InvalidRequest(RegistryError):
    """A request with a value out of range or missing (the operator's input)."""


@dataclass
class ExpiryRun:
    """What one run of the periodic expiry task did."""

    expired: list[Device] = field(default_factory=list)
    warned: list[Device] = field(default_factory=list)


def _bare(jid: str) -> str:
    """The person's bare JID, normalised as everywhere (jids.bare_jid); operator input,
    so a malformed JID is the operator's error (InvalidRequest), not a lookup miss."""
    try:
        return bare_jid(jid)
    except InvalidJid as exc:
        raise InvalidRequest(f"invalid JID: {exc}") from None


def _reason(reason: str) -> str:
    """A revocation needs a reason for the audit log (I.5, III.3)."""
    reason = reason.strip()
    if not reason:
        raise InvalidRequest("a revocation needs a reason (it is kept in the audit log)")
    return reason


class DeviceRegistry:
    """Approves, revokes and expires devices; records what discovery found (I.4, I.5)."""

    def __init__(
        self,
        store: Store,
        policy: PolicySettings,
        *,
        clock: Callable[[], datetime] = utcnow,
        expiry_warning: timedelta = EXPIRY_WARNING,
    ) -> None:
        self._store = store
        self._policy = policy
        self._clock = clock
        self._warning = expiry_warning

    # ------------------------------------------------------------------ reading
    async def devices(
        self, jid: str | None = None, state: DeviceState | None = None
    ) -> list[Device]:
        query = select(DeviceRecord)
        if jid is not None:
            query = query.where(DeviceRecord.jid == _bare(jid))
        if state is not None:
            query = query.where(DeviceRecord.state == state.value)
        query = query.order_by(DeviceRecord.jid, DeviceRecord.namespace, DeviceRecord.device_id)
        async with self._store.session() as session:
            return [to_device(row) for row in (await session.scalars(query)).all()]

    async def device(self, jid: str, device_id: int, namespace: str | None = None) -> Device:
        async with self._store.session() as session:
            return to_device(await self._find(session, jid, device_id, namespace))

    async def snapshot(self) -> RegistrySnapshot:
        """Every device (for tools and tests; the relay path loads per person, below)."""
        async with self._store.session() as session:
            rows = (await session.scalars(select(DeviceRecord))).all()
            return RegistrySnapshot(to_device(row) for row in rows)

    async def devices_of(self, persons: Collection[str]) -> list[Device]:
        """Every device of these bare JIDs, in every state: what the pipeline's cache loads
        for the people a message concerns, so it never holds the whole table (issue 13)."""
        names = sorted(set(persons))
        found: list[Device] = []
        async with self._store.session() as session:
            for first in range(0, len(names), _IN_CHUNK):
                query = select(DeviceRecord).where(
                    DeviceRecord.jid.in_(names[first : first + _IN_CHUNK])
                )
                found.extend(to_device(row) for row in (await session.scalars(query)).all())
        return found

    async def _find(
        self, session: AsyncSession, jid: str, device_id: int, namespace: str | None
    ) -> DeviceRecord:
        found = await self._named(session, jid, device_id, namespace)
        if len(found) > 1:
            raise AmbiguousDevice(
                f"{_bare(jid)} has device {device_id} in both OMEMO versions; pass the namespace"
            )
        return found[0]

    async def _named(
        self, session: AsyncSession, jid: str, device_id: int, namespace: str | None
    ) -> list[DeviceRecord]:
        """The records ``device_id`` names: one, or both OMEMO versions of it."""
        query = select(DeviceRecord).where(
            DeviceRecord.jid == _bare(jid), DeviceRecord.device_id == device_id
        )
        if namespace is not None:
            query = query.where(DeviceRecord.namespace == namespace)
        found = list((await session.scalars(query.order_by(DeviceRecord.namespace))).all())
        if not found:
            raise UnknownDevice(f"no device {device_id} of {_bare(jid)} is known")
        return found

    async def _one_phone(
        self, session: AsyncSession, jid: str, device_id: int, namespace: str | None
    ) -> list[DeviceRecord]:
        """The records one decision applies to (issue 9.8).

        Without ``namespace``, a device id listed in both OMEMO versions is one phone when
        both records carry the same identity key (the fingerprint compares the Curve25519
        form, see registry.fingerprint): python-omemo clients publish it so. Then both
        records are decided together; otherwise IT must say which one it compared.
        """
        found = await self._named(session, jid, device_id, namespace)
        prints = {record.fingerprint for record in found}
        if len(found) == 1 or (len(prints) == 1 and None not in prints):
            return found
        why = (
            "with different identity keys"
            if None not in prints
            else "and the identity key of one is not known yet"
        )
        raise AmbiguousDevice(
            f"{_bare(jid)} has device {device_id} in both OMEMO versions {why}, so they may "
            "be two devices; compare each fingerprint with the phone and pass the namespace "
            "(omemo or omemo2)"
        )

    # ------------------------------------------------------------- IT decisions
    async def approve(
        self,
        jid: str,
        device_id: int,
        *,
        actor: str,
        namespace: str | None = None,
        valid_days: int | None = None,
        asset_id: str | None = None,
    ) -> Device:
        """:meth:`approve_each`, returning the first record approved."""
        approved = await self.approve_each(
            jid,
            device_id,
            actor=actor,
            namespace=namespace,
            valid_days=valid_days,
            asset_id=asset_id,
        )
        return approved[0]

    async def approve_each(
        self,
        jid: str,
        device_id: int,
        *,
        actor: str,
        namespace: str | None = None,
        valid_days: int | None = None,
        asset_id: str | None = None,
    ) -> list[Device]:
        """Approve (or re-validate) a device for ``valid_days`` (I.4, I.5, III.3).

        ``valid_days`` defaults to ``policy.default_valid_days`` and must lie in
        ``limits.MIN_VALID_DAYS..MAX_VALID_DAYS``. A device approved while its identity
        key is unknown returns to pending when the key first arrives
        (registry.observation), so an approval always ends up bound to a key IT could
        compare. Both OMEMO versions of one phone (same id, same key) are approved
        together, each audited, and count as one device towards the limit; the person
        gets one notice.
        """
        days = self._policy.default_valid_days if valid_days is None else valid_days
        if not MIN_VALID_DAYS <= days <= MAX_VALID_DAYS:
            raise InvalidRequest(
                f"valid days must be between {MIN_VALID_DAYS} and {MAX_VALID_DAYS}, not {days}"
            )
        if asset_id is not None and (len(asset_id) > MAX_ASSET_CHARS or not asset_id.isprintable()):
            raise InvalidRequest(f"an asset id is one line of at most {MAX_ASSET_CHARS} characters")
        now = self._clock()
        async with self._store.session() as session:
            records = await self._one_phone(session, jid, device_id, namespace)
            chosen = {record.id for record in records}
            others = [
                to_device(row)
                for row in await person_records(session, records[0].jid)
                if row.id not in chosen
            ]
            limit = self._policy.max_devices_per_person
            phones = rules.phones_towards_limit(others, now)
            if rules.phone(to_device(records[0])) not in phones and len(phones) >= limit:
                raise DeviceLimitReached(
                    f"{records[0].jid} already has {limit} approved devices "
                    "(policy.max_devices_per_person); revoke one first"
                )
            approved = []
            for record in records:
                renewal = to_device(record).usable(now)
                set_approved(record, actor, now, rules.valid_until(now, days))
                if asset_id is not None:
                    record.asset_id = asset_id
                device = to_device(record)
                note = (
                    f"valid until {device.valid_until:%Y-%m-%d}; fingerprint {device.fingerprint}"
                )
                reason = "renewed" if renewal else "approved"
                await audit(session, actor, "device.approved", reason, device, note)
                approved.append(device)
            await bump(session, "devices")
            queue(session, notices.approved(approved[0]))
            return approved

    async def revoke(
        self, jid: str, device_id: int, *, actor: str, reason: str, namespace: str | None = None
    ) -> Device:
        """:meth:`revoke_each`, returning the first record revoked."""
        revoked = await self.revoke_each(
            jid, device_id, actor=actor, reason=reason, namespace=namespace
        )
        return revoked[0]

    async def revoke_each(
        self, jid: str, device_id: int, *, actor: str, reason: str, namespace: str | None = None
    ) -> list[Device]:
        """Revoke a device; it is refused from the next message on (I.5, III.3).

        ``reason`` is required: it goes to the audit log and the person's notice. Both
        OMEMO versions of one phone (same id, same key) are revoked together.
        """
        reason = _reason(reason)
        async with self._store.session() as session:
            records = await self._one_phone(session, jid, device_id, namespace)
            return [
                await self._revoke(session, record, actor, reason, notify=record is records[0])
                for record in records
            ]

    async def revoke_all(self, jid: str, *, actor: str, reason: str) -> list[Device]:
        """Lost phone: revoke every device of a person, pending ones included (III.3)."""
        reason = _reason(reason)
        async with self._store.session() as session:
            records = await person_records(session, _bare(jid))
            if not records:
                raise UnknownDevice(f"no device of {_bare(jid)} is known")
            return [await self._revoke(session, record, actor, reason) for record in records]

    async def _revoke(
        self,
        session: AsyncSession,
        record: DeviceRecord,
        actor: str,
        reason: str,
        *,
        notify: bool = True,
    ) -> Device:
        if record.state == DeviceState.REVOKED.value:
            return to_device(record)
        now = self._clock()
        record.state = DeviceState.REVOKED.value
        record.state_changed_at = now
        record.revoked_by, record.revoked_at, record.reason = actor, now, reason
        device = to_device(record)
        await self._changed(session, actor, "device.revoked", "revoked", device, reason)
        if notify:
            queue(session, notices.revoked(device, reason))
        return device

    async def _changed(
        self,
        session: AsyncSession,
        actor: str,
        action: str,
        reason: str,
        device: Device,
        note: str = "",
    ) -> None:
        await audit(session, actor, action, reason, device, note)
        await bump(session, "devices")

    # ------------------------------------------------------------ periodic task
    async def expire_due(self) -> ExpiryRun:
        """Mark ended approvals expired and warn of those ending soon (I.5); run periodically."""
        now = self._clock()
        run = ExpiryRun()
        async with self._store.session() as session:
            query = select(DeviceRecord).where(DeviceRecord.state == DeviceState.APPROVED.value)
            for record in (await session.scalars(query)).all():
                device = to_device(record)
                if rules.expires(device, now):
                    record.state = DeviceState.EXPIRED.value
                    record.state_changed_at = now
                    device = to_device(record)
                    await self._changed(session, GATEWAY, "device.expired", "expired", device)
                    queue(session, notices.expired(device))
                    run.expired.append(device)
                elif record.expiry_warned_at is None and rules.warn_of_expiry(
                    device, now, self._warning
                ):
                    record.expiry_warned_at = now
                    await audit(session, GATEWAY, "device.expiry-warned", "expires-soon", device)
                    queue(session, notices.expiring(device))
                    run.warned.append(device)
        return run

    async def take_notices(self, limit: int = 100) -> list[Notice]:
        """The oldest queued notices, each with its ``queue_id`` (I.5).

        They stay queued until :meth:`ack_notices`: the sender acknowledges what it has
        actually sent, so a disconnect in between loses nothing (a notice may then be
        sent twice, never not at all).
        """
        async with self._store.session() as session:
            query = select(DeviceNoticeRecord).order_by(DeviceNoticeRecord.id).limit(limit)
            rows = list((await session.scalars(query)).all())
            return [Notice(row.jid, row.text, queue_id=row.id) for row in rows]

    async def ack_notices(self, queue_ids: Iterable[int]) -> None:
        """Forget notices that were sent (ids from :meth:`take_notices`)."""
        ids = sorted(set(queue_ids))
        if not ids:
            return
        async with self._store.session() as session:
            await session.execute(delete(DeviceNoticeRecord).where(DeviceNoticeRecord.id.in_(ids)))

    async def mark_seen(self, keys: Iterable[DeviceKey]) -> None:
        """Record when devices last sent (no state change, no audit, no bump).

        One UPDATE per :data:`SEEN_BATCH` devices, all in one transaction: the periodic
        upkeep hands in every device that sent since its last run.
        """
        wanted = sorted(set(keys))
        if not wanted:
            return
        now = self._clock()
        columns = tuple_(DeviceRecord.jid, DeviceRecord.namespace, DeviceRecord.device_id)
        async with self._store.session() as session:
            for start in range(0, len(wanted), SEEN_BATCH):
                batch = [
                    (k.jid, k.namespace, k.device_id) for k in wanted[start : start + SEEN_BATCH]
                ]
                await session.execute(
                    update(DeviceRecord).where(columns.in_(batch)).values(last_seen=now)
                )

    # ---------------------------------------------------------------- discovery
    async def observe(
        self, jid: str, namespace: str, listing: Mapping[int, ObservedDevice]
    ) -> list[Device]:
        """Record a person's device list for one namespace as found in PEP (I.4).

        New devices become pending or approved per ``policy.device_approval``; devices
        gone from the list are marked inactive, never deleted; an approved device whose
        identity key changed must be approved again. Returns the devices that changed.
        """
        if namespace not in NAMESPACES:
            raise RegistryError(f"unknown OMEMO namespace {namespace!r}")
        jid = _bare(jid)
        listed = dict(sorted(listing.items())[:MAX_LISTED_DEVICES])
        async with self._store.session() as session:
            records = await person_records(session, jid)
            observer = Observation(
                session, self._policy, self._clock(), jid, namespace, records, set(listed)
            )
            for device_id, seen in listed.items():
                await observer.listed(device_id, seen)
            for record in records:
                if record.namespace == namespace and record.device_id not in listed:
                    await observer.gone(record)
            if observer.changed:
                await bump(session, "devices")
            return observer.changed
