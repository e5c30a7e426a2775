"""Soak (issue 8): minutes of mixed legitimate and hostile traffic through the gateway.

A private server on loopback, the gateway as its own ``xmpp-clinic run`` process, one
care thread. Legitimate members send OMEMO-shaped messages at a steady rate while
Mallory (a joined member) and Eve (an outsider) interleave hostile stanzas drawn from
tests/fuzz/corpus_stanzas.py: emoji addresses, free-text ids, words as ciphertext,
500-deep nesting, presence with status text, ad-hoc session floods and oversized
titles. Every hostile stanza is bounded in count and rate and goes only to loopback.

Invariants, checked at the end (exit status 1 if one fails):
- 0 component disconnects (the gateway logs "component online" once, never a loss);
- 0 acknowledged messages missing from the archive (every reflection's stanza-id is in
  thread_messages);
- the gateway's RSS flat within 10 %: last-minute median vs first-minute median.

Run by hand, never in CI:

    .venv/bin/python bench/soak.py --server ejabberd --minutes 10
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from relay import HelpFormatter, register_devices  # bench/ is on sys.path when run
from slixmpp import JID, ClientXMPP
from slixmpp.stanza import Message

from xmpp_clinic.dev.bots import connect_bot, disconnect_bot
from xmpp_clinic.dev.servers import DevServer, ServerKind, start_server, write_gateway_config

LEGIT = 5  # legitimate members; Mallory is member LEGIT (device LEGIT + 1)
PASSWORD = "soak-password"
SAMPLE_EVERY = 10.0  # seconds between RSS samples
DRAIN = 15.0  # seconds to wait for the last reflections
SID = "urn:xmpp:sid:0"
EMOJI = "\U0001f489"
MUC = "http://jabber.org/protocol/muc"
COMMANDS = "http://jabber.org/protocol/commands"
PLUGINS = ("xep_0030", "xep_0045", "xep_0004")


def payload(members: int, sender_device: int) -> str:
    """An OMEMO-shaped element with one 72-byte key per member device (1..members)."""
    keys = "".join(f'<key rid="{i + 1}">Mw{"A" * 94}</key>' for i in range(members))
    return (
        f'<encrypted xmlns="eu.siacs.conversations.axolotl"><header sid="{sender_device}">'
        f"{keys}<iv>AAAAAAAAAAAAAAAA</iv></header><payload>{'B' * 64}</payload></encrypted>"
    )


def deep(depth: int) -> str:
    return "<x xmlns='urn:example:deep'>" * depth + "soak" + "</x>" * depth


def hostile_stanzas(thread: str, component: str, omemo: str) -> list[tuple[str, str]]:
    """(sender, stanza template with ``{id}``) pairs, after the fuzz corpus's findings."""
    words = "Patient Hans Mueller K 6 1 bed 12 please review"
    msg = f"<message to='{thread}' type='groupchat' id='{{id}}'>"
    title = "T" * 5000
    create = (
        f"<iq type='set' to='{component}' id='{{id}}'><command xmlns='{COMMANDS}' "
        "node='create-thread' action='execute'><x xmlns='jabber:x:data' type='submit'>"
        f"<field var='title'><value>{title}</value></field></x></command></iq>"
    )
    return [
        ("eve", f"<presence to='{thread}/{EMOJI}x' id='{{id}}'><x xmlns='{MUC}'/></presence>"),
        ("mallory", f"<message to='{EMOJI}x@{component}' type='groupchat' id='{{id}}'>"
         f"{omemo}</message>"),
        ("mallory", f"<message to='{thread}' type='groupchat' id='Patient Hans Mueller'>"
         f"{omemo}</message>"),
        ("mallory", f"{msg}{omemo}<thread>{words}</thread></message>"),
        ("mallory", f"{msg}{omemo}<origin-id xmlns='{SID}' id='{words}'/></message>"),
        ("mallory", f"{msg}{omemo.replace('B' * 64, words)}</message>"),
        ("mallory", f"{msg}{omemo}{deep(500)}</message>"),
        ("mallory", f"<presence to='{thread}/Mallory' id='{{id}}'>{deep(500)}</presence>"),
        ("mallory", f"<presence to='{thread}/Mallory' id='{{id}}'>"
         f"<status>{words}</status></presence>"),
        ("eve", f"<presence to='{thread}/Eve' id='{{id}}'><x xmlns='{MUC}'/>"
         f"<status>{words}</status></presence>"),
        ("mallory", create),
    ]  # fmt: skip


