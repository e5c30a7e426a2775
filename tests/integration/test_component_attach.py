"""The gateway attaches to a real Prosody and a real ejabberd (II.4, I.1, IV.5)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from slixmpp import JID

from tests.helpers.bots import connect_bot, disconnect_bot
from tests.integration.conftest import PASSWORD, GatewayHandle
from xmpp_clinic.xmpp.component import PRIVACY_FORM_TYPE

pytestmark = pytest.mark.integration

GatewayFactory = Callable[..., Awaitable[GatewayHandle]]
# Backoff from 0.1 s doubling to the test config's 0.5 s cap: the fifth attempt waits at the cap.
BACKOFF_ATTEMPTS = 6


def _single(value: object) -> object:
    """x-data values arrive as lists for some field types; compare plain strings."""
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


async def _disco(handle: GatewayHandle, user: str) -> dict[str, object]:
    bot = await connect_bot(user, PASSWORD, handle.server)
    try:
        info = await bot.plugin["xep_0030"].get_info(jid=JID(handle.jid), timeout=10)
    finally:
        await disconnect_bot(bot)
    query = info["disco_info"]
    forms = {}
    for form in query["forms"]:
        values = {var: _single(value) for var, value in form.get_values().items()}
        forms[values["FORM_TYPE"]] = values
    return {
        "identities": {(cat, typ) for cat, typ, _lang, _name in query["identities"]},
        "features": set(query["features"]),
        "forms": forms,
    }


@pytest.mark.requirement("II.4")
async def test_client_discovers_gateway_and_privacy_notice(
    gateway_factory: GatewayFactory, make_users: Callable[..., list[str]]
) -> None:
    handle = await gateway_factory(
        privacy={
            "notice_url": "https://hospital.test/privacy/messenger",
            "controller_contact": "mailto:privacy@hospital.test",
        }
    )
    (alice,) = make_users("alice")
    found = await _disco(handle, alice)
    assert ("conference", "text") in found["identities"]  # type: ignore[operator]
    assert "http://jabber.org/protocol/muc" in found["features"]  # type: ignore[operator]
    assert found["forms"][PRIVACY_FORM_TYPE] == {  # type: ignore[index]
        "FORM_TYPE": PRIVACY_FORM_TYPE,
        "privacy-notice-url": "https://hospital.test/privacy/messenger",
        "controller-contact": "mailto:privacy@hospital.test",
        "documentation-service": f"records@{handle.jid}",
    }


@pytest.mark.requirement("II.4")
async def test_gateway_is_back_within_3s_after_server_restart(
    gateway_factory: GatewayFactory, make_users: Callable[..., list[str]]
) -> None:
    handle = await gateway_factory()
    (alice,) = make_users("alice")
    server = handle.server
    component = handle.gateway.component
    gone = asyncio.Event()
    attempts = Attempts()
    component.add_event_handler("disconnected", lambda _reason: gone.set())
    component.add_event_handler("connecting", attempts.count)

    await asyncio.to_thread(server.stop)
    await asyncio.wait_for(gone.wait(), 10)
    assert not component.online
    # Let the gateway fail a few attempts so its backoff has grown to the cap
    # (xmpp.reconnect_max_delay): each attempt starts with one "connecting" event.
    await attempts.reach(BACKOFF_ATTEMPTS, timeout=20)
    await asyncio.to_thread(server.start)  # returns once the ports accept connections
    port_open = time.monotonic()
    await component.wait_online(timeout=10)
    online_after = time.monotonic() - port_open
    found = await _disco(handle, alice)
    answered_after = time.monotonic() - port_open

    print(f"{server.kind}: reattached {online_after:.2f}s, disco {answered_after:.2f}s")
    assert online_after < 3.0, f"gateway reattached after {online_after:.2f}s"
    assert ("conference", "text") in found["identities"]  # type: ignore[operator]
    # Client login and the disco round trip are included here, so allow them on top.
    assert answered_after < 6.0, f"disco answered {answered_after:.2f}s after restart"


class Attempts:
    """Counts the gateway's connection attempts; wakes whoever waits for a number."""

    def __init__(self) -> None:
        self.seen = 0
        self._changed = asyncio.Event()

    def count(self, _event: object = None) -> None:
        self.seen += 1
        self._changed.set()

    async def reach(self, wanted: int, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while self.seen < wanted:
                self._changed.clear()
                await self._changed.wait()
