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
import contextlib
import copy
import itertools
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import cast

from omemo.storage import Just, Maybe, Nothing, Storage
from omemo.types import DeviceInformation, JSONType
from slixmpp import JID, ClientXMPP, Iq, Message
from slixmpp.plugins import register_plugin
from slixmpp.xmlstream.handler import CoroutineCallback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.xmlstream.stanzabase import StanzaBase
from slixmpp_omemo import XEP_0384, TrustLevel

from xmpp_clinic.dev.servers import DevServer
from xmpp_clinic.omemo import LEGACY_NS

MUC_USER = "http://jabber.org/protocol/muc#user"
MAM_NS = "urn:xmpp:mam:2"
RSM_NS = "http://jabber.org/protocol/rsm"
DATA_NS = "jabber:x:data"
STANZA_ERRORS = "urn:ietf:params:xml:ns:xmpp-stanzas"
PLUGINS = (
    "xep_0004", "xep_0030", "xep_0045", "xep_0059", "xep_0060", "xep_0163", "xep_0199",
    "xep_0280", "xep_0297", "xep_0313", "xep_0334", "xep_0359", "xep_0421",
)  # fmt: skip
LOGIN_TIMEOUT = 30.0
OMEMO_START_TIMEOUT = 60.0
_query_ids = itertools.count(1)


class PhoneError(RuntimeError):
    """A scripted phone could not do its step; ``str()`` says which and why."""


