"""The fuzz rig: one real server, one gateway on its component port, five people.

Per server kind (Prosody, ejabberd), for the whole session:

- ``alice`` and ``bob`` are legitimate members of the care thread ``ward``, joined as
  ``Alice`` and ``Bob``, each with an OMEMO 2 device (python-omemo, in process). After
  every hostile batch Bob sends Alice an OMEMO message: it must still be relayed and
  decrypt (the gateway stays responsive). Alice is the recipient whose received bytes
  are scanned for markers.
- ``mallory`` is an ordinary member joined as ``Mallory`` with an approved OMEMO 2
  device, so her hostile messages carry a valid OMEMO element and reach the parts of
  the gateway behind the policy. She became a member after Bob's first message
  (``early_stanza_id``), for the MAM existence oracle (finding 11).
- ``eve`` is a member who has not joined: she tries the nick lookalikes.
- ``owen`` owns the thread and is one of the hospital's IT admins (``xmpp.admins``):
  oversized forms and device ids reach the admin paths through him.

All clients are :class:`RawClient` (plain TCP/XML, no slixmpp): they survive addresses
slixmpp cannot parse, and they log nothing, so every log record captured is the gateway's.
"""

from __future__ import annotations

import asyncio
import itertools
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fuzz.legacy import LEGACY_NS, LegacyDevice
from tests.fuzz.rawclient import NS_CLIENT, RawClient, attr, local
from tests.fuzz.sinks import LogCapture, gateway_logging, store_hits
from tests.helpers.registry import register_omemo2
from tests.helpers.twomemo import Directory, OmemoTwoDevice
from xmpp_clinic.app import Gateway
from xmpp_clinic.config import Settings, load_settings
from xmpp_clinic.dev.servers import DevServer, ServerKind, start_server, write_gateway_config
from xmpp_clinic.registry.model import ObservedDevice

PASSWORD = "fuzz horse battery staple"
THREAD = "ward"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_SID = "urn:xmpp:sid:0"
OMEMO2 = "urn:xmpp:omemo:2"
ANSWER_TIMEOUT = 5.0
NICKS = {"alice": "Alice", "bob": "Bob", "mallory": "Mallory"}
_rounds = itertools.count(1)


def is_self_presence(stanza: ET.Element, thread_jid: str) -> bool:
    """A presence from the thread carrying status 110 (this is you)."""
    if local(stanza.tag) != "presence" or not stanza.get("from", "").startswith(thread_jid):
        return False
    codes = {s.get("code") for s in stanza.iter(f"{{{NS_MUC_USER}}}status")}
    return "110" in codes


