"""OMEMO devices bound to persons, and the notices owed to those persons (I.4, I.5, III.3)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from xmpp_clinic.clock import utcnow
from xmpp_clinic.store.base import Base


class DeviceRecord(Base):
    """One OMEMO device of one person: (bare JID, namespace, device id) plus its approval."""

    __tablename__ = "devices"
    __table_args__ = (
        UniqueConstraint("jid", "namespace", "device_id", name="uq_devices_jid_namespace_device"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    jid: Mapped[str] = mapped_column(String(320), index=True)
    namespace: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[int] = mapped_column(BigInteger)
    label: Mapped[str | None] = mapped_column(String(200))
    identity_key: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    state_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime | None] = mapped_column()
    approved_by: Mapped[str | None] = mapped_column(String(320))
    approved_at: Mapped[datetime | None] = mapped_column()
    revoked_by: Mapped[str | None] = mapped_column(String(320))
    revoked_at: Mapped[datetime | None] = mapped_column()
    reason: Mapped[str | None] = mapped_column(String(500))
    asset_id: Mapped[str | None] = mapped_column(String(128))
    valid_until: Mapped[datetime | None] = mapped_column()
    expiry_warned_at: Mapped[datetime | None] = mapped_column()


class DeviceNoticeRecord(Base):
    """A notice for a person, queued by whoever changed the registry (CLI or gateway).

    The CLI has no XMPP connection; the running gateway drains this queue and sends.
    """

    __tablename__ = "device_notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    jid: Mapped[str] = mapped_column(String(320))
    text: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
