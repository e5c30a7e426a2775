"""Only approved devices of members can send or read, on a real Prosody and ejabberd.

Real slixmpp-omemo clients (legacy OMEMO, as Conversations, Gajim and Dino speak it)
publish their devices to PEP; the gateway discovers them when they join a thread, and
hospital IT approves or revokes them with the CLI while the gateway runs (II.1, I.4,
I.5, III.3). Setup approvals that are not under test go through the registry service
(as `devices approve` would) to save CLI start-ups.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from slixmpp import ClientXMPP
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from tests.helpers.bots import disconnect_bot
from tests.helpers.omemo import (
    OmemoInbox,
    connect_omemo_bot,
    encrypt_for_thread,
    fetch_thread_history,
    join_thread,
    key_rids,
    own_device_id,
    send_omemo_groupchat,
)
from tests.helpers.registry import wait_for_device
from tests.integration.conftest import PASSWORD, GatewayHandle
from tests.integration.device_policy_helpers import (
    ANY_MESSAGE,
    Notices,
    Refusals,
    acreate_thread,
)
from xmpp_clinic.clock import utcnow
from xmpp_clinic.dev.servers import DevServer
from xmpp_clinic.omemo import LEGACY_NS
from xmpp_clinic.policy.fallback import FALLBACK_TEXT
from xmpp_clinic.registry.model import DeviceState
from xmpp_clinic.registry.service import DeviceRegistry

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MakeUsers = Callable[..., list[str]]
GatewayFactory = Callable[..., Awaitable[GatewayHandle]]
MANUAL = {"device_approval": "manual"}
# Each slixmpp-omemo client publishes the same device id as a legacy and as an OMEMO 2
# device: Bob's two clients are four devices. CLI calls therefore name the namespace.
ALL_DEVICES = {"device_approval": "all", "max_devices_per_person": 4}
LEGACY = ("--namespace", "omemo")
# Whatever body a client puts beside <encrypted>, recipients get the gateway's own (II.1).
FALLBACK = FALLBACK_TEXT


async def approve_for_setup(gw: GatewayHandle, jid: str, device_id: int) -> None:
    """Approve a device that is not what the test is about (as `devices approve` does)."""
    await wait_for_device(gw.gateway.registry, jid, device_id)
    await gw.gateway.registry.approve(jid, device_id, actor="cli:test-setup", namespace=LEGACY_NS)


async def connect_all(server: DevServer, *jids: str) -> list[ClientXMPP]:
    return list(await asyncio.gather(*(connect_omemo_bot(j, PASSWORD, server) for j in jids)))


@pytest.mark.requirement("I.4", "I.5")
async def test_plaintext_is_refused_with_policy_violation_and_reaches_nobody(
    make_users: MakeUsers, gateway_factory: GatewayFactory
) -> None:
    gw = await gateway_factory(policy=MANUAL)
    alice, bob = make_users("alice", "bob")
    thread = await acreate_thread(gw, "ward1", [alice, bob])
    bots = await connect_all(gw.server, alice, bob)
    try:
        refusals, bob_inbox = Refusals(bots[0]), OmemoInbox(bots[1])
        bodies: list[str] = []
        bots[1].register_handler(
            Callback(
                "bodies",
                MatchXPath(ANY_MESSAGE),
                lambda m: (
                    bodies.append(m["body"]) if m["type"] == "groupchat" and m["body"] else None
                ),
            )
        )
        await join_thread(bots[0], thread, "Alice")
        await join_thread(bots[1], thread, "Bob")
        for bot in bots:
            await approve_for_setup(gw, bot.boundjid.bare, await own_device_id(bot))

        plain = bots[0].make_message(mto=thread, mtype="groupchat", mbody="BP 120/80, bed 4")
        plain.send()
        refused = await refusals.of(plain["id"])
        assert refused.condition == "policy-violation"
        assert refused.reason == "plaintext-refused"
        assert refused.text == (
            "Unencrypted messages are not allowed in care threads (<body> in namespace "
            "'jabber:client'); enable OMEMO and resend."
        )

        # A later encrypted message arrives, and it is the first thing Bob gets.
        await send_omemo_groupchat(bots[0], thread, "please check bed 4")
        [got] = await bob_inbox.take(1)
        assert (got.body, got.sender) == ("please check bed 4", alice)
        assert bodies == [FALLBACK]
        archived = await fetch_thread_history(bots[1], thread)
        assert [m["body"] for m in archived] == [FALLBACK]
    finally:
        await asyncio.gather(*(disconnect_bot(bot) for bot in bots))


@pytest.mark.requirement("I.4", "I.5")
async def test_pending_device_cannot_send_until_approved_by_the_cli(
    make_users: MakeUsers, gateway_factory: GatewayFactory
) -> None:
    gw = await gateway_factory(policy=MANUAL)
    alice, bob = make_users("alice", "bob")
    thread = await acreate_thread(gw, "ward2", [alice, bob])
    bots = await connect_all(gw.server, alice, bob)
    try:
        alice_inbox, refusals = OmemoInbox(bots[0]), Refusals(bots[1])
        bob_notices = Notices(bots[1], gw.jid)
        await join_thread(bots[0], thread, "Alice")
        await join_thread(bots[1], thread, "Bob")
        await approve_for_setup(gw, alice, await own_device_id(bots[0]))
        bob_device = await own_device_id(bots[1])
        assert (await wait_for_device(gw.gateway.registry, bob, bob_device)).state is (
            DeviceState.PENDING
        )
        await bob_notices.containing(f"(id {bob_device}) is waiting for approval")

        first = await send_omemo_groupchat(bots[1], thread, "K+ 4.1")
        refused = await refusals.of(first)
        assert (refused.condition, refused.reason) == (
            "policy-violation",
            "sender-device-not-approved",
        )
        assert refused.text == f"Your device {bob_device} is waiting for approval by hospital IT."

        started = gw.gateway.component.online
        approved = await gw.acli("devices", "approve", bob, str(bob_device), *LEGACY)
        assert f"approved {bob}/omemo/{bob_device}" in approved.stdout
        second = await send_omemo_groupchat(bots[1], thread, "K+ 4.1, repeated")
        [got] = await alice_inbox.take(1)
        assert (got.body, got.sender) == ("K+ 4.1, repeated", bob)  # the refused one never came
        assert not refusals.has(second)
        assert started and gw.gateway.component.online  # same gateway, no restart
        await bob_notices.containing(f"(id {bob_device}) is approved for care threads until")
    finally:
        await asyncio.gather(*(disconnect_bot(bot) for bot in bots))


@pytest.mark.requirement("I.4", "I.5")
async def test_message_reaches_bobs_approved_device_but_not_his_pending_one(
    make_users: MakeUsers, gateway_factory: GatewayFactory
) -> None:
    gw = await gateway_factory(policy=MANUAL)
    alice, bob, carol = make_users("alice", "bob", "carol")
    thread = await acreate_thread(gw, "ward3", [alice, bob, carol])
    # Bob's devices one after the other: each publishes the device list with both in it.
    bob_phone = await connect_omemo_bot(bob, PASSWORD, gw.server)
    bob_tablet = await connect_omemo_bot(bob, PASSWORD, gw.server)
    alice_bot, carol_bot = await connect_all(gw.server, alice, carol)
    bots = [alice_bot, carol_bot, bob_phone, bob_tablet]
    try:
        carol_inbox, phone_inbox, tablet_inbox = (
            OmemoInbox(b) for b in (carol_bot, bob_phone, bob_tablet)
        )
        for bot, nick in zip(bots, ("Alice", "Carol", "Bob", "Bob"), strict=True):
            await join_thread(bot, thread, nick)
        phone, tablet = await own_device_id(bob_phone), await own_device_id(bob_tablet)
        assert phone != tablet
        for bot in (alice_bot, carol_bot, bob_phone):
            await approve_for_setup(gw, bot.boundjid.bare, await own_device_id(bot))
        pending = await wait_for_device(gw.gateway.registry, bob, tablet)
        assert pending.state is DeviceState.PENDING
        assert pending.fingerprint is not None  # its bundle was read from PEP

        message = await encrypt_for_thread(alice_bot, thread, "CT at 15:00")
        sent_rids = key_rids(message.xml)
        assert {phone, tablet, await own_device_id(carol_bot)} <= set(sent_rids)
        message.send()

        [for_carol] = await carol_inbox.take(1)
        [for_phone] = await phone_inbox.take(1)
        assert for_carol.body == for_phone.body == "CT at 15:00"
        # Bob's copy carries only his approved phone's key (the tablet's was stripped,
        # I.5), Carol's only hers: each member gets only its own keys (II.3, issue 13).
        unreadable = await tablet_inbox.take_unreadable()
        assert key_rids(unreadable) == [phone]
        assert tablet_inbox.messages.empty()
        assert [key_rids(m) for m in carol_inbox.received] == [[await own_device_id(carol_bot)]]
    finally:
        await asyncio.gather(*(disconnect_bot(bot) for bot in bots))


@pytest.mark.requirement("I.4", "I.5")
async def test_revoke_applies_to_the_next_message_and_revoke_all_cuts_every_device(
    make_users: MakeUsers, gateway_factory: GatewayFactory
) -> None:
    """Devices are approved on discovery here ("all"); revocation is what is tested."""
    gw = await gateway_factory(policy=ALL_DEVICES)
    alice, bob, carol = make_users("alice", "bob", "carol")
    thread = await acreate_thread(gw, "ward4", [alice, bob, carol])
    bob_phone = await connect_omemo_bot(bob, PASSWORD, gw.server)
    bob_tablet = await connect_omemo_bot(bob, PASSWORD, gw.server)
    alice_bot, carol_bot = await connect_all(gw.server, alice, carol)
    bots = [alice_bot, carol_bot, bob_phone, bob_tablet]
    try:
        carol_inbox, phone_inbox, tablet_inbox = (
            OmemoInbox(b) for b in (carol_bot, bob_phone, bob_tablet)
        )
        phone_refusals, tablet_refusals = Refusals(bob_phone), Refusals(bob_tablet)
        alice_notices = Notices(alice_bot, thread)
        for bot, nick in zip(bots, ("Alice", "Carol", "Bob", "Bob"), strict=True):
            await join_thread(bot, thread, nick)
        phone, tablet = await own_device_id(bob_phone), await own_device_id(bob_tablet)
        for bot in bots:
            device_id = await own_device_id(bot)
            device = await wait_for_device(gw.gateway.registry, bot.boundjid.bare, device_id)
            assert device.state is DeviceState.APPROVED

        await send_omemo_groupchat(alice_bot, thread, "round 1")
        for inbox in (carol_inbox, phone_inbox, tablet_inbox):
            assert [m.body for m in await inbox.take(1)] == ["round 1"]

        await gw.acli("devices", "revoke", bob, str(phone), *LEGACY, "--reason", "screen broken")
        await send_omemo_groupchat(alice_bot, thread, "round 2")  # the very next message
        assert [m.body for m in await carol_inbox.take(1)] == ["round 2"]
        assert [m.body for m in await tablet_inbox.take(1)] == ["round 2"]
        assert phone not in key_rids(await phone_inbox.take_unreadable())
        from_phone = await send_omemo_groupchat(bob_phone, thread, "can you read me?")
        refused = await phone_refusals.of(from_phone)
        assert refused.reason == "sender-device-not-approved"
        assert refused.text == f"Your device {phone} was revoked by hospital IT."

        lost = await gw.acli("devices", "revoke-all", bob, "--reason", "lost phone, ticket 4711")
        assert f"revoked {bob}/omemo/{tablet}" in lost.stdout
        from_tablet = await send_omemo_groupchat(bob_tablet, thread, "still here")
        refused = await tablet_refusals.of(from_tablet)
        assert refused.reason == "sender-device-not-approved"
        assert refused.text == f"Your device {tablet} was revoked by hospital IT."
        await send_omemo_groupchat(alice_bot, thread, "round 3")
        assert [m.body for m in await carol_inbox.take(1)] == ["round 3"]
        rids = key_rids(await tablet_inbox.take_unreadable())
        assert phone not in rids and tablet not in rids
        await alice_notices.containing(bob, "may not be able to read")
        assert phone_inbox.messages.empty() and tablet_inbox.messages.empty()

        await assert_audit_trail(gw, bob, phone, tablet)
    finally:
        await asyncio.gather(*(disconnect_bot(bot) for bot in bots))


async def assert_audit_trail(gw: GatewayHandle, bob: str, phone: int, tablet: int) -> None:
    """Rejections and revocations are audit events; `audit verify` sees a modified one."""
    events = json.loads((await gw.acli("audit", "events", "--json")).stdout)
    seen = {(e["actor"], e["action"], e["reason"]) for e in events}
    assert (bob, "message.rejected", "sender-device-not-approved") in seen
    assert any(a == "message.keys-removed" for _actor, a, _reason in seen)
    revoked = [e for e in events if e["action"] == "device.revoked" and "/omemo/" in e["subject"]]
    # The phone once, then the tablet: one event per change.
    assert [e["subject"] for e in revoked] == [f"{bob}/omemo/{phone}", f"{bob}/omemo/{tablet}"]
    verified = await gw.acli("audit", "verify")
    assert verified.stdout.startswith("audit log intact:")

    with sqlite3.connect(gw.settings.store.url.split("///", 1)[1]) as db:
        db.execute(
            "UPDATE audit_events SET note = 'nothing happened' WHERE seq = ?", (revoked[0]["seq"],)
        )
    tampered = await gw.acli("audit", "verify", check=False)
    assert tampered.returncode == 1
    assert f"BROKEN at event {revoked[0]['seq']}" in tampered.stdout


@pytest.mark.requirement("I.4", "I.5")
async def test_expired_device_is_refused_like_a_revoked_one(
    make_users: MakeUsers, gateway_factory: GatewayFactory
) -> None:
    gw = await gateway_factory(policy=MANUAL)
    alice, bob, carol = make_users("alice", "bob", "carol")
    thread = await acreate_thread(gw, "ward5", [alice, bob, carol])
    bots = await connect_all(gw.server, alice, bob, carol)
    alice_bot, bob_bot, carol_bot = bots
    try:
        carol_inbox, bob_inbox = OmemoInbox(carol_bot), OmemoInbox(bob_bot)
        refusals, bob_notices = Refusals(bob_bot), Notices(bob_bot, gw.jid)
        for bot, nick in zip(bots, ("Alice", "Bob", "Carol"), strict=True):
            await join_thread(bot, thread, nick)
        for bot in (alice_bot, carol_bot):
            await approve_for_setup(gw, bot.boundjid.bare, await own_device_id(bot))
        bob_device = await own_device_id(bob_bot)
        await wait_for_device(gw.gateway.registry, bob, bob_device)
        # Approved 200 days ago for 180 days: the approval ended 20 days ago.
        then = utcnow() - timedelta(days=200)
        past = DeviceRegistry(gw.gateway.store, gw.settings.policy, clock=lambda: then)
        await past.approve(
            bob, bob_device, actor="cli:it-desk", valid_days=180, namespace=LEGACY_NS
        )

        sent = await send_omemo_groupchat(bob_bot, thread, "leaving now")
        refused = await refusals.of(sent)
        assert (refused.condition, refused.reason) == (
            "policy-violation",
            "sender-device-not-approved",
        )
        assert refused.text == (
            f"Your device {bob_device} approval has expired; ask hospital IT to re-validate it."
        )
        await send_omemo_groupchat(alice_bot, thread, "handover at 18:00")
        assert [m.body for m in await carol_inbox.take(1)] == ["handover at 18:00"]
        assert bob_device not in key_rids(await bob_inbox.take_unreadable())

        # The periodic task marks it expired and tells Bob; it stays refused.
        run = await gw.gateway.registry.expire_due()
        assert [d.device_id for d in run.expired] == [bob_device]
        listed = json.loads((await gw.acli("devices", "list", "--jid", bob, "--json")).stdout)
        states = {(d["device_id"], d["namespace"]): d["state"] for d in listed}
        assert states[(bob_device, LEGACY_NS)] == "expired"
        await bob_notices.containing(f"(id {bob_device}) approval has expired")
        again = await send_omemo_groupchat(bob_bot, thread, "leaving now, again")
        assert (await refusals.of(again)).text == refused.text
        assert bob_inbox.messages.empty()
    finally:
        await asyncio.gather(*(disconnect_bot(bot) for bot in bots))
