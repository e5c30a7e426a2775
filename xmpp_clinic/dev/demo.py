"""``xmpp-clinic demo``: a care thread on the embedded default, start to finish.

Starts a private Prosody on loopback and attaches a gateway with the strictest defaults
and an SQLite store in a temporary folder. Then the story: a clinician's client
discovers the gateway; IT creates a ward thread; four clinicians' phones (slixmpp-omemo,
legacy OMEMO) publish their devices and IT approves them after comparing fingerprints;
the fourth hands over and goes off shift; the three on shift exchange OMEMO messages and
a plaintext message is refused; the fourth comes back and catches up by MAM. The CLI
command for each IT step is printed. Nothing outside the temporary folder is touched;
everything started here is stopped again. Fictional people, fictional text.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shlex
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from slixmpp import JID, ClientXMPP

from xmpp_clinic.app import Gateway
from xmpp_clinic.clock import utcnow
from xmpp_clinic.config import Settings, load_settings
from xmpp_clinic.dev.bots import BotLoginError, connect_bot, disconnect_bot
from xmpp_clinic.dev.demo_clients import Phone, PhoneError
from xmpp_clinic.dev.servers import DevServer, start_server, write_gateway_config
from xmpp_clinic.omemo import LEGACY_NS
from xmpp_clinic.registry.model import Device
from xmpp_clinic.registry.service import DeviceRegistry, UnknownDevice
from xmpp_clinic.store import Store
from xmpp_clinic.threads import ThreadService
from xmpp_clinic.xmpp.pep import ComponentPep, DeviceDiscovery

console = Console(emoji=False, highlight=False)

THREAD, TITLE = "ward-4b", "Ward 4B"
CLINICIANS = (("dr.alice", "Dr. Alice"), ("nurse.bob", "Nurse Bob"), ("dr.carol", "Dr. Carol"))
LATE_JOINER = ("dr.dave", "Dr. Dave")
CONVERSATION = (  # (index into CLINICIANS, text)
    (0, "Bed 4 needs a BP check at 14:00."),
    (1, "On it. Bed 4 BP check at 14:00, I will chart it."),
    (2, "Bed 7 can go home after the ward round."),
)
HANDOVER = "Handing over: bed 4 BP was high this morning."
PLAINTEXT = "Is the bed 4 check done?"
DISCOVERY_WAIT = 3.0  # seconds the gateway gets to discover the devices on its own
DEMO_TIMEOUT = 150.0
IT_ACTOR = "it:demo"
CLINICIAN_PLUGINS = ("xep_0030", "xep_0128")


class DemoFailed(RuntimeError):
    """A step of the story did not happen as it should; ``str()`` says which."""


@dataclass
class Tally:
    """What the run showed, for the closing line."""

    decrypted: int = 0
    refused: int = 0
    approved: int = 0
    caught_up: int = 0


def write_demo_config(server: DevServer, directory: Path) -> Path:
    """The demo's gateway config: the defaults plus the hospital's privacy notice (I.1)."""
    privacy = {
        "notice_url": f"https://{server.domain}/privacy/messaging",
        "controller_contact": f"mailto:dpo@{server.domain}",
    }
    return write_gateway_config(server, directory, privacy=privacy)


def step(title: str) -> None:
    """A numbered heading of the story."""
    console.print()
    console.rule(f"[bold]{title}", align="left")


def command(*argv: str) -> None:
    """Show the reader the CLI command that does what the demo does next."""
    console.print(f"  [dim]$[/] [bold]{shlex.join(['xmpp-clinic', *argv])}[/]", soft_wrap=True)


async def connect_clinician(jid: str, password: str, server: DevServer) -> ClientXMPP:
    """A plain client on the loopback c2s port (plaintext is for the demo only)."""
    return await connect_bot(
        jid, password, server, plugins=CLINICIAN_PLUGINS, timeout=20, send_presence=False
    )


async def discover(client: ClientXMPP, component: str) -> None:
    """Ask the gateway what it is, and print it the way an admin would read it."""
    info = await client.plugin["xep_0030"].get_info(jid=JID(component), timeout=10)
    query = info["disco_info"]
    table = Table(title=f"disco#info of {component}", show_lines=False)
    table.add_column("kind")
    table.add_column("value")
    for category, itype, _lang, name in query["identities"]:
        table.add_row("identity", f"{category}/{itype}  {name or ''}")
    for feature in sorted(query["features"]):
        table.add_row("feature", feature)
    for form in query["forms"]:
        for var, field in form.get_fields().items():
            if var != "FORM_TYPE":
                table.add_row(field["label"] or var, str(field["value"]))
    console.print(table)


async def create_thread(threads: ThreadService, members: list[str]) -> str:
    step(f"1. IT creates the care thread {THREAD!r}")
    member_args = [arg for jid in members for arg in ("--member", jid)]
    command("threads", "create", THREAD, "--title", TITLE, *member_args)
    info = await threads.create(THREAD, TITLE, members)
    console.print(f"  created: members-only, {len(info.members)} members")
    return THREAD


async def known_device(registry: DeviceRegistry, jid: str, device_id: int) -> Device | None:
    try:
        return await registry.device(jid, device_id, LEGACY_NS)
    except UnknownDevice:
        return None


async def approve_devices(
    registry: DeviceRegistry, discovery: DeviceDiscovery, phones: list[Phone], tally: Tally
) -> None:
    """IT compares each phone's fingerprint with the registry's, then approves the device."""
    step("3. IT approves each phone's OMEMO device (policy.device_approval = manual)")
    own = [await phone.own_device() for phone in phones]
    found: list[Device | None] = [None] * len(phones)
    deadline = time.monotonic() + DISCOVERY_WAIT
    while time.monotonic() < deadline and None in found:
        for i, (phone, device) in enumerate(zip(phones, own, strict=True)):
            found[i] = found[i] or await known_device(registry, phone.jid, device.device_id)
        await asyncio.sleep(0.25)
    missing = [phone for phone, device in zip(phones, found, strict=True) if device is None]
    if not missing:
        console.print("  The gateway found every device in its owner's PEP when they joined.")
    else:
        console.print(
            f"  The gateway has not discovered {len(missing)} of the devices by itself yet; "
            "running its PEP device discovery for them now."
        )
        for phone in missing:
            result = await discovery.refresh(phone.jid)
            for namespace, why in result.failed.items():
                console.print(f"  [yellow]PEP {namespace} of {phone.jid}: {why}[/]")
    for phone, mine, seen in zip(phones, own, found, strict=True):
        record = seen or await known_device(registry, phone.jid, mine.device_id)
        if record is None:
            console.print(f"  [yellow]approval skipped[/] for {phone.name}: device not in registry")
            continue
        console.print(f"  {phone.name}: device {mine.device_id} is {record.state.value}")
        if record.fingerprint != mine.fingerprint:
            raise DemoFailed(f"{phone.jid}'s device {mine.device_id} has another fingerprint")
        shown = record.display_fingerprint()
        console.print(f"    fingerprint {shown}  [green]matches the phone[/]", soft_wrap=True)
        command("devices", "approve", phone.jid, str(mine.device_id))
        approved = await registry.approve(
            phone.jid, mine.device_id, actor=IT_ACTOR, namespace=LEGACY_NS
        )
        until = f"{approved.valid_until:%Y-%m-%d}" if approved.valid_until else "-"
        console.print(f"  approved until {until}")
        tally.approved += 1


async def deliver(thread: str, sender: Phone, text: str, phones: list[Phone], tally: Tally) -> str:
    """``sender`` sends ``text`` once; every phone in the thread shows what it decrypted.

    Returns the thread's archive id of the message, as the sender saw it come back.
    """
    console.print(f"  [bold]{sender.name}[/] sends (encrypted): {text}")
    await sender.send_encrypted(thread, text)
    archive_id = ""
    for phone in phones:
        got = await phone.next_message()
        if got.body != text or got.sender != sender.jid:
            raise DemoFailed(f"{phone.name} read {got.body!r} from {got.sender}")
        if phone is sender:
            archive_id = got.stanza_id
            console.print(f"    {phone.name:10} sees it come back (archive id {archive_id[:8]})")
        else:
            console.print(f"    {phone.name:10} decrypted: [green]{got.body}[/]")
            tally.decrypted += 1
    return archive_id


async def hand_over(thread: str, late: Phone, phones: list[Phone], tally: Tally) -> str:
    """The late joiner writes once and leaves; returns the last archive id his phone saw.

    His message also opens OMEMO sessions from his device to everyone else's, so what
    they write while he is away needs none of his one-time pre keys (two senders picking
    the same one would make one message unreadable for him: python-omemo's "history
    synchronisation" does not keep used legacy pre keys).
    """
    step(f"4. {late.name} hands over and goes off shift")
    last_seen = await deliver(thread, late, HANDOVER, phones, tally)
    await late.log_out()
    console.print(f"  {late.name} is offline now; still a member of the thread.")
    return last_seen


async def converse(thread: str, phones: list[Phone], tally: Tally) -> None:
    step("5. The clinicians on shift exchange OMEMO messages in the thread")
    for index, text in CONVERSATION:
        await deliver(thread, phones[index], text, phones, tally)


async def refuse_plaintext(thread: str, phones: list[Phone], tally: Tally) -> None:
    step("6. A plaintext message is refused (II.1: end-to-end encryption required)")
    sender = phones[1]
    console.print(f"  [bold]{sender.name}[/] sends without OMEMO: {PLAINTEXT}")
    answer = await sender.send_plaintext(thread, PLAINTEXT)
    if not answer.startswith("policy-violation"):
        raise DemoFailed(f"the plaintext message was not refused with policy-violation: {answer}")
    await asyncio.sleep(0.5)  # the others would have had it by now
    leaked = [phone.name for phone in phones if PLAINTEXT in phone.plaintext_seen]
    if leaked:
        raise DemoFailed(f"the refused message reached {', '.join(leaked)}")
    console.print(f"    refused: [red]{answer}[/]", soft_wrap=True)
    console.print("    nobody else received it")
    tally.refused += 1


async def catch_up(
    thread: str, late: Phone, last_seen: str, server: DevServer, everyone: list[Phone], tally: Tally
) -> None:
    step(f"7. {late.name} comes back on shift and catches up by MAM")
    await late.log_in(server)
    console.print(
        f"  {late.name}'s phone asks the thread's archive for what came after {last_seen[:8]}:"
    )
    history = await late.history(thread, after_id=last_seen)
    names = {phone.jid: phone.name for phone in everyone}
    for message in history:
        name = names.get(message.sender, message.sender)
        console.print(f"    from {name:10} decrypted: [green]{message.body}[/]")
    expected = [text for _index, text in CONVERSATION]
    if [m.body for m in history] != expected:
        raise DemoFailed(f"{late.name} read {len(history)} of {len(expected)} messages by MAM")
    tally.caught_up = len(history)


async def story(run_dir: Path, tally: Tally) -> None:
    console.print("Starting a private Prosody on loopback ...")
    server = start_server("prosody", run_dir / "prosody")
    try:
        console.print(
            f"Prosody up: users at [cyan]{server.domain}[/], c2s port {server.c2s_port}, "
            f"component port {server.component_port}"
        )
        settings = load_settings(write_demo_config(server, run_dir))
        gateway = Gateway(settings)
        await gateway.start()
        try:
            await gateway.component.wait_online(timeout=15)
            console.print(f"Gateway attached as [cyan]{settings.xmpp.component_jid}[/]")
            await with_gateway(server, settings, gateway, tally)
        finally:
            await gateway.stop()
    finally:
        server.stop()


async def with_gateway(
    server: DevServer, settings: Settings, gateway: Gateway, tally: Tally
) -> None:
    password = secrets.token_urlsafe(12)
    people = [*CLINICIANS, LATE_JOINER]
    jids = server.register_many({user: password for user, _name in people})
    phones = [
        Phone(name, name.split()[-1], jid, password)
        for (_user, name), jid in zip(people, jids, strict=True)
    ]
    client = await connect_clinician(phones[0].jid, password, server)
    console.print(f"Clinician [cyan]{phones[0].jid}[/] asks the gateway what it offers:")
    await discover(client, settings.xmpp.component_jid)
    await disconnect_bot(client)
    store = Store(settings.store.url)  # IT's own connection, as the CLI opens one
    try:
        threads = ThreadService(store, user_domains=settings.xmpp.user_domains)
        thread = await create_thread(threads, jids)
        thread_jid = f"{thread}@{settings.xmpp.component_jid}"
        step("2. The four clinicians' phones publish their OMEMO devices and join")
        await asyncio.gather(*(phone.log_in(server) for phone in phones))
        for phone in phones:
            await phone.join(thread_jid)
            console.print(f"  {phone.name:10} {phone.jid} -> {thread_jid}/{phone.nick}")
        registry = DeviceRegistry(store, settings.policy)
        own_discovery = getattr(gateway, "discovery", None)  # the gateway's, once it has one
        discovery = (
            own_discovery
            if isinstance(own_discovery, DeviceDiscovery)
            else DeviceDiscovery(ComponentPep(gateway.component), registry)
        )
        await approve_devices(registry, discovery, phones, tally)
        late, talkers = phones[-1], phones[:-1]
        last_seen = await hand_over(thread_jid, late, phones, tally)
        await converse(thread_jid, talkers, tally)
        await refuse_plaintext(thread_jid, talkers, tally)
        await catch_up(thread_jid, late, last_seen, server, phones, tally)
        failures = [f"{p.name}: {', '.join(p.failures)}" for p in phones if p.failures]
        if failures:
            raise DemoFailed(f"OMEMO errors on the phones: {'; '.join(failures)}")
    finally:
        await asyncio.gather(*(phone.log_out() for phone in phones))
        await store.close()


def seconds_since_process_start() -> float:
    """How long ago this process started (Linux ``/proc``; 0 where it cannot be read).

    The demo's own clock would start after Python and the demo's libraries have loaded,
    a second or two after the operator pressed Enter; the times it prints count from the
    process start instead, so they match what a wall clock shows.
    """
    try:
        uptime = float(Path("/proc/uptime").read_text(encoding="ascii").split()[0])
        stat = Path("/proc/self/stat").read_text(encoding="ascii", errors="replace")
        started = int(stat.rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0
    return max(0.0, uptime - started)


def wall_clock(moment: datetime) -> str:
    """A time of day as the operator's clock shows it, with its time zone."""
    return f"{moment.astimezone():%H:%M:%S %Z}"


async def run_demo() -> None:
    """Run the whole demo; returns when everything is stopped again, exits 1 on failure."""
    logging.getLogger("omemo").setLevel(logging.ERROR)  # expected first-start warnings
    tally = Tally()
    since_start = seconds_since_process_start()
    began = time.monotonic() - since_start
    started_at = utcnow() - timedelta(seconds=since_start)
    console.rule("[bold]xmpp-clinic demo")
    console.print(f"Started at {wall_clock(started_at)}")
    try:
        with tempfile.TemporaryDirectory(prefix="xmpp-clinic-demo-") as tmp:
            async with asyncio.timeout(DEMO_TIMEOUT):
                await story(Path(tmp), tally)
    except (DemoFailed, PhoneError, BotLoginError) as exc:
        console.print(f"[bold red]Demo failed[/]: {exc}")
        raise typer.Exit(1) from None
    except TimeoutError:
        console.print(f"[bold red]Demo failed[/]: not finished within {DEMO_TIMEOUT:.0f} s")
        raise typer.Exit(1) from None
    except Exception as exc:
        console.print(f"[bold red]Demo failed[/]: {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None
    console.print()
    console.print(
        f"[green]Demo finished[/] at {wall_clock(utcnow())}, "
        f"{time.monotonic() - began:.0f} s after it started: "
        f"{tally.approved} devices approved, {tally.decrypted} decryptions by other members, "
        f"{tally.refused} plaintext refused, {tally.caught_up} messages caught up by MAM; "
        "everything stopped.",
        soft_wrap=True,
    )
