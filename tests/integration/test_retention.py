"""Retention on a real Prosody and a real ejabberd (I.7, IV.8).

A thread with a 2-minute retention (test clock: the purge is run as if two minutes had
passed) loses its older messages from MAM results while younger ones stay; the receipt
verifies and ``audit verify`` passes. ``threads delete`` kicks present members (321).
The gateway runs with its purge job (``PurgeScheduler``) beside it, as app.py will.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from slixmpp import JID, ClientXMPP, Iq, Message, Presence
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
from tests.integration.conftest import PASSWORD, GatewayHandle
from tests.integration.device_policy_helpers import create_thread
from xmpp_clinic import namespaces
from xmpp_clinic.clock import utcnow
from xmpp_clinic.dev.servers import DevServer
from xmpp_clinic.dev.servers.prosody import ProsodyServer
from xmpp_clinic.retention.scheduler import PurgeScheduler
from xmpp_clinic.retention.server_mam import EjabberdArchive

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ALL_DEVICES = {"device_approval": "all"}
GatewayFactory = Callable[..., Awaitable[GatewayHandle]]
_queries = itertools.count()


@pytest.mark.requirement("I.7")
async def test_two_minute_thread_loses_older_messages_from_mam(
    make_users: Callable[..., list[str]], gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    gw = await gateway_factory(policy=ALL_DEVICES, retention={"purge_interval_minutes": 60})
    scheduler = PurgeScheduler(gw.gateway.store, gw.settings)
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


async def own_archive_with(bot: ClientXMPP, peer: str, *, bodies_only: bool = True) -> list[str]:
    """The bodies in the user's own server MAM exchanged with ``peer`` (as the user sees);
    ``bodies_only=False`` keeps the gateway's body-less answers (as "")."""
    queryid = f"own{id(bot)}{next(_queries)}"
    bodies: list[str] = []

    def collect(message: StanzaBase) -> None:
        result = message.xml.find(f"{{{namespaces.MAM}}}result")
        if result is not None and result.get("queryid") == queryid:
            assert isinstance(message, Message)
            bodies.append(str(message["mam_result"]["forwarded"]["stanza"]["body"]))

    name = f"own-{queryid}"
    bot.register_handler(
        Callback(name, MatchXPath(f"{{{namespaces.CLIENT}}}message/{{{namespaces.MAM}}}result"),
                 collect)
    )  # fmt: skip
    try:
        iq = bot.make_iq_set()
        iq["mam"]["queryid"] = queryid
        iq["mam"]["with"] = JID(peer)
        send: Callable[..., Awaitable[Iq]] = iq.send
        await send(timeout=30)
    finally:
        bot.remove_handler(name)
    return [b for b in bodies if b or not bodies_only]


def server_settings(gw_server: DevServer) -> dict[str, object]:
    if gw_server.kind == "prosody":
        assert isinstance(gw_server, ProsodyServer)
        return {"server_archive": "prosody", "prosody_config": str(gw_server.config_path)}
    return {"server_archive": "ejabberd",
            "ejabberd_api_url": f"http://127.0.0.1:{gw_server.http_port}/api"}  # fmt: skip


@pytest.mark.requirement("I.7")
@pytest.mark.requirement("IV.8")
async def test_server_mam_of_removed_member_and_expired_range(
    make_users: Callable[..., list[str]],
    gateway_factory: GatewayFactory,
    xmpp_server: DevServer,
) -> None:
    """The server's own MAM, queried as the user: a removed member's copies are gone;
    expired copies are gone on Prosody, and ejabberd's limit is reported."""
    gw = await gateway_factory(policy=ALL_DEVICES, retention=server_settings(xmpp_server))
    alice, bob = make_users("alice", "bob")
    thread = create_thread(gw, "srvmam", [alice, bob])
    bots = await asyncio.gather(
        *(
            connect_bot(u, PASSWORD, gw.server, plugins=("xep_0030", "xep_0313"))
            for u in (alice, bob)
        )
    )
    try:
        # ejabberd did not archive messages sent in the first moments of a fresh session
        # (seen once in three runs); the test is about purging, so give it those seconds.
        await asyncio.sleep(2)
        for bot in bots:
            for text in ("old 1", "old 2"):
                bot.send_message(mto=JID(thread), mbody=text, mtype="chat")
        await asyncio.sleep(1.5)
        between = utcnow()
        await asyncio.sleep(1.5)
        bots[1].send_message(mto=JID(thread), mbody="young", mtype="chat")
        await asyncio.sleep(1.0)
        assert await own_archive_with(bots[0], thread) == ["old 1", "old 2"]
        assert await own_archive_with(bots[1], thread) == ["old 1", "old 2", "young"]
        gw.cli("threads", "remove-member", "srvmam", alice)
        gw.cli("threads", "set-retention", "srvmam", "--messages", "2m")
        job = PurgeScheduler(gw.gateway.store, gw.settings).purger
        outcome = await job.run(
            actor="gateway", rule="schedule", now=between + timedelta(minutes=2)
        )
        removed = [r for r in outcome.server if r.action == "remove-peer"]
        assert [(r.user, r.peer, r.done) for r in removed] == [(alice, thread, True)]
        assert await own_archive_with(bots[0], thread, bodies_only=False) == []
        expired = [r for r in outcome.server if r.action == "expire-peer"]
        if xmpp_server.kind == "prosody":
            # his two old messages, and whatever the gateway answered to them
            assert [(r.user, r.done) for r in expired] == [(bob, True)]
            assert (expired[0].count or 0) >= 2
            assert await own_archive_with(bots[1], thread) == ["young"]
        else:  # reported, not ignored: ejabberd has no per-peer expiry by time
            assert [(r.done, r.detail) for r in expired] == [(False, EjabberdArchive.NO_EXPIRE)]
            assert len(await own_archive_with(bots[1], thread)) == 3
        assert outcome.receipt is not None
        kinds = [i["what"] for i in outcome.receipt.body["items"]]
        assert "server-archive" in kinds
    finally:
        await asyncio.gather(*(disconnect_bot(b) for b in bots))
