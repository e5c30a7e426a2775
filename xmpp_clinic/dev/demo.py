"""``xmpp-clinic demo``: a care thread on the embedded default, start to finish.

Starts a private Prosody on loopback and attaches a gateway with the strictest defaults
and an SQLite store in a temporary folder. Then the story: a clinician's client
discovers the gateway; IT creates a ward thread; four clinicians' phones (slixmpp-omemo,
legacy OMEMO) publish their devices and IT approves them after comparing fingerprints;
the fourth hands over and goes off shift; the three on shift exchange OMEMO messages and
a plaintext message is refused; the fourth comes back and catches up by MAM. Then a long
lab report goes as a part set ("part x of y", II.2) that every phone reassembles, and a
part held back on the way is reported missing, by the phones and by the thread, until it
arrives. The phones send and read parts with :mod:`xmpp_clinic.client`, the library a
hospital integration uses. The CLI command for each IT step is printed. Nothing outside
the temporary folder is touched; everything started here is stopped again. Fictional
people, fictional text.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from xmpp_clinic.client import split_text
from xmpp_clinic.clock import utcnow
from xmpp_clinic.completeness.part_store import PartSets
from xmpp_clinic.completeness.parts import read_marker
from xmpp_clinic.config import Settings, load_settings
from xmpp_clinic.dev.bots import BotLoginError, connect_bot, disconnect_bot
from xmpp_clinic.dev.demo_clients import Decrypted, Phone, PhoneError
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
# Part sets (II.2): the demo splits at 512 bytes (the default is 4000) so that a lab
# report of a readable length needs three parts, and announces a missing part after 2 s.
PARTS = {"max_part_bytes": 512, "timeout_seconds": 2}
LAB_REPORT = "\n".join(
    (
        "Lab report, bed 7 (fictional patient), drawn 06:40, validated 08:15.",
        "Full blood count: Hb 13.2 g/dl, WBC 7.9 /nl, platelets 245 /nl, MCV 88 fl.",
        "Differential: neutrophils 61 %, lymphocytes 28 %, monocytes 7 %, eosinophils 3 %.",
        "Electrolytes: sodium 139 mmol/l, potassium 4.1 mmol/l, chloride 102 mmol/l.",
        "Kidney: creatinine 0.9 mg/dl, eGFR 84 ml/min/1.73m2, urea 32 mg/dl.",
        "Liver: ALT 24 U/l, AST 21 U/l, GGT 30 U/l, bilirubin 0.6 mg/dl.",
        "Inflammation: CRP 4 mg/l (down from 38 mg/l on admission), PCT 0.04 ng/ml.",
        "Coagulation: INR 1.0, aPTT 29 s, fibrinogen 3.1 g/l.",
        "Glucose 96 mg/dl fasting, HbA1c 5.4 %.",
        "Cardiac: troponin T hs 6 ng/l, NT-proBNP 110 pg/ml.",
        "Thyroid: TSH 1.8 mU/l.",
        "Iron: ferritin 96 ng/ml, transferrin saturation 27 %, vitamin B12 410 pg/ml.",
        "Lipids: total cholesterol 182 mg/dl, LDL 104 mg/dl, HDL 55 mg/dl.",
        "Blood gas (venous): pH 7.38, pCO2 44 mmHg, bicarbonate 25 mmol/l, lactate 0.9.",
        "Urine: no leukocytes, no nitrite, no protein, no blood.",
        "Blood cultures from admission: no growth after 5 days.",
        "Comment: all values within reference ranges; no objection to discharge today.",
        "Validated by the laboratory's physician on duty.",
    )
)
DISCHARGE_NOTE = "\n".join(
    (
        "Discharge note, bed 7 (fictional patient), for the family doctor.",
        "Admitted with community-acquired pneumonia of the right lower lobe.",
        "Treated with amoxicillin/clavulanate for 5 days, then amoxicillin by mouth.",
        "Afebrile since day 3; CRP back to normal; chest X-ray improving.",
        "Medication at discharge: amoxicillin 1 g three times a day for 2 more days.",
        "Follow-up: family doctor in one week, chest X-ray in six weeks.",
        "Warning signs explained: fever, shortness of breath, chest pain: come back.",
        "The patient and his daughter have a printed copy of this note.",
        "Sick note issued until the end of next week.",
        "Allergies: none known; no reaction to the antibiotics given on the ward.",
        "Vaccinations: pneumococcal and influenza vaccination recommended once recovered.",
        "Smoking: stopped two years ago; encouraged to stay off.",
        "Mobility: walks the ward corridor unaided; no help needed at home.",
        "Diet: normal; drinks enough; weight stable at 78 kg.",
        "Results still pending: none; all lab values are in the attached report.",
        "Signed for the ward team on behalf of the attending physician.",
    )
)
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
    reassembled: int = 0  # part sets put back together by the other members' phones
    missing_reported: int = 0  # held-back parts the thread announced


def write_demo_config(server: DevServer, directory: Path) -> Path:
    """The demo's gateway config: the defaults plus the hospital's privacy notice (I.1)."""
    privacy = {
        "notice_url": f"https://{server.domain}/privacy/messaging",
        "controller_contact": f"mailto:dpo@{server.domain}",
    }
    return write_gateway_config(server, directory, privacy=privacy, parts=PARTS)


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


def _size(text: str) -> str:
    lines = text.count("\n") + 1
    return f"{lines} lines, {len(text.encode('utf-8')):,} bytes"


def _parts_line(got: Decrypted) -> str:
    """ "part 1 of 3, part 3 of 3, part 2 of 3": the parts in the order they came in."""
    return ", ".join(f"part {n} of {got.of}" for n in got.arrived)


async def take_whole(
    phones: list[Phone], sender: Phone, text: str, parts: int, tally: Tally
) -> None:
    """Every phone gets ``text`` whole from ``sender``'s part set; print how it came in."""
    for phone in phones:
        got = await phone.next_message()
        if got.body != text or got.sender != sender.jid or got.of != parts:
            raise DemoFailed(
                f"{phone.name} put together {got.of} part(s) of {len(got.body)} characters "
                f"from {got.sender}, not {sender.name}'s {parts} parts"
            )
        if phone is sender:
            console.print(f"    {phone.name:10} sees its {parts} parts come back")
            continue
        console.print(
            f"    {phone.name:10} {_parts_line(got)} [green]reassembled[/]", soft_wrap=True
        )
        console.print(
            f"    {'':10} [green]{got.body.splitlines()[0]}[/] ... ({_size(got.body)}, as sent)",
            soft_wrap=True,
        )
        tally.reassembled += 1


