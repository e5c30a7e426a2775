"""Care threads and their members (IV.2): who may join, read and write a thread."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from xmpp_clinic.clock import utcnow
from xmpp_clinic.store.base import Base


class Thread(Base):
    """A members-only, non-anonymous room hosted by the gateway at ``name@<component>``."""

    __tablename__ = "threads"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # "group" or "direct"
    subject: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    members: Mapped[list[Member]] = relationship(
        back_populates="thread", cascade="all, delete-orphan", order_by="Member.id"
    )


class Member(Base):
    """A person's membership of a thread; ``since`` bounds the history they may read."""

    __tablename__ = "thread_members"
    __table_args__ = (UniqueConstraint("thread_id", "jid", name="uq_thread_members_thread_jid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    thread_id: Mapped[int] = mapped_column(ForeignKey("threads.id", ondelete="CASCADE"), index=True)
    jid: Mapped[str] = mapped_column(String(320))
    affiliation: Mapped[str] = mapped_column(String(16))  # "owner", "admin" or "member"
    since: Mapped[datetime] = mapped_column(default=utcnow)

    thread: Mapped[Thread] = relationship(back_populates="members")
