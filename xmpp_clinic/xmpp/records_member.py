"""The documentation member in the running gateway: one part to wire (I.6, II.1).

:class:`RecordsPart` holds what the gateway needs of the records member: the policy
gate (``records_gate.py``), its PEP (``records_pep.py``), the ``set-documented``
ad-hoc command, the room notices (``records_flags.py``) and the attachment fetcher
(``records/fetch.py``, which also takes up attachments an earlier run left pending).
The records device is opened in :meth:`RecordsPart.start`, before the component
connects: a missing key file beside an existing identity raises
:class:`~xmpp_clinic.records.keys.RecordsKeyError` naming ``[records] key_file`` and
the gateway does not start (I.12). Until the device
is open, documented threads' messages are refused, never relayed undocumented.
"""

from __future__ import annotations

import logging

from xmpp_clinic.policy.verdict import MessageContext, MessagePolicy, ReasonCode, Verdict
from xmpp_clinic.records import member_jid
from xmpp_clinic.records.fetch import AttachmentFetcher
from xmpp_clinic.records.member import RecordsMember, open_member
from xmpp_clinic.settings.records import RecordsSettings
from xmpp_clinic.store import Store
from xmpp_clinic.xmpp.pep import PepFetcher
from xmpp_clinic.xmpp.records_flags import DocumentationNotices, RecordsCommands
from xmpp_clinic.xmpp.records_gate import RecordsGate
from xmpp_clinic.xmpp.records_pep import PepDirectory, RecordsPep
from xmpp_clinic.xmpp.threads import ThreadHost

log = logging.getLogger(__name__)


class RecordsPart:
    """The records member of one gateway (composition: host, store, PEP)."""

    def __init__(
        self, host: ThreadHost, settings: RecordsSettings, store: Store, pep: PepFetcher
    ) -> None:
        self.host = host
        self.settings = settings
        self.store = store
        self.pep = pep
        self.jid = member_jid(settings.localpart, host.settings.xmpp.component_jid)
        self.notices = DocumentationNotices(host)
        self.member: RecordsMember | None = None
        self.fetcher: AttachmentFetcher | None = None

    def gate(self, inner: MessagePolicy) -> MessagePolicy:
        """``inner`` with documentation of documented threads (the relay's policy)."""
        return _Gate(inner, self)

    def attach(self) -> None:
        RecordsCommands(self.host).attach()

    async def start(self) -> RecordsMember:
        """Open the records device (RecordsKeyError when its key is lost); serve its PEP."""
        member = await open_member(
            self.store, self.settings, self.host.settings.xmpp.component_jid, PepDirectory(self.pep)
        )
        if member.key_created:
            log.warning(
                "records key file created; back it up with the store",
                extra={"setting": "records.key_file", "path": str(self.settings.key_file)},
            )
        RecordsPep(self.host.xmpp, member.device).attach()
        self.fetcher = AttachmentFetcher(member.documentation, self.settings)
        self.member = member
        await self.fetcher.resume()  # attachments an earlier run had not fetched yet
        await self.notices.check()  # remember which threads are documented now
        return member

    async def archived(
        self, thread: str, message_id: str, sender: str, stanza_id: str, seq: int
    ) -> None:
        """The relay's hook once a message is archived: tie its documentation copy to the
        archive's stanza id and sequence (II.2). Never raises into the relay: a copy left
        unlinked is still in the documentation, in order, with sender and message id."""
        if self.member is None:
            return
        info = self.host.book.get(thread)
        if info is not None and not info.documented:
            return  # no copy to link: no store round trip for every message (issue 13)
        try:
            await self.member.documentation.link(thread, message_id, sender, stanza_id, seq)
        except Exception:
            log.warning("documentation copy not linked to the archive", extra={"seq": seq})

    async def stop(self) -> None:
        if self.fetcher is not None:
            await self.fetcher.close()
        if self.member is not None:
            await self.member.device.close()


class _Gate:
    """The records gate once the device is open; before, documented threads fail closed."""

    def __init__(self, inner: MessagePolicy, part: RecordsPart) -> None:
        self.inner = inner
        self.part = part
        self._gate: RecordsGate | None = None

    async def evaluate(self, ctx: MessageContext) -> Verdict:
        member = self.part.member
        if self.part.jid not in ctx.members:
            return await self.inner.evaluate(ctx)
        if member is None:
            return Verdict.reject(ReasonCode.DOCUMENTATION_NOT_STORED, "")
        if self._gate is None:
            self._gate = RecordsGate(
                self.inner, member.device, member.documentation, self.part.fetcher
            )
        # A flag switched while the gateway ran: the room hears of it before this message.
        await self.part.notices.check()
        return await self._gate.evaluate(ctx)