async def send_lab_report(
    thread: str, sender: Phone, late: Phone, phones: list[Phone], tally: Tally
) -> None:
    step("8. A long lab report goes as a part set (II.2: part x of y)")
    await late.join(thread)
    console.print(f"  {late.name} rejoins the thread.")
    limit = sender.max_part_bytes
    pieces = len(split_text(LAB_REPORT, limit))
    console.print(
        f"  parts.max_part_bytes = {limit} in this demo (default 4000): {sender.name}'s phone "
        f"splits the report ({_size(LAB_REPORT)}) into {pieces} parts, encrypts each with "
        "OMEMO for every member and marks it beside the OMEMO element (all the gateway "
        "can read of it):",
        soft_wrap=True,
    )
    console.print(
        f"    [cyan]<part xmlns='urn:xmpp-clinic:parts:0' set='...' n='1' of='{pieces}'/>[/]",
        soft_wrap=True,
    )
    console.print(
        f"  [bold]{sender.name}[/] sends (encrypted, {pieces} parts): {LAB_REPORT.splitlines()[0]}"
    )
    sent = await sender.send_encrypted(thread, LAB_REPORT)
    if sent != pieces or pieces < 2:
        raise DemoFailed(f"the lab report went as {sent} message(s), not as {pieces} parts")
    await take_whole(phones, sender, LAB_REPORT, pieces, tally)


async def wait_missing(phone: Phone, expected: list[str], timeout: float = 15.0) -> None:
    """Wait until ``phone``'s reassembler names exactly ``expected`` as missing."""
    deadline = time.monotonic() + timeout
    while phone.missing() != expected:
        if time.monotonic() > deadline:
            raise DemoFailed(f"{phone.name} reports {phone.missing() or 'nothing'} missing")
        await asyncio.sleep(0.05)


async def notice_on(phone: Phone, starts: str, timeout: float = 15.0) -> str:
    """The next notice of the thread on ``phone`` that starts with ``starts``."""
    deadline = time.monotonic() + timeout
    while True:
        notice = await phone.next_notice(max(0.1, deadline - time.monotonic()))
        if notice.startswith(starts):
            return notice


