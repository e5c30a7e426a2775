"""Archived thread messages: the relayed stanza, its real sender, and a hash chain (II.2)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from xmpp_clinic.store.base import Base


class ArchivedMessage(Base):
    """One message as it was relayed to a thread's occupants.

    ``stanza`` is the relayed ``<message>`` (without ``to``) exactly as serialised for
    fan-out; ``digest`` chains it to the thread's previous message (archive/chain.py).
    The row id orders the archive; ``seq`` numbers the messages of one thread (II.2).
    """

    __tablename__ = "thread_messages"
    __table_args__ = (
        UniqueConstraint("thread_id", "seq", name="uq_thread_messages_thread_seq"),
        Index("ix_thread_messages_thread_at", "thread_id", "at"),
        Index("ix_thread_messages_thread_id_id", "thread_id", "id"),  # keyset MAM pages
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # No ON DELETE CASCADE: the archive outlives a thread until retention purges it (I.7).
    thread_id: Mapped[int] = mapped_column(ForeignKey("threads.id"))
    seq: Mapped[int] = mapped_column()
    stanza_id: Mapped[str] = mapped_column(String(64), unique=True)
    at: Mapped[datetime] = mapped_column()
    sender: Mapped[str] = mapped_column(String(320), index=True)  # real bare JID
    sender_resource: Mapped[str] = mapped_column(String(1023), default="")
    nick: Mapped[str] = mapped_column(String(1023))
    occupant_id: Mapped[str] = mapped_column(String(64))
    stanza: Mapped[str] = mapped_column(Text)
    digest: Mapped[bytes] = mapped_column(LargeBinary(32))
