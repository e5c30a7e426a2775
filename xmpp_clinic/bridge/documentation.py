"""The records member's documentation copies, read through the bridge's protocol (I.6, II.2).

Adapts :class:`xmpp_clinic.records.documentation.Documentation` (issue 14) to
:class:`~xmpp_clinic.bridge.records.DocumentationCopies`: positions become the API's
sequence (a gap keeps its position, so the HIS sees where a copy is missing), and a
broken chain or missing key is :class:`~xmpp_clinic.bridge.records.CopiesUnreadable`,
which the API answers with 503 rather than a partial record.

Part sets (II.2): each part is a copy of its own; the part marker travels outside the
encryption, in the archived stanza. With the store, the adapter reads the markers from
the archive (by stanza id) and puts each set back together at its first part's place,
in part order, naming the parts that never came (:func:`reassemble`).

An ``aesgcm://`` link's key (its fragment) never leaves the gateway: the text keeps the
link without it (:func:`without_keys`), and the file itself is served, decrypted, as
the message's attachment (II.1).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from xmpp_clinic.archive.messages import MAX_PAGE, ArchiveQuery, MessageArchive
from xmpp_clinic.bridge.records import CopiesUnreadable, DocumentedAttachment, DocumentedMessage
from xmpp_clinic.completeness.parts import MarkerError, PartMarker, read_marker
from xmpp_clinic.records.attachments import AttachmentInfo
from xmpp_clinic.records.documentation import Documentation, DocumentationError
from xmpp_clinic.records.member import open_documentation
from xmpp_clinic.store import Store
from xmpp_clinic.threads import ThreadNotFound, ThreadService

MAX_PARTS = 1000  # the most [parts] max_parts allows; a larger marker is no part
# An aesgcm:// link (XEP-0454) as records.aesgcm finds it; its fragment holds IV and key.
_LINK = re.compile(r"aesgcm://[^\s<>\"']+", re.IGNORECASE)
_TRAILING = ".,;:)]}"  # punctuation after a link is the sentence's, not the link's


def _cut(match: re.Match[str]) -> str:
    found = match.group(0)
    link = found.rstrip(_TRAILING)
    return link.split("#", 1)[0] + found[len(link) :]


def without_keys(text: str) -> str:
    """``text`` with the key of every ``aesgcm://`` link cut off (pure, II.1)."""
    return _LINK.sub(_cut, text)


def reassemble(
    copies: Sequence[DocumentedMessage], markers: Mapping[str, PartMarker]
) -> list[DocumentedMessage]:
    """``copies`` (in position order) with every part set as one message (pure, II.2).

    A set stands where its first part arrived, its parts joined in part order; parts
    without a copy (never sent, or sent without a key for the records device) are in
    ``missing_parts``. Sets are told apart by sender and set id.
    """
    out: list[DocumentedMessage | tuple[str, str]] = []
    sets: dict[tuple[str, str], list[tuple[PartMarker, DocumentedMessage]]] = {}
    for copy in copies:
        marker = markers.get(copy.stanza_id) if copy.stanza_id else None
        if marker is None:
            out.append(copy)
            continue
        key = (copy.sender, marker.set_id)
        if key not in sets:
            sets[key] = []
            out.append(key)
        sets[key].append((marker, copy))
    return [item if isinstance(item, DocumentedMessage) else _joined(sets[item]) for item in out]


def _joined(parts: list[tuple[PartMarker, DocumentedMessage]]) -> DocumentedMessage:
    first = parts[0][1]
    of = parts[0][0].of
    texts = {m.n: c.body for m, c in parts if not c.gap and m.of == of}
    files = tuple(a for _m, c in sorted(parts, key=lambda p: p[0].n) for a in c.attachments)
    missing = tuple(n for n in range(1, of + 1) if n not in texts)
    return replace(
        first,
        body="".join(texts[n] for n in sorted(texts)),
        attachments=files,
        gap=not texts,
        parts=of,
        missing_parts=missing,
        parts_missing=len(missing),
        through_seq=max(c.seq for _m, c in parts),
    )


def _file(thread: str, info: AttachmentInfo) -> DocumentedAttachment:
    """An attachment as the bridge shows it: served by the API, never the upload link."""
    return DocumentedAttachment(
        url=f"/threads/{thread}/copies/{info.position}/attachments/{info.number}",
        media_type=info.media_type,
        size=info.size,
        sha1=bytes.fromhex(info.sha1) if info.status == "stored" else b"",
        title=info.name,
        position=info.position,
        number=info.number,
        status=info.status,
        reason=info.reason,
    )


def _marker(stanza: str) -> PartMarker | None:
    try:
        return read_marker(ET.fromstring(stanza), MAX_PARTS)
    except (ET.ParseError, MarkerError):
        return None  # the gateway refused such parts; an odd one is read as a message


class RecordsCopies:
    """Documentation copies from the records room; None: nothing was ever documented.

    With ``store``, part sets are reassembled from the archive's markers; without it
    every part is a message of its own.
    """

    def __init__(self, documentation: Documentation | None, store: Store | None = None) -> None:
        self._documentation = documentation
        self._store = store

    async def documented(self, thread: str) -> bool:
        if self._documentation is None:
            return False
        return thread in await self._documentation.threads()

    async def copies(
        self, thread: str, *, after_seq: int = 0, limit: int | None = None
    ) -> Sequence[DocumentedMessage]:
        if self._documentation is None:
            return ()
        try:
            found = await self._documentation.read(thread)
        except DocumentationError as exc:
            raise CopiesUnreadable(str(exc)) from None
        every = [
            DocumentedMessage(
                seq=c.position,
                stanza_id=c.stanza_id or c.message_id,
                sender=c.sender,
                at=c.at,
                body=without_keys(c.body),
                attachments=tuple(_file(thread, a) for a in c.attachments),
                gap=c.kind == "gap",
            )
            for c in found
        ]
        linked = [c.stanza_id for c in found if c.stanza_id]
        if self._store is not None and linked:
            every = reassemble(every, await self._markers(thread, linked))
        # Reassembled first, then paged: a set is never cut in two by a cursor.
        out = [m for m in every if m.seq > after_seq]
        return out if limit is None else out[:limit]

    async def attachment(
        self, thread: str, position: int, number: int
    ) -> tuple[DocumentedAttachment, bytes] | None:
        if self._documentation is None:
            return None
        try:
            found = await self._documentation.attachment(thread, position, number)
        except DocumentationError as exc:
            raise CopiesUnreadable(str(exc)) from None
        if found is None:
            return None
        info, content = found
        return _file(thread, info), content if info.status == "stored" else b""

    async def _markers(self, thread: str, stanza_ids: list[str]) -> dict[str, PartMarker]:
        assert self._store is not None
        try:
            thread_id = (await ThreadService(self._store, user_domains=()).get(thread)).id
        except ThreadNotFound:
            return {}  # deleted: its archive went with it
        archive, found = MessageArchive(self._store), {}
        for start in range(0, len(stanza_ids), MAX_PAGE):
            batch = tuple(stanza_ids[start : start + MAX_PAGE])
            page = await archive.query(ArchiveQuery(thread_id, ids=batch, limit=MAX_PAGE))
            for entry in page.entries:
                marker = _marker(entry.stanza)
                if marker is not None:
                    found[entry.stanza_id] = marker
        return found


async def open_copies(store: Store, key_file: Path) -> RecordsCopies:
    """The documentation copies for the bridge (part sets reassembled); a missing key
    file beside stored copies is RecordsKeyError naming it."""
    return RecordsCopies(await open_documentation(store, key_file), store)
