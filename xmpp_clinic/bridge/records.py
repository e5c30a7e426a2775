"""What the bridge reads from the documentation member: decrypted copies, in sequence (I.6).

The records room (issue 14) owns decryption and encryption at rest; the bridge only
needs this small read protocol. A copy the gateway could not take (the sender's client
did not encrypt for the documentation device) arrives as a gap, so exports can say
"missing" instead of silently skipping (II.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class CopiesUnreadable(Exception):
    """The copies exist but cannot be read (broken chain, missing key): never half a record."""


@dataclass(frozen=True)
class DocumentedAttachment:
    """A file sent in the thread, as the documentation copy holds it (decrypted, hashed).

    ``url`` is where the bridge serves the stored file (a path under the API, e.g.
    ``/threads/icu/copies/4/attachments/1``); ``status`` "stored", or "gap"/"pending"
    with ``reason`` and no content (II.2: a file that is not in the record is said).
    """

    url: str
    media_type: str
    size: int
    sha1: bytes  # FHIR Attachment.hash is SHA-1 (R4)
    title: str = ""
    position: int = 0  # the copy it belongs to
    number: int = 1  # 1, 2, ... within that copy
    status: str = "stored"
    reason: str = ""

    @property
    def stored(self) -> bool:
        return self.status == "stored"


@dataclass(frozen=True)
class DocumentedMessage:
    """One documented message: sequence, sender, time and the reassembled text.

    ``gap`` is True where the thread has a message but no documentation copy (the body
    is then empty). A part set (II.2) is one message at its first part's ``seq``: the
    parts that came, joined in part order; ``parts`` is its size, ``missing_parts`` the
    numbers that never came (``parts_missing`` counts them) and ``through_seq`` the
    position of its last copy (0: ``seq`` itself).
    """

    seq: int
    stanza_id: str
    sender: str  # the sender's bare JID
    at: datetime
    body: str
    attachments: tuple[DocumentedAttachment, ...] = ()
    gap: bool = False
    parts_missing: int = 0
    parts: int = 1
    missing_parts: tuple[int, ...] = ()
    through_seq: int = 0


class DocumentationCopies(Protocol):
    """Read access to the documentation copies of documented threads (I.6)."""

    async def documented(self, thread: str) -> bool:
        """Whether ``thread`` is (or was) documented."""

    async def copies(
        self, thread: str, *, after_seq: int = 0, limit: int | None = None
    ) -> Sequence[DocumentedMessage]:
        """The thread's copies in sequence, after ``after_seq``, at most ``limit``."""

    async def attachment(
        self, thread: str, position: int, number: int
    ) -> tuple[DocumentedAttachment, bytes] | None:
        """One attachment of copy ``position`` and its stored file; None: no such one."""


class NoDocumentation:
    """No thread is documented: what the bridge reads until the records member is running."""

    async def documented(self, thread: str) -> bool:
        return False

    async def copies(
        self, thread: str, *, after_seq: int = 0, limit: int | None = None
    ) -> Sequence[DocumentedMessage]:
        return ()

    async def attachment(
        self, thread: str, position: int, number: int
    ) -> tuple[DocumentedAttachment, bytes] | None:
        return None
