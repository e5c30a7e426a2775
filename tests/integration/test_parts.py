"""Part sets with real OMEMO clients on Prosody and ejabberd (issue 11, II.2).

The gateway is built as ``xmpp-clinic run`` builds it: the part check sits after the
policy pipeline (app.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from slixmpp import ClientXMPP, Message
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.xmlstream.stanzabase import StanzaBase

from tests.helpers.bots import disconnect_bot
from tests.helpers.omemo import (
    MemoryStorage,
    connect_omemo_bot,
    decrypt_history,
    fetch_thread_history,
    join_thread,
)
from tests.integration.conftest import PASSWORD, GatewayHandle, write_config
from tests.integration.device_policy_helpers import acreate_thread
from xmpp_clinic import namespaces as ns
from xmpp_clinic.app import Gateway
from xmpp_clinic.client import PartInbox, Reassembly, ThreadPoster, part_marker
from xmpp_clinic.completeness.parts import PartMarker, read_marker
from xmpp_clinic.config import load_settings
from xmpp_clinic.dev.servers import DevServer
from xmpp_clinic.omemo import LEGACY_NS
from xmpp_clinic.xmpp.parts import PartTracker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

MakeUsers = Callable[..., list[str]]
POLICY = "urn:xmpp-clinic:policy:0"


@pytest.fixture
async def parts_gateway(
    xmpp_server: DevServer, tmp_path: Path
) -> AsyncIterator[tuple[GatewayHandle, PartTracker]]:
    """The gateway as ``run`` builds it, every device approved, parts.timeout_seconds = 2."""
    path = write_config(
        xmpp_server, tmp_path, policy={"device_approval": "all"}, parts={"timeout_seconds": 2}
    )
    settings = load_settings(path)
    gateway = Gateway(settings)
    await gateway.start()
    try:
        await gateway.component.wait_online(timeout=15)
        yield GatewayHandle(gateway, settings, path, xmpp_server), gateway.parts
    finally:
        await gateway.stop()


def room_notices(bot: ClientXMPP, thread: str) -> asyncio.Queue[str]:
    """Bodies of the groupchat messages the thread sends as itself (no nick)."""
    found: asyncio.Queue[str] = asyncio.Queue()

    def on_message(message: StanzaBase) -> None:
        if not isinstance(message, Message) or str(message["from"]) != thread:
            return
        if message["type"] == "groupchat" and message["body"]:
            found.put_nowait(str(message["body"]))

    bot.register_handler(Callback("notices", MatchXPath(f"{{{ns.CLIENT}}}message"), on_message))
    return found


def refusals(bot: ClientXMPP) -> asyncio.Queue[str]:
    """The reason code of every message error ``bot`` gets."""
    found: asyncio.Queue[str] = asyncio.Queue()

    def on_error(message: StanzaBase) -> None:
        if message["type"] == "error":
            for child in message.xml.find(f"{{{ns.CLIENT}}}error") or []:
                if child.tag.startswith(f"{{{POLICY}}}"):
                    found.put_nowait(child.tag.split("}", 1)[1])

    bot.register_handler(Callback("refusals", MatchXPath(f"{{{ns.CLIENT}}}message"), on_error))
    return found


@pytest.mark.requirement("II.2")
async def test_a_missing_part_is_announced_to_everyone_and_its_late_arrival_completes_the_set(
    make_users: MakeUsers, parts_gateway: tuple[GatewayHandle, PartTracker]
) -> None:
    gw, _tracker = parts_gateway
    alice, bob, carol = make_users("alice", "bob", "carol")
    thread = await acreate_thread(gw, "ward4b", [alice, bob, carol])
    storage = MemoryStorage()  # Carol's device: published now, she reads later by MAM
    await disconnect_bot(await connect_omemo_bot(carol, PASSWORD, gw.server, storage=storage))
    text = "Befund: " + "Hb 13.2 g/dl; " * 40  # three parts of at most 256 bytes
    bots = await asyncio.gather(*(connect_omemo_bot(u, PASSWORD, gw.server) for u in (alice, bob)))
    try:
        inbox = PartInbox(bots[1])
        notices = room_notices(bots[1], thread)
        await join_thread(bots[0], thread, "Dr Alice")
        await join_thread(bots[1], thread, "Bob")
        parts = await ThreadPoster(bots[0], thread, max_part_bytes=256).encrypt_parts(text)
        assert len(parts) == 3
        parts[0].send()
        parts[2].send()  # part 2 is "lost" on the way
        notice = await asyncio.wait_for(notices.get(), 10)
        assert notice.startswith("Part 2 of 3 of Dr Alice's message of ")
        assert notice.endswith(" has not arrived.")
        assert inbox.missing() == ["part 2 of 3 missing"]
        parts[1].send()
        assert (await inbox.take(30)).text == text
        assert "have now arrived; it is complete." in await asyncio.wait_for(notices.get(), 10)
    finally:
        await asyncio.gather(*(disconnect_bot(b) for b in bots))
    reader = await connect_omemo_bot(carol, PASSWORD, gw.server, storage=storage)
    try:
        archived = await fetch_thread_history(reader, thread)
        encrypted = f"{{{LEGACY_NS}}}encrypted"
        bodies = [str(m["body"]) for m in archived if m.xml.find(encrypted) is None]
        parts = [m for m in archived if read_marker(m.xml, 50) is not None]
        markers = [read_marker(m.xml, 50) for m in parts]
        assert [m.n for m in markers if m is not None] == [1, 3, 2]  # arrival order, marked
        assert any("Part 2 of 3 of Dr Alice" in b for b in bodies)
        assert any("it is complete" in b for b in bodies)
        seqs = [
            int(m.xml.find(f"{{{ns.CLINIC_SEQ}}}seq").get("n", "0"))  # type: ignore[union-attr]
            for m in archived
        ]
        assert seqs == sorted(seqs)
        reader_view = Reassembly()  # the MAM view puts the set back in order
        history = await decrypt_history(reader, parts)
        wholes = [
            reader_view.add(alice, marker, d.body)
            for marker, d in zip(markers, history, strict=True)
        ]
        assert wholes[-1] is not None and wholes[-1].text == text
    finally:
        await disconnect_bot(reader)


@pytest.mark.requirement("II.2")
async def test_bad_parts_are_refused_with_their_codes_and_a_20_kb_text_arrives_whole(
    make_users: MakeUsers, parts_gateway: tuple[GatewayHandle, PartTracker]
) -> None:
    gw, _tracker = parts_gateway
    lab, bob = make_users("lab", "bob")
    thread = await acreate_thread(gw, "labs", [lab, bob])
    bots = await asyncio.gather(*(connect_omemo_bot(u, PASSWORD, gw.server) for u in (lab, bob)))
    try:
        inbox = PartInbox(bots[1])
        errors = refusals(bots[0])
        await join_thread(bots[0], thread, "Lab")
        await join_thread(bots[1], thread, "Bob")
        poster = ThreadPoster(bots[0], thread)
        report = "".join(f"{n:04d} Natrium 139 mmol/l, Kalium 4.1 mmol/l\n" for n in range(500))
        assert len(report.encode()) >= 20_000
        await poster.post(report)
        assert (await inbox.take(60)).text == report
        before = len(await fetch_thread_history(bots[1], thread))

        async def sent_with(marker: PartMarker) -> None:
            [message] = await poster.encrypt_parts("x")
            message.append(part_marker(marker))
            message.send()

        await sent_with(PartMarker("bad1", 1, 2))
        await sent_with(PartMarker("bad1", 1, 2))  # again
        await sent_with(PartMarker("bad1", 2, 3))  # the set grew
        await sent_with(PartMarker("bad2", 3, 2))
        got = [await asyncio.wait_for(errors.get(), 20) for _ in range(3)]
        assert got == ["part-duplicate", "part-set-changed", "part-out-of-range"]
        await asyncio.sleep(0.5)
        assert len(await fetch_thread_history(bots[1], thread)) == before + 1  # only the first
        with contextlib.suppress(asyncio.QueueEmpty):
            extra = inbox.messages.get_nowait()
            raise AssertionError(f"a refused part was delivered: {extra.set_id}")
    finally:
        await asyncio.gather(*(disconnect_bot(b) for b in bots))
