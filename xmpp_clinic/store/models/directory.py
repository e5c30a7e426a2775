"""The hospital directory (IV.2, I.3): persons, their JIDs and groups; threads bound to groups."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from xmpp_clinic.clock import utcnow
from xmpp_clinic.store.base import Base


class DirectoryPerson(Base):
    """A person as the last import or sync left them; ``key`` is stable across imports."""

    __tablename__ = "directory_persons"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    staff_id: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    jids: Mapped[list[DirectoryJid]] = relationship(
        back_populates="person", cascade="all, delete-orphan", order_by="DirectoryJid.jid"
    )
    groups: Mapped[list[DirectoryMembership]] = relationship(
        back_populates="person", cascade="all, delete-orphan", order_by="DirectoryMembership.group"
    )


class DirectoryJid(Base):
    """One of a person's bare JIDs; a JID belongs to one person only."""

    __tablename__ = "directory_jids"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(
        ForeignKey("directory_persons.id", ondelete="CASCADE"), index=True
    )
    jid: Mapped[str] = mapped_column(String(320), unique=True)

    person: Mapped[DirectoryPerson] = relationship(back_populates="jids")


class DirectoryMembership(Base):
    """A person is in a group (ward, team, department, role) named ``group``."""

    __tablename__ = "directory_memberships"
    __table_args__ = (
        UniqueConstraint("person_id", "group", name="uq_directory_memberships_person_group"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(
        ForeignKey("directory_persons.id", ondelete="CASCADE"), index=True
    )
    group: Mapped[str] = mapped_column(String(64), index=True)

    person: Mapped[DirectoryPerson] = relationship(back_populates="groups")


class ThreadBinding(Base):
    """Thread ``thread_id`` takes its members from group ``group`` (re-evaluated live)."""

    __tablename__ = "thread_bindings"
    __table_args__ = (
        UniqueConstraint("thread_id", "group", name="uq_thread_bindings_thread_group"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    thread_id: Mapped[int] = mapped_column(ForeignKey("threads.id", ondelete="CASCADE"), index=True)
    group: Mapped[str] = mapped_column(String(64))


class BoundMember(Base):
    """A member of ``thread_id`` who is there because of a bound group, not added by hand.

    When their groups no longer hold them, they leave; people added by hand stay.
    """

    __tablename__ = "thread_bound_members"
    __table_args__ = (
        UniqueConstraint("thread_id", "jid", name="uq_thread_bound_members_thread_jid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    thread_id: Mapped[int] = mapped_column(ForeignKey("threads.id", ondelete="CASCADE"), index=True)
    jid: Mapped[str] = mapped_column(String(320))
