"""Documentation copies: what the records member read, encrypted at rest and chained (I.6).

Each documented thread has its own data key (32 random bytes), kept wrapped by the
``[records] key_file`` key. A copy's content (the body; for OMEMO 2 also the SCE
``<content>`` as XML) is sealed with AES-GCM under the thread's key, bound to the thread
and its position, and every row's digest chains it to the thread's previous one, as the
message archive does (``archive/chain.py``), so a removed or altered copy is found.
A *gap* is a documented-thread message the records device got no key for: recorded
with sender and time, without content.

:class:`Documentation` is the read and write API: the records gate appends, ``records
show`` and the HIS bridge read (the bridge through :meth:`Documentation.read` only).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from xmpp_clinic.clock import as_utc
from xmpp_clinic.records import attachments as attached
from xmpp_clinic.records.aesgcm import find_links
from xmpp_clinic.records.attachments import AttachmentInfo
from xmpp_clinic.records.keys import KEY_BYTES, seal, unseal
from xmpp_clinic.records.vetting import VettedFile
from xmpp_clinic.store import Store
from xmpp_clinic.store.models.records import DocumentationCopy, DocumentationKey
from xmpp_clinic.store.models.records_attachments import DocumentationAttachment

Kind = Literal["message", "gap"]
GENESIS = b"\x00" * 32


@dataclass(frozen=True)
class Content:
    """What a message said: its body, and for OMEMO 2 the SCE ``<content>`` as XML."""

    body: str
    sce_content: str = ""


@dataclass(frozen=True)
class NewCopy:
    """A copy to append: who wrote when, which message, and what (None for a gap)."""

    thread: str  # thread name
    at: datetime
    sender: str  # real bare JID
    message_id: str  # the sender's message id
    content: Content | None  # None: a gap (the message carried no key for the records device)
    gap_reason: str = ""  # e.g. "no-key", "undecryptable"


@dataclass(frozen=True)
class DocumentedMessage:
    """One entry of a thread's documentation, decrypted for the reader."""

    thread: str
    position: int
    at: datetime
    sender: str
    kind: Kind
    body: str
    sce_content: str
    gap_reason: str
    message_id: str
    stanza_id: str
    seq: int | None
    attachments: tuple[AttachmentInfo, ...] = ()  # its aesgcm:// files, in link order


def links_of(content: Content) -> list[str]:
    """The ``aesgcm://`` links a message's content carries (body and SCE content)."""
    return find_links(f"{content.body}\n{content.sce_content}")


class DocumentationError(Exception):
    """A copy could not be read: a broken chain, a wrong key, or a tampered row."""


def copy_digest(previous: bytes, row: DocumentationCopy) -> bytes:
    """A copy's link in its thread's documentation chain (also for re-linking on erasure)."""
    head = "\n".join(
        (
            row.thread,
            str(row.position),
            as_utc(row.at).isoformat(),
            row.sender,
            row.kind,
            row.message_id,
        )
    )
    return hashlib.sha256(previous + head.encode() + b"\n" + row.sealed).digest()


def _context(thread: str, position: int) -> bytes:
    return f"documentation\x00{thread}\x00{position}".encode()


def _key_context(thread: str) -> bytes:
    return f"documentation-key\x00{thread}".encode()


