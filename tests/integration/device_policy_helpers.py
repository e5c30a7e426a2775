"""What a sender and a person see of the device policy: refusals, notices (II.1, I.4, I.5).

Shared by test_device_policy.py (legacy OMEMO) and test_device_policy_omemo2.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from slixmpp import ClientXMPP, Message
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.xmlstream.stanzabase import StanzaBase

from tests.integration.conftest import GatewayHandle
from xmpp_clinic import namespaces

ANY_MESSAGE = f"{{{namespaces.CLIENT}}}message"  # XPath of every message a bot receives


@dataclass(frozen=True)
class Refusal:
    """A message error as the sender's client shows it."""

    condition: str
    text: str
    reason: str  # the policy reason code (application-specific condition)


def refusal_of(message: ET.Element) -> Refusal:
    error = next(child for child in message if child.tag.rsplit("}", 1)[-1] == "error")
    condition = text = reason = ""
    for child in error:
        namespace, _, local = child.tag[1:].partition("}")
        if namespace == namespaces.STANZAS and local == "text":
            text = child.text or ""
        elif namespace == namespaces.STANZAS:
            condition = local
        elif namespace == namespaces.CLINIC_POLICY:
            reason = local
    return Refusal(condition, text, reason)


class Refusals:
    """Message errors one bot receives, by the id of the message they refuse."""

    def __init__(self, bot: ClientXMPP) -> None:
        self._found: dict[str, asyncio.Future[Refusal]] = {}
        bot.register_handler(Callback(f"Refusals-{id(self)}", MatchXPath(ANY_MESSAGE), self._on))

    def _future(self, message_id: str) -> asyncio.Future[Refusal]:
        return self._found.setdefault(message_id, asyncio.get_running_loop().create_future())

    def _on(self, message: StanzaBase) -> None:
        if isinstance(message, Message) and message["type"] == "error" and message["id"]:
            future = self._future(message["id"])
            if not future.done():
                future.set_result(refusal_of(message.xml))

    async def of(self, message_id: str, timeout: float = 30) -> Refusal:
        """The refusal of message ``message_id`` (fails if none comes)."""
        return await asyncio.wait_for(asyncio.shield(self._future(message_id)), timeout)

    def has(self, message_id: str) -> bool:
        return message_id in self._found


class Notices:
    """Chat messages from ``sender`` (the gateway or a thread) to one bot: their bodies."""

    def __init__(self, bot: ClientXMPP, sender: str) -> None:
        self.sender = sender
        self.bodies: list[str] = []
        self._arrived = asyncio.Event()
        bot.register_handler(Callback(f"Notices-{id(self)}", MatchXPath(ANY_MESSAGE), self._on))

    def _on(self, message: StanzaBase) -> None:
        if not isinstance(message, Message) or message["type"] == "error":
            return
        if message["from"].bare == self.sender and message["body"]:
            self.bodies.append(message["body"])
            self._arrived.set()

    async def containing(self, *parts: str, timeout: float = 30) -> str:
        """The first notice that contains every one of ``parts``."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for body in self.bodies:
                if all(part in body for part in parts):
                    return body
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"no notice with {parts} from {self.sender}: {self.bodies}")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)


async def acreate_thread(gw: GatewayHandle, name: str, members: list[str]) -> str:
    """Create thread ``name`` with ``members`` by the CLI: its JID."""
    args = ["threads", "create", name, "--title", name.title()]
    for member in members:
        args += ["--member", member]
    await gw.acli(*args)
    return f"{name}@{gw.jid}"
