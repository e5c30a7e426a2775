"""Attachments of documentation copies (I.6, I.10): the files the records member fetched.

One row per ``aesgcm://`` link of a documented message, keyed by the thread and the
copy's position (``documentation.position``) and the link's number within the message,
so retention removes a range of a thread's documentation with the same ``WHERE thread
= ? AND position <= ?`` on both tables. ``sealed_meta`` (link, name, type, size,
hashes, or the gap's reason) and ``sealed_content`` (the cleaned file) are AES-GCM
ciphertext under the thread's data key; ``digest`` binds the row to its copy's sealed
content.
"""

from __future__ import annotations

from sqlalchemy import LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from xmpp_clinic.store.base import Base


class DocumentationAttachment(Base):
    """One attachment of one documentation copy: pending, stored, or a gap."""

    __tablename__ = "documentation_attachments"
    __table_args__ = (
        UniqueConstraint(
            "thread", "position", "number", name="uq_documentation_attachments_thread_position"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    thread: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column()  # the copy's position in the documentation
    number: Mapped[int] = mapped_column()  # 1, 2, ... in the order the message links them
    status: Mapped[str] = mapped_column(String(16))  # "pending", "stored" or "gap"
    sealed_meta: Mapped[bytes] = mapped_column(LargeBinary)
    sealed_content: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    digest: Mapped[bytes] = mapped_column(LargeBinary(32))
