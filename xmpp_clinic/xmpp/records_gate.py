"""The records member reads documented threads: decrypt after the policy, store, then
relay (I.6, II.1, I.12).

:class:`RecordsGate` wraps the relay's policy as ``client_versions.gate`` does. In a
thread whose member list includes the records member (a documented thread):

1. the inner policy decides on the message *without* the records device's key (and
   without the records member among the members), so the device registry needs no
   entry for it and no "may not be able to read" notice names it;
2. when the policy accepts, the records device decrypts its own key and the plaintext
   is appended to the documentation (``records/documentation.py``) before the verdict
   goes back to the relay, so nothing is relayed that was not documented;
3. a message without a key for the records device (or one it cannot decrypt) is
   relayed as usual, the gap is recorded, and the sender gets a content-free notice;
4. if the copy cannot be stored, the message is refused with
   ``documentation-not-stored`` (fail closed);
5. a message encrypted *only* for the records device is refused with
   ``no-approved-recipient`` and a sentence naming the fix: no member could read it,
   and documenting what the team never saw would make the record say something was
   communicated that was not. The sender's app keeps the message and can send it again
   once it knows the members' devices (a key transport for the records device alone
   still reaches python-omemo, so the session goes on);
6. ``aesgcm://`` links in a copy are fetched afterwards, apart from the relay
   (``records/fetch.py``); a failed fetch is an attachment gap, never a lost message.

Messages without payload (key transport, ratchet upkeep) are given to python-omemo to
keep the session; there is nothing to document. Undocumented threads pass straight to
the inner policy.
"""

from __future__ import annotations

import dataclasses
import logging
import xml.etree.ElementTree as ET

from xmpp_clinic.clock import utcnow
from xmpp_clinic.jids import fast_bare
from xmpp_clinic.omemo import (
    BY_URI,
    OMEMO2,
    OmemoHeader,
    RecipientKey,
    encrypted_elements,
    parse_header,
    strip_keys,
)
from xmpp_clinic.policy.verdict import MessageContext, MessagePolicy, ReasonCode, Verdict
from xmpp_clinic.records.documentation import Content, Documentation, NewCopy, links_of
from xmpp_clinic.records.fetch import AttachmentFetcher
from xmpp_clinic.records.identity import RecordsDevice
from xmpp_clinic.store import StoreUnavailable

log = logging.getLogger(__name__)

GAP_NOTICE = "Your app did not encrypt for the documentation service; update the member list."
ONLY_RECORDS_TEXT = (
    "This message was encrypted only for the documentation service, so no member of the "
    "thread could read it; it was neither delivered nor documented. Your app does not know "
    "the members' devices: refresh the thread's member list (leave and rejoin the thread) "
    "and send it again."
)
SCE_NS = "urn:xmpp:sce:1"
BODY = "{jabber:client}body"


def content_of(namespace: str, plaintext: bytes) -> Content:
    """The body (and for OMEMO 2 the SCE ``<content>`` as XML) of a decrypted payload."""
    if namespace != OMEMO2.uri:
        return Content(plaintext.decode("utf-8", errors="replace"))
    envelope = ET.fromstring(plaintext)
    content = envelope.find(f"{{{SCE_NS}}}content")
    if content is None:
        return Content("")
    body = content.find(BODY)
    return Content(body.text or "" if body is not None else "", ET.tostring(content, "unicode"))


class RecordsGate:
    """``inner`` with documentation for documented threads (I.6); see the module docstring."""

    def __init__(
        self,
        inner: MessagePolicy,
        device: RecordsDevice,
        documentation: Documentation,
        fetcher: AttachmentFetcher | None = None,
    ) -> None:
        self.inner = inner
        self.device = device
        self.documentation = documentation
        self.fetcher = fetcher  # None: links stay pending (fetched at the next start)

    async def _our_keys(self, header: OmemoHeader) -> list[RecipientKey]:
        device_id = await self.device.device_id()
        return [k for k in header.keys if k.rid == device_id and k.jid in (None, self.device.jid)]

    async def evaluate(self, ctx: MessageContext) -> Verdict:
        if self.device.jid not in ctx.members:
            return await self.inner.evaluate(ctx)
        header = parse_header(ctx.stanza)
        ours = await self._our_keys(header) if isinstance(header, OmemoHeader) else []
        if isinstance(header, OmemoHeader) and ours and len(ours) == len(header.keys):
            return await self._only_ours(ctx, header)
        hidden = dataclasses.replace(
            ctx,
            members=ctx.members - {self.device.jid},
            stanza=strip_keys(ctx.stanza, ours) if ours else ctx.stanza,
        )
        verdict = await self.inner.evaluate(hidden)
        if verdict.rejected or not isinstance(header, OmemoHeader):
            return verdict
        try:
            gap = await self._document(ctx, header, bool(ours))
        except Exception:
            log.exception("documentation copy not stored; message refused (fail closed)")
            return Verdict.reject(ReasonCode.DOCUMENTATION_NOT_STORED, "")
        if gap:
            return dataclasses.replace(verdict, notices=(*verdict.notices, GAP_NOTICE))
        return verdict

    async def _only_ours(self, ctx: MessageContext, header: OmemoHeader) -> Verdict:
        """Refuse a message only the records device could read (see the module docstring)."""
        if not header.has_payload:
            (encrypted,) = encrypted_elements(ctx.stanza)
            try:  # key transport / ratchet upkeep: keep the session going
                await self.device.decrypt(
                    BY_URI[header.namespace], encrypted, fast_bare(ctx.sender)
                )
            except Exception as exc:
                log.info("records key transport not taken", extra={"why": type(exc).__name__})
        return Verdict.reject(ReasonCode.NO_APPROVED_RECIPIENT, ONLY_RECORDS_TEXT)

    async def _document(self, ctx: MessageContext, header: OmemoHeader, keyed: bool) -> bool:
        """Decrypt and append the copy; True when it was a gap (no key, undecryptable)."""
        if not keyed and not header.has_payload:
            return False  # key transport for other devices: no message, no gap
        sender = fast_bare(ctx.sender)
        thread = ctx.thread.split("@", 1)[0]
        message_id = ctx.stanza.get("id", "")
        content: Content | None = None
        reason = "no-key"
        if keyed:
            version = BY_URI[header.namespace]
            (encrypted,) = encrypted_elements(ctx.stanza)
            try:
                plaintext = await self.device.decrypt(version, encrypted, sender)
            except StoreUnavailable:
                raise  # the gateway's fault, not the sender's: fail closed
            except Exception as exc:  # the sender's data: a gap, never a refusal
                log.warning("records device could not decrypt", extra={"why": type(exc).__name__})
                reason = "undecryptable"
            else:
                if plaintext is None or not header.has_payload:
                    return False  # key transport / ratchet upkeep: nothing to document
                content = content_of(header.namespace, plaintext)
        copy = NewCopy(thread, utcnow(), sender, message_id, content, reason)
        position = await self.documentation.append(copy)
        if content is not None and self.fetcher is not None and links_of(content):
            self.fetcher.schedule(thread, position)
        return content is None