class MemoryStorage(Storage):
    """python-omemo storage in a dict; hand it to the next login to keep the device."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, JSONType] = {}

    async def _load(self, key: str) -> Maybe[JSONType]:
        return Just(self.data[key]) if key in self.data else Nothing()

    async def _store(self, key: str, value: JSONType) -> None:
        self.data[key] = value

    async def _delete(self, key: str) -> None:
        self.data.pop(key, None)


class DemoOmemo(XEP_0384):
    """slixmpp-omemo with in-memory storage (config ``storage``) and blind trust (BTBV)."""

    name = "xep_0384"
    default_config = {"fallback_message": "This message is OMEMO encrypted.", "storage": None}

    def plugin_init(self) -> None:
        if self.config.get("storage") is None:
            self.config["storage"] = MemoryStorage()
        super().plugin_init()

    @property
    def storage(self) -> Storage:
        return cast(Storage, self.config["storage"])

    @property
    def _btbv_enabled(self) -> bool:
        return True

    async def _devices_blindly_trusted(
        self, blindly_trusted: frozenset[DeviceInformation], identifier: str | None
    ) -> None:
        return None

    async def _prompt_manual_trust(
        self, manually_trusted: frozenset[DeviceInformation], identifier: str | None
    ) -> None:
        session_manager = await self.get_session_manager()
        for device in manually_trusted:
            await session_manager.set_trust(
                device.bare_jid, device.identity_key, TrustLevel.TRUSTED.value
            )


register_plugin(DemoOmemo)


@dataclass(frozen=True)
class Decrypted:
    """A thread message as one phone read it."""

    sender: str  # the sender's real bare JID, as the OMEMO session names it
    nick: str
    body: str
    stanza_id: str  # the thread's <stanza-id>: its archive id
    own: bool  # this phone's own message, come back from the thread (reflection)


@dataclass(frozen=True)
class OwnDevice:
    """This phone's OMEMO device, as its settings screen shows it."""

    device_id: int
    fingerprint: str  # 64 hex digits, Curve25519 form (what the registry stores)


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
    def omemo(self) -> DemoOmemo:
        plugins: Mapping[str, object] = self.xmpp.plugin
        return cast(DemoOmemo, plugins["xep_0384"])

    # ------------------------------------------------------------- session
    async def log_in(self, server: DevServer) -> None:
        """Connect, send presence, and wait until the OMEMO device is published."""
        client = ClientXMPP(self.jid, self.password)
        for plugin in PLUGINS:
            client.register_plugin(plugin)
        client.enable_direct_tls = False  # the demo server's c2s port is plaintext loopback
        client.enable_starttls = False
        client.enable_plaintext = True
        client.plugin["feature_mechanisms"].unencrypted_scram = True
        client.use_message_ids = True  # slixmpp-omemo recognises reflections by id
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        client.add_event_handler("session_start", lambda _e: _settle(started, None))
        client.add_event_handler("failed_all_auth", lambda _e: _settle(started, "bad password"))
        client.add_event_handler("connection_failed", lambda e: _settle(started, str(e)))
        self.client = client
        client.connect(server.host, server.c2s_port)
        try:
            await asyncio.wait_for(started, LOGIN_TIMEOUT)
        except Exception as exc:
            await self.log_out()
            raise PhoneError(f"{self.name} ({self.jid}) could not log in: {exc}") from None
        await client.get_roster(timeout=LOGIN_TIMEOUT)
        client.send_presence()
        client.register_plugin("xep_0384", {"storage": self.storage})
        try:  # registered after session start: this awaits the plugin's own start-up
            await asyncio.wait_for(self.omemo.get_session_manager(), OMEMO_START_TIMEOUT)
        except Exception as exc:
            await self.log_out()
            reason = f"{type(exc).__name__} {exc}".strip()
            raise PhoneError(f"{self.name}'s OMEMO device did not start: {reason}") from None
        self._listen(client)

    async def log_out(self) -> None:
        """Close the stream (leaving every thread) and stop the client's tasks."""
        client, self.client = self.client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(wait=2.0), 3.0)
        if client.transport is not None:
            client.abort()
        task = getattr(client, "_run_out_filters", None)  # else asyncio warns at exit
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def own_device(self) -> OwnDevice:
        session_manager = await self.omemo.get_session_manager()
        device, _others = await session_manager.get_own_device_information()
        digits = "".join(session_manager.format_identity_key(device.identity_key)).lower()
        return OwnDevice(int(device.device_id), digits)

    # ------------------------------------------------------------- threads
    async def join(self, thread: str, timeout: float = 20.0) -> None:
        await self.xmpp.plugin["xep_0045"].join_muc_wait(
            JID(thread), self.nick, maxstanzas=0, timeout=timeout
        )

    async def members(self, thread: str) -> set[str]:
        """Every member's bare JID from the owner, admin and member lists (offline too)."""
        muc = self.xmpp.plugin["xep_0045"]
        found: set[str] = set()
        for affiliation in ("owner", "admin", "member"):
            jids = await muc.get_affiliation_list(JID(thread), affiliation, timeout=20)
            found |= {JID(jid).bare for jid in jids}
        found.discard("")
        return found

    async def send_encrypted(self, thread: str, body: str) -> None:
        """Encrypt ``body`` for every member's devices (and our other devices); send it."""
        recipients = await self.members(thread)
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
        queryid = f"demo{next(_query_ids)}"
        archived: list[Message] = []

        async def collect(message: StanzaBase) -> None:
            result = message.xml.find(f"{{{MAM_NS}}}result")
            if (
                isinstance(message, Message)
                and result is not None
                and result.get("queryid") == queryid
            ):
                archived.append(message["mam_result"]["forwarded"]["stanza"])

        handler = f"DemoMAM-{queryid}"
        self.xmpp.register_handler(
            CoroutineCallback(
                handler, MatchXPath(f"{{jabber:client}}message/{{{MAM_NS}}}result"), collect
            )
        )
        try:
            iq = self.xmpp.make_iq_set(ito=thread)
            query = ET.SubElement(iq.xml, f"{{{MAM_NS}}}query", {"queryid": queryid})
            if after_id is not None:
                query.append(_mam_form({"after-id": after_id}))
            ET.SubElement(ET.SubElement(query, f"{{{RSM_NS}}}set"), f"{{{RSM_NS}}}max").text = "250"
            send: Callable[..., Awaitable[Iq]] = iq.send  # slixmpp leaves send() unannotated
            await send(timeout=timeout)
        finally:
            self.xmpp.remove_handler(handler)
        return [await self._decrypt_archived(m) for m in archived if _archived_payload(m)]

    # ------------------------------------------------------------- receiving
    def _listen(self, client: ClientXMPP) -> None:
        client.register_handler(
            CoroutineCallback(
                f"DemoInbox-{self.nick}",
                MatchXPath(f"{{jabber:client}}message/{{{LEGACY_NS}}}encrypted"),
                self._on_encrypted,
            )
        )
        client.add_event_handler("groupchat_message", self._on_groupchat)
        client.add_event_handler("message_error", self._errors.put_nowait)

    def _on_groupchat(self, message: Message) -> None:
        if message.xml.find(f"{{{LEGACY_NS}}}encrypted") is None and message["body"]:
            self.plaintext_seen.append(message["body"])

    async def _on_encrypted(self, message: StanzaBase) -> None:
        encrypted = message.xml.find(f"{{{LEGACY_NS}}}encrypted")
        if not isinstance(message, Message) or message["type"] != "groupchat" or encrypted is None:
            return
        if encrypted.find(f"{{{LEGACY_NS}}}payload") is None:
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
            Decrypted(device.bare_jid, nick, plain["body"], _stanza_id(message, thread), own)
        )

    async def _decrypt_archived(self, message: Message) -> Decrypted:
        """Decrypt an archived message as sent by the real JID the archive names.

        slixmpp-omemo finds a groupchat sender through the room's presence; the sender
        of an old message may have left, so it is decrypted as a direct message from the
        real JID in the archived ``<x><item jid>``.
        """
        item = message.xml.find(f"{{{MUC_USER}}}x/{{{MUC_USER}}}item")
        real = JID(item.get("jid", "") if item is not None else "").bare
        as_direct = copy.copy(message)
        as_direct["type"] = "chat"
        as_direct["from"] = real
        plain, device = await self.omemo.decrypt_message(as_direct)
        thread = message["from"].bare
        nick = message["from"].resource
        return Decrypted(device.bare_jid, nick, plain["body"], _stanza_id(message, thread), False)


