"""The device policy for OMEMO 2 (urn:xmpp:omemo:2, as Kaidan sends it), on both servers.

OMEMO 2 groups keys by JID, so the gateway checks each (JID, device) pair. The messages
are real OMEMO 2 elements built with python-omemo's twomemo backend
(tests/helpers/twomemo.py) and sent by ordinary clients. Here the devices keep their
bundles in the test process and are recorded in the gateway's registry as discovery
would (pending, under "manual"), so each test controls exactly which devices exist;
discovery of OMEMO 2 devices from real PEP is proven in
test_device_discovery_omemo2.py. Hospital IT approves and revokes them with the CLI as
for any device (I.4, I.5, II.1).
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable

import pytest
from omemo.session_manager import MessageNotForUs
from slixmpp import ClientXMPP
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.xmlstream.stanzabase import StanzaBase

from tests.helpers.bots import connect_bot, disconnect_bot
from tests.helpers.omemo import join_thread
from tests.helpers.registry import register_omemo2
from tests.helpers.twomemo import NAMESPACE, Directory, OmemoTwoDevice
from tests.integration.conftest import PASSWORD, GatewayHandle
from tests.integration.device_policy_helpers import Refusals, acreate_thread
from xmpp_clinic import namespaces
from xmpp_clinic.registry.model import DeviceState

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

MakeUsers = Callable[..., list[str]]
GatewayFactory = Callable[..., Awaitable[GatewayHandle]]
OMEMO2 = ("--namespace", "omemo2")
PLUGINS = ("xep_0030", "xep_0045")


def keys_of(encrypted: ET.Element) -> dict[tuple[str, int], bytes]:
    """(JID, device id) -> the canonical bytes of its ``<key>`` element."""
    found: dict[tuple[str, int], bytes] = {}
    for group in encrypted.iterfind(f"{{{NAMESPACE}}}header/{{{NAMESPACE}}}keys"):
        for key in group.iterfind(f"{{{NAMESPACE}}}key"):
            canonical = ET.canonicalize(ET.tostring(key), strip_text=False)
            found[(group.get("jid", ""), int(key.get("rid", "0")))] = canonical.encode()
    return found


class Omemo2Inbox:
    """The OMEMO 2 elements one plain client receives in a thread."""

    def __init__(self, bot: ClientXMPP) -> None:
        self.elements: asyncio.Queue[ET.Element] = asyncio.Queue()
        bot.register_handler(
            Callback(
                f"Omemo2Inbox-{id(self)}",
                MatchXPath(f"{{{namespaces.CLIENT}}}message/{{{NAMESPACE}}}encrypted"),
                self._on_message,
            )
        )

    def _on_message(self, message: StanzaBase) -> None:
        element = message.xml.find(f"{{{NAMESPACE}}}encrypted")
        if element is not None:  # always, by the handler's match
            self.elements.put_nowait(element)

    async def take(self, timeout: float = 30) -> ET.Element:
        return await asyncio.wait_for(self.elements.get(), timeout)


def send(bot: ClientXMPP, thread: str, element: ET.Element) -> str:
    message = bot.make_message(mto=thread, mtype="groupchat")
    message.append(element)
    message.send()
    return str(message["id"])


@pytest.mark.requirement("I.4", "I.5")
async def test_omemo2_sender_and_recipient_devices_must_be_approved(
    make_users: MakeUsers, gateway_factory: GatewayFactory
) -> None:
    gw = await gateway_factory(policy={"device_approval": "manual"})
    kai, bob, alice = make_users("kai", "bob", "alice")
    thread = await acreate_thread(gw, "ward7", [kai, bob, alice])
    directory = Directory()
    kai_device = await OmemoTwoDevice.create(kai, directory)
    bob_phone = await OmemoTwoDevice.create(bob, directory)
    bob_tablet = await OmemoTwoDevice.create(bob, directory)
    alice_device = await OmemoTwoDevice.create(alice, directory)
    ids: dict[str, int] = {}
    for name, jid, device in (
        ("kai", kai, kai_device),
        ("phone", bob, bob_phone),
        ("tablet", bob, bob_tablet),
        ("alice", alice, alice_device),
    ):
        device_id, identity_key = await device.device()
        recorded = await register_omemo2(gw.gateway.registry, jid, device_id, identity_key)
        assert recorded.state is DeviceState.PENDING
        ids[name] = device_id
    bots = [await connect_bot(jid, PASSWORD, gw.server, plugins=PLUGINS) for jid in (kai, bob)]
    kai_bot, bob_bot = bots
    try:
        refusals, bob_inbox = Refusals(kai_bot), Omemo2Inbox(bob_bot)
        await join_thread(kai_bot, thread, "Kai")
        await join_thread(bob_bot, thread, "Bob")

        # Kai's device waits for approval: refused, and nobody receives it.
        first = send(kai_bot, thread, await kai_device.encrypt("insulin 4 IU", [bob, alice]))
        refused = await refusals.of(first)
        assert (refused.condition, refused.reason) == (
            "policy-violation",
            "sender-device-not-approved",
        )
        assert refused.text == f"Your device {ids['kai']} is waiting for approval by hospital IT."

        for jid, name in ((kai, "kai"), (bob, "phone"), (alice, "alice")):
            await gw.acli("devices", "approve", jid, str(ids[name]), *OMEMO2)
        element = await kai_device.encrypt("insulin 4 IU, now approved", [bob, alice])
        sent_keys = keys_of(element)
        assert {(bob, ids["phone"]), (bob, ids["tablet"]), (alice, ids["alice"])} <= set(sent_keys)
        second = send(kai_bot, thread, element)
        relayed = await bob_inbox.take()  # the first thing Bob gets: the refused one never came
        got_keys = keys_of(relayed)
        # Bob's copy: his approved phone's key only; the pending tablet's was stripped (I.5)
        # and Alice's group is not his to see (II.3, issue 13).
        assert got_keys == {(bob, ids["phone"]): sent_keys[(bob, ids["phone"])]}
        assert await bob_phone.decrypt(relayed, kai) == "insulin 4 IU, now approved"
        with pytest.raises(MessageNotForUs):  # its key was removed by the gateway
            await bob_tablet.decrypt(relayed, kai)
        assert not refusals.has(second)

        # Revoked: the very next message from Kai's device is refused.
        await gw.acli("devices", "revoke", kai, str(ids["kai"]), *OMEMO2, "--reason", "stolen")
        third = send(kai_bot, thread, await kai_device.encrypt("are you there?", [bob, alice]))
        refused = await refusals.of(third)
        assert refused.reason == "sender-device-not-approved"
        assert refused.text == f"Your device {ids['kai']} was revoked by hospital IT."
        assert bob_inbox.elements.empty()
    finally:
        await asyncio.gather(*(disconnect_bot(bot) for bot in bots))
