"""Each member's copy carries only that member's keys, proven with real OMEMO clients on a
real Prosody and a real ejabberd (issue 13; II.3, II.1, I.4).

Every member decrypts its own copy; no copy holds a key id of another member's device;
the reflection decrypts on the sender's other device; MAM gives a member every key they
are entitled to and no other; the history sent on join is trimmed the same way. The
gateways run with ``policy.device_approval = "all"`` (discovered devices are approved):
these tests are about what each copy carries, not about approval.
"""

from __future__ import annotations

import asyncio
import inspect
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable

import pytest
from slixmpp import JID, ClientXMPP, Message
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
    key_rids,
    own_device_id,
    send_omemo_groupchat,
)
from tests.helpers.registry import register_omemo2, wait_for_device
from tests.helpers.twomemo import Directory, OmemoTwoDevice
from tests.integration.conftest import PASSWORD, GatewayHandle
from tests.integration.device_policy_helpers import acreate_thread
from xmpp_clinic import namespaces
from xmpp_clinic.dev.omemo_client import omemo_of
from xmpp_clinic.omemo import LEGACY_NS, OMEMO2_NS, jid_or_none
from xmpp_clinic.xmpp.threads import ThreadHost

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300), pytest.mark.requirement("II.3")]

# Each bot publishes its device as legacy and as OMEMO 2, and the registry counts the two
# records of one phone as two towards max_devices_per_person (3): Alice's fourth record
# came out pending in observation order, so her laptop had no legacy key in MAM. Trimming
# is the subject here, not the limit (the double count is noted for its own fix).
ALL_DEVICES = {"device_approval": "all", "max_devices_per_person": 10}
MakeUsers = Callable[..., list[str]]
GatewayFactory = Callable[..., Awaitable[GatewayHandle]]


@pytest.mark.requirement("II.3", "II.1")
async def test_each_member_decrypts_its_own_copy_which_holds_only_its_keys(
    make_users: MakeUsers, gateway_factory: GatewayFactory
) -> None:
    gw = await gateway_factory(policy=ALL_DEVICES)
    alice, bob, carol = make_users("alice", "bob", "carol")
    thread = await acreate_thread(gw, "ward3", [alice, bob, carol])
    phone = await connect_omemo_bot(alice, PASSWORD, gw.server)
    laptop = await connect_omemo_bot(alice, PASSWORD, gw.server)  # Alice's second device
    others = await asyncio.gather(
        *(connect_omemo_bot(u, PASSWORD, gw.server) for u in (bob, carol))
    )
    bots = [phone, laptop, *others]
    try:
        ids = {bot: await own_device_id(bot) for bot in bots}
        devices_of = {
            alice: {ids[phone], ids[laptop]},
            bob: {ids[others[0]]},
            carol: {ids[others[1]]},
        }
        inboxes = {bot: OmemoInbox(bot) for bot in bots}
        for bot, nick in zip(bots, ("Alice", "Alice", "Bob", "Carol"), strict=True):
            await join_thread(bot, thread, nick)
        for jid, device_ids in devices_of.items():
            for device_id in device_ids:
                await wait_for_device(gw.gateway.registry, jid, device_id)
        await both_announced(gw, alice, devices_of[alice], (phone, laptop))
        # The phone must know the laptop before it writes: under load the PEP notice of
        # Alice's list can come after the message, and the laptop then has no key.
        await omemo_of(phone).refresh_device_lists({JID(alice)}, force_download=True)
        await send_omemo_groupchat(phone, thread, "K+ 6.1, repeat at 14:00")
        for bot in (laptop, *others):  # the laptop reads the reflection to Alice
            [got] = await inboxes[bot].take(1, timeout=60)
            assert got.body == "K+ 6.1, repeat at 14:00" and got.sender == alice
        for bot in bots:
            [copy] = inboxes[bot].received
            owner = bot.boundjid.bare
            rids = set(key_rids(copy))
            assert rids == devices_of[owner] - {ids[phone]}, (owner, rids)
            for other, theirs in devices_of.items():
                if other != owner:
                    assert not rids & theirs  # no other member's device ids
            header = copy.find(f"{{{LEGACY_NS}}}encrypted/{{{LEGACY_NS}}}header")
            assert header is not None and header.get("sid") == str(ids[phone])
            assert copy.find(f"{{{namespaces.CLINIC_SEQ}}}seq") is not None
        assert all(not inbox.failures for inbox in inboxes.values())
    finally:
        await asyncio.gather(*(disconnect_bot(bot) for bot in bots))


