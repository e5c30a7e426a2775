"""The dev servers start on loopback, accept accounts, relay chat and survive a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from slixmpp import JID, ClientXMPP, ComponentXMPP, Message
from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0004 import Form
from slixmpp.xmlstream import ET

from tests.helpers.bots import BotLoginError, connect_bot, disconnect_bot
from xmpp_clinic.dev.servers import DevServer, ProsodyServer, ServerKind, make_server
from xmpp_clinic.dev.servers.upload import find_upload_service, request_slot
from xmpp_clinic.omemo import OMEMO2, OMEMO2_NS
from xmpp_clinic.settings.retention import RetentionSettings

pytestmark = pytest.mark.integration

TIMEOUT = 10.0
PUBSUB_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"
OMEMO2_BUNDLES, _ITEM = OMEMO2.bundle_node(0)


@pytest.fixture(scope="module", params=["prosody", "ejabberd"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevServer]:
    """A started dev server of each kind (a missing binary fails with "run: make deps")."""
    kind: ServerKind = request.param
    dev = make_server(kind, tmp_path_factory.mktemp(kind))
    dev.start()
    try:
        yield dev
    finally:
        dev.stop()
        print(f"\n{kind}: start {dev.last_start_seconds:.2f} s, stop {dev.last_stop_seconds:.2f} s")


async def test_message_and_restart(server: DevServer) -> None:
    """Two users chat; after a restart on the same ports the accounts still log in."""
    alice, bob = server.register_many({"alice": "alice-pw", "bob": "bob-pw"})
    assert (alice, bob) == (f"alice@{server.domain}", f"bob@{server.domain}")
    await _assert_message_arrives(server, (alice, "alice-pw"), (bob, "bob-pw"))

    ports = (server.c2s_port, server.component_port)
    await asyncio.to_thread(server.restart)
    assert server.running
    assert (server.c2s_port, server.component_port) == ports
    bot = await connect_bot(alice, "alice-pw", server)
    await disconnect_bot(bot)
    with pytest.raises(BotLoginError):
        await connect_bot(alice, "wrong-password", server, timeout=TIMEOUT)


async def test_component_and_pep(server: DevServer) -> None:
    """The gateway's component logs in with its secret; PEP keeps one item per device."""
    await _assert_component_connects(server)
    owner, reader = server.register_many({"pep-owner": "pw", "pep-reader": "pw"})
    plugins = ("xep_0030", "xep_0060", "xep_0163")
    devices = [await connect_bot(f"{owner}/d{n}", "pw", server, plugins=plugins) for n in (1, 2)]
    bot = await connect_bot(reader, "pw", server, plugins=plugins)
    try:
        for device_id, device in zip(("101", "202"), devices, strict=True):
            await _publish_bundle(device, device_id)
        for device_id in ("101", "202"):
            pubsub: Any = bot.plugin["xep_0060"]  # slixmpp's plugins are untyped
            iq = await pubsub.get_items(
                JID(owner), OMEMO2_BUNDLES, item_ids=[device_id], timeout=TIMEOUT
            )
            assert [item["id"] for item in iq["pubsub"]["items"]] == [device_id]
    finally:
        for client in (*devices, bot):
            await disconnect_bot(client)


