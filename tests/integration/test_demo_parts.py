"""The demo's phones send a long text as a marked OMEMO part set that members reassemble
(issue 11, II.2), on Prosody and on ejabberd.

The phones (:class:`xmpp_clinic.dev.demo_clients.Phone`) are what ``xmpp-clinic demo``
runs; they split, encrypt and mark with :mod:`xmpp_clinic.client`. The gateway is built
as ``run`` builds it, with ``parts.max_part_bytes`` = 256 and ``parts.timeout_seconds`` =
2, so a held-back part is announced within seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from slixmpp import Message
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.xmlstream.stanzabase import StanzaBase

from tests.integration.conftest import PASSWORD, GatewayHandle
from tests.integration.device_policy_helpers import acreate_thread
from xmpp_clinic import namespaces as ns
from xmpp_clinic.client import split_text
from xmpp_clinic.completeness.parts import PartMarker, read_marker
from xmpp_clinic.dev.demo_clients import Phone
from xmpp_clinic.dev.servers import DevServer
from xmpp_clinic.omemo import LEGACY_NS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

MakeUsers = Callable[..., list[str]]
StartGateway = Callable[..., Awaitable[GatewayHandle]]
MAX_PART_BYTES = 256
REPORT = "Befund Bett 7: " + "Natrium 139 mmol/l, Kalium 4.1 mmol/l; " * 16  # three parts
NOTE = "Entlassbrief Bett 7: " + "Amoxicillin 1 g dreimal täglich; " * 18  # three parts


@pytest.fixture
async def phones(
    make_users: MakeUsers, gateway_factory: StartGateway
) -> AsyncIterator[tuple[str, list[Phone]]]:
    """A thread of three; Alice and Bob joined, Carol's device published and offline."""
    gw = await gateway_factory(
        policy={"device_approval": "all"},
        parts={"max_part_bytes": MAX_PART_BYTES, "timeout_seconds": 2},
    )
    users = make_users("alice", "bob", "carol")
    thread = await acreate_thread(gw, "ward7", users)
    limit = gw.settings.parts.max_part_bytes
    found = [
        Phone(name, name, jid, PASSWORD, max_part_bytes=limit)
        for name, jid in zip(("Alice", "Bob", "Carol"), users, strict=True)
    ]
    try:
        await asyncio.gather(*(phone.log_in(gw.server) for phone in found))
        await found[2].log_out()  # she reads later, by MAM
        for phone in found[:2]:
            await phone.join(thread)
        yield thread, found
    finally:
        await asyncio.gather(*(phone.log_out() for phone in found))


def wire_markers(phone: Phone) -> list[tuple[PartMarker | None, str]]:
    """Every OMEMO groupchat message ``phone`` receives: its part marker and raw XML."""
    seen: list[tuple[PartMarker | None, str]] = []

    def record(message: StanzaBase) -> None:
        if isinstance(message, Message) and message["type"] == "groupchat":
            seen.append((read_marker(message.xml, 50), str(message)))

    matcher = MatchXPath(f"{{{ns.CLIENT}}}message/{{{LEGACY_NS}}}encrypted")
    phone.xmpp.register_handler(Callback("wire-markers", matcher, record))
    return seen


async def notice(phone: Phone, starts: str) -> str:
    while not (text := await phone.next_notice(15)).startswith(starts):
        pass
    return text


@pytest.mark.requirement("II.2")
async def test_a_demo_phone_sends_a_long_text_as_a_marked_part_set_that_members_reassemble(
    phones: tuple[str, list[Phone]],
) -> None:
    thread, (alice, bob, _carol) = phones
    assert len(split_text(REPORT, MAX_PART_BYTES)) == 3
    wire = wire_markers(bob)

    assert await alice.send_encrypted(thread, REPORT) == 3
    got = await bob.next_message()
    assert (got.sender, got.body, got.of) == (alice.jid, REPORT, 3)
    assert sorted(got.arrived) == [1, 2, 3]
    own = await alice.next_message()  # her parts come back and are put together too
    assert own.own and own.body == REPORT

    markers = [marker for marker, _xml in wire]
    assert len(markers) == 3 and all(m is not None for m in markers)
    assert len({m.set_id for m in markers if m is not None}) == 1
    assert sorted((m.n, m.of) for m in markers if m is not None) == [(1, 3), (2, 3), (3, 3)]
    for _marker, xml in wire:  # content travels only inside OMEMO
        assert "Natrium" not in xml and "mmol" not in xml

    assert await alice.send_encrypted(thread, "Short: bed 7 goes home.") == 1
    short = await bob.next_message()
    assert (short.body, short.of, short.arrived) == ("Short: bed 7 goes home.", 1, ())
    assert wire[-1][0] is None  # one message, no marker
    assert bob.missing() == [] and alice.failures == [] and bob.failures == []


@pytest.mark.requirement("II.2")
async def test_a_demo_phone_reports_a_held_back_part_missing_until_it_arrives(
    phones: tuple[str, list[Phone]], xmpp_server: DevServer
) -> None:
    thread, (alice, bob, carol) = phones
    wire = wire_markers(bob)
    parts = await alice.encrypt(thread, NOTE)
    assert len(parts) == 3
    parts[0].send()
    parts[2].send()  # part 2 is "lost" on the way
    text = await notice(bob, "Part 2 of 3 of Alice's message of ")
    assert text.endswith(" has not arrived.")
    assert bob.missing() == ["part 2 of 3 missing"]
    with contextlib.suppress(asyncio.QueueEmpty):
        early = bob.inbox.get_nowait()
        raise AssertionError(f"an incomplete set was shown as a message: {early.of} parts")

    parts[1].send()
    got = await bob.next_message()
    assert (got.body, got.of) == (NOTE, 3)  # put back in part order
    assert got.arrived == tuple(m.n for m, _xml in wire if m is not None)  # as they came
    assert got.arrived[2] == 2
    assert bob.missing() == []
    assert "have now arrived; it is complete." in await notice(bob, "All 3 parts of ")

    await carol.log_in(xmpp_server)
    history = await carol.history(thread)  # the archive holds the parts in arrival order
    assert [(m.sender, m.body, m.of) for m in history] == [(alice.jid, NOTE, 3)]
    assert history[0].arrived[-1] == 2  # the late part is archived last
    assert carol.history_missing == [] and carol.failures == []
