"""The HIS bridge's own state: API tokens, cases from ADT, thread bindings, the HL7 outbox (I.6).

Nothing here holds message content: the outbox names a thread and the document's
version; the MDM^T02 is built from the documentation copies when it is sent, so the
transcript stays encrypted at rest in the records room (II.1).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from xmpp_clinic.clock import utcnow
from xmpp_clinic.store.base import Base


class BridgeToken(Base):
    """A bearer token for the HIS: only its SHA-256 is stored; scopes space-separated."""

    __tablename__ = "bridge_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    scopes: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()


class BridgeCase(Base):
    """A case from ADT: visit (PV1-19), patient (PID-3), ward (PV1-3.1), admission, discharge."""

    __tablename__ = "bridge_cases"

    visit: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient: Mapped[str] = mapped_column(String(64), index=True)
    ward: Mapped[str] = mapped_column(String(64), default="")
    admitted_at: Mapped[datetime | None] = mapped_column()
    discharged_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class BridgeThreadCase(Base):
    """A thread bound to a case: its messages belong to that visit's record."""

    __tablename__ = "bridge_thread_cases"

    thread: Mapped[str] = mapped_column(String(64), primary_key=True)
    visit: Mapped[str] = mapped_column(String(64), index=True)
    bound_at: Mapped[datetime] = mapped_column(default=utcnow)


class BridgeOutbox(Base):
    """One MDM message waiting for the HIS's AA: retried with backoff until then."""

    __tablename__ = "bridge_outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    control_id: Mapped[str] = mapped_column(String(32), unique=True)
    thread: Mapped[str] = mapped_column(String(64), index=True)
    event: Mapped[str] = mapped_column(String(8))  # "T02" (original) or "T10" (replacement)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_result: Mapped[str] = mapped_column(Text, default="")  # "AE: ..." / "timeout"
