"""Addresses slixmpp cannot parse, through a real Prosody and a real ejabberd (issue 8.1).

Prosody accepts an emoji in a resource and routes it to the component: the gateway
answers (``not-acceptable`` for a nick, ``jid-malformed`` for a sender) and its link
stays up. ejabberd refuses such addresses itself (``bad-request``, "Malformed attribute"):
the sender gets the server's error and
the gateway never sees them. Either way the gateway stays connected and keeps working.

The raw client is the fuzz suite's (tests/fuzz/rawclient.py): slixmpp clients cannot
send or receive these addresses.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable

import pytest

from tests.fuzz.rawclient import RawClient, attr, error_condition, local
from tests.integration.conftest import PASSWORD, GatewayHandle
from xmpp_clinic import namespaces as ns

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SYRINGE = "\N{SYRINGE}"
ANSWER = 10.0
# ejabberd answers an address it cannot prepare itself, before routing it:
# "Malformed attribute 'to' in tag <presence/> ..." (bad-request).
EJABBERD_REFUSAL = "bad-request"


def is_self(stanza: ET.Element) -> bool:
    return stanza.find(f"{{{ns.MUC_USER}}}x/{{{ns.MUC_USER}}}status[@code='110']") is not None


async def started(
    gateway_factory: Callable[..., Awaitable[GatewayHandle]], make_users: Callable[..., list[str]]
) -> tuple[GatewayHandle, list[str], list[int]]:
    alice, bob = make_users("alice", "bob")
    handle = await gateway_factory()
    drops: list[int] = []
    handle.gateway.component.add_event_handler("disconnected", lambda _e: drops.append(1))
    await handle.gateway.threads.create("ward", "Ward", [alice, bob])
    await handle.gateway.thread_host.refresh()
    return handle, [alice, bob], drops


async def login(bare: str, handle: GatewayHandle, resource: str = "raw") -> RawClient:
    return await RawClient(bare.split("@")[0], PASSWORD, handle.server, resource=resource).login()


async def joins(client: RawClient, thread: str, nick: str) -> bool:
    client.send_raw(f"<presence to={attr(f'{thread}/{nick}')}><x xmlns='{ns.MUC}'/></presence>")
    room = f"{thread}/{nick}"
    answer = await client.wait_for(
        lambda s: (
            local(s.tag) == "presence"
            and s.get("from") == room
            and (s.get("type") == "error" or is_self(s))
        ),
        ANSWER,
    )
    return answer.get("type") != "error"


@pytest.mark.requirement("I.12")
async def test_an_emoji_nick_is_answered_and_the_gateway_stays_connected(
    gateway_factory: Callable[..., Awaitable[GatewayHandle]],
    make_users: Callable[..., list[str]],
) -> None:
    handle, (alice, _bob), drops = await started(gateway_factory, make_users)
    thread = f"ward@{handle.jid}"
    client = await login(alice, handle)
    try:
        for _ in range(20):  # the attack rate of the finding, in one burst
            client.send_raw(
                f"<presence to={attr(f'{thread}/{SYRINGE}')}><x xmlns='{ns.MUC}'/></presence>"
            )
        answer = await client.wait_for(lambda s: s.get("type") == "error", ANSWER)
        if handle.server.kind == "prosody":
            assert answer.get("from") == f"{thread}/{SYRINGE}"
            assert error_condition(answer) == "not-acceptable"
        else:
            assert error_condition(answer) == EJABBERD_REFUSAL
        assert await joins(client, thread, "Alice")  # still served
        assert drops == [] and handle.gateway.component.is_connected()
    finally:
        await client.close()


@pytest.mark.requirement("I.12")
async def test_emoji_in_a_thread_address_gets_jid_malformed_and_the_gateway_stays_connected(
    gateway_factory: Callable[..., Awaitable[GatewayHandle]],
    make_users: Callable[..., list[str]],
) -> None:
    handle, (alice, _bob), drops = await started(gateway_factory, make_users)
    thread = f"ward@{handle.jid}"
    client = await login(alice, handle)
    try:
        for to, stanza in (
            (f"w{SYRINGE}@{handle.jid}/Alice", "<presence to={to}><x xmlns='{muc}'/></presence>"),
            (
                f"{thread}/{SYRINGE}",
                "<iq type='get' id='p1' to={to}><ping xmlns='urn:xmpp:ping'/></iq>",
            ),
            (
                f"{thread}/{SYRINGE}",
                "<message type='chat' id='m1' to={to}><body>x</body></message>",
            ),
        ):
            client.send_raw(stanza.format(to=attr(to), muc=ns.MUC))
            answer = await client.wait_for(lambda s: s.get("type") == "error", ANSWER)
            expected = "jid-malformed" if handle.server.kind == "prosody" else EJABBERD_REFUSAL
            assert error_condition(answer) == expected, ET.tostring(answer)
        assert await joins(client, thread, "Alice")
        assert drops == [] and handle.gateway.component.is_connected()
    finally:
        await client.close()