@dataclass(repr=False)
class Rig:
    """A server, a gateway and the thread's people; see the module docstring."""

    kind: ServerKind
    run_dir: Path
    server: DevServer | None = None
    settings: Settings | None = None
    config_path: Path | None = None
    gateway: Gateway | None = None
    clients: dict[str, RawClient] = field(default_factory=dict)
    devices: dict[str, OmemoTwoDevice] = field(default_factory=dict)
    legacy: dict[str, LegacyDevice] = field(default_factory=dict)
    logs: LogCapture = field(default_factory=LogCapture)
    disconnects: int = 0
    early_stanza_id: str = ""
    _extra_clients: list[RawClient] = field(default_factory=list)
    _logging: Any = None
    _spare_key: bytes = b""

    def __repr__(self) -> str:
        return f"Rig({self.kind})"

    def _repr_pretty_(self, printer: Any, _cycle: bool) -> None:
        printer.text(repr(self))  # hypothesis prints examples with this, not __repr__

    # ------------------------------------------------------------------ naming
    @property
    def component(self) -> str:
        assert self.server is not None
        return self.server.component_jid

    @property
    def domain(self) -> str:
        assert self.server is not None
        return self.server.domain

    @property
    def thread(self) -> str:
        return f"{THREAD}@{self.component}"

    @property
    def database(self) -> Path:
        return self.run_dir / "gateway" / "xmpp-clinic.db"

    def jid(self, name: str) -> str:
        return f"{name}@{self.domain}"

    # --------------------------------------------------------------- life cycle
    async def start(self) -> None:
        self.server = await asyncio.to_thread(start_server, self.kind, self.run_dir / "server")
        self.server.register_many({name: PASSWORD for name in (*NICKS, "eve", "owen")})
        (self.run_dir / "gateway").mkdir()
        path = write_gateway_config(
            self.server,
            self.run_dir / "gateway",
            xmpp={"reconnect_max_delay": 0.5, "admins": [self.jid("owen")]},
            policy={"device_approval": "all"},
            logging={"level": "DEBUG"},
        )
        self.config_path = path
        self.settings = load_settings(path)
        self._logging = gateway_logging()
        self.logs = self._logging.__enter__()
        await self.start_gateway()
        assert self.gateway is not None
        await self.gateway.threads.create(
            THREAD, "Ward", [self.jid("alice"), self.jid("bob")], owner=self.jid("owen")
        )
        await self.gateway.thread_host.refresh()
        directory = Directory()
        for name in ("alice", "bob", "mallory"):
            device = await OmemoTwoDevice.create(self.jid(name), directory)
            self.devices[name] = device
            await register_omemo2(self.gateway.registry, self.jid(name), *await device.device())
        spare = await OmemoTwoDevice.create(self.jid("owen"), directory)
        self._spare_key = (await spare.device())[1]
        legacy_directory = Directory()
        for name in ("alice", "mallory"):
            legacy = await LegacyDevice.create(self.jid(name), legacy_directory)
            self.legacy[name] = legacy
            device_id, key = await legacy.device()
            await self.gateway.registry.observe(
                self.jid(name), LEGACY_NS, {device_id: ObservedDevice(None, key)}
            )
        for name in (*NICKS, "eve", "owen"):
            self.clients[name] = await RawClient(name, PASSWORD, self.server).login()
        for name in ("alice", "bob"):
            await self.join(name, NICKS[name])
        self.early_stanza_id = await self.legit_round(expect_problems=False)
        for name in ("mallory", "eve"):
            await self.gateway.threads.add_member(THREAD, self.jid(name))
        await self.gateway.thread_host.refresh()
        await self.join("mallory", NICKS["mallory"])

    async def start_gateway(self) -> None:
        assert self.settings is not None
        self.gateway = Gateway(self.settings)
        self.gateway.component.add_event_handler("disconnected", self._on_disconnected)
        await self.gateway.start()
        await self.gateway.component.wait_online(timeout=20)

    def _on_disconnected(self, _event: object) -> None:
        self.disconnects += 1

    async def stop_gateway(self) -> None:
        if self.gateway is not None:
            self.gateway.component.del_event_handler("disconnected", self._on_disconnected)
            await self.gateway.stop()
            self.gateway = None

    async def stop(self) -> None:
        for client in [*self.clients.values(), *self._extra_clients]:
            await client.close()
        await self.stop_gateway()
        if self._logging is not None:
            self._logging.__exit__(None, None, None)
        if self.server is not None:
            await asyncio.to_thread(self.server.stop)

    async def extra_client(self, name: str, resource: str) -> RawClient:
        """Another session of ``name`` (closed with the rig)."""
        assert self.server is not None
        client = RawClient(name, PASSWORD, self.server, resource=resource)
        self._extra_clients.append(client)
        return await client.login()

    async def reconnect(self, name: str) -> RawClient:
        """A fresh session for ``name`` after the server closed the old one."""
        assert self.server is not None
        self.clients[name] = await RawClient(name, PASSWORD, self.server).login()
        return self.clients[name]

    # --------------------------------------------------------------- the thread
    async def join(self, name: str, nick: str, extra: str = "") -> ET.Element:
        """Join the thread as ``nick``; the self-presence or the error."""
        client = self.clients[name]
        room = f"{self.thread}/{nick}"
        client.send_raw(
            f"<presence to={attr(room)}><x xmlns='{NS_MUC}'><history maxstanzas='0'/></x>"
            f"{extra}</presence>"
        )
        return await client.wait_for(
            lambda s: (
                local(s.tag) == "presence"
                and s.get("from", "").startswith(self.thread)
                and (s.get("type") == "error" or is_self_presence(s, self.thread))
            ),
            ANSWER_TIMEOUT,
        )

    def leave(self, name: str, nick: str) -> None:
        self.clients[name].send_raw(
            f"<presence type='unavailable' to={attr(f'{self.thread}/{nick}')}/>"
        )

    async def ensure_ready(self) -> None:
        """Gateway online; every client connected; Alice, Bob and Mallory joined."""
        assert self.gateway is not None
        await self.gateway.component.wait_online(timeout=20)
        for name in list(self.clients):
            if self.clients[name].closed.is_set():
                await self.reconnect(name)
        for name, nick in NICKS.items():
            answer = await self.join(name, nick)
            if answer.get("type") == "error":
                raise AssertionError(f"{name} cannot rejoin as {nick}: {ET.tostring(answer)!r}")

    async def omemo(self, sender: str, text: str, recipients: list[str]) -> str:
        """A fresh OMEMO 2 ``<encrypted>`` element, serialised."""
        element = await self.devices[sender].encrypt(text, [self.jid(r) for r in recipients])
        return ET.tostring(element, encoding="unicode")

    async def register_device(self, name: str, device_id: int) -> None:
        """Record one more (approved) OMEMO 2 device of ``name``: something for an admin
        command to act on without touching the devices the rig relies on."""
        assert self.gateway is not None
        await self.gateway.registry.observe(
            self.jid(name), OMEMO2, {device_id: ObservedDevice(None, self._spare_key)}
        )

    async def legit_round(self, *, expect_problems: bool = True) -> str:
        """Bob sends Alice an OMEMO message through the thread; the thread's stanza-id.

        Raises AssertionError (with what happened) unless Alice decrypts it in time.
        """
        n = next(_rounds)
        text = f"legit round {n}: handover at 14:00"
        encrypted = await self.omemo("bob", text, ["alice"])
        message_id = f"legit-{n}"
        alice, bob = self.clients["alice"], self.clients["bob"]

        def answers(stanza: ET.Element) -> bool:
            return local(stanza.tag) == "message" and stanza.get("id") == message_id

        waiting = asyncio.ensure_future(alice.wait_for(answers, 10.0))
        refused = asyncio.ensure_future(
            bob.wait_for(lambda s: answers(s) and s.get("type") == "error", 10.0)
        )
        await asyncio.sleep(0)
        bob.send_raw(
            f"<message to={attr(self.thread)} type='groupchat' id='{message_id}'>"
            f"{encrypted}</message>"
        )
        try:
            await asyncio.wait({waiting, refused}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiting, refused):
                if not task.done():
                    task.cancel()
        if refused.done() and not refused.cancelled() and refused.exception() is None:
            error = ET.tostring(refused.result(), encoding="unicode")
            raise AssertionError(f"the legit OMEMO message {message_id} was refused: {error}")
        if waiting.cancelled() or waiting.exception() is not None:
            raise AssertionError(f"the legit OMEMO message {message_id} never reached Alice")
        got = waiting.result()
        found = got.find(f"{{{OMEMO2}}}encrypted")
        if got.get("type") == "error" or found is None:
            raise AssertionError(f"Alice got no OMEMO message but {ET.tostring(got)!r}")
        plain = await self.devices["alice"].decrypt(found, self.jid("bob"))
        if plain != text:
            raise AssertionError(f"Alice decrypted {plain!r}, not the legit text")
        sid = got.find(f"{{{NS_SID}}}stanza-id")
        return sid.get("id", "") if sid is not None else ""

    async def probe_link(self) -> str | None:
        """disco#info to the component; None when it answers with a result."""
        try:
            answer = await self.clients["mallory"].iq(
                f"<iq type='get' id='{{id}}' to={attr(self.component)}>"
                f"<query xmlns='{NS_DISCO_INFO}'/></iq>",
                ANSWER_TIMEOUT,
            )
        except TimeoutError:
            return "disco#info to the component got no answer"
        if answer.get("type") != "result":
            return f"disco#info to the component answered {ET.tostring(answer)!r}"
        return None

    # --------------------------------------------------------------------- scans
    def recipient_hits(self, marker: str) -> list[str]:
        """Legit members who received ``marker`` (as bytes on their stream)."""
        return [name for name in ("alice", "bob") if marker in self.clients[name].text_received()]

    def archive_hits(self, markers: list[str]) -> dict[str, list[str]]:
        return store_hits(self.database, markers)

    def client_stanzas(self, name: str) -> list[ET.Element]:
        return self.clients[name].stanzas


def message_to(thread: str, body: str, *, message_id: str, to_suffix: str = "") -> str:
    """A groupchat message to the thread with ``body`` as its children."""
    return (
        f"<message xmlns={attr(NS_CLIENT)} to={attr(thread + to_suffix)} type='groupchat' "
        f"id={attr(message_id)}>{body}</message>"
    )
