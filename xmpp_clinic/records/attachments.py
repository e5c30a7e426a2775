"""Attachment rows of documentation copies: pending, stored, or a gap (I.6, I.10).

A documented message's ``aesgcm://`` links become rows when its copy is appended (in
the same transaction, status "pending"), so a crash before the fetch leaves a pending
row that the next start fetches, never a silent loss. The fetcher (``fetch.py``) then
stores the cleaned file or turns the row into a gap with its reason. Everything but the
keys (thread, position, number) and the status is sealed with AES-GCM under the
thread's data key; each row's digest binds it to its copy's sealed content (which the
copy chain protects, and which stays the same when an erasure re-links the chain under
a pseudonym), and a copy whose links have fewer rows than links is found on reading.
Rows are keyed by thread and the copy's position, so retention deletes a range of both
tables with the same condition.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from xmpp_clinic.records.keys import seal, unseal
from xmpp_clinic.records.vetting import VettedFile
from xmpp_clinic.store.models.records_attachments import DocumentationAttachment

Status = Literal["pending", "stored", "gap"]
PENDING: Status = "pending"
STORED: Status = "stored"
GAP: Status = "gap"


@dataclass(frozen=True)
class AttachmentInfo:
    """One attachment as ``records show`` and the bridge see it (never the link's key)."""

    position: int  # the copy's position in the thread's documentation
    number: int  # 1, 2, ... within the message
    status: Status
    name: str  # the file name the link shows
    source: str  # where it was fetched from, without the key (https://host/path)
    media_type: str = ""  # sniffed from the content ("" unless stored)
    size: int = 0  # bytes of the stored (cleaned) file
    sha256: str = ""  # hex, of the stored file
    sha1: str = ""  # hex, of the stored file (FHIR Attachment.hash is SHA-1)
    reason: str = ""  # why a gap: host-not-allowed, too-large, undecryptable, ...
    metadata_removed: bool = False  # an image encoded again without EXIF/GPS (I.10)


def _meta_context(thread: str, position: int, number: int, status: str) -> bytes:
    where = f"{thread}\x00{position}\x00{number}\x00{status}"
    return f"documentation-attachment-meta\x00{where}".encode()


def _content_context(thread: str, position: int, number: int) -> bytes:
    return f"documentation-attachment\x00{thread}\x00{position}\x00{number}".encode()


def binding(copy_sealed: bytes) -> bytes:
    """What ties attachments to their copy: the hash of the copy's sealed content."""
    return hashlib.sha256(b"documentation-copy\n" + copy_sealed).digest()


def digest(copy: bytes, row: DocumentationAttachment) -> bytes:
    """The row's digest: its copy's :func:`binding`, its keys and status, its sealed parts."""
    head = f"attachment\n{row.thread}\n{row.position}\n{row.number}\n{row.status}\n".encode()
    meta = hashlib.sha256(row.sealed_meta).digest()
    content = hashlib.sha256(row.sealed_content or b"").digest()
    return hashlib.sha256(copy + head + meta + content).digest()


def _source(url: str) -> str:
    """The link as a plain HTTPS address, without the key in its fragment."""
    try:
        parts = urlsplit(url)
        return parts._replace(scheme="https", fragment="").geturl()
    except ValueError:
        return ""


def _name(url: str) -> str:
    path = _source(url).split("?", 1)[0]
    return path.rsplit("/", 1)[-1][:255]


def pending_rows(
    key: bytes, thread: str, position: int, copy: bytes, links: Sequence[str]
) -> list[DocumentationAttachment]:
    """New pending rows for ``links`` of the copy at ``position``."""
    rows = []
    for number, url in enumerate(links, start=1):
        row = DocumentationAttachment(thread=thread, position=position, number=number,
                                      status=PENDING, sealed_content=None, digest=b"")  # fmt: skip
        row.sealed_meta = seal(
            key, json.dumps({"url": url}).encode(), _meta_context(thread, position, number, PENDING)
        )
        row.digest = digest(copy, row)
        rows.append(row)
    return rows


def meta_of(key: bytes, row: DocumentationAttachment) -> dict[str, Any]:
    """The row's sealed metadata (raises InvalidTag when it was altered)."""
    context = _meta_context(row.thread, row.position, row.number, row.status)
    value: dict[str, Any] = json.loads(unseal(key, row.sealed_meta, context))
    return value


def content_of(key: bytes, row: DocumentationAttachment) -> bytes:
    """The stored file (raises InvalidTag when it was altered; b"" for a gap)."""
    if row.sealed_content is None:
        return b""
    return unseal(key, row.sealed_content, _content_context(row.thread, row.position, row.number))


def settle(
    key: bytes,
    copy: bytes,
    row: DocumentationAttachment,
    url: str,
    outcome: VettedFile | str,
) -> None:
    """Turn a pending ``row`` into a stored file (a VettedFile) or a gap (its reason)."""
    meta: dict[str, Any] = {"url": url, "name": _name(url)}
    if isinstance(outcome, VettedFile):
        row.status = STORED
        meta |= {
            "media_type": outcome.media_type, "size": len(outcome.content),
            "sha256": hashlib.sha256(outcome.content).hexdigest(),
            "sha1": hashlib.sha1(outcome.content, usedforsecurity=False).hexdigest(),
            "metadata_removed": outcome.stripped,
        }  # fmt: skip
        row.sealed_content = seal(
            key, outcome.content, _content_context(row.thread, row.position, row.number)
        )
    else:
        row.status, meta["reason"], row.sealed_content = GAP, outcome, None
    context = _meta_context(row.thread, row.position, row.number, row.status)
    row.sealed_meta = seal(key, json.dumps(meta).encode(), context)
    row.digest = digest(copy, row)


def info_of(key: bytes, row: DocumentationAttachment) -> AttachmentInfo:
    meta = meta_of(key, row)
    url = str(meta.get("url", ""))
    status: Status = STORED if row.status == STORED else GAP if row.status == GAP else PENDING
    return AttachmentInfo(
        row.position, row.number, status, str(meta.get("name", _name(url))), _source(url),
        str(meta.get("media_type", "")), int(meta.get("size", 0)), str(meta.get("sha256", "")),
        str(meta.get("sha1", "")), str(meta.get("reason", "")),
        bool(meta.get("metadata_removed", False)),
    )  # fmt: skip


async def rows_of(
    session: AsyncSession, thread: str, position: int | None = None
) -> Sequence[DocumentationAttachment]:
    """The thread's attachment rows (of one copy, with ``position``), in order."""
    query = select(DocumentationAttachment).where(DocumentationAttachment.thread == thread)
    if position is not None:
        query = query.where(DocumentationAttachment.position == position)
    order = (DocumentationAttachment.position, DocumentationAttachment.number)
    return (await session.scalars(query.order_by(*order))).all()
