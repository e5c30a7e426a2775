"""slixmpp-omemo client bots for care-thread tests (legacy OMEMO, eu.siacs.conversations.axolotl).

What a stock OMEMO client does in a room, done explicitly:

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
import itertools
import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass

from slixmpp import JID, ClientXMPP, Message
from slixmpp.xmlstream.handler import CoroutineCallback
from slixmpp.xmlstream.matcher import MatchXPath

from tests.helpers.bots import connect_bot, disconnect_bot

# The OMEMO client plugin (in-memory storage, blind trust) is the demo phones' plugin.
from xmpp_clinic.dev.demo_clients import MemoryStorage
from xmpp_clinic.dev.servers import DevServer

log = logging.getLogger(__name__)

LEGACY_NS = "eu.siacs.conversations.axolotl"
OMEMO2_NS = "urn:xmpp:omemo:2"
MUC_ADMIN = "http://jabber.org/protocol/muc#admin"
MUC_USER = "http://jabber.org/protocol/muc#user"
MAM_NS = "urn:xmpp:mam:2"
OMEMO_PLUGINS = (
    "xep_0004", "xep_0030", "xep_0045", "xep_0059", "xep_0060", "xep_0163", "xep_0199",
    "xep_0280", "xep_0297", "xep_0313", "xep_0334", "xep_0359", "xep_0421",
)  # fmt: skip
OMEMO_START_TIMEOUT = 60.0  # ejabberd refuses publish-options, slixmpp-omemo retries
_query_ids = itertools.count(1)


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

    ejabberd 23.01 sometimes answers the very first PEP publish of a fresh account with
    item-not-found; a new login then succeeds, so the login is retried (same storage,
    same device).
    """
    storage = storage or MemoryStorage()
    for attempt in range(1, attempts + 1):
        bot = await connect_bot(jid, password, server, plugins=OMEMO_PLUGINS)
        bot.use_message_ids = True  # slixmpp-omemo needs ids to recognise reflections
        bot.register_plugin("xep_0384", {"storage": storage})
        try:
            # Registered after session start: this awaits the plugin's own start-up task.
            await asyncio.wait_for(
                bot.plugin["xep_0384"].get_session_manager(), OMEMO_START_TIMEOUT
            )
        except Exception as exc:
            await disconnect_bot(bot)
            if attempt == attempts:
                raise
            log.warning("OMEMO start-up failed (%s); logging in again", type(exc).__name__)
            continue
        bot.omemo_storage = storage
        return bot
    raise AssertionError("unreachable")


async def own_device_id(bot: ClientXMPP) -> int:
    """The legacy OMEMO device id this bot published."""
    session_manager = await bot.plugin["xep_0384"].get_session_manager()
    own, _others = await session_manager.get_own_device_information()
    return int(own.device_id)


async def join_thread(bot: ClientXMPP, thread_jid: str, nick: str, timeout: float = 20) -> None:
    """Join a thread like a MUC room; raises slixmpp's PresenceError when refused."""
    await bot.plugin["xep_0045"].join_muc_wait(JID(thread_jid), nick, maxstanzas=0, timeout=timeout)


async def thread_members(bot: ClientXMPP, thread_jid: str) -> set[str]:
    """Every member's bare JID from the muc#admin owner, admin and member lists."""
    members: set[str] = set()
    for affiliation in ("owner", "admin", "member"):
        iq = bot.make_iq_get(ito=thread_jid)
        query = ET.SubElement(iq.xml, f"{{{MUC_ADMIN}}}query")
        ET.SubElement(query, f"{{{MUC_ADMIN}}}item", {"affiliation": affiliation})
        result = await iq.send(timeout=20)
        for item in result.xml.iter(f"{{{MUC_ADMIN}}}item"):
            if item.get("jid"):
                members.add(JID(item.get("jid")).bare)
    return members


