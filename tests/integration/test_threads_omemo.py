"""Care threads with real OMEMO clients on a real Prosody and a real ejabberd (II.1, IV.2).

Three slixmpp-omemo clients join a thread created with the CLI and read each other's
messages; a member who was offline catches up by MAM; an OMEMO 2 element is relayed
unchanged. These tests are about threads, not device approval: their gateways run with
``policy.device_approval = "all"`` (every discovered device approved; the device policy
itself is tested in test_device_policy*.py).
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable

import pytest
from slixmpp import ClientXMPP
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from tests.helpers.bots import connect_bot, disconnect_bot
from tests.helpers.omemo import (
    MemoryStorage,
    OmemoInbox,
    connect_omemo_bot,
    decrypt_history,
    fetch_thread_history,
    join_thread,
    send_omemo_groupchat,
)
from tests.helpers.registry import register_omemo2
from tests.helpers.twomemo import Directory, OmemoTwoDevice
from tests.integration.conftest import PASSWORD, GatewayHandle
from tests.integration.device_policy_helpers import acreate_thread
from xmpp_clinic import namespaces
from xmpp_clinic.omemo import OMEMO2_NS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ALL_DEVICES = {"device_approval": "all"}
MakeUsers = Callable[..., list[str]]
GatewayFactory = Callable[..., Awaitable[GatewayHandle]]


@pytest.mark.requirement("II.1")
async def test_three_clinicians_read_each_others_omemo_messages(
    make_users: MakeUsers, gateway_factory: GatewayFactory
) -> None:
    gw = await gateway_factory(policy=ALL_DEVICES)
    users = make_users("alice", "bob", "carol")
    thread = await acreate_thread(gw, "ward3", users)
    bots = await asyncio.gather(*(connect_omemo_bot(u, PASSWORD, gw.server) for u in users))
    try:
        inboxes = [OmemoInbox(bot) for bot in bots]
        for bot, nick in zip(bots, ("Alice", "Bob", "Carol"), strict=True):
            await join_thread(bot, thread, nick)
        for bot, text in zip(bots, ("BP 120/80", "K+ 4.1", "discharge at 3"), strict=True):
            await send_omemo_groupchat(bot, thread, text)
            for inbox in inboxes:  # everybody decrypts it, the sender from its reflection
                [got] = await inbox.take(1, timeout=60)
                assert got.body == text and got.sender == bot.boundjid.bare
                assert got.reflected is (inbox.bot is bot)
                assert got.stanza_id  # the thread's stanza-id
        assert all(not inbox.failures for inbox in inboxes)
    finally:
        await asyncio.gather(*(disconnect_bot(bot) for bot in bots))


@pytest.mark.requirement("II.1")
async def test_member_offline_during_the_conversation_catches_up_by_mam(
    make_users: MakeUsers, gateway_factory: GatewayFactory
) -> None:
    gw = await gateway_factory(policy=ALL_DEVICES)
    alice, bob, dave = make_users("alice", "bob", "dave")
    thread = await acreate_thread(gw, "icu", [alice, bob, dave])
    talkers = await asyncio.gather(
        *(connect_omemo_bot(u, PASSWORD, gw.server) for u in (alice, bob))
    )
    sent = ["patient stable", "lab results due 14:00", "ok, will check"]
    try:
        inbox = OmemoInbox(talkers[0])
        await join_thread(talkers[0], thread, "Alice")
        await join_thread(talkers[1], thread, "Bob")
        # Dave hands over before going off shift. That opens his OMEMO sessions with
        # Alice and Bob: otherwise both would start one from his bundle while he is
        # away, and may pick the same one-time pre key (a client-library limit, ~1%).
        storage = MemoryStorage()  # Dave's device, kept for his next login
        first_login = await connect_omemo_bot(dave, PASSWORD, gw.server, storage=storage)
        await join_thread(first_login, thread, "Dave")
        await send_omemo_groupchat(first_login, thread, "handing over")
        assert [m.body for m in await inbox.take(1, timeout=60)] == ["handing over"]
        await disconnect_bot(first_login)
        for bot, text in zip((talkers[0], talkers[0], talkers[1]), sent, strict=True):
            await send_omemo_groupchat(bot, thread, text)
            await inbox.take(1, timeout=60)  # delivered (and so archived) before the next
    finally:
        await asyncio.gather(*(disconnect_bot(bot) for bot in talkers))
    dave_bot = await connect_omemo_bot(dave, PASSWORD, gw.server, storage=storage)
    try:
        archived = await fetch_thread_history(dave_bot, thread)
        # His own handover is not encrypted for his own sending device.
        others = [m for m in archived if m["from"].resource != "Dave"]
        history = await decrypt_history(dave_bot, others)
        assert [m.body for m in history] == sent
        assert [m.sender for m in history] == [alice, alice, bob]
    finally:
        await disconnect_bot(dave_bot)


@pytest.mark.requirement("II.1")
async def test_member_who_never_joined_reads_the_thread_by_mam(
    make_users: MakeUsers, gateway_factory: GatewayFactory
) -> None:
    """A colleague added to the thread who has never opened it (only published a device)
    reads what was written, from MAM: the gateway must have let Alice's key for that
    device through although the device was never seen in the thread (I.4)."""
    gw = await gateway_factory(policy=ALL_DEVICES)
    alice, erin = make_users("alice", "erin")
    thread = await acreate_thread(gw, "onc", [alice, erin])
    storage = MemoryStorage()  # Erin's device, kept for her next login
    first_login = await connect_omemo_bot(erin, PASSWORD, gw.server, storage=storage)
    await disconnect_bot(first_login)
    sent = ["chemo cycle 2 tomorrow", "consent form signed"]
    writer = await connect_omemo_bot(alice, PASSWORD, gw.server)
    try:
        await join_thread(writer, thread, "Alice")
        inbox = OmemoInbox(writer)
        for text in sent:
            await send_omemo_groupchat(writer, thread, text)
            await inbox.take(1, timeout=60)  # her own copy is back: archived
    finally:
        await disconnect_bot(writer)
    reader = await connect_omemo_bot(erin, PASSWORD, gw.server, storage=storage)
    try:
        history = await decrypt_history(reader, await fetch_thread_history(reader, thread))
        assert [m.body for m in history] == sent
        assert {m.sender for m in history} == {alice}
    finally:
        await disconnect_bot(reader)


@pytest.mark.requirement("II.1")
async def test_omemo2_element_is_relayed_unchanged(
    make_users: MakeUsers, gateway_factory: GatewayFactory
) -> None:
    gw = await gateway_factory(policy=ALL_DEVICES)
    kai, alice = make_users("kai", "alice")
    thread = await acreate_thread(gw, "ward7", [kai, alice])
    directory = Directory()
    kai_device = await OmemoTwoDevice.create(kai, directory)
    alice_device = await OmemoTwoDevice.create(alice, directory)
    # The OMEMO 2 devices live in the test process, not in PEP: record them as discovery
    # would (approved, as the gateway runs in "all" mode).
    for jid, device in ((kai, kai_device), (alice, alice_device)):
        await register_omemo2(gw.gateway.registry, jid, *await device.device())
    element = await kai_device.encrypt("insulin 4 IU", [alice])
    bots: list[ClientXMPP] = [
        await connect_bot(jid, PASSWORD, gw.server, plugins=("xep_0030", "xep_0045"))
        for jid in (kai, alice)
    ]
    try:
        received: asyncio.Queue[ET.Element] = asyncio.Queue()
        bots[1].add_event_handler("groupchat_message", lambda msg: received.put_nowait(msg.xml))
        bots[1].register_handler(_omemo2_catcher(received))
        await join_thread(bots[0], thread, "Kai")
        await join_thread(bots[1], thread, "Alice")
        message = bots[0].make_message(mto=thread, mtype="groupchat")
        message.append(element)
        message.send()
        relayed = await asyncio.wait_for(received.get(), 30)
        got = relayed.find(f"{{{OMEMO2_NS}}}encrypted")
        assert got is not None
        assert ET.canonicalize(ET.tostring(got)) == ET.canonicalize(ET.tostring(element))
        assert await alice_device.decrypt(got, kai) == "insulin 4 IU"
    finally:
        await asyncio.gather(*(disconnect_bot(bot) for bot in bots))


def _omemo2_catcher(queue: asyncio.Queue[ET.Element]) -> Callback:
    return Callback(
        "omemo2",
        MatchXPath(f"{{{namespaces.CLIENT}}}message/{{{OMEMO2_NS}}}encrypted"),
        lambda msg: queue.put_nowait(msg.xml),
    )
