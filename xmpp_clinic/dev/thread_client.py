"""What a stock client does in a care thread, as functions over a slixmpp client.

A care thread looks like a members-only MUC room to clients (IV.2): they join with
presence to ``thread/nick``, encrypt for every member on the ``muc#admin`` lists (offline
members included, as Conversations does), and catch up by MAM (XEP-0313) on the thread.
Used by the demo's phones and the integration tests' bots.
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable

from slixmpp import JID, ClientXMPP, Iq, Message
from slixmpp.xmlstream.handler import CoroutineCallback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.xmlstream.stanzabase import StanzaBase

from xmpp_clinic import namespaces
from xmpp_clinic.client import thread_members
from xmpp_clinic.omemo import LEGACY_NS

__all__ = [
    "archived_sender",
    "as_direct_from",
    "fetch_history",
    "has_omemo_payload",
    "join_thread",
    "stanza_id",
    "thread_members",  # the client library's: one list of who a message is encrypted for
]
HISTORY_MAX = 250
_query_ids = itertools.count(1)


async def join_thread(client: ClientXMPP, thread: str, nick: str, timeout: float = 20) -> None:
    """Join a thread like a MUC room; raises slixmpp's PresenceError when refused."""
    await client.plugin["xep_0045"].join_muc_wait(JID(thread), nick, maxstanzas=0, timeout=timeout)


async def fetch_history(
    client: ClientXMPP, thread: str, *, after_id: str | None = None, timeout: float = 30
) -> list[Message]:
    """The thread's archived messages (one MAM query, at most 250), as forwarded.

    As a client catching up, ``after_id`` is the last archive id it saw. The query is
    built with slixmpp's XEP-0313 and XEP-0059 stanzas (``xep_0313`` must be loaded).
    """
    queryid = f"history{next(_query_ids)}"
    archived: list[Message] = []

    async def collect(message: StanzaBase) -> None:
        result = message.xml.find(f"{{{namespaces.MAM}}}result")
        if isinstance(message, Message) and result is not None and result.get("queryid") == queryid:
            archived.append(message["mam_result"]["forwarded"]["stanza"])

    handler = f"ThreadHistory-{queryid}"
    matcher = MatchXPath(f"{{{namespaces.CLIENT}}}message/{{{namespaces.MAM}}}result")
    client.register_handler(CoroutineCallback(handler, matcher, collect))
    try:
        iq = client.make_iq_set(ito=thread)
        iq["mam"]["queryid"] = queryid
        if after_id is not None:
            iq["mam"]["after_id"] = after_id
        iq["mam"]["rsm"]["max"] = str(HISTORY_MAX)
        send: Callable[..., Awaitable[Iq]] = iq.send  # slixmpp leaves send() unannotated
        await send(timeout=timeout)
    finally:
        client.remove_handler(handler)
    return archived


def stanza_id(message: Message, thread: str) -> str:
    """The thread's ``<stanza-id>`` of ``message``: its archive id ("" when missing)."""
    for sid in message.xml.findall(f"{{{namespaces.SID}}}stanza-id"):
        if sid.get("by") == thread:
            return str(sid.get("id", ""))
    return ""


def archived_sender(message: Message) -> str | None:
    """The real bare JID an archived thread message names in ``<x><item jid>``, if any."""
    item = message.xml.find(f"{{{namespaces.MUC_USER}}}x/{{{namespaces.MUC_USER}}}item")
    if item is None:
        return None
    return JID(item.get("jid", "")).bare


def has_omemo_payload(message: ET.Element) -> bool:
    """True when ``message`` carries a legacy OMEMO payload (not key transport)."""
    return message.find(f"{{{LEGACY_NS}}}encrypted/{{{LEGACY_NS}}}payload") is not None


def as_direct_from(message: Message, sender: str) -> Message:
    """A copy of an archived groupchat ``message`` as a chat message from ``sender``.

    slixmpp-omemo finds a groupchat sender through the room's presence; the sender of an
    old message may have left, so history is decrypted as a direct message from the real
    JID the archive names.
    """
    copy = Message(message.stream, xml=ET.fromstring(ET.tostring(message.xml)))
    copy["type"] = "chat"
    copy["from"] = sender
    return copy
