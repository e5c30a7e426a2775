"""Retention on a real Prosody and a real ejabberd (I.7, IV.8).

A thread with a 2-minute retention (test clock: the purge is run as if two minutes had
passed) loses its older messages from MAM results while younger ones stay; the receipt
verifies and ``audit verify`` passes. ``threads delete`` kicks present members (321).
The gateway runs with its purge job (``PurgeScheduler``) beside it, as app.py will.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from slixmpp import JID, Presence

from tests.helpers.bots import disconnect_bot
from tests.helpers.omemo import (
    OmemoInbox,
    connect_omemo_bot,
    fetch_thread_history,
    join_thread,
    send_omemo_groupchat,
)
from tests.integration.conftest import PASSWORD, GatewayHandle
from tests.integration.device_policy_helpers import create_thread
from xmpp_clinic.clock import utcnow
from xmpp_clinic.retention.scheduler import PurgeScheduler

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ALL_DEVICES = {"device_approval": "all"}
GatewayFactory = Callable[..., Awaitable[GatewayHandle]]


@pytest.mark.requirement("I.7")
async def test_two_minute_thread_loses_older_messages_from_mam(
    make_users: Callable[..., list[str]], gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    gw = await gateway_factory(policy=ALL_DEVICES, retention={"purge_interval_minutes": 60})
    scheduler = PurgeScheduler(gw.gateway.store, gw.settings.retention)
    scheduler.start()  # app.py wiring: started after the gateway, stopped before it
    alice, bob = make_users("alice", "bob")
    thread = create_thread(gw, "ward2m", [alice, bob])
    gw.cli("threads", "set-retention", "ward2m", "--messages", "2m")
    bot, other = await asyncio.gather(
        *(connect_omemo_bot(u, PASSWORD, gw.server) for u in (alice, bob))
    )
    try:
        inbox = OmemoInbox(bot)
        await join_thread(bot, thread, "Alice")
        await join_thread(other, thread, "Bob")
        for text in ("old one", "old two"):
            await send_omemo_groupchat(bot, thread, text)
            await inbox.take(1, timeout=60)
        between = utcnow()
        await asyncio.sleep(0.05)
        young = await send_omemo_groupchat(bot, thread, "young")
        await inbox.take(1, timeout=60)
        assert len(await fetch_thread_history(bot, thread)) == 3
        # two minutes later for the old ones, not yet for the young one
        outcome = await scheduler.purger.run(
            actor="gateway", rule="schedule", now=between + timedelta(minutes=2)
        )
        assert outcome.messages == 2
        history = await fetch_thread_history(bot, thread)
        assert [m["id"] for m in history] == [young]
    finally:
        await asyncio.gather(disconnect_bot(bot), disconnect_bot(other))
        await scheduler.stop()
    assert gw.cli("audit", "verify").returncode == 0
    receipts = json.loads(gw.cli("purge", "receipts", "--json").stdout)
    item = receipts[-1]["receipt"]["items"][0]
    assert (item["thread"], item["first_seq"], item["last_seq"]) == ("ward2m", 1, 2)
    saved = tmp_path / "receipt.json"
    saved.write_text(json.dumps(receipts[-1]))
    assert gw.cli("purge", "verify-receipt", str(saved)).returncode == 0
    receipts[-1]["receipt"]["items"][0]["count"] = 1
    saved.write_text(json.dumps(receipts[-1]))
    assert gw.cli("purge", "verify-receipt", str(saved), check=False).returncode == 1


@pytest.mark.requirement("I.7")
async def test_deleted_thread_kicks_its_members(
    make_users: Callable[..., list[str]], gateway_factory: GatewayFactory
) -> None:
    gw = await gateway_factory(policy=ALL_DEVICES)
    bob, carol = make_users("bob", "carol")
    thread = create_thread(gw, "gone", [bob, carol])
    bot = await connect_omemo_bot(bob, PASSWORD, gw.server)
    try:
        kicked: asyncio.Queue[Presence] = asyncio.Queue()
        bot.add_event_handler(
            f"muc::{JID(thread)}::presence",
            lambda p: kicked.put_nowait(p) if p["type"] == "unavailable" else None,
        )
        await join_thread(bot, thread, "Bob")
        await asyncio.to_thread(gw.cli, "threads", "delete", "gone", "--yes")
        presence = await asyncio.wait_for(kicked.get(), 20)
        assert "321" in {str(s) for s in presence["muc"]["status_codes"]}
    finally:
        await disconnect_bot(bot)
    assert "gone" not in gw.cli("threads", "list").stdout
    assert gw.cli("audit", "verify").returncode == 0