async def both_announced(
    gw: GatewayHandle, jid: str, ids: set[int], clients: tuple[ClientXMPP, ...]
) -> None:
    """Until ``jid``'s PEP device list holds every id in ``ids``. Two clients of one
    account starting together can overwrite each other's list (each read it before the
    other published), and a sender then encrypts for one of them only: each client
    re-reads the list, which puts its own device back."""
    for _ in range(40):
        devices = await gw.gateway.registry.devices(jid)
        if {d.device_id for d in devices if d.active} >= ids:
            return
        for client in clients:
            await omemo_of(client).refresh_device_lists({JID(jid)}, force_download=True)
        await asyncio.sleep(0.5)
    raise AssertionError(f"{jid}'s device list never held all of {sorted(ids)}")


@pytest.mark.requirement("II.3", "I.6")
async def test_mam_gives_a_member_every_key_they_are_entitled_to_and_no_other(
    make_users: MakeUsers, gateway_factory: GatewayFactory
) -> None:
    gw = await gateway_factory(policy=ALL_DEVICES)
    alice, bob = make_users("alice", "bob")
    thread = await acreate_thread(gw, "icu", [alice, bob])
    storage = MemoryStorage()  # Alice's laptop, kept for its next login
    phone = await connect_omemo_bot(alice, PASSWORD, gw.server)
    laptop = await connect_omemo_bot(alice, PASSWORD, gw.server, storage=storage)
    writer = await connect_omemo_bot(bob, PASSWORD, gw.server)
    sent = ["patient stable", "lab results due 14:00"]
    try:
        alice_ids = {await own_device_id(phone), await own_device_id(laptop)}
        bob_id = await own_device_id(writer)
        for bot, nick in ((phone, "Alice"), (laptop, "Alice"), (writer, "Bob")):
            await join_thread(bot, thread, nick)
        for device_id in alice_ids:
            await wait_for_device(gw.gateway.registry, alice, device_id)
        await wait_for_device(gw.gateway.registry, bob, bob_id)
        await both_announced(gw, alice, alice_ids, (phone, laptop))
        # Bob's client must know both of Alice's devices before it writes: under load the
        # PEP notice of the laptop's device list can come after his first message.
        await omemo_of(writer).refresh_device_lists({JID(alice)}, force_download=True)
        inbox = OmemoInbox(writer)
        for text in sent:
            await send_omemo_groupchat(writer, thread, text)
            await inbox.take(1, timeout=60)  # Bob's reflection: archived
    finally:
        await asyncio.gather(*(disconnect_bot(bot) for bot in (phone, laptop, writer)))
    reader = await connect_omemo_bot(alice, PASSWORD, gw.server, storage=storage)
    try:
        archived = await fetch_thread_history(reader, thread)
        assert [set(key_rids(m.xml)) for m in archived] == [alice_ids] * len(sent)
        seqs = [int(m.xml.find(f"{{{namespaces.CLINIC_SEQ}}}seq").get("n", "0")) for m in archived]  # type: ignore[union-attr]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        history = await decrypt_history(reader, archived)
        assert [m.body for m in history] == sent
    finally:
        await disconnect_bot(reader)


