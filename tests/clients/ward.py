"""One care thread with a real Profanity user and a slixmpp-omemo member, on a real server.

The pieces: a private Prosody or ejabberd, a gateway in the test's event loop with
``policy.device_approval = "manual"`` (hospital IT approves every device, I.4), a thread
``ward@clinic.<domain>`` with two members: Pat, who uses Profanity under tmux, and Bot, a
slixmpp-omemo client (legacy OMEMO, like Conversations, Gajim and Dino). Profanity
reaches the server through a :class:`~tests.clients.tcp_link.TcpLink`, so a test can
drop its connection. The gateway's stanzas are captured for the evidence a failing step
reports. The same two members can meet in a room on the server's own MUC instead
(``Ward.with_members``, see server_muc.py): the positive control.

Steps are idempotent (``await ward.profanity_in_room()`` joins only when not joined), so
each test states what it needs and a test run with ``-k`` still works.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slixmpp import JID, ClientXMPP

from tests.clients.capture import IN, OUT, StanzaCapture
from tests.clients.profanity import QUIET_SETTINGS, Account, Profanity
from tests.clients.tcp_link import TcpLink
from tests.helpers.bots import connect_bot, disconnect_bot
from tests.helpers.omemo import (
    OmemoInbox,
    connect_omemo_bot,
    join_thread,
    own_device_id,
    send_omemo_groupchat,
)
from tests.helpers.registry import wait_for_device
from tests.integration.conftest import PASSWORD, write_config
from xmpp_clinic.app import Gateway
from xmpp_clinic.config import load_settings
from xmpp_clinic.dev.servers import DevServer
from xmpp_clinic.omemo import LEGACY_NS
from xmpp_clinic.registry.model import Device, DeviceState
from xmpp_clinic.registry.service import DeviceRegistry

THREAD = "ward"
PAT_NICK, BOT_NICK = "Pat", "Bot"
PAT_PASSWORD = "pat-profanity-secret"  # Profanity splits /account arguments on spaces
DEVICE_LIST_NODE = "eu.siacs.conversations.axolotl.devicelist"
BUNDLE_NODE = "eu.siacs.conversations.axolotl.bundles"
PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"
NODE_CONFIG = "http://jabber.org/protocol/pubsub#node_config"
CLI_TIMEOUT = 60


class WardError(RuntimeError):
    """A step a test builds on did not happen (not the failure a defect's test expects)."""


@dataclass
class Outcome:
    """What became of one message Profanity sent to the thread."""

    sent: str  # the stanza as Profanity sent it (its log)
    gateway_in: str  # as the gateway received it (capture)
    answer: str  # the first stanza Profanity got back with the same id: reflection or error

    @property
    def refused(self) -> bool:
        return 'type="error"' in self.answer.split(">", 1)[0]


@dataclass
class Ward:
    """A room with Pat (Profanity) and Bot in it: a care thread hosted by a gateway, or,
    as a positive control, a room on the server's own MUC (``gateway`` is then None)."""

    server: DevServer
    root: Path
    thread: str  # the room's JID
    link: TcpLink
    profanity: Profanity
    account: Account
    bot: ClientXMPP
    inbox: OmemoInbox
    pat_device: int
    bot_device: int
    gateway: Gateway | None = None
    config_path: Path | None = None
    capture: StanzaCapture = field(default_factory=StanzaCapture)
    pat_nick: str = PAT_NICK
    joined: bool = False
    bot_joined: bool = False
    notes: list[str] = field(default_factory=list)  # what the fixture had to work around

    @property
    def pat(self) -> str:
        return self.account.jid

    # ------------------------------------------------------------------ set-up
    @classmethod
    async def with_members(cls, server: DevServer, root: Path, room: str, prefix: str = "") -> Ward:
        """Register ``{prefix}pat`` and ``{prefix}bot``, start Profanity (keys generated and
        published) and Bot; nobody has joined ``room`` yet."""
        pat, bot_jid = server.register_many(
            {f"{prefix}pat": PAT_PASSWORD, f"{prefix}bot": PASSWORD}
        )
        link = TcpLink(server.host, server.c2s_port)
        await link.start()
        notes: list[str] = []
        if server.kind == "prosody":
            await open_pep_node(pat, PAT_PASSWORD, server, DEVICE_LIST_NODE, publish_empty=True)
            notes.append(PROSODY_NOTE)
        account = Account("pat", pat, PAT_PASSWORD, server.host, link.port)
        profanity = Profanity(root / "profanity")
        started = await asyncio.gather(
            start_profanity(profanity, account),
            connect_omemo_bot(bot_jid, PASSWORD, server),
            return_exceptions=True,
        )
        pat_device, bot = started
        if isinstance(pat_device, BaseException) or isinstance(bot, BaseException):
            await profanity.stop()
            if isinstance(bot, ClientXMPP):
                await disconnect_bot(bot)
            await link.close()
            raise next(e for e in started if isinstance(e, BaseException))
        if server.kind == "prosody":
            await open_pep_node(pat, PAT_PASSWORD, server, f"{BUNDLE_NODE}:{pat_device}")
        return cls(
            server, root, room, link, profanity, account, bot, OmemoInbox(bot), pat_device,
            await own_device_id(bot), notes=notes,
        )  # fmt: skip

    @classmethod
    async def open(cls, server: DevServer, root: Path) -> Ward:
        """A care thread: both devices are published, Bot's is approved, Pat's is whatever
        the gateway made of it (pending: the first test's subject)."""
        gateway, config_path, capture = await _start_gateway(server, root / "gateway")
        try:
            ward = await cls.with_members(
                server, root, f"{THREAD}@{gateway.settings.xmpp.component_jid}"
            )
        except BaseException:
            await gateway.stop()
            raise
        ward.gateway, ward.config_path, ward.capture = gateway, config_path, capture
        bot = ward.bot.boundjid.bare
        try:
            await ward.cli("threads", "create", THREAD, "--title", "Ward",
                           "--member", ward.pat, "--member", bot)  # fmt: skip
            await wait_for_device(gateway.registry, bot, ward.bot_device)
            await ward.cli("devices", "approve", bot, str(ward.bot_device), "--namespace", "omemo")
        except BaseException:
            await ward.close()
            raise
        return ward

    async def close(self) -> None:
        """Stop Profanity, the bot, the link and the gateway; keep the capture on disk."""
        with contextlib.suppress(Exception):
            await self.profanity.stop()
        await disconnect_bot(self.bot)
        await self.link.close()
        if self.gateway is not None:
            await self.gateway.stop()
            self.capture.save(self.root / "gateway-stanzas.log")

    @property
    def registry(self) -> DeviceRegistry:
        """The gateway's device registry."""
        return self._gateway().registry

    def _gateway(self) -> Gateway:
        if self.gateway is None:
            raise WardError("this step needs the gateway; the room is on the server's MUC")
        return self.gateway

    # ------------------------------------------------------------ operator side
    async def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``xmpp-clinic ARGS`` against this gateway's config, off the event loop."""
        env = {**os.environ, "XMPP_CLINIC_CONFIG": str(self.config_path)}
        proc = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "xmpp_clinic", *args],
            capture_output=True, text=True, env=env, timeout=CLI_TIMEOUT,
        )  # fmt: skip
        if check and proc.returncode != 0:
            raise WardError(f"xmpp-clinic {' '.join(args)} exited {proc.returncode}: "
                                 f"{proc.stderr.strip()}")  # fmt: skip
        return proc

    # ------------------------------------------------------------ what Pat does
    async def notice(self, text: str) -> None:
        """Wait for the gateway's chat message to Pat containing ``text`` and for it to be
        shown in Profanity's chat window with the gateway."""
        gateway = self._gateway().settings.xmpp.component_jid
        deadline = asyncio.get_running_loop().time() + 20
        while not any(
            text in xml
            for xml in self.profanity.stanzas("RECV", "message", where={"from": re.escape(gateway)})
        ):
            if asyncio.get_running_loop().time() > deadline:
                raise WardError(f"no notice with {text!r} from {gateway} reached Profanity")
            await asyncio.sleep(0.1)
        await self.profanity.window(gateway)
        await self.profanity.wait_for(text)

    async def pat_approved(self) -> None:
        """Pat's Profanity device is approved (by the CLI, as hospital IT does)."""
        if self.gateway is None:
            return  # the server's MUC knows no device policy
        device = await self.pat_device_record()
        if device.state is not DeviceState.APPROVED:
            await self.cli("devices", "approve", self.pat, str(self.pat_device),
                           "--namespace", "omemo")  # fmt: skip

    async def pat_device_record(self) -> Device:
        """Pat's Profanity device as the registry has it, once discovery has found it."""
        try:
            return await wait_for_device(self.registry, self.pat, self.pat_device)
        except AssertionError as exc:
            raise WardError(str(exc)) from None

    async def profanity_in_room(self) -> None:
        """Pat has joined the thread in Profanity and OMEMO is on in its window."""
        await self.pat_approved()
        if not self.joined:
            mark = self.profanity.log_size()
            await self.profanity.command(f"/join {self.thread} nick {self.pat_nick}")
            await self.profanity.wait_for(f"You have joined the room as {self.pat_nick}")
            # /omemo start needs the room's features (members only, non-anonymous).
            await self.profanity.wait_for_log(
                f"Received disco#info response for room: {self.thread}", after=mark
            )
            self.joined = True
        await self.room_window()
        if "[OMEMO]" not in (await self.profanity.screen()).splitlines()[0]:
            await self.profanity.command("/omemo start")
            await self.profanity.wait_for(re.compile(r"^.*\[OMEMO\]"))
        # Typed before its session with Bot's device is built, Profanity refuses to send
        # ("cannot be decrypted for any recipient"): wait as a person would see it ready.
        bot = re.escape(self.bot.boundjid.bare)
        await self.profanity.wait_for_log(
            re.compile(rf"\[OMEMO\] (create session|session) with {bot} device {self.bot_device}\b")
        )

    async def room_window(self) -> None:
        await self.profanity.window(self.thread)

    async def send_from_profanity(self, text: str) -> Outcome:
        """Type ``text`` into the thread's window; wait for the gateway's answer to it."""
        await self.room_window()
        mark = self.profanity.log_size()
        await self.profanity.command(text)
        thread = {"to": re.escape(self.thread)}
        sent = await self.profanity.wait_for_stanza("SENT", "message", after=mark, where=thread)
        message_id = attribute(sent, "id")
        answer = await self.profanity.wait_for_stanza(
            "RECV", "message", after=mark, where={"id": re.escape(message_id)}
        )
        gateway_in = [xml for way, xml in self.capture.by_id(message_id) if way == IN]
        return Outcome(sent, gateway_in[0] if gateway_in else "", answer)

    # ------------------------------------------------------------- what Bot does
    async def bot_in_room(self) -> None:
        if not self.bot_joined:
            await join_thread(self.bot, self.thread, BOT_NICK)
            self.bot_joined = True
            if self.joined:
                await self.room_window()
                await self.profanity.wait_for(occupant_listed(BOT_NICK))

    async def bot_says(self, text: str, timeout: float = 20) -> None:
        """Bot sends ``text`` to the room and sees it come back: relayed, so archived
        (the gateway archives before fan-out), before the test goes on."""
        await send_omemo_groupchat(self.bot, self.thread, text)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                [got] = await self.inbox.take(1, timeout=max(remaining, 0.01))
            except TimeoutError:
                raise WardError(f"Bot's {text!r} did not come back from the room") from None
            if got.reflected and got.body == text:
                return

    def gateway_sent(self, *parts: str) -> list[str]:
        return self.capture.find(OUT, *parts)


