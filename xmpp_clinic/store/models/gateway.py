"""Gateway-level bookkeeping."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from xmpp_clinic.clock import utcnow
from xmpp_clinic.store.base import Base


class GatewayEvent(Base):
    """Start and stop of the gateway, so an auditor can see when controls were active."""

    __tablename__ = "gateway_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    version: Mapped[str] = mapped_column(String(32))


class ChangeCounter(Base):
    """One counter per topic ("threads", "devices"), bumped by every administrative change.

    The CLI writes to the store while the gateway runs; the gateway compares these
    counters before it decides on a message, so a revocation or a removal takes effect on
    the very next message (I.5) without a restart or a side channel.
    """

    __tablename__ = "change_counters"

    topic: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(default=0)
