"""The records member's documentation copies, read through the bridge's protocol (I.6).

Adapts :class:`xmpp_clinic.records.documentation.Documentation` (issue 14) to
:class:`~xmpp_clinic.bridge.records.DocumentationCopies`: positions become the API's
sequence (a gap keeps its position, so the HIS sees where a copy is missing), and a
broken chain or missing key is :class:`~xmpp_clinic.bridge.records.CopiesUnreadable`,
which the API answers with 503 rather than a partial record.
"""

from __future__ import annotations

from collections.abc import Sequence

from xmpp_clinic.bridge.records import CopiesUnreadable, DocumentedMessage
from xmpp_clinic.records.documentation import Documentation, DocumentationError


class RecordsCopies:
    """Documentation copies from the records room; None: nothing was ever documented."""

    def __init__(self, documentation: Documentation | None) -> None:
        self._documentation = documentation

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
        out = [
            DocumentedMessage(
                seq=c.position,
                stanza_id=c.stanza_id or c.message_id,
                sender=c.sender,
                at=c.at,
                body=c.body,
                gap=c.kind == "gap",
            )
            for c in found
            if c.position > after_seq
        ]
        return out if limit is None else out[:limit]
