"""A small library to post into a care thread, for hospital integrations (II.2, II.1).

A lab system's bot, a paging bridge: anything that logs in as an ordinary XMPP account
with slixmpp, XEP-0045 and slixmpp-omemo (``xep_0384``) loaded and is a member of the
thread. :class:`ThreadPoster` splits a text longer than ``parts.max_part_bytes`` into a
part set, encrypts every part with OMEMO for every member (offline members included, as
stock clients do) and marks it with the content-free
``<part xmlns='urn:xmpp-clinic:parts:0' set='S' n='x' of='y'/>``. :class:`PartInbox` is
the receiving side: it decrypts, puts a set back together in part order whatever order
the parts came in, and says which parts are missing ("part 2 of 3 missing").

Splitting and reassembly (:func:`split_text`, :class:`Reassembly`) are pure and usable
without slixmpp; :func:`encrypt_text` and :func:`decrypt_part` are the thin XMPP edge that
both the two classes below and the demo's phones (:mod:`xmpp_clinic.dev.demo_clients`)
use, so there is one sending and one reading side of the part protocol.
"""

from __future__ import annotations

import asyncio
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from slixmpp import JID, ClientXMPP, Message
from slixmpp.xmlstream.handler import CoroutineCallback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.xmlstream.stanzabase import StanzaBase

from xmpp_clinic import namespaces as ns
from xmpp_clinic.completeness.parts import PART, PartMarker, read_marker
from xmpp_clinic.omemo import LEGACY_NS

AFFILIATIONS: tuple[Literal["owner", "admin", "member"], ...] = ("owner", "admin", "member")
DEFAULT_MAX_PART_BYTES = 4000  # [parts] max_part_bytes' default
# The most parts a reader keeps per set (the gateway refuses more than parts.max_parts).
MAX_PARTS = 1000


