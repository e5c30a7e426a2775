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
from typing import Any

import pytest
from slixmpp import JID, ClientXMPP, Iq, Message, Presence
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.xmlstream.stanzabase import StanzaBase
from sqlalchemy import Select, select

from tests.helpers.bots import connect_bot, disconnect_bot
from tests.helpers.omemo import (
    OmemoInbox,
    connect_omemo_bot,
    fetch_thread_history,
    join_thread,
    send_omemo_groupchat,
)
from tests.integration.conftest import PASSWORD, GatewayHandle
from tests.integration.device_policy_helpers import acreate_thread
from tests.unit.test_retention_erasure import scan
from xmpp_clinic import namespaces
from xmpp_clinic.client import ThreadPoster
from xmpp_clinic.clock import utcnow
from xmpp_clinic.dev.servers import DevServer
from xmpp_clinic.dev.servers.prosody import ProsodyServer
from xmpp_clinic.records.documentation import Documentation
from xmpp_clinic.retention.scheduler import PurgeScheduler
from xmpp_clinic.retention.server_mam import EjabberdArchive
from xmpp_clinic.store.models.completeness import DeliveryRow, PartSetRow
from xmpp_clinic.store.models.directory import DirectoryJid, DirectoryMembership, DirectoryPerson
from xmpp_clinic.store.models.occupants import BoundNick

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
    thread = await acreate_thread(gw, "ward2m", [alice, bob])
    await gw.acli("threads", "set-retention", "ward2m", "--messages", "2m")
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
    assert (await gw.acli("audit", "verify")).returncode == 0
    receipts = json.loads((await gw.acli("purge", "receipts", "--json")).stdout)
    item = receipts[-1]["receipt"]["items"][0]
    assert (item["thread"], item["first_seq"], item["last_seq"]) == ("ward2m", 1, 2)
    saved = tmp_path / "receipt.json"
    saved.write_text(json.dumps(receipts[-1]))
    assert (await gw.acli("purge", "verify-receipt", str(saved))).returncode == 0
    receipts[-1]["receipt"]["items"][0]["count"] = 1
    saved.write_text(json.dumps(receipts[-1]))
    assert (await gw.acli("purge", "verify-receipt", str(saved), check=False)).returncode == 1


@pytest.mark.requirement("I.7")
async def test_deleted_thread_kicks_its_members(
    make_users: Callable[..., list[str]], gateway_factory: GatewayFactory
) -> None:
    gw = await gateway_factory(policy=ALL_DEVICES)
    bob, carol = make_users("bob", "carol")
    thread = await acreate_thread(gw, "gone", [bob, carol])
    bot = await connect_omemo_bot(bob, PASSWORD, gw.server)
    try:
        kicked: asyncio.Queue[Presence] = asyncio.Queue()
        bot.add_event_handler(
            f"muc::{JID(thread)}::presence",
            lambda p: kicked.put_nowait(p) if p["type"] == "unavailable" else None,
        )
        await join_thread(bot, thread, "Bob")
        await gw.acli("threads", "delete", "gone", "--yes")
        presence = await asyncio.wait_for(kicked.get(), 20)
        assert "321" in {str(s) for s in presence["muc"]["status_codes"]}
    finally:
        await disconnect_bot(bot)
    assert "gone" not in (await gw.acli("threads", "list")).stdout
    assert (await gw.acli("audit", "verify")).returncode == 0


async def own_archive_with(
    bot: ClientXMPP, peer: str | None, *, bodies_only: bool = True
) -> list[str]:
    """The bodies in the user's own server MAM exchanged with ``peer`` (as the user sees;
    None: with anyone); ``bodies_only=False`` keeps the gateway's body-less answers (as "")."""
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
        if peer is not None:
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
    thread = await acreate_thread(gw, "srvmam", [alice, bob])
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
        await gw.acli("threads", "remove-member", "srvmam", alice)
        await gw.acli("threads", "set-retention", "srvmam", "--messages", "2m")
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


async def rows(gw: GatewayHandle, query: Select[Any]) -> list[Any]:
    async with gw.gateway.store.session() as session:
        return list((await session.execute(query)).all())


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.2)


