"""Append-only, hash-chained audit events (I.5, II.2, IV.4); never message content."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from xmpp_clinic.clock import utcnow
from xmpp_clinic.store.base import Base


class AuditEventRecord(Base):
    """One audit event; ``hash`` commits to this event and every one before it."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(500))
    note: Mapped[str] = mapped_column(String(500), default="")
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditHead(Base):
    """The chain's one head row: last sequence number and hash, and where pruning left it.

    Without it, deleting the newest events would leave a shorter chain that still
    verifies; with it, the count and the last hash must match.
    """

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    base_seq: Mapped[int] = mapped_column(Integer, default=0)
    base_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