def split_text(text: str, max_part_bytes: int) -> list[str]:
    """``text`` cut into pieces of at most ``max_part_bytes`` UTF-8 bytes each, never
    inside a character; joined again they give ``text`` exactly (II.2)."""
    if max_part_bytes < 4:
        raise ValueError("a part must hold at least one character (4 bytes)")
    data = text.encode("utf-8")
    parts: list[str] = []
    start = 0
    while start < len(data):
        end = min(start + max_part_bytes, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # a continuation byte
            end -= 1
        parts.append(data[start:end].decode("utf-8"))
        start = end
    return parts or [""]


def part_marker(marker: PartMarker) -> ET.Element:
    """``<part xmlns='urn:xmpp-clinic:parts:0' set n of/>`` for ``marker``."""
    return ET.Element(PART, {"set": marker.set_id, "n": str(marker.n), "of": str(marker.of)})


@dataclass
class _Set:
    of: int
    texts: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Assembled:
    """A whole message: one unsplit text, or every part of a set in order."""

    sender: str  # bare JID (or occupant JID) of the sender
    text: str
    set_id: str = ""  # "" for a message that was never split
    of: int = 1
    arrived: tuple[int, ...] = ()  # the part numbers in the order they came in


class Reassembly:
    """Parts in, whole messages out; knows what is still missing (II.2)."""

    def __init__(self) -> None:
        self._sets: dict[tuple[str, str], _Set] = {}

    def add(self, sender: str, marker: PartMarker | None, text: str) -> Assembled | None:
        """The whole message once ``text`` completes it (at once for an unsplit one)."""
        if marker is None:
            return Assembled(sender, text)
        key = (sender, marker.set_id)
        known = self._sets.setdefault(key, _Set(marker.of))
        if known.of != marker.of or marker.n in known.texts or marker.of > MAX_PARTS:
            return None  # the gateway refuses these; a reader ignores them as well
        known.texts[marker.n] = text
        if len(known.texts) < known.of:
            return None
        del self._sets[key]
        whole = "".join(known.texts[n] for n in range(1, known.of + 1))
        return Assembled(sender, whole, marker.set_id, known.of, tuple(known.texts))

    def missing(self) -> list[str]:
        """ "part x of y missing" for every part of every set not yet complete."""
        return [
            f"part {n} of {found.of} missing"
            for found in self._sets.values()
            for n in range(1, found.of + 1)
            if n not in found.texts
        ]


def _omemo(client: ClientXMPP) -> Any:
    plugins = cast(Mapping[str, Any], client.plugin)
    return plugins["xep_0384"]


async def thread_members(client: ClientXMPP, thread_jid: str, timeout: float = 20) -> set[str]:
    """Every member's bare JID from the thread's owner, admin and member lists (offline
    members too: they read later by MAM, so every part is encrypted for them as well)."""
    muc = client.plugin["xep_0045"]
    found: set[str] = set()
    for affiliation in AFFILIATIONS:
        jids = await muc.get_affiliation_list(JID(thread_jid), affiliation, timeout=timeout)
        found |= {JID(jid).bare for jid in jids}
    found.discard("")
    return found


@dataclass(frozen=True)
class EncryptedText:
    """One text as OMEMO groupchat messages ready to send, in part order (II.1, II.2)."""

    messages: list[Message]
    set_id: str  # "" when the text fits in one unmarked message
    # Names of the errors python-omemo reported for single devices it could not
    # encrypt for (the message is still readable by every other device).
    device_errors: list[str]


async def encrypt_text(
    client: ClientXMPP, thread_jid: str, text: str, *, max_part_bytes: int
) -> EncryptedText:
    """``text`` split at ``max_part_bytes``, every part OMEMO-encrypted for every member's
    devices and marked ``<part set n of/>``; a text that fits is one unmarked message.

    ``client`` needs XEP-0045 and slixmpp-omemo (``xep_0384``) loaded. Raises
    :class:`RuntimeError` when a part cannot be encrypted for anyone.
    """
    recipients = {JID(j) for j in await thread_members(client, thread_jid)}
    recipients.discard(JID(client.boundjid.bare))
    pieces = split_text(text, max_part_bytes)
    set_id = uuid.uuid4().hex if len(pieces) > 1 else ""
    messages: list[Message] = []
    errors: list[str] = []
    for n, piece in enumerate(pieces, start=1):
        message = client.make_message(mto=JID(thread_jid), mtype="groupchat")
        message["body"] = piece
        encrypted, device_errors = await _omemo(client).encrypt_message(message, recipients)
        errors.extend(type(error).__name__ for error in device_errors)
        if encrypted is None:
            raise RuntimeError("the text could not be encrypted for the thread's members")
        if set_id:
            encrypted.append(part_marker(PartMarker(set_id, n, len(pieces))))
        messages.append(encrypted)
    return EncryptedText(messages, set_id, errors)


@dataclass(frozen=True)
class ReadPart:
    """One decrypted message: its sender's bare JID, its marker (None when unsplit), text."""

    sender: str
    marker: PartMarker | None
    text: str


async def decrypt_part(client: ClientXMPP, message: Message) -> ReadPart:
    """Read the part marker of an OMEMO ``message`` and decrypt it.

    Raises :class:`~xmpp_clinic.completeness.parts.MarkerError` for a marker that cannot
    be a part's, or python-omemo's error for a message that does not decrypt.
    """
    marker = read_marker(message.xml, MAX_PARTS)
    plain, device = await _omemo(client).decrypt_message(message)
    return ReadPart(str(device.bare_jid), marker, str(plain["body"]))


class ThreadPoster:
    """Posts texts into one thread as OMEMO messages, split into part sets (II.1, II.2)."""

    def __init__(
        self, client: ClientXMPP, thread_jid: str, *, max_part_bytes: int = DEFAULT_MAX_PART_BYTES
    ) -> None:
        self.client = client
        self.thread_jid = thread_jid
        self.max_part_bytes = max_part_bytes

    async def members(self, timeout: float = 20) -> set[str]:
        """Every member's bare JID from the thread's owner, admin and member lists."""
        return await thread_members(self.client, self.thread_jid, timeout)

    async def encrypt_parts(self, text: str) -> list[Message]:
        """``text`` as encrypted, marked messages ready to send (one without a marker
        when it fits in one part)."""
        encrypted = await encrypt_text(
            self.client, self.thread_jid, text, max_part_bytes=self.max_part_bytes
        )
        return encrypted.messages

    async def post(self, text: str) -> list[str]:
        """Encrypt, mark and send ``text``; the message ids, in part order."""
        messages = await self.encrypt_parts(text)
        for message in messages:
            message.send()
        return [str(m["id"]) for m in messages]


class PartInbox:
    """Decrypts a member's OMEMO groupchat messages and reassembles part sets (II.2)."""

    def __init__(self, client: ClientXMPP) -> None:
        self.client = client
        self.reassembly = Reassembly()
        self.messages: asyncio.Queue[Assembled] = asyncio.Queue()
        self.failures: list[str] = []  # exception names of messages that did not decrypt
        # slixmpp runs each coroutine handler as its own task: read one message at a time,
        # in stream order (asyncio.Lock wakes its waiters in the order they came).
        self._reading = asyncio.Lock()
        client.register_handler(
            CoroutineCallback(
                f"PartInbox-{id(self)}",
                MatchXPath(f"{{{ns.CLIENT}}}message/{{{LEGACY_NS}}}encrypted"),
                self._on_message,
            )
        )

    async def _on_message(self, message: StanzaBase) -> None:
        if not isinstance(message, Message) or message["type"] != "groupchat":
            return
        if message.xml.find(f"{{{LEGACY_NS}}}encrypted/{{{LEGACY_NS}}}payload") is None:
            return  # key transport: nothing to read
        async with self._reading:
            try:
                part = await decrypt_part(self.client, message)
            except Exception as exc:  # a bad marker (MarkerError) or an undecryptable message
                self.failures.append(type(exc).__name__)
                return
            whole = self.reassembly.add(part.sender, part.marker, part.text)
            if whole is not None:
                self.messages.put_nowait(whole)

    async def take(self, timeout: float = 30) -> Assembled:
        """The next whole message (waits up to ``timeout`` seconds)."""
        return await asyncio.wait_for(self.messages.get(), timeout)

    def missing(self) -> list[str]:
        """ "part x of y missing" for every incomplete set received so far."""
        return self.reassembly.missing()
