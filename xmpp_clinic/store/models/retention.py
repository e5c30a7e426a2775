"""Retention state: per-thread periods, archive anchors, signed deletion receipts (I.7, IV.8)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from xmpp_clinic.clock import utcnow
from xmpp_clinic.store.base import Base


class ThreadRetention(Base):
    """A thread's own message period (minutes) and when its period started (``closed_at``).

    No row: the hospital default (``retention.messages_days``) counted from each message.
    A closed thread (``threads close``, later ADT discharge) keeps everything until
    ``closed_at + period``, then loses all of it.
    """

    __tablename__ = "thread_retention"

    thread_id: Mapped[int] = mapped_column(
        ForeignKey("threads.id", ondelete="CASCADE"), primary_key=True
    )
    messages_minutes: Mapped[int | None] = mapped_column(Integer)
    closed_at: Mapped[datetime | None] = mapped_column()


class ArchiveAnchor(Base):
    """Where a thread's purged chain ends: sequence and digest of the last purged message.

    Verification starts here instead of at the genesis hash, so purging old messages
    leaves the remaining chain provable (II.2, I.7).
    """

    __tablename__ = "archive_anchors"

    thread_id: Mapped[int] = mapped_column(
        ForeignKey("threads.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer)
    digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    purged_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeletionReceiptRecord(Base):
    """A signed deletion receipt (DIN 66398 style): the canonical body and its signature."""

    __tablename__ = "deletion_receipts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))
