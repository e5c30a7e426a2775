"""Server confinement on a real Prosody and a real ejabberd (IV.2, II.1).

Both servers are started with ``mod_clinic_confine`` built and loaded as the ``init``
snippets tell an operator (the lines between ``clinic-confine-begin`` and
``clinic-confine-end`` of the snippets ``xmpp-clinic init`` writes, uncommented; only
the module folder is this test's own). The snippets allow the upload service
(XEP-0363): a user's slot request passes, and the file goes up and comes back. A
user's direct stanzas to a colleague bounce with ``not-allowed`` and a text naming the
gateway; reads OMEMO clients need from a colleague's PEP, and everything to the user's
own server and to the gateway, pass.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from slixmpp import JID, ClientXMPP, Iq, Message
from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.xmlstream.stanzabase import StanzaBase
from typer.testing import CliRunner

from tests.helpers.bots import connect_bot, disconnect_bot
from tests.helpers.omemo import (
    OmemoInbox,
    connect_omemo_bot,
    join_thread,
    send_omemo_groupchat,
)
from tests.integration.conftest import PASSWORD, GatewayHandle, write_config
from tests.integration.device_policy_helpers import ANY_MESSAGE, acreate_thread
from xmpp_clinic.app import Gateway
from xmpp_clinic.cli import app
from xmpp_clinic.config import load_settings
from xmpp_clinic.dev.servers import DevServer, EjabberdServer, ProsodyServer
from xmpp_clinic.dev.servers.ejabberd_config import YamlValue
from xmpp_clinic.dev.servers.upload import find_upload_service, request_slot
from xmpp_clinic.templates import block

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(180),
    pytest.mark.requirement("IV.2", "II.1"),
]

REPO = Path(__file__).resolve().parents[2]
LUA_MODULE = REPO / "plugins" / "mod_clinic_confine.lua"
ERL_MODULE = REPO / "ejabberd" / "mod_clinic_confine.erl"
EJABBERD_EBIN = Path("/usr/lib/x86_64-linux-gnu/ejabberd-23.01/ebin")
SNIPPET_DIR = "/usr/local/lib/xmpp-clinic"  # where the snippets tell operators to put it
PLUGINS = ("xep_0030", "xep_0045", "xep_0060", "xep_0199")
DEVICELIST = "eu.siacs.conversations.axolotl.devicelist"


def init_snippets(
    folder: Path,
    *,
    domain: str = "hospital.test",
    component_jid: str = "clinic.hospital.test",
    messages_days: int = 30,
) -> tuple[str, str]:
    """The Prosody and ejabberd snippets as ``xmpp-clinic init`` writes them for an operator."""
    folder.mkdir(parents=True, exist_ok=True)
    prosody, ejabberd = folder / "prosody.cfg.lua", folder / "ejabberd.yml"
    result = CliRunner().invoke(
        app,
        [
            "init",
            f"--domain={domain}",
            f"--component-jid={component_jid}",
            f"--messages-days={messages_days}",
            f"--output={folder / 'xmpp-clinic.toml'}",
            f"--prosody-snippet={prosody}",
            f"--ejabberd-snippet={ejabberd}",
            "--force",
        ],
    )
    assert result.exit_code == 0, result.output
    return prosody.read_text(encoding="utf-8"), ejabberd.read_text(encoding="utf-8")


@dataclass
class ConfinedProsody(ProsodyServer):
    """Prosody with mod_clinic_confine loaded globally, as the snippet says."""

    def _prepare(self) -> None:
        modules = self.home / "modules"
        modules.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(LUA_MODULE, modules / LUA_MODULE.name)
        super()._prepare()

    def _modules(self) -> list[str]:
        return [*super()._modules(), "clinic_confine"]

    def _global_section(self) -> str:
        prosody, _ = init_snippets(
            self.run_dir / "init", domain=self.domain, component_jid=self.component_jid
        )
        lines = block(prosody, "clinic-confine", "--")
        return super()._global_section() + lines.replace(
            f"{SNIPPET_DIR}/prosody", str(self.home / "modules")
        )


@dataclass
class ConfinedEjabberd(EjabberdServer):
    """ejabberd with mod_clinic_confine built by erlc onto its -pa path, as the snippet says."""

    def _prepare(self) -> None:
        super()._prepare()
        subprocess.run(
            ["erlc", "-o", str(self.ebin_dir), "-pa", str(EJABBERD_EBIN), str(ERL_MODULE)],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def config(self) -> dict[str, YamlValue]:
        config = super().config()
        _, ejabberd = init_snippets(
            self.run_dir / "init", domain=self.domain, component_jid=self.component_jid
        )
        modules: Any = config["modules"]
        modules.update(_yaml_module(block(ejabberd, "clinic-confine", "#")))
        return config


def _yaml_module(lines: str) -> dict[str, YamlValue]:
    """``name:\n  {gateway: X, allowed: [A, B]}`` as data (no YAML parser in the venv)."""
    found = re.search(r"^\s*(\w+):\s*\{gateway: ([^,]+), allowed: \[([^\]]*)\]\}", lines, re.M)
    assert found is not None, f"unexpected snippet: {lines!r}"
    allowed: list[YamlValue] = [h.strip() for h in found[3].split(",") if h.strip()]
    return {found[1]: {"gateway": found[2].strip(), "allowed": allowed}}


@pytest.fixture(scope="module", params=("prosody", "ejabberd"))
def confined_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevServer]:
    run_dir = tmp_path_factory.mktemp(f"confined-{request.param}")
    cls = ConfinedProsody if request.param == "prosody" else ConfinedEjabberd
    server: DevServer = cls(run_dir=run_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


_ids = iter(range(1, 10_000))


@pytest.fixture
def pair(confined_server: DevServer) -> tuple[str, str]:
    n = next(_ids)
    alice, bob = confined_server.register_many({f"alice{n}": PASSWORD, f"bob{n}": PASSWORD})
    return alice, bob


async def bots(server: DevServer, *jids: str) -> list[ClientXMPP]:
    return [await connect_bot(j, PASSWORD, server, plugins=PLUGINS) for j in jids]


async def iq_condition(bot: ClientXMPP, iq: Iq) -> tuple[str, str]:
    """(condition, text) of the answer; ("ok", "") for a result."""
    send: Callable[..., Awaitable[Iq]] = iq.send
    try:
        await send(timeout=15)
    except IqError as exc:
        return str(exc.iq["error"]["condition"]), str(exc.iq["error"]["text"])
    return "ok", ""


async def message_bounce(bot: ClientXMPP, to: str, mtype: str, body: str | None) -> Message:
    errors: asyncio.Queue[Message] = asyncio.Queue()
    name = f"bounce-{id(errors)}"

    def on_error(stanza: StanzaBase) -> None:
        if isinstance(stanza, Message) and stanza["type"] == "error":
            errors.put_nowait(stanza)

    bot.register_handler(Callback(name, MatchXPath(ANY_MESSAGE), on_error))
    try:
        message = bot.make_message(mto=to, mtype=mtype, mbody=body)
        if body is None:
            ET.SubElement(message.xml, "{urn:xmpp:chat-markers:0}displayed", {"id": "x"})
        message.send()
        return await asyncio.wait_for(errors.get(), 15)
    finally:
        bot.remove_handler(name)


@pytest.mark.parametrize(
    ("mtype", "body"),
    [("chat", "hi"), ("normal", "hi"), ("headline", "hi"), ("chat", None)],
)
async def test_direct_messages_to_a_colleague_bounce_naming_the_gateway(
    confined_server: DevServer, pair: tuple[str, str], mtype: str, body: str | None
) -> None:
    alice, bob = pair
    (a,) = await bots(confined_server, alice)
    try:
        error = await message_bounce(a, bob, mtype, body)
        assert error["error"]["condition"] == "not-allowed"
        assert confined_server.component_jid in error["error"]["text"]
    finally:
        await disconnect_bot(a)


async def test_iq_and_subscription_to_a_colleague_bounce(
    confined_server: DevServer, pair: tuple[str, str]
) -> None:
    alice, bob = pair
    a, b = await bots(confined_server, alice, bob)
    try:
        version = a.make_iq_get(queryxmlns="jabber:iq:version", ito=f"{bob}/{b.boundjid.resource}")
        condition, text = await iq_condition(a, version)
        assert condition == "not-allowed" and confined_server.component_jid in text
        roster_push = a.make_iq_get(queryxmlns="jabber:iq:version", ito=bob)
        assert (await iq_condition(a, roster_push))[0] == "not-allowed"
        errors: asyncio.Queue[StanzaBase] = asyncio.Queue()
        a.add_event_handler("presence_error", errors.put_nowait)
        a.send_presence(pto=bob, ptype="subscribe")
        presence = await asyncio.wait_for(errors.get(), 15)
        assert presence["error"]["condition"] == "not-allowed"
    finally:
        await disconnect_bot(a)
        await disconnect_bot(b)


async def test_omemo_reads_of_a_colleague_and_own_server_pass(
    confined_server: DevServer, pair: tuple[str, str]
) -> None:
    alice, bob = pair
    a, b = await bots(confined_server, alice, bob)
    try:
        item = ET.Element("{eu.siacs.conversations.axolotl}list")
        ET.SubElement(item, "{eu.siacs.conversations.axolotl}device", {"id": "4711"})
        options = b.plugin["xep_0004"].make_form(ftype="submit")
        options.add_field(
            var="FORM_TYPE",
            ftype="hidden",
            value="http://jabber.org/protocol/pubsub#publish-options",
        )
        options.add_field(var="pubsub#access_model", value="open")
        # As OMEMO clients do: an open device list (ejabberd's config forces it anyway).
        await b.plugin["xep_0060"].publish(
            JID(bob), DEVICELIST, id="current", payload=item, options=options
        )
        got = await a.plugin["xep_0060"].get_items(JID(bob), DEVICELIST, timeout=15)
        assert "4711" in str(got)
        # disco#info on a colleague's account reaches their server, which answers as it
        # would anyone without a subscription (Prosody: service-unavailable): not a bounce.
        disco = a.make_iq_get(queryxmlns="http://jabber.org/protocol/disco#info", ito=bob)
        assert (await iq_condition(a, disco))[0] != "not-allowed"
        own = await a.plugin["xep_0030"].get_info(jid=JID(confined_server.domain), timeout=15)
        assert own["disco_info"]["identities"]
        other_node = a.make_iq_get(ito=bob)
        pubsub = ET.SubElement(other_node.xml, "{http://jabber.org/protocol/pubsub}pubsub")
        ET.SubElement(pubsub, "{http://jabber.org/protocol/pubsub}items", {"node": "private"})
        assert (await iq_condition(a, other_node))[0] == "not-allowed"
    finally:
        await disconnect_bot(a)
        await disconnect_bot(b)


@pytest.mark.timeout(240)
async def test_omemo_exchange_in_a_care_thread_still_works(
    confined_server: DevServer, pair: tuple[str, str], tmp_path: Path
) -> None:
    """Stock OMEMO (slixmpp-omemo) fetches colleagues' device lists and bundles and
    encrypts for the thread through the gateway; the confinement lets exactly that by."""
    alice, bob = pair
    path = write_config(confined_server, tmp_path, policy={"device_approval": "all"})
    gateway = Gateway(load_settings(path))
    await gateway.start()
    try:
        await gateway.component.wait_online(timeout=15)
        gw = GatewayHandle(gateway, gateway.settings, path, confined_server)
        thread = await acreate_thread(gw, f"ward{next(_ids)}", [alice, bob])
        a, b = await asyncio.gather(
            connect_omemo_bot(alice, PASSWORD, confined_server),
            connect_omemo_bot(bob, PASSWORD, confined_server),
        )
        try:
            inbox = OmemoInbox(b)
            await join_thread(a, thread, "Alice")
            await join_thread(b, thread, "Bob")
            await send_omemo_groupchat(a, thread, "BP 120/80")
            [got] = await inbox.take(1, timeout=60)
            assert (got.sender, got.body) == (alice, "BP 120/80")
        finally:
            await disconnect_bot(a)
            await disconnect_bot(b)
    finally:
        await gateway.stop()


async def test_upload_slot_passes_confinement_and_the_file_round_trips(
    confined_server: DevServer, pair: tuple[str, str]
) -> None:
    """The upload service is in the snippet's allowed list (IV.2): alice finds it in
    her domain's disco#items, gets a slot, PUTs a file and GETs it back; a slot request
    to a service not in the list, and a chat to bob, still bounce."""
    alice, bob = pair
    (a,) = await bots(confined_server, alice)
    data = b"%PDF-1.4 lab report for the care thread\n"
    try:
        service = await find_upload_service(a, confined_server.domain)
        assert service == confined_server.upload_jid
        slot = await request_slot(a, service, "lab.pdf", len(data), "application/pdf")
        assert slot.put_url.startswith(confined_server.upload_url_base)
        async with httpx.AsyncClient(timeout=15) as http:
            headers = {**slot.headers, "Content-Type": "application/pdf"}
            put = await http.put(slot.put_url, content=data, headers=headers)
            assert put.status_code in (200, 201), put.text
            got = await http.get(slot.get_url)
            assert (got.status_code, got.content) == (200, data)
        elsewhere = a.make_iq_get(ito="upload.elsewhere.test")
        ET.SubElement(
            elsewhere.xml,
            "{urn:xmpp:http:upload:0}request",
            {"filename": "x.pdf", "size": "1", "content-type": "application/pdf"},
        )
        condition, text = await iq_condition(a, elsewhere)
        assert condition == "not-allowed" and confined_server.component_jid in text
        error = await message_bounce(a, bob, "chat", "the lab report is up")
        assert error["error"]["condition"] == "not-allowed"
    finally:
        await disconnect_bot(a)