PROSODY_NOTE = (
    "Prosody 0.12 cannot work with Profanity 0.13 as shipped. (1) It answers Profanity's "
    "request for its own, not yet existing, device list with <error type='cancel'>"
    "<item-not-found/></error>: no legacy code='404' and no echoed <pubsub/>, which "
    "Profanity needs to conclude 'no list yet', so it never publishes its device. (2) Its "
    "server disco does not announce pubsub#publish-options (only the account's does), so "
    "Profanity publishes device list and bundle without access_model=open; Prosody's "
    "default is 'presence', and the gateway and Bot are refused them (forbidden). The "
    "fixture, logged in as Pat, publishes an empty device list with access_model=open "
    "before Profanity starts, and opens the bundle node once Profanity has published it."
)


async def open_pep_node(
    jid: str, password: str, server: DevServer, node: str, *, publish_empty: bool = False
) -> None:
    """As ``jid``: make PEP ``node`` readable by anyone (access_model=open).

    With ``publish_empty`` the node is a legacy OMEMO device list that does not exist
    yet: an empty list is published with that publish-option. Otherwise the node exists
    and its configuration is changed.
    """
    bot = await connect_bot(
        jid, password, server, plugins=("xep_0004", "xep_0030", "xep_0060"), send_presence=False
    )
    try:
        pubsub: Any = bot.plugin["xep_0060"]  # slixmpp's plugins are untyped
        forms: Any = bot.plugin["xep_0004"]
        form = forms.make_form(ftype="submit")
        if publish_empty:
            form.add_field(var="FORM_TYPE", ftype="hidden", value=PUBLISH_OPTIONS)
            form.add_field(var="pubsub#access_model", value="open")
            empty = ET.Element(f"{{{LEGACY_NS}}}list")
            await pubsub.publish(
                JID(jid), node, id="current", payload=empty, options=form, timeout=20
            )
        else:
            form.add_field(var="FORM_TYPE", ftype="hidden", value=NODE_CONFIG)
            form.add_field(var="pubsub#access_model", value="open")
            await pubsub.set_node_config(JID(jid), node, form, timeout=20)
    finally:
        await disconnect_bot(bot)


