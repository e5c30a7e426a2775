"""Client versions on a real Prosody and a real ejabberd (I.13, III.2, IV.9).

Two members' slixmpp clients answer XEP-0092 as "Conversations 2.10.0" (outdated) and
"Conversations 2.16.0" (current). With ``clients.outdated = "refuse"`` the outdated one
is flagged, gets the notice and its message is refused with the client-outdated text;
the current one gets no notice and its message goes on to the usual policy.

The gateway's own wiring of ClientVersions lands in app.py; until then this test wires
it the way app.py will (the relay's policy behind ``ClientVersions.gate``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from slixmpp import ClientXMPP

from tests.helpers.bots import connect_bot, disconnect_bot
from tests.helpers.omemo import join_thread
from tests.integration.conftest import PASSWORD, GatewayHandle, write_config
from tests.integration.device_policy_helpers import Notices, Refusals, acreate_thread
from xmpp_clinic.app import Gateway
from xmpp_clinic.config import load_settings
from xmpp_clinic.dev.servers import DevServer
from xmpp_clinic.policy.verdict import MessageContext, MessagePolicy, Verdict
from xmpp_clinic.report.clients import REFUSAL_TEXT
from xmpp_clinic.report.sessions import ClientSessions
from xmpp_clinic.xmpp.client_versions import ClientVersions

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PLUGINS = ("xep_0030", "xep_0045", "xep_0092", "xep_0199")


class Later:
    """The relay's policy, set once the gateway (and so its thread host) exists."""

    inner: MessagePolicy | None = None

    async def evaluate(self, ctx: MessageContext) -> Verdict:
        assert self.inner is not None
        return await self.inner.evaluate(ctx)


class Wired:
    def __init__(self, gateway: Gateway, versions: ClientVersions, config: Path) -> None:
        self.gateway, self.versions, self.config = gateway, versions, config


@pytest.fixture
async def wired(xmpp_server: DevServer, tmp_path: Path) -> AsyncIterator[Wired]:
    path = write_config(
        xmpp_server,
        tmp_path,
        policy={"device_approval": "all"},
        clients={"outdated": "refuse", "minimum": {"Conversations": "2.16"}},
    )
    settings = load_settings(path)
    later = Later()
    gateway = Gateway(settings, policy=later)
    versions = ClientVersions(gateway.thread_host, ClientSessions(gateway.store), settings.clients)
    versions.attach()
    later.inner = versions.gate(gateway.pipeline)
    await gateway.start()
    await gateway.component.wait_online(timeout=15)
    try:
        yield Wired(gateway, versions, path)
    finally:
        await gateway.stop()


async def client(jid: str, server: DevServer, name: str, version: str) -> ClientXMPP:
    bot = await connect_bot(jid, PASSWORD, server, plugins=PLUGINS)
    answer = bot.plugin["xep_0092"]  # what the client says about itself (XEP-0092)
    answer.software_name, answer.version, answer.os = name, version, "Android 14"
    return bot


async def recorded(sessions: ClientSessions, bare: str, timeout: float = 20) -> bool:
    """Whether ``bare``'s session was flagged outdated, once the gateway recorded it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        found = await sessions.of(bare)
        if found:
            return found[0].outdated
        await asyncio.sleep(0.1)
    raise AssertionError(f"no client version recorded for {bare}")


@pytest.mark.requirement("I.13", "III.2", "IV.9")
async def test_outdated_client_is_flagged_notified_and_refused_current_one_is_not(
    wired: Wired, make_users: Callable[..., list[str]], xmpp_server: DevServer
) -> None:
    alice, bob = make_users("alice", "bob")
    gw = wired.gateway
    handle = GatewayHandle(gw, gw.settings, wired.config, xmpp_server)
    thread = await acreate_thread(handle, "ward7", [alice, bob])
    await gw.changes.refresh()
    old = await client(alice, xmpp_server, "Conversations", "2.10.0")
    new = await client(bob, xmpp_server, "Conversations", "2.16.0")
    try:
        old_notices, new_notices = (
            Notices(old, gw.settings.xmpp.component_jid),
            Notices(new, gw.settings.xmpp.component_jid),
        )
        old_refusals, new_refusals = Refusals(old), Refusals(new)
        await join_thread(old, thread, "Alice")
        await join_thread(new, thread, "Bob")
        sessions = ClientSessions(gw.store)
        assert await recorded(sessions, alice) is True
        assert await recorded(sessions, bob) is False
        body = await old_notices.containing("Conversations 2.10.0 < 2.16", "refused")
        assert "Conversations" in body

        for bot, mid in ((old, "from-old"), (new, "from-new")):
            message = bot.make_message(mto=thread, mtype="groupchat", mbody="x")
            message["id"] = mid
            message.send()
        refused_old = await old_refusals.of("from-old")
        assert refused_old.text == REFUSAL_TEXT
        refused_new = await new_refusals.of("from-new")  # plaintext: the usual policy says no
        assert refused_new.text != REFUSAL_TEXT and refused_new.reason == "plaintext-refused"
        assert new_notices.bodies == []
    finally:
        await disconnect_bot(old)
        await disconnect_bot(new)
