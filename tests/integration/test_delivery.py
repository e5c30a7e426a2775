"""Delivery tracking with real clients on Prosody and ejabberd (issue 11, II.2).

The gateway is built as ``xmpp-clinic run`` builds it: the relay records who got a
message live, MAM records what a member fetched, the displayed marker goes through the
gateway, the not-delivered notice is sent by the gateway's own watcher over the server,
and the "who has my message?" ad-hoc command is asked over XMPP.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from slixmpp import ClientXMPP, Message
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.xmlstream.stanzabase import StanzaBase

from tests.helpers.bots import connect_bot, disconnect_bot
from tests.helpers.omemo import (
    OmemoInbox,
    connect_omemo_bot,
    fetch_thread_history,
    join_thread,
    send_omemo_groupchat,
)
from tests.integration.conftest import PASSWORD, GatewayHandle, write_config
from tests.integration.device_policy_helpers import acreate_thread
from xmpp_clinic import namespaces as ns
from xmpp_clinic.app import Gateway
from xmpp_clinic.archive.messages import ArchiveQuery
from xmpp_clinic.config import load_settings
from xmpp_clinic.dev.servers import DevServer
from xmpp_clinic.xmpp.delivery import DeliveryTracker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

MakeUsers = Callable[..., list[str]]
NOTIFY_MINUTES = 0.05  # three seconds
PLAIN = ("xep_0030", "xep_0004", "xep_0050", "xep_0059", "xep_0297", "xep_0313")


@pytest.fixture
async def delivery_gateway(
    xmpp_server: DevServer, tmp_path: Path
) -> AsyncIterator[tuple[GatewayHandle, DeliveryTracker]]:
    path = write_config(
        xmpp_server,
        tmp_path,
        policy={"device_approval": "all"},
        delivery={"notify_after_minutes": NOTIFY_MINUTES},
    )
    settings = load_settings(path)
    gateway = Gateway(settings)
    await gateway.start()
    try:
        await gateway.component.wait_online(timeout=15)
        yield GatewayHandle(gateway, settings, path, xmpp_server), gateway.delivery
    finally:
        await gateway.stop()


def unread_notices(bot: ClientXMPP, gateway: str) -> list[str]:
    """Not-delivered notices from the gateway (it sends device notices the same way)."""
    found: list[str] = []

    def on_message(message: StanzaBase) -> None:
        if not isinstance(message, Message) or message["from"].bare != gateway:
            return
        if message["type"] == "chat" and "unread" in str(message["body"]):
            found.append(str(message["body"]))

    bot.register_handler(Callback("direct", MatchXPath(f"{{{ns.CLIENT}}}message"), on_message))
    return found


async def statuses(tracker: DeliveryTracker, stanza_id: str) -> dict[str, str]:
    return {r.member: str(r.status) for r in await tracker.deliveries.of_message(stanza_id)}


async def eventually(check: Callable[[], Any], timeout: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, "not within the time"
        await asyncio.sleep(0.1)


@pytest.mark.requirement("II.2")
async def test_delivered_fetched_read_and_the_not_delivered_notice_for_a_thread_of_four(
    make_users: MakeUsers, delivery_gateway: tuple[GatewayHandle, DeliveryTracker]
) -> None:
    gw, tracker = delivery_gateway
    alice, bob, carol, dave = make_users("alice", "bob", "carol", "dave")
    thread = await acreate_thread(gw, "ward4b", [alice, bob, carol, dave])
    for absent in await asyncio.gather(
        *(connect_omemo_bot(u, PASSWORD, gw.server) for u in (carol, dave))
    ):
        await disconnect_bot(absent)  # devices published; both away while Alice writes
    talkers = await asyncio.gather(
        *(connect_omemo_bot(u, PASSWORD, gw.server) for u in (alice, bob))
    )
    plain: list[ClientXMPP] = []
    try:
        inbox = OmemoInbox(talkers[1])
        await join_thread(talkers[0], thread, "Alice")
        await join_thread(talkers[1], thread, "Bob")
        await send_omemo_groupchat(talkers[0], thread, "Kalium 6.1, bitte Kontrolle")
        [got] = await inbox.take(1, timeout=60)
        info = gw.gateway.thread_host.book.get("ward4b")
        assert info is not None
        entry = (await gw.gateway.archive.query(ArchiveQuery(thread_id=info.id))).entries[-1]
        assert entry.stanza_id == got.stanza_id
        await tracker.flush()  # the relay recorded Alice's and Bob's sessions as live

        async def delivered_to_bob() -> bool:
            return (await statuses(tracker, entry.stanza_id)).get(bob) == "delivered"

        await eventually(delivered_to_bob)

        displayed = talkers[1].make_message(thread, mtype="groupchat")
        marker = ET.SubElement(displayed.xml, f"{{{ns.CHAT_MARKERS}}}displayed")
        marker.set("id", entry.stanza_id)
        displayed.send()

        async def bob_read() -> bool:
            return (await statuses(tracker, entry.stanza_id)).get(bob) == "read"

        await eventually(bob_read)

        carol_bot, dave_bot, alice_cmd = await asyncio.gather(
            connect_bot(carol, PASSWORD, gw.server, plugins=PLAIN),
            connect_bot(dave, PASSWORD, gw.server, plugins=PLAIN),
            connect_bot(alice, PASSWORD, gw.server, plugins=PLAIN),
        )
        plain += [carol_bot, dave_bot, alice_cmd]
        to_carol, to_dave = unread_notices(carol_bot, gw.jid), unread_notices(dave_bot, gw.jid)
        fetched = await fetch_thread_history(carol_bot, thread)
        assert fetched  # MAM recorded the archive ids Carol's query returned

        async def fetched_by_carol() -> bool:
            await tracker.flush()
            return (await statuses(tracker, entry.stanza_id)).get(carol) == "fetched"

        await eventually(fetched_by_carol)
        # Dave has neither received nor fetched it: the gateway's watcher tells him once.
        await eventually(lambda: asyncio.sleep(0, bool(to_dave)), timeout=30)
        await asyncio.sleep(NOTIFY_MINUTES * 60)
        assert to_dave == ["There are unread messages in Ward4B."]
        assert to_carol == []

        adhoc: Any = alice_cmd.plugin["xep_0050"]
        started = await adhoc.send_command(gw.jid, "thread-delivery", action="execute")
        forms: Any = alice_cmd.plugin["xep_0004"]
        answer = forms.make_form(ftype="submit")
        answer.add_field(var="thread", value="ward4b")
        done = await adhoc.send_command(
            gw.jid, "thread-delivery", action="complete",
            sessionid=started["command"]["sessionid"], payload=answer,
        )  # fmt: skip
        notes = [text for _kind, text in done["command"]["notes"]]
        assert notes[0] == f"Message {entry.stanza_id}:"
        assert notes[1].startswith(f"{bob}: read 20")
        assert notes[2].startswith(f"{carol}: fetched 20")
        assert notes[3:] == [f"{dave}: not yet"]
    finally:
        await asyncio.gather(*(disconnect_bot(b) for b in [*talkers, *plain]))