def _settle(future: asyncio.Future[None], failure: str | None) -> None:
    if future.done():
        return
    if failure is None:
        future.set_result(None)
    else:
        future.set_exception(PhoneError(failure))


def _describe_error(message: Message) -> str:
    """``condition (app-condition): text`` from raw XML.

    slixmpp's Error stanza does not know RFC 6120's ``policy-violation``, so its
    ``condition`` is empty for exactly the error the gateway sends.
    """
    error = message.xml.find("{jabber:client}error")
    if error is None:
        return "unknown"
    condition, extra, text = "unknown", "", ""
    for child in error:
        namespace, _, tag = child.tag[1:].partition("}")
        if namespace == STANZA_ERRORS and tag == "text":
            text = child.text or ""
        elif namespace == STANZA_ERRORS:
            condition = tag
        else:
            extra = f" ({tag})"
    return f"{condition}{extra}: {text}" if text else f"{condition}{extra}"


def _mam_form(fields: Mapping[str, str]) -> ET.Element:
    """A XEP-0313 query form with ``fields`` (XEP-0004, type submit)."""
    form = ET.Element(f"{{{DATA_NS}}}x", {"type": "submit"})
    for var, value in {"FORM_TYPE": MAM_NS, **fields}.items():
        attrs = {"var": var, "type": "hidden"} if var == "FORM_TYPE" else {"var": var}
        ET.SubElement(
            ET.SubElement(form, f"{{{DATA_NS}}}field", attrs), f"{{{DATA_NS}}}value"
        ).text = value
    return form


def _archived_payload(message: Message) -> bool:
    has_sender = message.xml.find(f"{{{MUC_USER}}}x/{{{MUC_USER}}}item") is not None
    payload = message.xml.find(f"{{{LEGACY_NS}}}encrypted/{{{LEGACY_NS}}}payload")
    return has_sender and payload is not None


def _stanza_id(message: Message, thread: str) -> str:
    for sid in message.xml.findall("{urn:xmpp:sid:0}stanza-id"):
        if sid.get("by") == thread:
            return str(sid.get("id", ""))
    return ""