async def encrypt_for_thread(bot: ClientXMPP, thread_jid: str, body: str) -> Message:
    """``body`` encrypted for all thread members (but this device), ready to send."""
    recipients = await thread_members(bot, thread_jid)
    recipients.discard(bot.boundjid.bare)
    message = bot.make_message(mto=JID(thread_jid), mtype="groupchat")
    message["body"] = body
    plugin = bot.plugin["xep_0384"]
    encrypted, errors = await plugin.encrypt_message(message, {JID(j) for j in recipients})
    if errors:
        log.warning("encryption errors: %s", [type(e).__name__ for e in errors])
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


def _stanza_id(message: Message, thread_jid: str) -> str:
    for sid in message.xml.findall("{urn:xmpp:sid:0}stanza-id"):
        if sid.get("by") == thread_jid:
            return sid.get("id", "")
    return ""


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
                MatchXPath(f"{{jabber:client}}message/{{{LEGACY_NS}}}encrypted"),
                self._on_message,
            )
        )

    async def _on_message(self, message: Message) -> None:
        encrypted = message.xml.find(f"{{{LEGACY_NS}}}encrypted")
        if message["type"] != "groupchat" or encrypted is None:
            return
        if encrypted.find(f"{{{LEGACY_NS}}}payload") is None:
            return  # key transport / heartbeat: nothing to read
        thread = message["from"].bare
        self.received.append(message.xml)
        try:
            plain, device = await self.bot.plugin["xep_0384"].decrypt_message(message)
        except Exception as exc:
            self.failures.append(type(exc).__name__)
            await self.unreadable.put(message.xml)
            return
        nick = message["from"].resource
        own = self.bot.plugin["xep_0045"].get_our_jid_in_room(JID(thread)).endswith("/" + nick)
        await self.messages.put(
            Decrypted(
                device.bare_jid, nick, plain["body"], message["id"],
                _stanza_id(message, thread), own,
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
    queryid = f"q{next(_query_ids)}"
    results: list[Message] = []

    async def collect(message: Message) -> None:
        result = message.xml.find(f"{{{MAM_NS}}}result")
        if result is not None and result.get("queryid") == queryid:
            results.append(message["mam_result"]["forwarded"]["stanza"])

    name = f"MAM-{queryid}"
    bot.register_handler(
        CoroutineCallback(name, MatchXPath(f"{{jabber:client}}message/{{{MAM_NS}}}result"), collect)
    )
    try:
        iq = bot.make_iq_set(ito=thread_jid)
        query = ET.SubElement(iq.xml, f"{{{MAM_NS}}}query", {"queryid": queryid})
        rsm = ET.SubElement(query, "{http://jabber.org/protocol/rsm}set")
        ET.SubElement(rsm, "{http://jabber.org/protocol/rsm}max").text = "250"
        await iq.send(timeout=timeout)
    finally:
        bot.remove_handler(name)
    return results


async def decrypt_history(bot: ClientXMPP, archived: Iterable[Message]) -> list[Decrypted]:
    """Decrypt archived thread messages using the real sender JID the archive carries.

    slixmpp-omemo finds a groupchat sender through the room's presence; for history the
    sender may have left, so the message is decrypted as coming from the real JID.
    """
    out: list[Decrypted] = []
    plugin = bot.plugin["xep_0384"]
    for message in archived:
        item = message.xml.find(f"{{{MUC_USER}}}x/{{{MUC_USER}}}item")
        if (
            item is None
            or message.xml.find(f"{{{LEGACY_NS}}}encrypted/{{{LEGACY_NS}}}payload") is None
        ):
            continue
        as_direct = Message(bot, xml=ET.fromstring(ET.tostring(message.xml)))
        as_direct["type"] = "chat"
        as_direct["from"] = JID(item.get("jid", "")).bare
        plain, device = await plugin.decrypt_message(as_direct)
        out.append(
            Decrypted(
                device.bare_jid, message["from"].resource, plain["body"], message["id"],
                _stanza_id(message, message["from"].bare), False,
            )
        )  # fmt: skip
    return out