@pytest.mark.requirement("II.3")
async def test_omemo2_copies_carry_only_the_members_own_keys_group(
    make_users: MakeUsers, gateway_factory: GatewayFactory
) -> None:
    gw = await gateway_factory(policy=ALL_DEVICES)
    kai, alice, bob = make_users("kai", "alice", "bob")
    thread = await acreate_thread(gw, "ward7", [kai, alice, bob])
    directory = Directory()
    devices = {jid: await OmemoTwoDevice.create(jid, directory) for jid in (kai, alice, bob)}
    for jid, device in devices.items():
        await register_omemo2(gw.gateway.registry, jid, *await device.device())
    element = await devices[kai].encrypt("insulin 4 IU", [alice, bob])
    bots: list[ClientXMPP] = [
        await connect_bot(jid, PASSWORD, gw.server, plugins=("xep_0030", "xep_0045"))
        for jid in (kai, alice, bob)
    ]
    try:
        queues = {bot.boundjid.bare: _omemo2_queue(bot) for bot in bots}
        for bot, nick in zip(bots, ("Kai", "Alice", "Bob"), strict=True):
            await join_thread(bot, thread, nick)
        message = bots[0].make_message(mto=JID(thread), mtype="groupchat")
        message.append(element)
        message.send()
        for jid in (alice, bob):
            got = await asyncio.wait_for(queues[jid].get(), 30)
            groups = got.findall(f"{{{OMEMO2_NS}}}header/{{{OMEMO2_NS}}}keys")
            assert [jid_or_none(g.get("jid")) for g in groups] == [jid]
            assert await devices[jid].decrypt(got, kai) == "insulin 4 IU"
        reflection = await asyncio.wait_for(queues[kai].get(), 30)
        assert reflection.findall(f"{{{OMEMO2_NS}}}header/{{{OMEMO2_NS}}}keys") == []
    finally:
        await asyncio.gather(*(disconnect_bot(bot) for bot in bots))


@pytest.mark.requirement("II.3", "I.6")
async def test_history_on_join_is_trimmed_and_decrypts(
    make_users: MakeUsers, gateway_factory: GatewayFactory
) -> None:
    if "history_sender" not in inspect.getsource(ThreadHost):
        pytest.skip("the room host does not call history_sender yet (xmpp/threads.py)")
    gw = await gateway_factory(policy=ALL_DEVICES)
    alice, dave = make_users("alice", "dave")
    thread = await acreate_thread(gw, "onc", [alice, dave])
    storage = MemoryStorage()
    first = await connect_omemo_bot(dave, PASSWORD, gw.server, storage=storage)
    dave_id = await own_device_id(first)
    await disconnect_bot(first)
    writer = await connect_omemo_bot(alice, PASSWORD, gw.server)
    sent = ["chemo cycle 2 tomorrow", "consent form signed"]
    try:
        await join_thread(writer, thread, "Alice")
        # Dave never joined: the gateway learns his device from the first message's keys.
        inbox = OmemoInbox(writer)
        for text in sent:
            await send_omemo_groupchat(writer, thread, text)
            await inbox.take(1, timeout=60)
    finally:
        await disconnect_bot(writer)
    reader = await connect_omemo_bot(dave, PASSWORD, gw.server, storage=storage)
    try:
        arrived: asyncio.Queue[Message] = asyncio.Queue()
        reader.register_handler(
            Callback(
                "history",
                MatchXPath(f"{{{namespaces.CLIENT}}}message/{{{LEGACY_NS}}}encrypted"),
                arrived.put_nowait,
            )
        )
        # A stock join: no <history/> asked, so the thread's default (threads.join_history).
        await reader.plugin["xep_0045"].join_muc_wait(JID(thread), "Dave", timeout=20)
        copies = [await asyncio.wait_for(arrived.get(), 30) for _ in sent]
        for copy in copies:
            assert set(key_rids(copy.xml)) == {dave_id}  # only Dave's key
            assert copy.xml.find("{urn:xmpp:delay}delay") is not None
            assert copy.xml.find(f"{{{namespaces.CLINIC_SEQ}}}seq") is not None
        # Alice has left: the sender is the real JID the history names, as for MAM.
        history = await decrypt_history(reader, copies)
        assert [m.body for m in history] == sent
    finally:
        await disconnect_bot(reader)


def _omemo2_queue(bot: ClientXMPP) -> asyncio.Queue[ET.Element]:
    queue: asyncio.Queue[ET.Element] = asyncio.Queue()
    bot.register_handler(
        Callback(
            "omemo2",
            MatchXPath(f"{{{namespaces.CLIENT}}}message/{{{OMEMO2_NS}}}encrypted"),
            lambda msg: queue.put_nowait(msg.xml.find(f"{{{OMEMO2_NS}}}encrypted")),
        )
    )
    return queue