@pytest.mark.requirement("I.7")
async def test_upload_service(server: DevServer) -> None:
    """XEP-0363: the upload service is found in the domain's disco#items, hands out a
    slot on the loopback HTTP port, stores the PUT and serves it back; its files expire
    as the init snippets say (the default retention) (I.7)."""
    (user,) = server.register_many({"uploader": "pw"})
    bot = await connect_bot(user, "pw", server)
    data = bytes(range(256)) * 64
    try:
        assert await find_upload_service(bot, server.domain) == server.upload_jid
        slot = await request_slot(bot, server.upload_jid, "scan.png", len(data), "image/png")
    finally:
        await disconnect_bot(bot)
    assert slot.put_url.startswith(server.upload_url_base)
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        put = await http.put(slot.put_url, content=data, headers=slot.headers)
        assert put.status_code in (200, 201), put.text
        got = await http.get(slot.get_url)
        assert (got.status_code, got.content) == (200, data)
        unknown = await http.get(server.upload_url_base + "no-such-slot/scan.png")
        assert unknown.status_code in (403, 404)
    assert server.expiry.days == RetentionSettings().messages_days
    config = (
        server.config_path.read_text()
        if isinstance(server, ProsodyServer)
        else server.render_config()
    )
    expected = (
        f"http_file_share_expires_after = {server.expiry.upload_seconds}"
        if server.kind == "prosody"
        else f"max_days: {server.expiry.days}"
    )
    assert expected in config


async def _assert_message_arrives(
    server: DevServer, sender: tuple[str, str], recipient: tuple[str, str]
) -> None:
    """Log both users in and check that a chat message from one reaches the other."""
    bot_a = await connect_bot(*sender, server)
    bot_b = await connect_bot(*recipient, server)
    received: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

    def on_message(msg: Message) -> None:
        if msg["type"] == "chat" and not received.done():
            received.set_result(msg)

    bot_b.add_event_handler("message", on_message)
    try:
        bot_a.send_message(mto=JID(recipient[0]), mbody="hello from the dev server", mtype="chat")
        msg = await asyncio.wait_for(received, TIMEOUT)
        assert msg["body"] == "hello from the dev server"
        assert msg["from"].bare == sender[0]
    finally:
        await disconnect_bot(bot_a)
        await disconnect_bot(bot_b)


async def _assert_component_connects(server: DevServer) -> None:
    """A XEP-0114 component authenticates on the component port with the secret."""
    make_component: Any = ComponentXMPP  # untyped constructor
    component: ComponentXMPP = make_component(
        server.component_jid, server.component_secret, server.host, server.component_port
    )
    started: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_start(_event: object) -> None:
        if not started.done():
            started.set_result(None)

    component.add_event_handler("session_start", on_start)
    component.connect()
    try:
        await asyncio.wait_for(started, TIMEOUT)
    finally:
        await disconnect_bot(component)


async def _publish_bundle(device: ClientXMPP, device_id: str) -> None:
    """Publish an OMEMO 2 bundle item as slixmpp-omemo does.

    It asks for ``pubsub#max_items=max`` and, where the server refuses that publish option
    (ejabberd 23.01), publishes again without it.
    """
    try:
        await _publish_item(device, device_id, max_items=True)
    except IqError:
        await _publish_item(device, device_id, max_items=False)


async def _publish_item(device: ClientXMPP, device_id: str, *, max_items: bool) -> None:
    """Publish an empty bundle as item ``device_id`` with open access."""
    options = {"pubsub#access_model": "open", "pubsub#persist_items": "true"}
    if max_items:
        options["pubsub#max_items"] = "max"
    pubsub: Any = device.plugin["xep_0060"]  # slixmpp's plugins are untyped
    await pubsub.publish(
        JID(device.boundjid.bare),
        OMEMO2_BUNDLES,
        id=device_id,
        payload=ET.Element(f"{{{OMEMO2_NS}}}bundle"),
        options=_publish_options(options),
        timeout=TIMEOUT,
    )


def _publish_options(fields: dict[str, str]) -> Any:
    """A submitted publish-options data form (slixmpp's Form is untyped)."""
    make_form: Any = Form
    form = make_form()
    form["type"] = "submit"
    form.add_field(var="FORM_TYPE", ftype="hidden", value=PUBSUB_OPTIONS)
    for var, value in fields.items():
        form.add_field(var=var, value=value)
    return form


def test_stop_is_idempotent(tmp_path: Path) -> None:
    """stop() on a server that never started, or twice, does nothing."""
    dev = make_server("prosody", tmp_path)
    dev.stop()
    dev.stop()
    assert not dev.running
