"""Scripted OMEMO phones for ``xmpp-clinic demo``: what a clinician's client does in a thread.

Each :class:`Phone` is one clinician's slixmpp client with slixmpp-omemo (legacy OMEMO,
``eu.siacs.conversations.axolotl``), doing explicitly what Conversations or Gajim do:

- log in and publish the device's bundle and device list (:meth:`Phone.log_in`);
- join a care thread as a MUC room (presence to ``thread/nick``);
- encrypt for every member from the thread's ``muc#admin`` lists, offline members
  included, and send (:meth:`Phone.send_encrypted`); a text longer than
  ``parts.max_part_bytes`` goes as a part set, every part encrypted and marked
  "part x of y" (II.2);
- decrypt what arrives (:meth:`Phone.next_message`), recognising its own reflected copy,
  put part sets back together in part order and say which parts are still missing
  (:meth:`Phone.missing`);
- show the notices the thread posts as itself (:meth:`Phone.next_notice`);
- catch up on missed messages by MAM (:meth:`Phone.history`), part sets reassembled.

Sending and reading parts is :mod:`xmpp_clinic.client`'s (:func:`~xmpp_clinic.client.
encrypt_text`, :func:`~xmpp_clinic.client.decrypt_part`, :class:`~xmpp_clinic.client.
Reassembly`), the library a hospital integration posts with: the demo shows that code.

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
from xmpp_clinic.client import (
    DEFAULT_MAX_PART_BYTES,
    Assembled,
    ReadPart,
    Reassembly,
    decrypt_part,
    encrypt_text,
)
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
)


class PhoneError(RuntimeError):
    """A scripted phone could not do its step; ``str()`` says which and why."""


@dataclass(frozen=True)
class Decrypted:
    """A thread message as one phone read it."""

    sender: str  # the sender's real bare JID, as the OMEMO session names it
    nick: str
    body: str
    stanza_id: str  # the thread's <stanza-id> (of a set's last part): its archive id
    own: bool  # this phone's own message, come back from the thread (reflection)
    of: int = 1  # how many parts it came in
    arrived: tuple[int, ...] = ()  # a part set's part numbers in the order they came in


@dataclass
class Phone:
    """One clinician's OMEMO client; ``storage`` survives logging out and in again."""

    name: str  # as printed, e.g. "Dr. Alice"
    nick: str
    jid: str
    password: str
    storage: MemoryStorage = field(default_factory=MemoryStorage)
    max_part_bytes: int = DEFAULT_MAX_PART_BYTES  # the gateway's parts.max_part_bytes
    client: ClientXMPP | None = None
    inbox: asyncio.Queue[Decrypted] = field(default_factory=asyncio.Queue)
    notices: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    reassembly: Reassembly = field(default_factory=Reassembly)
    plaintext_seen: list[str] = field(default_factory=list)
    history_missing: list[str] = field(default_factory=list)  # of the last history()
    failures: list[str] = field(default_factory=list)
    _errors: asyncio.Queue[Message] = field(default_factory=asyncio.Queue)
    # slixmpp runs each coroutine handler as its own task: one message is read at a time,
    # in the order the stream delivered them (asyncio.Lock wakes its waiters in order).
    _reading: asyncio.Lock = field(default_factory=asyncio.Lock)

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

    async def encrypt(self, thread: str, body: str) -> list[Message]:
        """``body`` encrypted for every member's devices (and our other devices), split
        into a marked part set when it is longer than ``max_part_bytes`` (II.2)."""
        try:
            encrypted = await encrypt_text(
                self.xmpp, thread, body, max_part_bytes=self.max_part_bytes
            )
        except RuntimeError:
            raise PhoneError(f"{self.name} could not encrypt for {thread}'s members") from None
        self.failures.extend(encrypted.device_errors)
        return encrypted.messages

    async def send_encrypted(self, thread: str, body: str) -> int:
        """Encrypt ``body`` (as a part set when long) and send it; the number of parts."""
        messages = await self.encrypt(thread, body)
        for message in messages:
            message.send()
        return len(messages)

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
        """The next whole message: an unsplit one, or a part set once its last part came."""
        try:
            return await asyncio.wait_for(self.inbox.get(), timeout)
        except TimeoutError:
            raise PhoneError(f"{self.name} received no message within {timeout:.0f} s") from None

    def missing(self) -> list[str]:
        """ "part x of y missing" for every part set this phone has not got whole yet."""
        return self.reassembly.missing()

    async def next_notice(self, timeout: float = 30.0) -> str:
        """The next notice the thread posted as itself (plaintext, content-free)."""
        try:
            return await asyncio.wait_for(self.notices.get(), timeout)
        except TimeoutError:
            raise PhoneError(
                f"{self.name} got no notice from the thread in {timeout:.0f} s"
            ) from None

    async def history(
        self, thread: str, *, after_id: str | None = None, timeout: float = 30.0
    ) -> list[Decrypted]:
        """Query the thread's MAM archive (after ``after_id``) and decrypt the results.

        As a client catching up, ``after_id`` is the last archive id this phone saw.
        """
        archived = await fetch_history(self.xmpp, thread, after_id=after_id, timeout=timeout)
        reassembly = Reassembly()  # a set is whole when all its parts are in the archive
        found: list[Decrypted] = []
        for message in archived:
            sender = archived_sender(message)
            if sender is None or not has_omemo_payload(message.xml):
                continue
            part = await decrypt_part(self.xmpp, as_direct_from(message, sender))
            whole = reassembly.add(part.sender, part.marker, part.text)
            if whole is not None:
                found.append(_decrypted(whole, message, own=False))
        self.history_missing = reassembly.missing()
        return found

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
        if message.xml.find(f"{{{LEGACY_NS}}}encrypted") is not None or not message["body"]:
            return
        if message["from"].resource:
            self.plaintext_seen.append(message["body"])
        else:  # from the thread itself: a notice
            self.notices.put_nowait(message["body"])

    async def _on_encrypted(self, message: StanzaBase) -> None:
        if not isinstance(message, Message) or message["type"] != "groupchat":
            return
        if not has_omemo_payload(message.xml):
            return  # key transport: nothing to read
        async with self._reading:
            try:
                part: ReadPart = await decrypt_part(self.xmpp, message)
            except Exception as exc:  # a bad part marker, or a message that does not decrypt
                self.failures.append(type(exc).__name__)
                return
            whole = self.reassembly.add(part.sender, part.marker, part.text)
            if whole is not None:
                own = message["from"].resource == self.nick
                self.inbox.put_nowait(_decrypted(whole, message, own=own))


def _decrypted(whole: Assembled, last: Message, *, own: bool) -> Decrypted:
    """What a phone shows for a whole message whose last part (or only message) is ``last``."""
    thread = last["from"].bare
    nick = last["from"].resource
    return Decrypted(
        whole.sender, nick, whole.text, stanza_id(last, thread), own, whole.of, whole.arrived
    )


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