async def _start_gateway(server: DevServer, directory: Path) -> tuple[Gateway, Path, StanzaCapture]:
    directory.mkdir(parents=True)
    path = write_config(server, directory, policy={"device_approval": "manual"})
    gateway = Gateway(load_settings(path))
    capture = StanzaCapture.attach(gateway.component)
    await gateway.start()
    await gateway.component.wait_online(timeout=15)
    return gateway, path, capture


async def start_profanity(profanity: Profanity, account: Account) -> int:
    """Start Profanity, log in, generate OMEMO keys; Pat's device id."""
    await profanity.start()
    await profanity.commands(*QUIET_SETTINGS)
    await profanity.add_account(account)
    await profanity.connect(account)
    device = await profanity.omemo_setup()
    # Published once the server echoes Pat's own device list with this device in it.
    await profanity.wait_for_log(
        re.compile(rf'RECV: .*"{re.escape(DEVICE_LIST_NODE)}".*<device id="{device}"')
    )
    return device


def occupant_listed(nick: str) -> re.Pattern[str]:
    """``nick`` in the occupants panel (the right-hand column of a room window)."""
    return re.compile(rf"\s\s{re.escape(nick)}\s*$", re.MULTILINE)


def attribute(xml: str, name: str) -> str:
    """The value of attribute ``name`` on the outermost element of ``xml`` ('' if absent)."""
    found = re.search(rf'\s{name}="([^"]*)"', xml.split(">", 1)[0])
    return found.group(1) if found else ""
