"""Between store rows and registry plain data; the registry's only contact with SQL rows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from xmpp_clinic.archive.audit import AuditEvent, append
from xmpp_clinic.registry.model import Device, DeviceKey, DeviceState, Notice
from xmpp_clinic.store.models.devices import DeviceNoticeRecord, DeviceRecord


def to_device(record: DeviceRecord) -> Device:
    """The plain-data device of a row (timestamps are aware UTC: store.types.UtcDateTime)."""
    return Device(
        key=DeviceKey(record.jid, record.namespace, record.device_id),
        state=DeviceState(record.state),
        fingerprint=record.fingerprint,
        identity_key=record.identity_key,
        active=record.active,
        label=record.label,
        first_seen=record.first_seen,
        last_seen=record.last_seen,
        state_changed_at=record.state_changed_at,
        approved_by=record.approved_by,
        approved_at=record.approved_at,
        revoked_by=record.revoked_by,
        revoked_at=record.revoked_at,
        reason=record.reason,
        asset_id=record.asset_id,
        valid_until=record.valid_until,
    )


async def person_records(session: AsyncSession, jid: str) -> list[DeviceRecord]:
    query = select(DeviceRecord).where(DeviceRecord.jid == jid).order_by(DeviceRecord.id)
    return list((await session.scalars(query)).all())


async def audit(
    session: AsyncSession, actor: str, action: str, reason: str, device: Device, note: str = ""
) -> None:
    """Record a registry change in the audit chain, in the same transaction (I.5)."""
    await append(session, AuditEvent(actor, action, reason, str(device.key), note))


def set_approved(record: DeviceRecord, actor: str, now: datetime, until: datetime) -> None:
    """Approve (or re-validate) in place; revocation details of an earlier state go."""
    record.state = DeviceState.APPROVED.value
    record.state_changed_at = now
    record.approved_by, record.approved_at = actor, now
    record.revoked_by, record.revoked_at, record.reason = None, None, None
    record.valid_until = until
    record.expiry_warned_at = None


def queue(session: AsyncSession, notice: Notice) -> None:
    """Queue a notice for the running gateway to send (the CLI has no XMPP connection)."""
    session.add(DeviceNoticeRecord(jid=notice.jid, text=notice.text))