async def recorded_complete(sets: PartSets, set_id: str, timeout: float = 10.0) -> None:
    """Wait until the gateway's store has the set complete with both notices given."""
    deadline = time.monotonic() + timeout
    while True:
        found = await sets.get(THREAD, set_id)
        if found is not None and found.complete and found.complete_noticed:
            return
        if time.monotonic() > deadline:
            raise DemoFailed("the gateway's store does not record the part set as complete")
        await asyncio.sleep(0.1)


async def lose_a_part(
    thread: str, sender: Phone, phones: list[Phone], tally: Tally, sets: PartSets
) -> None:
    step("9. A part that does not arrive is reported, and its late arrival completes the set")
    messages = await sender.encrypt(thread, DISCHARGE_NOTE)
    marker = read_marker(messages[0].xml, len(messages)) if messages else None
    if len(messages) != 3 or marker is None:
        raise DemoFailed(f"the discharge note went as {len(messages)} message(s), not 3 parts")
    console.print(
        f"  [bold]{sender.name}[/] sends a discharge note ({_size(DISCHARGE_NOTE)}) as 3 parts; "
        "part 2 is held back on the way, as a bad connection would.",
        soft_wrap=True,
    )
    messages[0].send()
    messages[2].send()
    others = [phone for phone in phones if phone is not sender]
    for phone in others:
        await wait_missing(phone, ["part 2 of 3 missing"])
        console.print(f"    {phone.name:10} has parts 1 and 3: [yellow]part 2 of 3 missing[/]")
    timeout = PARTS["timeout_seconds"]
    console.print(f"  After parts.timeout_seconds ({timeout} s here) the thread tells everyone:")
    for phone in phones:
        notice = await notice_on(phone, "Part 2 of 3 of ")
        console.print(f"    {phone.name:10} sees: [yellow]{notice}[/]", soft_wrap=True)
    tally.missing_reported += 1
    console.print("  Part 2 arrives late:")
    messages[1].send()
    await take_whole(phones, sender, DISCHARGE_NOTE, 3, tally)
    for phone in phones:
        notice = await notice_on(phone, "All 3 parts of ")
        console.print(f"    {phone.name:10} sees: [green]{notice}[/]", soft_wrap=True)
    left = [f"{phone.name}: {phone.missing()}" for phone in phones if phone.missing()]
    if left:
        raise DemoFailed(f"parts still missing after the late part: {'; '.join(left)}")
    await recorded_complete(sets, marker.set_id)
    console.print(
        "  The gateway kept the set's state in its store (it survives a restart): "
        "3 of 3 parts, both notices given. It never saw the note's text.",
        soft_wrap=True,
    )


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
        Phone(name, name.split()[-1], jid, password, max_part_bytes=settings.parts.max_part_bytes)
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
        await send_lab_report(thread_jid, phones[2], late, phones, tally)
        await lose_a_part(thread_jid, phones[0], phones, tally, PartSets(store))
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


def _folder(keep: Path | None) -> contextlib.AbstractContextManager[str]:
    """Where the demo runs: a temporary folder, or ``keep`` (new or empty) that stays."""
    if keep is None:
        return tempfile.TemporaryDirectory(prefix="xmpp-clinic-demo-")
    keep.mkdir(parents=True, exist_ok=True)
    if any(keep.iterdir()):
        raise DemoFailed(f"--keep {keep}: the folder is not empty; give a new or empty one")
    return contextlib.nullcontext(str(keep.resolve()))


async def run_demo(keep: Path | None = None) -> None:
    """Run the whole demo; returns when everything is stopped again, exits 1 on failure.

    With ``keep`` the demo's config, store and keys stay in that folder, so
    ``xmpp-clinic report`` or ``audit verify`` can be run on what the demo did.
    """
    logging.getLogger("omemo").setLevel(logging.ERROR)  # expected first-start warnings
    tally = Tally()
    since_start = seconds_since_process_start()
    began = time.monotonic() - since_start
    started_at = utcnow() - timedelta(seconds=since_start)
    console.rule("[bold]xmpp-clinic demo")
    console.print(f"Started at {wall_clock(started_at)}")
    try:
        with _folder(keep) as tmp:
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
        f"{tally.refused} plaintext refused, {tally.caught_up} messages caught up by MAM, "
        f"{tally.reassembled} part sets reassembled by other members, "
        f"{tally.missing_reported} missing part announced; everything stopped.",
        soft_wrap=True,
    )
    if keep is not None:
        config = keep.resolve() / "xmpp-clinic.toml"
        console.print(
            f"Kept in {keep}: try [cyan]xmpp-clinic report --config {config}[/] "
            f"or [cyan]xmpp-clinic audit verify --config {config}[/]",
            soft_wrap=True,
        )
