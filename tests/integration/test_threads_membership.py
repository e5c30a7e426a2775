"""Outsiders and removed members, on a real Prosody and a real ejabberd (IV.2).

A non-member cannot join, see, read or write a thread; a member removed with the CLI
while the gateway runs is kicked (status 321) and loses all of that at once.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable

import pytest
from slixmpp import JID, ClientXMPP, Iq, Message, Presence
from slixmpp.exceptions import IqError, PresenceError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.xmlstream.stanzabase import StanzaBase

from tests.helpers.bots import connect_bot, disconnect_bot
from tests.helpers.omemo import join_thread
from tests.integration.conftest import PASSWORD, GatewayHandle
from tests.integration.device_policy_helpers import ANY_MESSAGE
from xmpp_clinic import namespaces
from xmpp_clinic.omemo import LEGACY_NS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PLUGINS = ("xep_0030", "xep_0045", "xep_0199")


async def visible_threads(bot: ClientXMPP, component: str) -> set[str]:
    items = await bot.plugin["xep_0030"].get_items(jid=JID(component), timeout=20)
    return {str(item[0]) for item in items["disco_items"]["items"]}


async def mam_condition(bot: ClientXMPP, thread: str) -> str:
    """The error condition of a MAM query, or "ok"."""
    iq = bot.make_iq_set(ito=thread)
    ET.SubElement(iq.xml, f"{{{namespaces.MAM}}}query")
    send: Callable[..., Awaitable[Iq]] = iq.send  # slixmpp leaves send() unannotated
    try:
        await send(timeout=20)
    except IqError as exc:
        return str(exc.iq["error"]["condition"])
    return "ok"


async def send_condition(bot: ClientXMPP, thread: str) -> str:
    """Send a groupchat message; the error condition the thread answers with."""
    errors: asyncio.Queue[Message] = asyncio.Queue()
    name = f"errors-{id(errors)}"
    bot.register_handler(Callback(name, MatchXPath(ANY_MESSAGE), lambda m: _if_error(m, errors)))
    try:
        message = bot.make_message(mto=thread, mtype="groupchat")
        message.append(ET.Element(f"{{{LEGACY_NS}}}encrypted"))
        message.send()
        error = await asyncio.wait_for(errors.get(), 20)
        return str(error["error"]["condition"])
    finally:
        bot.remove_handler(name)


def _if_error(message: StanzaBase, queue: asyncio.Queue[Message]) -> None:
    if isinstance(message, Message) and message["type"] == "error":
        queue.put_nowait(message)


async def join_condition(bot: ClientXMPP, thread: str, nick: str) -> str:
    try:
        await join_thread(bot, thread, nick)
    except PresenceError as exc:
        return str(exc.presence["error"]["condition"])
    return "joined"


@pytest.mark.requirement("IV.2")
async def test_non_member_cannot_join_see_read_or_send(
    make_users: Callable[..., list[str]], gateway_factory: Callable[..., Awaitable[GatewayHandle]]
) -> None:
    gw = await gateway_factory(policy={"device_approval": "all"})
    alice, eve = make_users("alice", "eve")
    await gw.acli("threads", "create", "ward9", "--title", "Ward 9", "--member", alice)
    thread = f"ward9@{gw.jid}"
    member = await connect_bot(alice, PASSWORD, gw.server, plugins=PLUGINS)
    try:  # the control: the same questions from a member are answered
        assert thread in await visible_threads(member, gw.jid)
        assert await mam_condition(member, thread) == "ok"
    finally:
        await disconnect_bot(member)
    bot = await connect_bot(eve, PASSWORD, gw.server, plugins=PLUGINS)
    try:
        assert await join_condition(bot, thread, "Eve") == "registration-required"
        assert thread not in await visible_threads(bot, gw.jid)
        assert await mam_condition(bot, thread) == "item-not-found"
        assert await send_condition(bot, thread) == "not-acceptable"
    finally:
        await disconnect_bot(bot)


@pytest.mark.requirement("IV.2")
async def test_removed_member_is_kicked_and_loses_everything_at_once(
    make_users: Callable[..., list[str]], gateway_factory: Callable[..., Awaitable[GatewayHandle]]
) -> None:
    gw = await gateway_factory(policy={"device_approval": "all"})
    alice, bob = make_users("alice", "bob")
    await gw.acli(
        "threads", "create", "ward5", "--title", "Ward 5", "--member", alice, "--member", bob
    )
    thread = f"ward5@{gw.jid}"
    bot = await connect_bot(bob, PASSWORD, gw.server, plugins=PLUGINS)
    try:
        kicked: asyncio.Queue[Presence] = asyncio.Queue()
        bot.add_event_handler(
            f"muc::{JID(thread)}::presence",
            lambda p: kicked.put_nowait(p) if p["type"] == "unavailable" else None,
        )
        await join_thread(bot, thread, "Bob")
        assert thread in await visible_threads(bot, gw.jid)
        assert await mam_condition(bot, thread) == "ok"

        await gw.acli("threads", "remove-member", "ward5", bob)
        presence = await asyncio.wait_for(kicked.get(), 10)
        assert presence["from"] == JID(f"{thread}/Bob")
        assert {110, 321} <= set(presence["muc"]["status_codes"])

        assert await join_condition(bot, thread, "Bob") == "registration-required"
        assert thread not in await visible_threads(bot, gw.jid)
        assert await mam_condition(bot, thread) == "item-not-found"
        assert await send_condition(bot, thread) == "not-acceptable"
    finally:
        await disconnect_bot(bot)