def flood(component: str, count: int, prefix: str) -> list[str]:
    """``count`` ad-hoc sessions opened and never finished."""
    return [
        f"<iq type='set' to='{component}' id='{prefix}-{i}'><command xmlns='{COMMANDS}' "
        "node='create-thread' action='execute'/></iq>"
        for i in range(count)
    ]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Acks:
    """Each legitimate message's id -> the stanza-id of its reflection to the sender."""

    def __init__(self) -> None:
        self.sent: set[str] = set()
        self.acked: dict[str, str] = {}

    def watch(self, bot: ClientXMPP, thread: str, nick: str) -> None:
        def on_message(message: Message) -> None:
            if message["from"].bare != thread or message["from"].resource != nick:
                return
            key = message["id"]
            sid = message.xml.find(f"{{{SID}}}stanza-id")
            if key in self.sent and sid is not None and sid.get("by") == thread:
                self.acked[key] = sid.get("id", "")

        bot.add_event_handler("groupchat_message", on_message)


async def legit_sender(
    bot: ClientXMPP, index: int, thread: str, omemo: str, acks: Acks, stop: float, rate: float
) -> None:
    await asyncio.sleep(index / (LEGIT * rate))  # spread the members over the period
    for n in itertools.count():
        if time.monotonic() >= stop:
            return
        key = f"soak-{index}-{n}"
        acks.sent.add(key)
        bot.send_raw(
            f"<message to='{thread}' type='groupchat' id='{key}'>{omemo}"
            "<body>This message is OMEMO encrypted.</body></message>"
        )
        await asyncio.sleep(1 / rate)


async def hostile_sender(
    bots: dict[str, ClientXMPP], stanzas: list[tuple[str, str]], component: str, stop: float
) -> dict[str, int]:
    counts = {"hostile": 0, "flood": 0}
    for n in itertools.count():
        if time.monotonic() >= stop:
            return counts
        who, template = stanzas[n % len(stanzas)]
        bots[who].send_raw(template.replace("{id}", f"h{n}"))
        counts["hostile"] += 1
        if n % 60 == 59:  # every ~30 s, a burst of 25 unfinished ad-hoc sessions
            for stanza in flood(component, 25, f"f{n}"):
                bots["eve"].send_raw(stanza)
                counts["flood"] += 1
        await asyncio.sleep(0.5)
    return counts


async def soak(server: DevServer, minutes: float, rate: float, workdir: Path) -> int:
    names = [f"legit{i}" for i in range(LEGIT)] + ["mallory"]
    users = server.register_many({n: PASSWORD for n in [*names, "eve"]})
    members, eve_jid = users[:-1], users[-1]
    config = write_gateway_config(
        server, workdir, logging={"level": "INFO"}, policy={"device_approval": "all"}
    )
    env = {**os.environ, "XMPP_CLINIC_CONFIG": str(config)}
    cli = [sys.executable, "-m", "xmpp_clinic"]
    member_args = [a for u in members for a in ("--member", u)]
    subprocess.run(
        [*cli, "threads", "create", "soak", "--title", "Soak", *member_args], env=env, check=True
    )
    await register_devices(config, members)
    log_path = workdir / "gateway.log"
    with log_path.open("wb") as log_file:
        gateway = subprocess.Popen([*cli, "run"], env=env, stderr=log_file, stdout=log_file)
        try:
            return await drive(server, gateway, members, eve_jid, minutes, rate, workdir)
        finally:
            gateway.terminate()
            gateway.wait(20)


