"""The documentation member's tables (I.6, II.1): its OMEMO state and the copies it keeps.

Everything secret is AES-GCM ciphertext under the ``[records] key_file`` key (OMEMO
state, per-thread data keys) or under a thread's data key (documentation copies): the
database alone never reveals a message.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from xmpp_clinic.clock import utcnow
from xmpp_clinic.store.base import Base


class RecordsState(Base):
    """One python-omemo storage item of the records device, encrypted (nonce + ciphertext)."""

    __tablename__ = "records_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # HMAC of the name
    sealed: Mapped[bytes] = mapped_column(LargeBinary)


class DocumentedThread(Base):
    """A thread flagged for the patient record since ``since`` (its documentation member)."""

    __tablename__ = "documented_threads"

    thread_id: Mapped[int] = mapped_column(
        ForeignKey("threads.id", ondelete="CASCADE"), primary_key=True
    )
    since: Mapped[datetime] = mapped_column(default=utcnow)


class DocumentationKey(Base):
    """A thread's data key, wrapped (AES-GCM) by the key file's key, and where its chain
    starts now: the position and digest of the last copy retention purged (I.7)."""

    __tablename__ = "documentation_keys"

    thread: Mapped[str] = mapped_column(String(64), primary_key=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    anchor_position: Mapped[int] = mapped_column(default=0)
    anchor_digest: Mapped[bytes] = mapped_column(LargeBinary(32), default=b"\x00" * 32)


class DocumentationCopy(Base):
    """One message of a documented thread as the records device read it, or a gap.

    ``sealed`` is nonce + AES-GCM ciphertext of the plaintext content (JSON) under the
    thread's data key; ``digest`` chains the row to the thread's previous one. The thread
    is kept by name: copies outlive the thread until retention purges them (I.7).
    """

    __tablename__ = "documentation"
    __table_args__ = (
        UniqueConstraint("thread", "position", name="uq_documentation_thread_position"),
        Index("ix_documentation_thread_at", "thread", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    thread: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column()  # 1, 2, ... within the thread's documentation
    at: Mapped[datetime] = mapped_column()
    sender: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(16))  # "message" or "gap"
    message_id: Mapped[str] = mapped_column(String(256), default="")
    stanza_id: Mapped[str] = mapped_column(String(64), default="")
    seq: Mapped[int | None] = mapped_column(default=None)  # the archive's sequence, when linked
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    digest: Mapped[bytes] = mapped_column(LargeBinary(32))
