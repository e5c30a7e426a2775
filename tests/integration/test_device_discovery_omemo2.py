"""The gateway discovers OMEMO 2 devices from members' real PEP, on both servers (I.4, I.5).

test_device_policy_omemo2.py records its twomemo devices in the registry directly; here
the devices' owners publish a real ``urn:xmpp:omemo:2:devices`` list and
``urn:xmpp:omemo:2:bundles`` item to their PEP (python-omemo's own serialisation,
tests/helpers/twomemo.py ``publish``), and the running gateway finds them when the
members join a thread (Bob's two devices are two items of the one bundles node). Each
device is pending under the default manual mode, with the fingerprint the phone shows
(the Curve25519 form of the published Ed25519 identity key, as python-omemo formats it).
Once IT approves with the CLI, the device's OMEMO 2 message is relayed to the other
member, who decrypts it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest
from omemo import SessionManager
from omemo.session_manager import MessageNotForUs

from tests.helpers.bots import connect_bot, disconnect_bot
from tests.helpers.omemo import join_thread
from tests.helpers.registry import wait_for_device
from tests.helpers.twomemo import Directory, OmemoTwoDevice, publish
from tests.integration.conftest import PASSWORD, GatewayHandle
from tests.integration.device_policy_helpers import Refusals, acreate_thread
from tests.integration.test_device_policy_omemo2 import Omemo2Inbox, send
from xmpp_clinic.omemo import OMEMO2_NS
from xmpp_clinic.registry.fingerprint import fingerprint
from xmpp_clinic.registry.model import DeviceState

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

MakeUsers = Callable[..., list[str]]
GatewayFactory = Callable[..., Awaitable[GatewayHandle]]
PLUGINS = ("xep_0030", "xep_0045", "xep_0060")


async def listed(gw: GatewayHandle, jid: str) -> list[dict[str, object]]:
    """``xmpp-clinic devices list --jid JID --json``."""
    proc = await gw.acli("devices", "list", "--jid", jid, "--json")
    found: list[dict[str, object]] = json.loads(proc.stdout)
    return found


@pytest.mark.requirement("I.4")
async def test_omemo2_devices_are_discovered_from_pep_and_then_approved(
    make_users: MakeUsers, gateway_factory: GatewayFactory
) -> None:
    gw = await gateway_factory(policy={"device_approval": "manual"})
    kai, bob = make_users("kai", "bob")
    directory = Directory()
    kai_device = await OmemoTwoDevice.create(kai, directory)
    bob_device = await OmemoTwoDevice.create(bob, directory)
    bob_tablet = await OmemoTwoDevice.create(bob, directory)
    bots = [await connect_bot(jid, PASSWORD, gw.server, plugins=PLUGINS) for jid in (kai, bob)]
    kai_bot, bob_bot = bots
    try:
        kai_id = await publish(kai_bot, kai_device)
        bob_id = await publish(bob_bot, bob_device)
        tablet_id = await publish(bob_bot, bob_tablet)  # a second item in the bundles node
        thread = await acreate_thread(gw, "ward9", [kai, bob])
        refusals, bob_inbox = Refusals(kai_bot), Omemo2Inbox(bob_bot)
        await join_thread(kai_bot, thread, "Kai")
        await join_thread(bob_bot, thread, "Bob")

        # Joining made the gateway read both members' PEP: the devices wait for IT.
        for device, device_id in (
            (kai_device, kai_id),
            (bob_device, bob_id),
            (bob_tablet, tablet_id),
        ):
            found = await wait_for_device(
                gw.gateway.registry, device.jid, device_id, namespace=OMEMO2_NS
            )
            assert found.state is DeviceState.PENDING
            # The bundle was read, not only the list: the registry has the published key.
            assert found.identity_key == (await device.device())[1]
        # A refresh on demand reads the OMEMO 2 list and bundle without a failure. (Kai has
        # no legacy list: Prosody answers "forbidden" for such a node, ejabberd an empty one.)
        result = await gw.gateway.discovery.refresh(kai)
        assert result.listed[OMEMO2_NS] == 1
        assert OMEMO2_NS not in result.failed
        bobs = await gw.gateway.discovery.refresh(bob)
        assert (bobs.listed[OMEMO2_NS], OMEMO2_NS in bobs.failed) == (2, False)
        for recorded in await gw.gateway.registry.devices(bob):  # both bundles still readable
            assert recorded.identity_key is not None, recorded

        _own_id, identity_key = await kai_device.device()  # Ed25519, as the bundle has it
        expected = fingerprint(OMEMO2_NS, identity_key)
        assert expected == "".join(SessionManager.format_identity_key(identity_key))
        assert expected != identity_key.hex()  # converted to Curve25519, as clients show it
        [row] = await listed(gw, kai)
        assert {k: row[k] for k in ("jid", "namespace", "device_id", "state", "fingerprint")} == {
            "jid": kai,
            "namespace": OMEMO2_NS,
            "device_id": kai_id,
            "state": "pending",
            "fingerprint": expected,
        }

        # Pending: Kai's device cannot send yet.
        first = send(kai_bot, thread, await kai_device.encrypt("insulin 4 IU", [bob]))
        refused = await refusals.of(first)
        assert (refused.condition, refused.reason) == (
            "policy-violation",
            "sender-device-not-approved",
        )

        # IT approves Kai's device and Bob's phone; no restart: the next message goes through.
        for jid, device_id in ((kai, kai_id), (bob, bob_id)):
            await gw.acli("devices", "approve", jid, str(device_id), "--namespace", "omemo2")
        [row] = await listed(gw, kai)
        assert (row["state"], row["fingerprint"]) == ("approved", expected)
        second = send(kai_bot, thread, await kai_device.encrypt("insulin 4 IU, approved", [bob]))
        relayed = await bob_inbox.take()  # the refused message never reached Bob
        assert await bob_device.decrypt(relayed, kai) == "insulin 4 IU, approved"
        with pytest.raises(MessageNotForUs):  # the tablet is still pending: key stripped
            await bob_tablet.decrypt(relayed, kai)
        assert not refusals.has(second)
    finally:
        await asyncio.gather(*(disconnect_bot(bot) for bot in bots))