class Documentation:
    """The documentation copies of all threads, over the store (I.6, II.1)."""

    def __init__(self, store: Store, key: bytes) -> None:
        self._store = store
        self._key = key

    async def _data_key(self, session: AsyncSession, thread: str, *, create: bool) -> bytes | None:
        row = await session.get(DocumentationKey, thread)
        if row is not None:
            return unseal(self._key, row.wrapped, _key_context(thread))
        if not create:
            return None
        key = secrets.token_bytes(KEY_BYTES)
        wrapped = seal(self._key, key, _key_context(thread))
        session.add(
            DocumentationKey(
                thread=thread, wrapped=wrapped, anchor_position=0, anchor_digest=GENESIS
            )
        )
        return key

    async def append(self, copy: NewCopy) -> int:
        """Store ``copy`` as the thread's next entry; its position. Raises the store's
        errors (the caller fails closed: no copy, no relay)."""
        async with self._store.session() as session:
            key = await self._data_key(session, copy.thread, create=True)
            assert key is not None
            last = (
                await session.execute(
                    select(DocumentationCopy.position, DocumentationCopy.digest)
                    .where(DocumentationCopy.thread == copy.thread)
                    .order_by(DocumentationCopy.position.desc())
                    .limit(1)
                )
            ).first()
            position, previous = (last[0] + 1, last[1]) if last is not None else (1, GENESIS)
            if copy.content is not None:
                kind: Kind = "message"
                plain = {"body": copy.content.body, "sce_content": copy.content.sce_content}
            else:
                kind, plain = "gap", {"gap_reason": copy.gap_reason}
            row = DocumentationCopy(
                thread=copy.thread, position=position, at=copy.at, sender=copy.sender,
                kind=kind, message_id=copy.message_id[:256], stanza_id="", seq=None,
                sealed=seal(key, json.dumps(plain).encode(), _context(copy.thread, position)),
                digest=b"",
            )  # fmt: skip
            row.digest = copy_digest(previous, row)
            session.add(row)
            if copy.content is not None:
                links = links_of(copy.content)
                session.add_all(
                    attached.pending_rows(
                        key, copy.thread, position, attached.binding(row.sealed), links
                    )
                )
            return position

    async def link(
        self, thread: str, message_id: str, sender: str, stanza_id: str, seq: int
    ) -> bool:
        """Tie the newest copy of ``sender``'s ``message_id`` to the archived stanza id and
        sequence (called once the archive has them); False when there is no such copy."""
        async with self._store.session() as session:
            row = await session.scalar(
                select(DocumentationCopy)
                .where(
                    DocumentationCopy.thread == thread,
                    DocumentationCopy.message_id == message_id,
                    DocumentationCopy.sender == sender,
                    DocumentationCopy.stanza_id == "",
                )
                .order_by(DocumentationCopy.position.desc())
                .limit(1)
            )
            if row is None:
                return False
            row.stanza_id, row.seq = stanza_id, seq
            return True

    async def read(
        self, thread: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[DocumentedMessage]:
        """The thread's documentation in order, decrypted; the chain is checked from the
        start, so a missing or altered copy is :class:`DocumentationError`."""
        async with self._store.session() as session:
            # Copies first, then their key: SQLite reads each statement at its own moment,
            # and a key is committed together with (never after) the thread's first copy,
            # so a copy appended between the two reads still finds its key.
            rows: Sequence[DocumentationCopy] = (
                await session.scalars(
                    select(DocumentationCopy)
                    .where(DocumentationCopy.thread == thread)
                    .order_by(DocumentationCopy.position)
                )
            ).all()
            files = await attached.rows_of(session, thread)
            key = await self._data_key(session, thread, create=False)
            anchor = await session.get(DocumentationKey, thread)
        if not rows:
            return []
        if key is None:
            raise DocumentationError(f"the data key of {thread!r} is missing")
        found: list[DocumentedMessage] = []
        assert anchor is not None  # the key row exists whenever copies do
        previous, start = anchor.anchor_digest, anchor.anchor_position + 1
        bindings = {r.position: attached.binding(r.sealed) for r in rows}
        by_copy = _files_by_copy(thread, files, bindings)
        for expected, row in enumerate(rows, start=start):
            if row.position != expected or copy_digest(previous, row) != row.digest:
                raise DocumentationError(f"the documentation of {thread!r} is broken at {expected}")
            previous = row.digest
            if (since is not None and row.at < since) or (until is not None and row.at >= until):
                continue
            try:
                plain = json.loads(unseal(key, row.sealed, _context(thread, row.position)))
                content = Content(plain.get("body", ""), plain.get("sce_content", ""))
                shown = _attachments(key, row.position, len(links_of(content)), by_copy)
            except DocumentationError:
                raise
            except Exception:
                raise DocumentationError(
                    f"copy {row.position} of {thread!r} cannot be decrypted"
                ) from None
            found.append(
                DocumentedMessage(
                    thread, row.position, row.at, row.sender,
                    "gap" if row.kind == "gap" else "message",
                    plain.get("body", ""), plain.get("sce_content", ""),
                    plain.get("gap_reason", ""), row.message_id, row.stanza_id, row.seq, shown,
                )
            )  # fmt: skip
        return found

    async def purge(self, before: datetime) -> int:
        """Delete every thread's copies older than ``before`` (retention, I.7); how many.

        Copies go from the start of each chain; the last one deleted becomes the chain's
        anchor, so what remains still verifies and a removal in the middle is still found.
        """
        deleted, threads = 0, await self.threads()
        async with self._store.session() as session:
            for thread in threads:
                last = (
                    await session.execute(
                        select(DocumentationCopy.position, DocumentationCopy.digest)
                        .where(DocumentationCopy.thread == thread, DocumentationCopy.at < before)
                        .order_by(DocumentationCopy.position.desc())
                        .limit(1)
                    )
                ).first()
                anchor = await session.get(DocumentationKey, thread)
                if last is None or anchor is None:
                    continue
                result = await session.execute(
                    delete(DocumentationCopy).where(
                        DocumentationCopy.thread == thread, DocumentationCopy.position <= last[0]
                    )
                )
                deleted += int(getattr(result, "rowcount", 0) or 0)
                await session.execute(
                    delete(DocumentationAttachment).where(
                        DocumentationAttachment.thread == thread,
                        DocumentationAttachment.position <= last[0],
                    )
                )
                anchor.anchor_position, anchor.anchor_digest = last[0], last[1]
        return deleted

    async def threads(self) -> list[str]:
        """The names of threads with documentation."""
        async with self._store.session() as session:
            return list(
                await session.scalars(
                    select(DocumentationCopy.thread).distinct().order_by(DocumentationCopy.thread)
                )
            )

    async def pending_attachments(self) -> list[tuple[str, int]]:
        """(thread, position) of every copy with an attachment not fetched yet."""
        async with self._store.session() as session:
            found = await session.execute(
                select(DocumentationAttachment.thread, DocumentationAttachment.position)
                .where(DocumentationAttachment.status == attached.PENDING)
                .distinct()
                .order_by(DocumentationAttachment.thread, DocumentationAttachment.position)
            )
            return [(t, p) for t, p in found.all()]

    async def pending_links(self, thread: str, position: int) -> list[tuple[int, str]]:
        """(number, link) of the copy's attachments not fetched yet (links hold keys)."""
        async with self._store.session() as session:
            key = await self._data_key(session, thread, create=False)
            rows = await attached.rows_of(session, thread, position)
        if key is None:
            return []
        return [
            (row.number, str(attached.meta_of(key, row)["url"]))
            for row in rows
            if row.status == attached.PENDING
        ]

    async def settle_attachment(
        self, thread: str, position: int, number: int, outcome: VettedFile | str
    ) -> bool:
        """Store the fetched file (a VettedFile) or record the gap (its reason) for one
        pending attachment; False when it is no longer pending (purged, settled)."""
        async with self._store.session() as session:
            key = await self._data_key(session, thread, create=False)
            copy_sealed = await session.scalar(
                select(DocumentationCopy.sealed).where(
                    DocumentationCopy.thread == thread, DocumentationCopy.position == position
                )
            )
            row = await session.scalar(
                select(DocumentationAttachment).where(
                    DocumentationAttachment.thread == thread,
                    DocumentationAttachment.position == position,
                    DocumentationAttachment.number == number,
                )
            )
            if key is None or copy_sealed is None or row is None or row.status != attached.PENDING:
                return False
            url = str(attached.meta_of(key, row)["url"])
            attached.settle(key, attached.binding(copy_sealed), row, url, outcome)
            return True

    async def attachment(
        self, thread: str, position: int, number: int
    ) -> tuple[AttachmentInfo, bytes] | None:
        """One attachment and its stored file (b"" unless stored), checked against its
        copy; None when there is none. DocumentationError when it was altered."""
        async with self._store.session() as session:
            key = await self._data_key(session, thread, create=False)
            copy_sealed = await session.scalar(
                select(DocumentationCopy.sealed).where(
                    DocumentationCopy.thread == thread, DocumentationCopy.position == position
                )
            )
            rows = await attached.rows_of(session, thread, position)
        row = next((r for r in rows if r.number == number), None)
        if key is None or copy_sealed is None or row is None:
            return None
        where = f"attachment {number} of copy {position} of {thread!r}"
        if attached.digest(attached.binding(copy_sealed), row) != row.digest:
            raise DocumentationError(f"{where} does not match its copy")
        try:
            return attached.info_of(key, row), attached.content_of(key, row)
        except Exception:
            raise DocumentationError(f"{where} cannot be decrypted") from None


def _files_by_copy(
    thread: str, files: Sequence[DocumentationAttachment], bindings: dict[int, bytes]
) -> dict[int, list[DocumentationAttachment]]:
    """Attachment rows by copy position, each checked against its copy's binding (rows
    of copies purged or appended meanwhile are left out)."""
    by_copy: dict[int, list[DocumentationAttachment]] = {}
    for row in files:
        binding = bindings.get(row.position)
        if binding is None:
            continue
        if attached.digest(binding, row) != row.digest:
            raise DocumentationError(
                f"attachment {row.number} of copy {row.position} of {thread!r} was altered"
            )
        by_copy.setdefault(row.position, []).append(row)
    return by_copy


def _attachments(
    key: bytes, position: int, links: int, by_copy: dict[int, list[DocumentationAttachment]]
) -> tuple[AttachmentInfo, ...]:
    rows = by_copy.get(position, [])
    if [r.number for r in rows] != list(range(1, links + 1)):
        raise DocumentationError(f"an attachment of copy {position} is missing")
    return tuple(attached.info_of(key, r) for r in rows)
