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
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from slixmpp import JID, ClientXMPP

from xmpp_clinic.config import load_settings
from xmpp_clinic.dev.bots import connect_bot, disconnect_bot
from xmpp_clinic.dev.servers import DevServer, ServerKind, start_server, write_gateway_config
from xmpp_clinic.omemo import LEGACY_NS
from xmpp_clinic.registry.model import ObservedDevice
from xmpp_clinic.registry.service import DeviceRegistry
from xmpp_clinic.store import Store

MEMBERS = 20
DELIVERY_TIMEOUT = 60.0  # seconds, plus 0.2 s per message, before a run is given up
PASSWORD = "bench-password"
# An OMEMO-shaped payload, so the gateway's policy accepts it (the server ignores it).
PAYLOAD = (
    '<encrypted xmlns="eu.siacs.conversations.axolotl"><header sid="1">'
    # Keys start with byte 0x33 ("Mw") and are 72 bytes: the size of a legacy OMEMO key.
    + "".join(f'<key rid="{i + 1}">Mw{"A" * 94}</key>' for i in range(MEMBERS))
    + "<iv>AAAAAAAAAAAAAAAA</iv></header><payload>"
    + "B" * 64
    + "</payload></encrypted>"
)


MESSAGE_TAG = b"<message"
ID_ATTR = re.compile(rb"""\sid=["']([^"']*)["']""")


class Tally:
    """Per-message send time and how many members have received it."""

    def __init__(self, expected: int, window: int, count: int) -> None:
        self.expected = expected
        self.count = count
        self.sent: dict[str, float] = {}
        self.seen: dict[str, int] = {}
        self.done: dict[str, float] = {}
        self.window = asyncio.Semaphore(window)
        self.all_done = asyncio.Event()

    def receive(self, key: str) -> None:
        if key not in self.sent or key in self.done:
            return
        self.seen[key] = self.seen.get(key, 0) + 1
        if self.seen[key] == self.expected:
            self.done[key] = time.perf_counter()
            self.window.release()
            if len(self.done) == self.count:
                self.all_done.set()


class RawCounter(asyncio.Protocol):
    """Takes over a joined client's stream: reports the id of each ``<message>`` received.

    Installed with the transport's ``set_protocol`` (public asyncio API) once a client
    has joined both rooms; only the start tag is read, so the clients cost little next to
    the server and the gateway. The connection's end is passed on to slixmpp.
    """

    def __init__(self, bot: ClientXMPP) -> None:
        self.bot = bot
        self.on_id: Callable[[str], None] | None = None
        self._buffer = b""

    def data_received(self, data: bytes) -> None:
        buffer, pos = self._buffer + data, 0
        while (start := buffer.find(MESSAGE_TAG, pos)) >= 0:
            end = buffer.find(b">", start)
            if end < 0:  # the start tag continues in the next chunk
                self._buffer = buffer[start:]
                return
            match = ID_ATTR.search(buffer, start, end)
            if match is not None and self.on_id is not None:
                self.on_id(match.group(1).decode())
            pos = end + 1
        # Keep what could be the beginning of a start tag cut by the chunk boundary.
        self._buffer = buffer[max(pos, len(buffer) - len(MESSAGE_TAG) + 1) :]

    def eof_received(self) -> bool | None:
        self.bot.eof_received()
        return None  # close the transport, as slixmpp's own protocol does

    def connection_lost(self, exc: Exception | None) -> None:
        self.bot.connection_lost(exc)


def take_over(bots: list[ClientXMPP]) -> list[RawCounter]:
    counters = []
    for bot in bots:
        assert bot.transport is not None
        counter = RawCounter(bot)
        bot.transport.set_protocol(counter)
        counters.append(counter)
    return counters


def stanza(room: str, key: str) -> str:
    return (
        f'<message to="{room}" type="groupchat" id="{key}" xmlns="jabber:client">'
        f"{PAYLOAD}<body>This message is OMEMO encrypted.</body></message>"
    )


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system) a process has used so far; 0 where it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_pid(server: DevServer) -> int | None:
    """The server's pid, from the pid file each dev server writes."""
    for name in ("prosody.pid", "run/ejabberd.pid"):
        path = server.home / name
        if path.exists():
            return int(path.read_text().split()[0])
    return None


