"""Message completeness (II.2): part sets, and who has each message.

Part sets: which parts of a split message arrived.

One row per set and thread; it holds the set's size, the numbers received, who sent it
and when its first part came, and which notices were posted. No content (II.1). The
rows make the missing-part notice survive a gateway restart.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from xmpp_clinic.store.base import Base


class PartSetRow(Base):
    """One part set ("part x of y") in one thread."""

    __tablename__ = "part_sets"
    __table_args__ = (UniqueConstraint("thread", "set_id", name="uq_part_sets_thread_set"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    thread: Mapped[str] = mapped_column(String(64), index=True)  # the thread's name
    set_id: Mapped[str] = mapped_column(String(128))
    sender: Mapped[str] = mapped_column(String(320))  # real bare JID
    nick: Mapped[str] = mapped_column(String(1023))
    of: Mapped[int] = mapped_column()
    received: Mapped[str] = mapped_column(String(4000))  # part numbers, comma-separated
    first_at: Mapped[datetime] = mapped_column(index=True)
    missing_noticed: Mapped[bool] = mapped_column(default=False)
    complete_noticed: Mapped[bool] = mapped_column(default=False)


class DeliveryRow(Base):
    """One relayed message and one member: handed over live, fetched by MAM, read (II.2).

    Written for every member but the sender when the message is relayed; the times stay
    empty until it happens. No content: the archive's ids and addresses only (II.1).
    """

    __tablename__ = "message_deliveries"
    __table_args__ = (
        UniqueConstraint("stanza_id", "member", name="uq_message_deliveries_stanza_id"),
        Index("ix_message_deliveries_thread_member", "thread", "member"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    thread: Mapped[str] = mapped_column(String(64))  # the thread's name
    seq: Mapped[int] = mapped_column()  # the archive's per-thread number
    stanza_id: Mapped[str] = mapped_column(String(64))
    sender: Mapped[str] = mapped_column(String(320))  # real bare JID
    member: Mapped[str] = mapped_column(String(320))  # real bare JID
    at: Mapped[datetime] = mapped_column(index=True)  # when it was relayed
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    fetched_at: Mapped[datetime | None] = mapped_column(default=None)
    read_at: Mapped[datetime | None] = mapped_column(default=None)
    notified_at: Mapped[datetime | None] = mapped_column(default=None)