async def drive(
    server: DevServer,
    gateway: subprocess.Popen[bytes],
    members: list[str],
    eve_jid: str,
    minutes: float,
    rate: float,
    workdir: Path,
) -> int:
    thread = f"soak@{server.component_jid}"
    component = str(server.component_jid)
    omemo = payload(len(members), LEGIT + 1)  # Mallory's device
    bots = list(
        await asyncio.gather(
            *(connect_bot(u, PASSWORD, server, plugins=PLUGINS) for u in [*members, eve_jid])
        )
    )
    lost: list[str] = []
    for bot in bots:
        bot.add_event_handler("disconnected", lambda _e, b=bot: lost.append(str(b.boundjid)))
    acks = Acks()
    try:
        for _attempt in range(50):  # until the gateway has connected to the server
            try:
                await (
                    bots[0]
                    .plugin["xep_0045"]
                    .join_muc_wait(JID(thread), "m0", maxstanzas=0, timeout=5)
                )
                break
            except Exception:
                await asyncio.sleep(0.2)
        for i, bot in enumerate(bots[1 : len(members)], 1):
            nick = "Mallory" if i == LEGIT else f"m{i}"
            await bot.plugin["xep_0045"].join_muc_wait(JID(thread), nick, maxstanzas=0, timeout=10)
        for i in range(LEGIT):
            acks.watch(bots[i], thread, f"m{i}")
        start = time.monotonic()
        stop = start + minutes * 60
        senders = [
            legit_sender(bots[i], i, thread, payload(len(members), i + 1), acks, stop, rate)
            for i in range(LEGIT)
        ]
        named = {"mallory": bots[LEGIT], "eve": bots[-1]}
        hostile = asyncio.ensure_future(
            hostile_sender(named, hostile_stanzas(thread, component, omemo), component, stop)
        )
        samples: list[tuple[float, int]] = []

        async def sample() -> None:
            while time.monotonic() < stop:
                samples.append((time.monotonic() - start, rss_kib(gateway.pid)))
                await asyncio.sleep(SAMPLE_EVERY)
            samples.append((time.monotonic() - start, rss_kib(gateway.pid)))

        await asyncio.gather(*senders, sample())
        counts = await hostile
        elapsed = time.monotonic() - start
        drain_until = time.monotonic() + DRAIN
        while len(acks.acked) < len(acks.sent) and time.monotonic() < drain_until:
            await asyncio.sleep(0.5)
    finally:
        alive = gateway.poll() is None
        dropped = len(lost)  # disconnect_bot below adds one per bot
        await asyncio.gather(*(disconnect_bot(b) for b in bots))
    return report(server.kind, workdir, acks, samples, counts, elapsed, dropped, alive, minutes)


def report(
    kind: str,
    workdir: Path,
    acks: Acks,
    samples: list[tuple[float, int]],
    counts: dict[str, int],
    elapsed: float,
    dropped: int,
    alive: bool,
    minutes: float,
) -> int:
    log = (workdir / "gateway.log").read_text(errors="replace")
    Path(tempfile.gettempdir(), f"soak-{kind}-gateway.log").write_text(log)  # kept to read
    online = log.count("component online")
    losses = log.count("component connection lost")
    with sqlite3.connect(workdir / "xmpp-clinic.db") as db:
        archived = {row[0] for row in db.execute("SELECT stanza_id FROM thread_messages")}
    missing = [k for k, sid in acks.acked.items() if sid not in archived]
    first = statistics.median(r for t, r in samples if t <= 60)
    last = statistics.median(r for t, r in samples if t >= elapsed - 60)
    growth = (last - first) / first
    checks = {
        "gateway alive at the end": alive,
        "component disconnects == 0": online == 1 and losses == 0,
        "every legitimate message acked": len(acks.acked) == len(acks.sent),
        "acked messages missing from archive == 0": not missing,
        "RSS flat within 10 %": abs(growth) <= 0.10,
    }
    print(f"\nsoak on {kind}: {minutes:g} min, {LEGIT} legitimate senders + Mallory + Eve")
    rows = [
        ("legitimate sent", len(acks.sent)),
        ("legitimate acked (stanza-id)", len(acks.acked)),
        ("legitimate msg/s (acked)", f"{len(acks.acked) / elapsed:.2f}"),
        ("hostile stanzas", counts["hostile"]),
        ("ad-hoc flood iqs", counts["flood"]),
        ("'component online' lines", online),
        ("'connection lost' lines", losses),
        ("client disconnects (bots)", dropped),
        ("acked missing from archive", len(missing)),
        ("RSS first-minute median KiB", first),
        ("RSS last-minute median KiB", last),
        ("RSS max KiB", max(r for _, r in samples)),
        ("RSS change", f"{100 * growth:+.1f} %"),
    ]
    for label, value in rows:
        print(f"{label:<32}{value!s:>14}")
    for label, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {label}")
    return 0 if all(checks.values()) else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; ``--help`` shows the default of every option."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument(
        "--server", choices=("prosody", "ejabberd"), default="ejabberd", help="private server"
    )
    parser.add_argument("--minutes", type=float, default=10, help="length of the traffic")
    parser.add_argument(
        "--rate", type=float, default=1.0, help="messages per second per legitimate sender"
    )
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    kind: ServerKind = args.server
    with tempfile.TemporaryDirectory(prefix=f"soak-{kind}-") as tmp:
        server = start_server(kind, Path(tmp) / "server")
        try:
            workdir = Path(tmp) / "gateway"
            workdir.mkdir()
            status = asyncio.run(soak(server, args.minutes, args.rate, workdir))
        finally:
            server.stop()
    sys.exit(status)


if __name__ == "__main__":
    main()