async def run_path(
    room: str,
    sender: ClientXMPP,
    counters: list[RawCounter],
    count: int,
    window: int,
    pids: dict[str, int | None],
) -> dict[str, float]:
    tally = Tally(expected=len(counters), window=window, count=count)
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    for counter in counters:
        counter.on_id = tally.receive
    start = time.perf_counter()
    # Message ids must be id-shaped (the gateway refuses free text in ids, issue 8.2).
    path = re.sub(r"[^A-Za-z0-9]+", "-", room)
    for i in range(count):
        await tally.window.acquire()
        key = f"{path}-{i}"
        tally.sent[key] = time.perf_counter()
        sender.send_raw(stanza(room, key))
    try:  # a refused message is never delivered: say so instead of waiting forever
        await asyncio.wait_for(tally.all_done.wait(), DELIVERY_TIMEOUT + count * 0.2)
    except TimeoutError:
        raise SystemExit(
            f"{room}: {len(tally.done)} of {count} messages reached every member; the rest "
            "were refused or lost (run the gateway with logging.level INFO to see why)"
        ) from None
    elapsed = time.perf_counter() - start
    for counter in counters:
        counter.on_id = None
    latencies = sorted(tally.done[k] - tally.sent[k] for k in tally.sent)
    # CPU ms per message of each process: shows which one limits the path.
    cpu = {
        f"cpu_{name}": 1000 * (cpu_seconds(pid) - cpu_before[name]) / count
        for name, pid in pids.items()
    }
    return {
        "msg_s": count / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        **cpu,
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
    config = write_gateway_config(
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
        await bots[0].plugin["xep_0045"].join_muc_wait(JID(room), "m0", maxstanzas=0, timeout=10)
        await configure_server_room(bots[0], room)
        for i, bot in enumerate(bots[1:], 1):
            for target in (thread, room):
                await bot.plugin["xep_0045"].join_muc_wait(
                    JID(target), f"m{i}", maxstanzas=0, timeout=10
                )
        await asyncio.sleep(1.0)  # let join-time presences arrive before the raw counters
        take_over(bots[:1])  # the sender's reflections are not counted
        receivers = take_over(bots[1:])
        pids = {"server": server_pid(server), "gateway": gateway.pid, "clients": os.getpid()}
        results = {}
        for label, target in (("server MUC", room), ("gateway", thread)):
            await run_path(target, bots[0], receivers, min(20, count), window, pids)  # warm-up
            results[label] = await run_path(target, bots[0], receivers, count, window, pids)
        report(server.kind, count, window, results)
    finally:
        await asyncio.gather(*(disconnect_bot(b) for b in bots))
        gateway.terminate()
        gateway.wait(10)


def report(kind: str, count: int, window: int, results: dict[str, dict[str, float]]) -> None:
    print(f"\n{kind}: {MEMBERS} members, {count} messages, window {window}")
    cpu = "CPU ms/msg: server gateway clients"
    print(f"{'path':<12}{'msg/s':>10}{'p50 ms':>10}{'p99 ms':>10}   {cpu}")
    for label, r in results.items():
        print(
            f"{label:<12}{r['msg_s']:>10.1f}{r['p50_ms']:>10.1f}{r['p99_ms']:>10.1f}"
            f"{r['cpu_server']:>18.2f}{r['cpu_gateway']:>8.2f}{r['cpu_clients']:>8.2f}"
        )
    ratio = results["gateway"]["msg_s"] / results["server MUC"]["msg_s"]
    print(f"gateway / server MUC throughput: {ratio:.2f}x")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """The module docstring as written, and every option's default."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; ``--help`` shows the default of every option."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument(
        "--server",
        choices=("prosody", "ejabberd", "both"),
        default="both",
        help="which private server(s) to start and measure",
    )
    parser.add_argument(
        "--messages", type=int, default=500, help="messages sent on each path, after a warm-up"
    )
    parser.add_argument(
        "--window", type=int, default=20, help="messages in flight at most (sent, not yet seen)"
    )
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    kinds: tuple[ServerKind, ...] = ("prosody", "ejabberd")
    if args.server != "both":
        kinds = (args.server,)
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