@pytest.mark.requirement("I.7", "II.3", "I.6")
async def test_purge_takes_delivery_records_part_sets_and_documentation_of_its_range(
    make_users: Callable[..., list[str]], gateway_factory: GatewayFactory
) -> None:
    """A documented thread with a 2-minute period: after the purge of the older range,
    Bob's delivery records and the part set of that range are gone, only the young copy
    is left in the documentation, which still verifies (I.6), and ``audit verify`` passes."""
    gw = await gateway_factory(policy=ALL_DEVICES, retention={"purge_interval_minutes": 60})
    alice, bob = make_users("alice", "bob")
    await gw.acli("threads", "create", "ward2p", "--title", "Ward", "--member", alice,
              "--member", bob, "--documented")  # fmt: skip
    thread = f"ward2p@{gw.jid}"
    await gw.acli("threads", "set-retention", "ward2p", "--messages", "2m")
    records = gw.gateway.records
    assert records.member is not None
    documentation = records.member.documentation
    bots = await asyncio.gather(*(connect_omemo_bot(u, PASSWORD, gw.server) for u in (alice, bob)))
    try:
        inbox = OmemoInbox(bots[1])
        await join_thread(bots[0], thread, "Alice")
        await join_thread(bots[1], thread, "Bob")
        await send_omemo_groupchat(bots[0], thread, "old one")
        await inbox.take(1, timeout=60)
        parts = await ThreadPoster(bots[0], thread, max_part_bytes=256).post("Hb 13.2; " * 50)
        assert len(parts) > 1
        await inbox.take(len(parts), timeout=60)
        sets = await rows(gw, select(PartSetRow.set_id).where(PartSetRow.thread == "ward2p"))
        assert len(sets) == 1
        between = utcnow()
        await asyncio.sleep(0.05)
        young = await send_omemo_groupchat(bots[0], thread, "young")
        await inbox.take(1, timeout=60)
        total = 2 + len(parts)
        await eventually(lambda: _copies(documentation, total))

        def bobs() -> Select[Any]:
            return select(DeliveryRow.seq).where(
                DeliveryRow.thread == "ward2p", DeliveryRow.member == bob
            )

        await eventually(lambda: _count(gw, bobs(), total))  # written after the relay
        before = sorted(r.seq for r in await rows(gw, bobs()))
        outcome = await gw.gateway.purge.purger.run(
            actor="gateway", rule="schedule", now=between + timedelta(minutes=2)
        )
        assert outcome.messages >= total - 1  # and the room's "documented" notice
        assert [r.seq for r in await rows(gw, bobs())] == before[-1:]
        assert await rows(gw, select(PartSetRow.id).where(PartSetRow.thread == "ward2p")) == []
        assert [c.body for c in await documentation.read("ward2p")] == ["young"]
        assert outcome.linked.documentation == total - 1
        history = await fetch_thread_history(bots[0], thread)
        assert [m["id"] for m in history] == [young]
    finally:
        await asyncio.gather(*(disconnect_bot(b) for b in bots))
    assert (await gw.acli("audit", "verify")).returncode == 0
    shown = (await gw.acli("records", "show", "ward2p")).stdout.splitlines()
    assert [line.split("\t")[-1] for line in shown] == ["young"]
    assert outcome.receipt is not None
    kinds = {i["what"] for i in outcome.receipt.body["items"]}
    assert {"messages", "delivery-records", "part-sets", "documentation"} <= kinds


async def _count(gw: GatewayHandle, query: Select[Any], count: int) -> bool:
    return len(await rows(gw, query)) == count


async def _copies(documentation: Documentation, count: int) -> bool:
    return len(await documentation.read("ward2p")) >= count


@pytest.mark.requirement("I.7", "II.3")
async def test_erased_person_leaves_no_directory_row_and_no_server_archive(
    make_users: Callable[..., list[str]],
    gateway_factory: GatewayFactory,
    xmpp_server: DevServer,
) -> None:
    """``erase --person``: the directory entry, delivery records and the person's own
    server MAM (queried as the person afterwards) are gone; every table is scanned."""
    gw = await gateway_factory(policy=ALL_DEVICES, retention=server_settings(xmpp_server))
    alice, bob = make_users("alice", "bob")
    thread = await acreate_thread(gw, "erasew", [alice, bob])
    async with gw.gateway.store.session() as session:  # as a directory import leaves it
        person = DirectoryPerson(key="S-4711", name="Dr Alice Erasable", staff_id="S-4711",
                                 role="physician")  # fmt: skip
        person.jids = [DirectoryJid(jid=alice)]
        person.groups = [DirectoryMembership(group="ward-e")]
        session.add(person)
    bots = await asyncio.gather(*(connect_omemo_bot(u, PASSWORD, gw.server) for u in (alice, bob)))
    alices = select(DeliveryRow.id).where(DeliveryRow.member == alice)
    try:
        # Alice joins: her nick binding is journalled now, and must not be written back by
        # the running gateway after the erasure deleted it.
        await join_thread(bots[0], thread, "Alice")
        await join_thread(bots[1], thread, "Bob")
        nicks = select(BoundNick.id).where(BoundNick.jid == alice)
        await eventually(lambda: _count(gw, nicks, 1))
        await send_omemo_groupchat(bots[1], thread, "for alice")
        await eventually(lambda: _count(gw, alices, 1))
        await asyncio.sleep(2)  # see test_server_mam_of_removed_member_and_expired_range
        bots[0].send_message(mto=JID(bob), mbody="private note", mtype="chat")
        bots[0].send_message(mto=JID(thread), mbody="to the thread", mtype="chat")
        await asyncio.sleep(1.5)
        assert "private note" in await own_archive_with(bots[0], None)
    finally:
        await asyncio.gather(*(disconnect_bot(b) for b in bots))
    done = await gw.acli("erase", "--person", alice, "--yes", "--json")
    receipt = json.loads(done.stdout)["receipt"]
    server = [i for i in receipt["items"] if i["what"] == "server-archive"]
    assert [(i["action"], i["done"]) for i in server] == [("remove-user", True)], server
    reader = await connect_bot(alice, PASSWORD, gw.server, plugins=("xep_0030", "xep_0313"))
    try:
        assert await own_archive_with(reader, None, bodies_only=False) == []
    finally:
        await disconnect_bot(reader)
    assert await rows(gw, select(DirectoryPerson.id)) == []
    assert await rows(gw, alices) == []
    await asyncio.sleep(2)  # the gateway applies the removal
    rejoin = await connect_omemo_bot(bob, PASSWORD, gw.server)
    try:  # an occupant change after the erasure: the room is journalled again
        await join_thread(rejoin, thread, "Bob")
        await asyncio.sleep(2)
    finally:
        await disconnect_bot(rejoin)
    hits = await scan(gw.gateway.store, alice)
    assert sorted(set(hits)) == [("audit_events", "subject"), ("deletion_receipts", "body")]
    assert (await gw.acli("audit", "verify")).returncode == 0
