"""Saved compliance reports (IV.4) and the client software of device sessions (I.13)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from xmpp_clinic.clock import utcnow
from xmpp_clinic.store.base import Base


class SavedReport(Base):
    """One saved report; ``hash`` chains it to every report saved before (IV.4).

    Reports hold configuration, counts and test outcomes, never message content.
    """

    __tablename__ = "saved_reports"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    body: Mapped[str] = mapped_column(Text)  # the report's JSON, canonical
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class ClientSession(Base):
    """What one occupant session (full JID) said about its software (I.13, III.2)."""

    __tablename__ = "client_sessions"

    jid: Mapped[str] = mapped_column(String(3071), primary_key=True)  # full JID
    bare: Mapped[str] = mapped_column(String(320), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    version: Mapped[str] = mapped_column(String(200), default="")
    os: Mapped[str] = mapped_column(String(200), default="")
    caps_node: Mapped[str] = mapped_column(String(500), default="")
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    outdated: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(String(500), default="")
