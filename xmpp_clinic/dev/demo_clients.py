"""Scripted OMEMO phones for ``xmpp-clinic demo``: what a clinician's client does in a thread.

Each :class:`Phone` is one clinician's slixmpp client with slixmpp-omemo (legacy OMEMO,
``eu.siacs.conversations.axolotl``), doing explicitly what Conversations or Gajim do:

- log in and publish the device's bundle and device list (:meth:`Phone.log_in`);
- join a care thread as a MUC room (presence to ``thread/nick``);
- encrypt for every member from the thread's ``muc#admin`` lists, offline members
  included, and send (:meth:`Phone.send_encrypted`);
- decrypt what arrives (:meth:`Phone.next_message`), recognising its own reflected copy;
- catch up on missed messages by MAM (:meth:`Phone.history`).

Demo only: plaintext c2s on loopback, keys in memory, blind trust before verification
(BTBV). Keeping the :class:`MemoryStorage` across logins keeps the device.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from slixmpp import JID, ClientXMPP, Message
from slixmpp.xmlstream.handler import CoroutineCallback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.xmlstream.stanzabase import StanzaBase

from xmpp_clinic import namespaces
from xmpp_clinic.omemo import LEGACY_NS

from .bots import BotLoginError, disconnect_bot
from .omemo_client import (
    BlindTrustOmemo,
    MemoryStorage,
    OwnDevice,
    connect_omemo,
    omemo_of,
    own_device,
)
from .servers import DevServer
from .thread_client import (
    archived_sender,
    as_direct_from,
    fetch_history,
    has_omemo_payload,
    join_thread,
    stanza_id,
    thread_members,
)


class PhoneError(RuntimeError):
    """A scripted phone could not do its step; ``str()`` says which and why."""


@dataclass(frozen=True)
class Decrypted:
    """A thread message as one phone read it."""

    sender: str  # the sender's real bare JID, as the OMEMO session names it
    nick: str
    body: str
    stanza_id: str  # the thread's <stanza-id>: its archive id
    own: bool  # this phone's own message, come back from the thread (reflection)


@dataclass
class Phone:
    """One clinician's OMEMO client; ``storage`` survives logging out and in again."""

    name: str  # as printed, e.g. "Dr. Alice"
    nick: str
    jid: str
    password: str
    storage: MemoryStorage = field(default_factory=MemoryStorage)
    client: ClientXMPP | None = None
    inbox: asyncio.Queue[Decrypted] = field(default_factory=asyncio.Queue)
    plaintext_seen: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _errors: asyncio.Queue[Message] = field(default_factory=asyncio.Queue)

    @property
    def xmpp(self) -> ClientXMPP:
        if self.client is None:
            raise PhoneError(f"{self.name} is not logged in")
        return self.client

    @property
    def omemo(self) -> BlindTrustOmemo:
        return omemo_of(self.xmpp)

    # ------------------------------------------------------------- session
    async def log_in(self, server: DevServer) -> None:
        """Connect, send presence, and wait until the OMEMO device is published."""
        try:
            self.client = await connect_omemo(self.jid, self.password, server, storage=self.storage)
        except BotLoginError as exc:
            raise PhoneError(f"{self.name} could not log in: {exc}") from None
        except Exception as exc:
            reason = f"{type(exc).__name__} {exc}".strip()
            raise PhoneError(f"{self.name}'s OMEMO device did not start: {reason}") from None
        self._listen(self.client)

    async def log_out(self) -> None:
        """Close the stream (leaving every thread) and stop the client's tasks."""
        client, self.client = self.client, None
        if client is not None:
            await disconnect_bot(client)

    async def own_device(self) -> OwnDevice:
        return await own_device(self.xmpp)

    # ------------------------------------------------------------- threads
    async def join(self, thread: str, timeout: float = 20.0) -> None:
        await join_thread(self.xmpp, thread, self.nick, timeout=timeout)

    async def send_encrypted(self, thread: str, body: str) -> None:
        """Encrypt ``body`` for every member's devices (and our other devices); send it."""
        recipients = await thread_members(self.xmpp, thread)
        recipients.discard(self.xmpp.boundjid.bare)
        message = self.xmpp.make_message(mto=JID(thread), mtype="groupchat")
        message["body"] = body
        encrypted, errors = await self.omemo.encrypt_message(message, {JID(j) for j in recipients})
        if errors:
            self.failures.extend(type(error).__name__ for error in errors)
        if encrypted is None:
            raise PhoneError(f"{self.name} could not encrypt for {', '.join(sorted(recipients))}")
        encrypted.send()

    async def send_plaintext(self, thread: str, body: str, timeout: float = 10.0) -> str:
        """Send an unencrypted body; return the error condition the thread answered with."""
        message = self.xmpp.make_message(mto=JID(thread), mbody=body, mtype="groupchat")
        message.send()
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            try:
                error = await asyncio.wait_for(self._errors.get(), max(left, 0.01))
            except TimeoutError:
                return "none (the message was not refused)"
            if error["id"] == message["id"]:
                return _describe_error(error)

    async def next_message(self, timeout: float = 30.0) -> Decrypted:
        try:
            return await asyncio.wait_for(self.inbox.get(), timeout)
        except TimeoutError:
            raise PhoneError(f"{self.name} received no message within {timeout:.0f} s") from None

    async def history(
        self, thread: str, *, after_id: str | None = None, timeout: float = 30.0
    ) -> list[Decrypted]:
        """Query the thread's MAM archive (after ``after_id``) and decrypt the results.

        As a client catching up, ``after_id`` is the last archive id this phone saw.
        """
        archived = await fetch_history(self.xmpp, thread, after_id=after_id, timeout=timeout)
        return [
            await self._decrypt_archived(message, sender)
            for message in archived
            if (sender := archived_sender(message)) is not None and has_omemo_payload(message.xml)
        ]

    # ------------------------------------------------------------- receiving
    def _listen(self, client: ClientXMPP) -> None:
        client.register_handler(
            CoroutineCallback(
                f"DemoInbox-{self.nick}",
                MatchXPath(f"{{{namespaces.CLIENT}}}message/{{{LEGACY_NS}}}encrypted"),
                self._on_encrypted,
            )
        )
        client.add_event_handler("groupchat_message", self._on_groupchat)
        client.add_event_handler("message_error", self._errors.put_nowait)

    def _on_groupchat(self, message: Message) -> None:
        if message.xml.find(f"{{{LEGACY_NS}}}encrypted") is None and message["body"]:
            self.plaintext_seen.append(message["body"])

    async def _on_encrypted(self, message: StanzaBase) -> None:
        if not isinstance(message, Message) or message["type"] != "groupchat":
            return
        if not has_omemo_payload(message.xml):
            return  # key transport: nothing to read
        thread = message["from"].bare
        try:
            plain, device = await self.omemo.decrypt_message(message)
        except Exception as exc:
            self.failures.append(type(exc).__name__)
            return
        nick = message["from"].resource
        own = nick == self.nick
        await self.inbox.put(
            Decrypted(device.bare_jid, nick, plain["body"], stanza_id(message, thread), own)
        )

    async def _decrypt_archived(self, message: Message, sender: str) -> Decrypted:
        """Decrypt an archived message as a direct message from the real JID it names."""
        plain, device = await self.omemo.decrypt_message(as_direct_from(message, sender))
        thread = message["from"].bare
        nick = message["from"].resource
        return Decrypted(device.bare_jid, nick, plain["body"], stanza_id(message, thread), False)


def _describe_error(message: Message) -> str:
    """``condition (app-condition): text`` from raw XML.

    slixmpp's Error stanza does not know RFC 6120's ``policy-violation``, so its
    ``condition`` is empty for exactly the error the gateway sends.
    """
    error = message.xml.find(f"{{{namespaces.CLIENT}}}error")
    if error is None:
        return "unknown"
    condition, extra, text = "unknown", "", ""
    for child in error:
        namespace, _, tag = child.tag[1:].partition("}")
        if namespace == namespaces.STANZAS and tag == "text":
            text = child.text or ""
        elif namespace == namespaces.STANZAS:
            condition = tag
        else:
            extra = f" ({tag})"
    return f"{condition}{extra}: {text}" if text else f"{condition}{extra}"
