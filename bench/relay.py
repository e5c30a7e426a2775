"""Relay benchmark: a 20-member care thread vs the server's own archived MUC.

The same 20 slixmpp clients join a gateway thread and a room of the server's own MUC
(Prosody mod_muc + mod_muc_mam, ejabberd mod_muc + mod_mam), then one member sends N
messages to each with at most WINDOW in flight. Latency is send -> received by all 19
other members; throughput is N over the time to the last delivery. The gateway runs
as its own process (``xmpp-clinic run``), like the server. Run by hand, never in CI:

    .venv/bin/python bench/relay.py --server prosody --messages 500
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from slixmpp import JID, ClientXMPP, Message
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.bots import connect_bot, disconnect_bot
from tests.integration.conftest import write_config
from xmpp_clinic.config import load_settings
from xmpp_clinic.devserver import DevServer, start_server
from xmpp_clinic.registry.model import ObservedDevice
from xmpp_clinic.registry.service import DeviceRegistry
from xmpp_clinic.store import Store
from xmpp_clinic.xmpp.omemo import LEGACY_NS

MEMBERS = 20
PASSWORD = "bench-password"
# An OMEMO-shaped payload, so the gateway's policy accepts it (the server ignores it).
PAYLOAD = (
    '<encrypted xmlns="eu.siacs.conversations.axolotl"><header sid="1">'
    + "".join(f'<key rid="{i + 1}">{"A" * 96}</key>' for i in range(MEMBERS))
    + "<iv>AAAAAAAAAAAAAAAA</iv></header><payload>"
    + "B" * 64
    + "</payload></encrypted>"
)


class Tally:
    """Per-message send time and how many members have received it."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.sent: dict[str, float] = {}
        self.seen: dict[str, int] = {}
        self.done: dict[str, float] = {}
        self.window = asyncio.Semaphore(1)

    def receive(self, message: Message) -> None:
        key = message["id"]
        if key not in self.sent or key in self.done:
            return
        self.seen[key] = self.seen.get(key, 0) + 1
        if self.seen[key] == self.expected:
            self.done[key] = time.perf_counter()
            self.window.release()


async def run_path(room: str, bots: list[ClientXMPP], count: int, window: int) -> dict[str, float]:
    tally = Tally(expected=len(bots) - 1)
    tally.window = asyncio.Semaphore(window)
    sender = bots[0]
    name = f"bench-{room}"
    for bot in bots[1:]:
        bot.register_handler(Callback(name, MatchXPath("{jabber:client}message"), tally.receive))
    start = time.perf_counter()
    for i in range(count):
        await tally.window.acquire()
        message = sender.make_message(mto=JID(room), mtype="groupchat")
        message["id"] = f"{room}-{i}"
        message.append(ET.fromstring(PAYLOAD))
        message["body"] = "This message is OMEMO encrypted."
        tally.sent[message["id"]] = time.perf_counter()
        message.send()
    while len(tally.done) < count:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - start
    for bot in bots[1:]:
        bot.remove_handler(name)
    latencies = sorted(tally.done[k] - tally.sent[k] for k in tally.sent)
    return {
        "msg_s": count / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


async def register_devices(config: Path, users: list[str]) -> None:
    """Member i has OMEMO device i + 1 (the ids in PAYLOAD), approved as "all" mode does.

    The bench clients send OMEMO-shaped stanzas without publishing devices to PEP, so the
    registry learns the devices here instead of by discovery.
    """
    settings = load_settings(config)
    store = Store(settings.store.url)
    try:
        await store.migrate()
        registry = DeviceRegistry(store, settings.policy)
        for i, user in enumerate(users):
            await registry.observe(user, LEGACY_NS, {i + 1: ObservedDevice()})
    finally:
        await store.close()


async def configure_server_room(owner: ClientXMPP, room: str) -> None:
    """Make the server's room persistent and archived (MAM), like a care thread."""
    muc = owner.plugin["xep_0045"]
    form = await muc.get_room_config(JID(room))
    for var in ("muc#roomconfig_persistentroom", "muc#roomconfig_enablearchiving", "mam"):
        if var in form["fields"]:
            form["fields"][var]["value"] = True
    form["type"] = "submit"
    await muc.set_room_config(JID(room), form)


async def bench(server: DevServer, count: int, window: int, workdir: Path) -> None:
    users = server.register_many({f"bench{i}": PASSWORD for i in range(MEMBERS)})
    # Demo/test mode: every device is approved (the bench measures relaying, not approval).
    config = write_config(
        server, workdir, logging={"level": "WARNING"}, policy={"device_approval": "all"}
    )
    env = {**os.environ, "XMPP_CLINIC_CONFIG": str(config)}
    cli = [sys.executable, "-m", "xmpp_clinic"]
    members = [a for u in users for a in ("--member", u)]
    subprocess.run(
        [*cli, "threads", "create", "bench", "--title", "Bench", *members], env=env, check=True
    )
    await register_devices(config, users)
    gateway = subprocess.Popen([*cli, "run"], env=env, stderr=subprocess.DEVNULL)
    bots: list[ClientXMPP] = []
    try:
        bots = list(await asyncio.gather(*(
            connect_bot(u, PASSWORD, server, plugins=("xep_0030", "xep_0045", "xep_0004"))
            for u in users
        )))  # fmt: skip
        thread = f"bench@{server.component_jid}"
        room = f"bench@{server.muc_domain}"
        await asyncio.sleep(1.0)  # let the gateway connect
        for _attempt in range(50):
            try:
                await (
                    bots[0]
                    .plugin["xep_0045"]
                    .join_muc_wait(JID(thread), "m0", maxstanzas=0, timeout=5)
                )
                break
            except Exception:
                await asyncio.sleep(0.2)
        await bots[0].plugin["xep_0045"].join_muc_wait(JID(room), "m0", maxstanzas=0, timeout=10)
        await configure_server_room(bots[0], room)
        for i, bot in enumerate(bots[1:], 1):
            for target in (thread, room):
                await bot.plugin["xep_0045"].join_muc_wait(
                    JID(target), f"m{i}", maxstanzas=0, timeout=10
                )
        await asyncio.sleep(1.0)
        results = {}
        for label, target in (("server MUC", room), ("gateway", thread)):
            await run_path(target, bots, min(20, count), window)  # warm-up
            results[label] = await run_path(target, bots, count, window)
        report(server.kind, count, window, results)
    finally:
        await asyncio.gather(*(disconnect_bot(b) for b in bots))
        gateway.terminate()
        gateway.wait(10)


def report(kind: str, count: int, window: int, results: dict[str, dict[str, float]]) -> None:
    print(f"\n{kind}: {MEMBERS} members, {count} messages, window {window}")
    print(f"{'path':<12}{'msg/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for label, r in results.items():
        print(f"{label:<12}{r['msg_s']:>10.1f}{r['p50_ms']:>10.1f}{r['p99_ms']:>10.1f}")
    ratio = results["gateway"]["msg_s"] / results["server MUC"]["msg_s"]
    print(f"gateway / server MUC throughput: {ratio:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("prosody", "ejabberd", "both"), default="both")
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--window", type=int, default=20, help="messages in flight")
    args = parser.parse_args()
    kinds = ("prosody", "ejabberd") if args.server == "both" else (args.server,)
    for kind in kinds:
        with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as tmp:
            server = start_server(kind, Path(tmp) / "server")
            try:
                workdir = Path(tmp) / "gateway"
                workdir.mkdir()
                asyncio.run(bench(server, args.messages, args.window, workdir))
            finally:
                server.stop()


if __name__ == "__main__":
    main()
