"""What the XMPP server said about itself when the gateway last asked (IV.2, I.3, IV.8)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from xmpp_clinic.clock import utcnow
from xmpp_clinic.store.base import Base


class ServerFact(Base):
    """One observed fact of one user domain's server: ``confinement = yes`` at a time.

    Written by the running gateway at every connect (``xmpp.server_facts``), read by
    the compliance report, which trusts a fact only while it is fresh.
    """

    __tablename__ = "server_facts"

    domain: Mapped[str] = mapped_column(String(1023), primary_key=True)
    fact: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(500), default="")
    observed_at: Mapped[datetime] = mapped_column(default=utcnow)
