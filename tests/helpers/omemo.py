"""slixmpp-omemo client bots for care-thread tests (legacy OMEMO, eu.siacs.conversations.axolotl).

What a stock OMEMO client does in a room, done explicitly (the client side itself is the
demo phones' one, :mod:`xmpp_clinic.dev.omemo_client` and
:mod:`xmpp_clinic.dev.thread_client`):

- ``connect_omemo_bot`` logs in with XEP-0045 + XEP-0384 loaded and waits until the
  device has published its bundle and device list;
- ``join_thread`` joins a thread as a MUC room (presence to ``thread/nick``);
- ``send_omemo_groupchat`` encrypts for every member from the thread's ``muc#admin``
  lists (owner, admin, member: offline members included, as Conversations does) and
  sends; the bot recognises its reflected copy by the message id (slixmpp-omemo's cache);
- ``OmemoInbox`` decrypts every OMEMO groupchat message the bot receives;
- ``fetch_thread_history`` queries the thread's MAM archive and decrypts the results,
  using the sender's real JID that the archive carries (the sender may be gone).

Trust is blind trust before verification (BTBV); storage is in memory, and a
:class:`MemoryStorage` can be handed to a second login of the same account so that the
device (and its sessions) survive a reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass

from slixmpp import JID, ClientXMPP, Message
from slixmpp.xmlstream.handler import CoroutineCallback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.xmlstream.stanzabase import StanzaBase

from xmpp_clinic import namespaces
from xmpp_clinic.dev.omemo_client import MemoryStorage, connect_omemo, omemo_of, own_device
from xmpp_clinic.dev.servers import DevServer
from xmpp_clinic.dev.thread_client import (
    archived_sender,
    as_direct_from,
    fetch_history,
    has_omemo_payload,
    join_thread,
    stanza_id,
    thread_members,
)
from xmpp_clinic.omemo import LEGACY_NS

__all__ = [
    "Decrypted",
    "MemoryStorage",
    "OmemoInbox",
    "connect_omemo_bot",
    "decrypt_history",
    "encrypt_for_thread",
    "fetch_thread_history",
    "join_thread",
    "key_rids",
    "own_device_id",
    "send_omemo_groupchat",
    "thread_members",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decrypted:
    """A decrypted thread message as one occupant saw it."""

    sender: str  # real bare JID of the sender
    nick: str
    body: str
    message_id: str
    stanza_id: str
    reflected: bool  # the bot's own message, recognised from its reflection


async def connect_omemo_bot(
    jid: str,
    password: str,
    server: DevServer,
    *,
    storage: MemoryStorage | None = None,
    attempts: int = 3,
) -> ClientXMPP:
    """Log in with OMEMO; returns once the device's bundle and device list are published.

    Pass the same ``storage`` to a later login to keep the device. ejabberd's occasional
    item-not-found on a fresh account's first PEP publish is handled by logging in again
    (:func:`~xmpp_clinic.dev.omemo_client.connect_omemo`).
    """
    storage = storage or MemoryStorage()
    return await connect_omemo(jid, password, server, storage=storage, attempts=attempts)


async def own_device_id(bot: ClientXMPP) -> int:
    """The legacy OMEMO device id this bot published."""
    return (await own_device(bot)).device_id


async def encrypt_for_thread(bot: ClientXMPP, thread_jid: str, body: str) -> Message:
    """``body`` encrypted for all thread members (but this device), ready to send."""
    recipients = await thread_members(bot, thread_jid)
    recipients.discard(bot.boundjid.bare)
    message = bot.make_message(mto=JID(thread_jid), mtype="groupchat")
    message["body"] = body
    encrypted, errors = await omemo_of(bot).encrypt_message(message, {JID(j) for j in recipients})
    if errors:
        log.warning("encryption errors: %s", [type(e).__name__ for e in errors])
    if encrypted is None:
        raise AssertionError(f"{bot.boundjid.bare} could not encrypt for {sorted(recipients)}")
    return encrypted


async def send_omemo_groupchat(bot: ClientXMPP, thread_jid: str, body: str) -> str:
    """Encrypt ``body`` for all thread members (but this device) and send it; the id."""
    encrypted = await encrypt_for_thread(bot, thread_jid, body)
    encrypted.send()
    return str(encrypted["id"])


def key_rids(message: ET.Element) -> list[int]:
    """The ``rid`` of every legacy OMEMO ``<key>`` in ``message`` (whom it is readable for)."""
    header = f"{{{LEGACY_NS}}}encrypted/{{{LEGACY_NS}}}header/{{{LEGACY_NS}}}key"
    return [int(key.get("rid", "0")) for key in message.iterfind(header)]


class OmemoInbox:
    """Collects and decrypts the OMEMO groupchat messages one bot receives."""

    def __init__(self, bot: ClientXMPP) -> None:
        self.bot = bot
        self.messages: asyncio.Queue[Decrypted] = asyncio.Queue()
        self.failures: list[str] = []
        # Every OMEMO groupchat message with a payload, as received (decryptable or not),
        # and those this device could not decrypt, by message id.
        self.received: list[ET.Element] = []
        self.unreadable: asyncio.Queue[ET.Element] = asyncio.Queue()
        bot.register_handler(
            CoroutineCallback(
                f"OmemoInbox-{id(self)}",
                MatchXPath(f"{{{namespaces.CLIENT}}}message/{{{LEGACY_NS}}}encrypted"),
                self._on_message,
            )
        )

    async def _on_message(self, message: StanzaBase) -> None:
        if not isinstance(message, Message) or message["type"] != "groupchat":
            return
        if not has_omemo_payload(message.xml):
            return  # key transport / heartbeat: nothing to read
        thread = message["from"].bare
        self.received.append(message.xml)
        try:
            plain, device = await omemo_of(self.bot).decrypt_message(message)
        except Exception as exc:
            self.failures.append(type(exc).__name__)
            await self.unreadable.put(message.xml)
            return
        nick = message["from"].resource
        own = self.bot.plugin["xep_0045"].get_our_jid_in_room(JID(thread)).endswith("/" + nick)
        await self.messages.put(
            Decrypted(
                device.bare_jid, nick, plain["body"], message["id"],
                stanza_id(message, thread), own,
            )
        )  # fmt: skip

    async def take(self, count: int, timeout: float = 30) -> list[Decrypted]:
        """The next ``count`` decrypted messages (waits up to ``timeout`` seconds)."""
        return [await asyncio.wait_for(self.messages.get(), timeout) for _ in range(count)]

    async def take_unreadable(self, timeout: float = 30) -> ET.Element:
        """The next message that arrived but could not be decrypted on this device."""
        return await asyncio.wait_for(self.unreadable.get(), timeout)


async def fetch_thread_history(
    bot: ClientXMPP, thread_jid: str, *, timeout: float = 30
) -> list[Message]:
    """All MAM results of ``thread_jid`` (one query, max 250): the forwarded messages."""
    return await fetch_history(bot, thread_jid, timeout=timeout)


async def decrypt_history(bot: ClientXMPP, archived: Iterable[Message]) -> list[Decrypted]:
    """Decrypt archived thread messages using the real sender JID the archive carries.

    slixmpp-omemo finds a groupchat sender through the room's presence; for history the
    sender may have left, so the message is decrypted as coming from the real JID.
    """
    out: list[Decrypted] = []
    for message in archived:
        sender = archived_sender(message)
        if sender is None or not has_omemo_payload(message.xml):
            continue
        plain, device = await omemo_of(bot).decrypt_message(as_direct_from(message, sender))
        out.append(
            Decrypted(
                device.bare_jid, message["from"].resource, plain["body"], message["id"],
                stanza_id(message, message["from"].bare), False,
            )
        )  # fmt: skip
    return out
