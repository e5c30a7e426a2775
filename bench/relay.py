"""Relay benchmark: care threads vs the server's own MUC with each archive storage.

One private server per kind (bench/relay_servers.py) runs, in ONE process, a MUC service
per archive storage (``memory``, ``internal``, ``sql`` on SQLite) and two gateway
components; two ``xmpp-clinic run`` processes serve the same care threads, one with its
store on SQLite and one on PostgreSQL. For each thread size (``--members``) the same
slixmpp clients join a room on each MUC service and the thread on each gateway; member 0
then sends N messages on each path in turn, with at most WINDOW in flight, or with
``--rate`` at a fixed rate for ``--seconds`` (offered load). Latency is send -> received
by every other member; throughput is N over the time to the last delivery. Run by hand,
never in CI:

    .venv/bin/python bench/relay.py --server both --members 5,20,100 --messages 300
    .venv/bin/python bench/relay.py --server ejabberd --members 20 --rate 200 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from slixmpp import JID, ClientXMPP

sys.path.insert(0, str(Path(__file__).parent))
from relay_servers import (
    STORAGE_NOTES,
    STORAGES,
    Storage,
    muc_domains,
    pg_component_jid,
    pg_component_port,
    pg_component_secret,
    room_archived,
    start_bench_server,
)

from xmpp_clinic.config import load_settings
from xmpp_clinic.dev.bots import connect_bot, disconnect_bot
from xmpp_clinic.dev.servers import DevServer, ServerKind, write_gateway_config
from xmpp_clinic.omemo import LEGACY_NS
from xmpp_clinic.registry.model import ObservedDevice
from xmpp_clinic.registry.service import DeviceRegistry
from xmpp_clinic.store import Store

MEMBERS = 20  # the default thread size (purge.py and mam.py use this payload too)
DELIVERY_TIMEOUT = 60.0  # seconds, plus 0.2 s per message, before a run is given up
DRAIN_SECONDS = 10.0  # offered load: how long after the last send deliveries may come
BACKLOG_SECONDS = 5.0  # offered load: a path this far behind is saturated; sending stops
PASSWORD = "bench-password"
PG_ADMIN = os.environ.get("XMPP_CLINIC_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
GATEWAY_STORES = ("sqlite", "postgresql")
LOG_LEVEL = os.environ.get("XMPP_CLINIC_BENCH_LOG", "WARNING")  # the gateways' log level


@functools.cache
def payload(members: int) -> str:
    """An OMEMO-shaped payload with one key per member (member i has device i + 1).

    The gateway's policy accepts it; the server ignores it. Keys start with byte 0x33
    ("Mw") and are 72 bytes: the size of a legacy OMEMO key.
    """
    return (
        '<encrypted xmlns="eu.siacs.conversations.axolotl"><header sid="1">'
        + "".join(f'<key rid="{i + 1}">Mw{"A" * 94}</key>' for i in range(members))
        + "<iv>AAAAAAAAAAAAAAAA</iv></header><payload>"
        + "B" * 64
        + "</payload></encrypted>"
    )


PAYLOAD = payload(MEMBERS)

MESSAGE_TAG = b"<message"
PRESENCE_TAG = b"<presence"
ID_ATTR = re.compile(rb"""\sid=["']([^"']*)["']""")
FROM_ATTR = re.compile(rb"""\sfrom=["']([^"']*)["']""")
TYPE_ATTR = re.compile(rb"""\stype=["']([^"']*)["']""")


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
    has joined every room; only the start tag is read, so the clients cost little next
    to the server and the gateway. The connection's end is passed on to slixmpp.
    """

    def __init__(self, bot: ClientXMPP) -> None:
        self.bot = bot
        self.on_id: Callable[[str], None] | None = None
        self.on_presence: Callable[[str, str], None] | None = None  # (from, type)
        self._buffer = b""

    def data_received(self, data: bytes) -> None:
        buffer, pos = self._buffer + data, 0
        while True:
            found = (buffer.find(MESSAGE_TAG, pos), buffer.find(PRESENCE_TAG, pos))
            start = min((i for i in found if i >= 0), default=-1)
            if start < 0:
                break
            end = buffer.find(b">", start)
            if end < 0:  # the start tag continues in the next chunk
                self._buffer = buffer[start:]
                return
            if buffer.startswith(MESSAGE_TAG, start):
                match = ID_ATTR.search(buffer, start, end)
                if match is not None and self.on_id is not None:
                    self.on_id(match.group(1).decode())
            elif self.on_presence is not None:
                sender = FROM_ATTR.search(buffer, start, end)
                kind = TYPE_ATTR.search(buffer, start, end)
                self.on_presence(
                    sender.group(1).decode() if sender else "",
                    kind.group(1).decode() if kind else "",
                )
            pos = end + 1
        # Keep what could be the beginning of a start tag cut by the chunk boundary.
        self._buffer = buffer[max(pos, len(buffer) - len(PRESENCE_TAG) + 1) :]

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


def stanza(room: str, key: str, members: int = MEMBERS) -> str:
    return (
        f'<message to="{room}" type="groupchat" id="{key}" xmlns="jabber:client">'
        f"{payload(members)}<body>This message is OMEMO encrypted.</body></message>"
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


# -- the paths ---------------------------------------------------------------------------


@dataclass
class Gateway:
    """One ``xmpp-clinic run`` process with its store (SQLite or PostgreSQL)."""

    store: str
    component: str
    config: Path
    pg_database: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def label(self) -> str:
        return "gw SQLite" if self.store == "sqlite" else "gw PG"


@dataclass
class Route:
    """One path a message can take: a room of a server MUC, or a gateway thread."""

    label: str
    target: str
    storage: Storage | None = None  # server MUC paths
    gateway: Gateway | None = None  # gateway paths
    archived: bool = True


@dataclass
class CpuMeter:
    """CPU seconds of the server, the path's gateway, its PostgreSQL backends and us.

    On a server MUC path, ``gateway`` is the sum of all gateways (they should be idle).
    """

    server: int | None
    gateway: Gateway | None
    idle: list[Gateway] = field(default_factory=list)
    before: dict[str, float] = field(default_factory=dict)
    db_before: dict[int, float] = field(default_factory=dict)

    async def start(self) -> None:
        self.before = self._own()
        self.db_before = {pid: cpu_seconds(pid) for pid in await self._db_pids()}

    async def per_message(self, count: int) -> dict[str, float]:
        after = self._own()
        cpu = {f"cpu_{k}": 1000 * (after[k] - self.before[k]) / count for k in after}
        db = sum(cpu_seconds(p) - self.db_before.get(p, 0.0) for p in await self._db_pids())
        cpu["cpu_db"] = 1000 * db / count
        return cpu

    def _own(self) -> dict[str, float]:
        # A server MUC path counts every gateway: they should be idle then.
        gateways = [self.gateway] if self.gateway else self.idle
        pids = [g.process.pid for g in gateways if g.process is not None]
        return {
            "server": cpu_seconds(self.server),
            "gateway": sum(cpu_seconds(pid) for pid in pids),
            "clients": cpu_seconds(os.getpid()),
        }

    async def _db_pids(self) -> list[int]:
        if self.gateway is None or self.gateway.pg_database is None:
            return []
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1", self.gateway.pg_database
            )
        finally:
            await conn.close()
        return [row["pid"] for row in rows]


async def wait_idle(pids: list[int | None], longest: float = 90.0) -> float:
    """Wait until none of ``pids`` used over 5 % of a core in the last second.

    After 100 members join, the gateways work for a while (device lists, presences);
    that must not run during the next path's measurement.
    """
    began = time.perf_counter()
    while time.perf_counter() - began < longest:
        before = [cpu_seconds(pid) for pid in pids]
        await asyncio.sleep(1.0)
        if all(cpu_seconds(pid) - b < 0.05 for pid, b in zip(pids, before, strict=True)):
            break
    return time.perf_counter() - began


async def settle(counters: list[RawCounter], quiet: float = 1.0, longest: float = 120.0) -> None:
    """Wait until no message has arrived for ``quiet`` seconds (at most ``longest``)."""
    last = time.perf_counter()

    def arrived(_key: str) -> None:
        nonlocal last
        last = time.perf_counter()

    for counter in counters:
        counter.on_id = arrived
    began = time.perf_counter()
    while time.perf_counter() - last < quiet and time.perf_counter() - began < longest:
        await asyncio.sleep(0.2)
    for counter in counters:
        counter.on_id = None


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def run_path(
    route: Route,
    sender: ClientXMPP,
    counters: list[RawCounter],
    members: int,
    count: int,
    window: int,
    rate: float,
    meter: CpuMeter,
) -> dict[str, float]:
    """Send ``count`` messages on ``route``: windowed, or at ``rate`` per second if > 0."""
    tally = Tally(expected=len(counters), window=window if not rate else count + 1, count=count)
    await meter.start()
    for counter in counters:
        counter.on_id = tally.receive
    # Message ids must be id-shaped (the gateway refuses free text in ids, issue 8.2).
    prefix = re.sub(r"[^A-Za-z0-9]+", "-", route.target) + f"-{time.monotonic_ns()}"
    start, saturated = time.perf_counter(), 0.0
    for i in range(count):
        if rate:
            if i - len(tally.done) > rate * BACKLOG_SECONDS:  # it cannot keep up: stop
                saturated = time.perf_counter() - start
                break
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        else:
            await tally.window.acquire()
        key = f"{prefix}-{i}"
        tally.sent[key] = time.perf_counter()
        sender.send_raw(stanza(route.target, key, members))
    sent = tally.count = len(tally.sent)
    if len(tally.done) == sent:
        tally.all_done.set()
    wait = DRAIN_SECONDS if rate else DELIVERY_TIMEOUT + count * 0.2
    try:  # a refused message is never delivered: say so instead of waiting forever
        await asyncio.wait_for(tally.all_done.wait(), wait)
    except TimeoutError:
        await settle(counters)  # the backlog must not reach the next path's counters
        if not rate:
            raise RuntimeError(
                f"{len(tally.done)} of {count} messages reached every member; the rest were "
                "refused or lost (see the gateway log in the run folder)"
            ) from None
    last = max(tally.done.values(), default=start)
    for counter in counters:
        counter.on_id = None
    latencies = sorted(tally.done.get(k, math.inf) - tally.sent[k] for k in tally.sent)
    return {
        "msg_s": len(tally.done) / (last - start) if tally.done else 0.0,
        "delivered": len(tally.done),
        "sent": sent,
        "offered": count,
        "saturated_s": saturated,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        **await meter.per_message(sent),
    }


# -- set-up ------------------------------------------------------------------------------


async def register_devices(config: Path, users: list[str]) -> None:
    """Member i has OMEMO device i + 1 (the ids in the payload), approved as "all" does.

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


async def pg_create(name: str) -> str:
    """A fresh PostgreSQL database for one run; its asyncpg URL."""
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = PG_ADMIN.replace("postgresql://", "postgresql+asyncpg://", 1).rsplit("/", 1)[0]
    return f"{base}/{name}"


async def pg_drop(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def thread_name(members: int) -> str:
    return f"bench{members}"


async def prepare_gateway(
    server: DevServer,
    store: str,
    workdir: Path,
    users: list[str],
    sizes: list[int],
    profile: Path | None = None,
) -> Gateway:
    """Write the config, create one thread per size and record the members' devices."""
    workdir.mkdir(parents=True, exist_ok=True)
    component, port, pg_database = server.component_jid, server.component_port, None
    url = f"sqlite+aiosqlite:///{workdir / 'xmpp-clinic.db'}"
    if store == "postgresql":
        component, port = pg_component_jid(server), pg_component_port(server)
        pg_database = f"bench_relay_{server.kind}_{os.getpid()}"
        url = await pg_create(pg_database)
    # Demo/test mode: every device is approved (the bench measures relaying, not approval).
    config = write_gateway_config(
        server, workdir, logging={"level": LOG_LEVEL}, policy={"device_approval": "all"},
        xmpp={"component_jid": component, "server_port": port}, store={"url": url},
    )  # fmt: skip
    if store == "postgresql":
        (workdir / "component.secret").write_text(pg_component_secret(server) + "\n")
    gateway = Gateway(store, component, config, pg_database)
    env = {**os.environ, "XMPP_CLINIC_CONFIG": str(config)}
    for size in sizes:
        members = [a for u in users[:size] for a in ("--member", u)]
        subprocess.run(
            [sys.executable, "-m", "xmpp_clinic", "threads", "create", thread_name(size),
             "--title", f"Bench {size}", *members],
            env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    await register_devices(config, users[: max(sizes)])
    log = (workdir / "gateway.log").open("wb")
    command = [sys.executable, "-m", "xmpp_clinic", "run"]
    if profile is not None:  # cProfile writes its file when the gateway exits (SIGTERM)
        profile.mkdir(parents=True, exist_ok=True)
        out = profile / f"gateway-{server.kind}-{store}.prof"
        command[1:1] = ["-m", "cProfile", "-o", str(out.absolute())]
    gateway.process = subprocess.Popen(command, env=env, stderr=log)
    return gateway


async def configure_server_room(owner: ClientXMPP, room: str, archived: bool) -> None:
    """Make the server's room persistent, archived (MAM) or not, like a care thread."""
    muc = owner.plugin["xep_0045"]
    form = await muc.get_room_config(JID(room))
    fields = form.get_fields()  # type: ignore[no-untyped-call]
    if "muc#roomconfig_persistentroom" in fields:
        fields["muc#roomconfig_persistentroom"]["value"] = True
    for var in ("muc#roomconfig_enablearchiving", "mam"):
        if var in fields:
            fields[var]["value"] = archived
    form["type"] = "submit"
    await muc.set_room_config(JID(room), form)


def routes_for(
    server: DevServer, size: int, storages: list[Storage], gateways: list[Gateway]
) -> list[Route]:
    routes = []
    domains = muc_domains(server)
    for storage in storages:
        room = f"{thread_name(size)}-{storage}@{domains[storage]}"
        archived = room_archived(server, storage)
        routes.append(Route(f"MUC {storage}", room, storage=storage, archived=archived))
    for gateway in gateways:
        target = f"{thread_name(size)}@{gateway.component}"
        routes.append(Route(gateway.label, target, gateway=gateway))
    return routes


def join_presence(target: str, nick: str) -> str:
    return (
        f'<presence to="{target}/{nick}" xmlns="jabber:client">'
        '<x xmlns="http://jabber.org/protocol/muc"><history maxstanzas="0"/></x></presence>'
    )


async def join_all(bots: list[ClientXMPP], routes: list[Route]) -> list[RawCounter]:
    """Member 0 joins first (creating and configuring the rooms), then all the others.

    The others' streams are taken over before they join: they send the join presence
    raw and only their own presence back (from room/nick) is looked for, so the N**2
    presences of a big room are not parsed by slixmpp in this one process. Returns the
    receivers' counters (member 0's reflections are not counted).
    """
    owner = bots[0].plugin["xep_0045"]
    for route in routes:
        if route.gateway is not None:
            for _attempt in range(100):  # until the gateway has connected to the server
                try:
                    await owner.join_muc_wait(JID(route.target), "m0", maxstanzas=0, timeout=5)
                    break
                except Exception:
                    await asyncio.sleep(0.2)
            else:
                raise RuntimeError(f"{route.target}: the gateway did not let member 0 join")
        else:
            await owner.join_muc_wait(JID(route.target), "m0", maxstanzas=0, timeout=10)
            await configure_server_room(bots[0], route.target, route.archived)
    take_over(bots[:1])
    receivers = take_over(bots[1:])
    waiting = {f"{route.target}/m{i}" for route in routes for i in range(1, len(bots))}
    refused: list[str] = []
    all_in = asyncio.Event()

    def seen(sender: str, kind: str) -> None:
        if sender in waiting:
            if kind == "error":
                refused.append(sender)
            if kind != "unavailable":
                waiting.discard(sender)
            if not waiting:
                all_in.set()

    for counter in receivers:
        counter.on_presence = seen
    for i, bot in enumerate(bots[1:], 1):
        bot.send_raw("".join(join_presence(route.target, f"m{i}") for route in routes))
    if waiting:
        try:
            await asyncio.wait_for(all_in.wait(), 60 + len(waiting) * 0.05)
        except TimeoutError:
            raise RuntimeError(f"{len(waiting)} joins unanswered, e.g. {min(waiting)}") from None
    if refused:
        raise RuntimeError(f"{len(refused)} joins refused, e.g. {min(refused)}")
    for counter in receivers:
        counter.on_presence = None
    return receivers


Results = dict[tuple[str, int, str], dict[str, float] | str]


async def bench_size(
    server: DevServer,
    users: list[str],
    size: int,
    routes: list[Route],
    args: argparse.Namespace,
    results: Results,
) -> None:
    bots: list[ClientXMPP] = []
    try:
        bots = list(await asyncio.gather(*(
            connect_bot(u, PASSWORD, server, plugins=("xep_0030", "xep_0045", "xep_0004"))
            for u in users[:size]
        )))  # fmt: skip
        began = time.perf_counter()
        receivers = await join_all(bots, routes)
        print(f"  {size} members joined {len(routes)} rooms in {time.perf_counter() - began:.1f} s")
        await asyncio.sleep(1.0)  # let the last join-time presences go by
        gateways = [r.gateway for r in routes if r.gateway is not None]
        idle_in = await wait_idle(
            [server_pid(server)] + [g.process.pid for g in gateways if g.process]
        )
        print(f"  server and gateways idle after {idle_in:.1f} s")
        pid = server_pid(server)
        count = args.rate * args.seconds if args.rate else messages_for(args, size)
        for route in routes:
            idle = [r.gateway for r in routes if r.gateway is not None]
            meter = CpuMeter(pid, route.gateway, idle)
            try:
                warm = min(20, count)  # warm-up, windowed
                await run_path(route, bots[0], receivers, size, warm, args.window, 0, meter)
                results[(server.kind, size, route.label)] = await run_path(
                    route, bots[0], receivers, size, count, args.window, args.rate, meter
                )
            except (RuntimeError, OSError) as error:
                results[(server.kind, size, route.label)] = str(error)
                if route.gateway is not None:  # the run folder goes away: show why here
                    log = route.gateway.config.parent / "gateway.log"
                    print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
            print(f"  {route.label}: {describe(results[(server.kind, size, route.label)])}")
    finally:
        await asyncio.gather(*(disconnect_bot(b) for b in bots))


def describe(result: dict[str, float] | str) -> str:
    if isinstance(result, str):
        return f"FAILED: {result}"
    return (
        f"{result['msg_s']:.1f} msg/s, p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f}"
        f" ms, {int(result['delivered'])}/{int(result['sent'])} delivered"
    )


async def bench(
    server: DevServer, args: argparse.Namespace, workdir: Path, results: Results
) -> None:
    sizes: list[int] = args.members
    users = server.register_many({f"bench{i}": PASSWORD for i in range(max(sizes))})
    gateways: list[Gateway] = []
    try:
        for store in args.gateway_store:
            gateways.append(
                await prepare_gateway(server, store, workdir / store, users, sizes, args.profile)
            )
        for size in sizes:
            routes = routes_for(server, size, args.storage, gateways)
            await bench_size(server, users, size, routes, args, results)
    finally:
        for gateway in gateways:
            if gateway.process is not None:
                gateway.process.terminate()
                gateway.process.wait(10)
            if gateway.pg_database is not None:
                await pg_drop(gateway.pg_database)


# -- report ------------------------------------------------------------------------------


def fmt(value: float, digits: int = 1) -> str:
    if math.isnan(value):
        return "n/a"  # a difference of two saturated paths
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def messages_for(args: argparse.Namespace, size: int) -> int:
    counts: list[int] = args.messages
    return counts[args.members.index(size)] if len(counts) > 1 else counts[0]


def cell(result: dict[str, float] | str | None, key: str, digits: int = 1) -> str:
    if not isinstance(result, dict):
        return "failed" if isinstance(result, str) else "-"
    return fmt(result[key], digits)


def latency(result: dict[str, float] | str | None) -> str:
    return f"{cell(result, 'p50_ms', 0)} / {cell(result, 'p99_ms', 0)}"


def ratio(a: dict[str, float] | str | None, b: dict[str, float] | str | None) -> str:
    if not isinstance(a, dict) or not isinstance(b, dict) or not b["msg_s"]:
        return "-"
    return f"{a['msg_s'] / b['msg_s']:.2f}x"


def report_paths(results: Results, args: argparse.Namespace) -> None:
    """Every path: throughput, latency, CPU ms per message of each process, and the cores
    each process kept busy (CPU ms/msg x msg/s; Prosody and the gateway's event loop
    are saturated near 1.0)."""
    print("\n| server | members | path | msg/s | p50 / p99 ms | delivered | CPU ms/msg: "
          "server | gateway | PostgreSQL | clients | cores busy: server / gateway / PG / "
          "clients |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    names = ("cpu_server", "cpu_gateway", "cpu_db", "cpu_clients")
    for (kind, size, label), r in results.items():
        cores = "-"
        if isinstance(r, dict):
            cores = " / ".join(f"{r[n] * r['msg_s'] / 1000:.2f}" for n in names)
        print(
            f"| {kind} | {size} | {label} | {cell(r, 'msg_s')} | {latency(r)} | "
            + (f"{int(r['delivered'])}/{int(r['sent'])}" if isinstance(r, dict) else "-")
            + " | "
            + " | ".join(cell(r, n, 2) for n in names)
            + f" | {cores} |"
        )


def report_baselines(results: Results, args: argparse.Namespace) -> None:
    """Each server MUC storage side by side with the gateway on SQLite and PostgreSQL."""
    print("\n| server | MUC storage | members | MUC msg/s | gw SQLite msg/s | gw PG msg/s | "
          "SQLite / MUC | PG / MUC | p50 / p99 ms MUC | p50 / p99 gw SQLite | p50 / p99 gw PG "
          "| server CPU ms/msg MUC / gw SQLite / gw PG |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    kinds = dict.fromkeys(kind for kind, _size, _label in results)
    for kind in kinds:
        for storage in args.storage:
            for size in args.members:
                muc = results.get((kind, size, f"MUC {storage}"))
                sq = results.get((kind, size, "gw SQLite"))
                pg = results.get((kind, size, "gw PG"))
                cpus = " / ".join(cell(r, "cpu_server", 2) for r in (muc, sq, pg))
                print(
                    f"| {kind} | {STORAGE_NOTES[kind][storage]} | {size} | {cell(muc, 'msg_s')} "
                    f"| {cell(sq, 'msg_s')} | {cell(pg, 'msg_s')} | {ratio(sq, muc)} | "
                    f"{ratio(pg, muc)} | {latency(muc)} | {latency(sq)} | {latency(pg)} | {cpus} |"
                )


def report_rate(results: Results, args: argparse.Namespace) -> None:
    """Offered load: latency of each path and what the gateway path adds to the MUC's."""
    print(f"\nOffered load {args.rate} msg/s for {args.seconds} s (no window); added = gateway "
          f"minus the server MUC with {args.baseline} storage")  # fmt: skip
    print("| server | members | path | delivered / sent / offered | msg/s | p50 / p99 ms | added "
          "p50 / p99 ms | CPU ms/msg server / gateway / PostgreSQL |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for (kind, size, label), r in results.items():
        base = results.get((kind, size, f"MUC {args.baseline}"))
        added = "-"
        if label.startswith("gw") and isinstance(r, dict) and isinstance(base, dict):
            if r["saturated_s"] or base["saturated_s"]:
                added = "saturated"
            else:
                p50, p99 = r["p50_ms"] - base["p50_ms"], r["p99_ms"] - base["p99_ms"]
                added = f"{fmt(p50, 0)} / {fmt(p99, 0)}"
        delivered = "-"
        if isinstance(r, dict):
            delivered = f"{int(r['delivered'])} / {int(r['sent'])} / {int(r['offered'])}"
            if r["saturated_s"]:
                delivered += f" (over {BACKLOG_SECONDS:.0f} s behind at {r['saturated_s']:.0f} s)"
        cpus = " / ".join(cell(r, k, 2) for k in ("cpu_server", "cpu_gateway", "cpu_db"))
        print(
            f"| {kind} | {size} | {label} | {delivered} | {cell(r, 'msg_s')} | {latency(r)} "
            f"| {added} | {cpus} |"
        )


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """The module docstring as written, and every option's default."""


def csv_of(kind: type, choices: tuple[str, ...] | None = None) -> Callable[[str], list[object]]:
    def parse(text: str) -> list[object]:
        values = [kind(v.strip()) for v in text.split(",") if v.strip()]
        if not values or (choices and any(v not in choices for v in values)):
            raise argparse.ArgumentTypeError(f"expected a comma list of {choices or kind.__name__}")
        return values

    return parse


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
        "--members", type=csv_of(int), default="5,20,100", help="thread sizes, comma list"
    )
    parser.add_argument(
        "--storage",
        type=csv_of(str, STORAGES),
        default=",".join(STORAGES),
        help="server MUC archive storages, comma list (see bench/relay_servers.py)",
    )
    parser.add_argument(
        "--gateway-store",
        type=csv_of(str, GATEWAY_STORES),
        default=",".join(GATEWAY_STORES),
        help="gateway stores, comma list (PostgreSQL: $XMPP_CLINIC_BENCH_PG, a throwaway db)",
    )
    parser.add_argument(
        "--messages",
        type=csv_of(int),
        default="300",
        help="messages sent on each path after a warm-up: one count, or one per --members size",
    )
    parser.add_argument(
        "--window", type=int, default=20, help="messages in flight at most (sent, not yet seen)"
    )
    parser.add_argument(
        "--rate", type=int, default=0, help="offered load in msg/s instead of a window (0: off)"
    )
    parser.add_argument("--seconds", type=int, default=30, help="offered load: how long")
    parser.add_argument(
        "--baseline",
        choices=STORAGES,
        default="sql",
        help="offered load: the MUC storage the gateway's added latency is taken against",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="run each gateway under cProfile and write its stats into this folder",
    )
    args = parser.parse_args(argv)
    if len(args.messages) not in (1, len(args.members)):
        parser.error("--messages: one count, or one per --members size")
    return args


def main() -> None:
    args = parse_args()
    kinds: tuple[ServerKind, ...] = ("prosody", "ejabberd")
    if args.server != "both":
        kinds = (args.server,)
    results: Results = {}
    began = time.perf_counter()
    for kind in kinds:
        with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as tmp:
            load = " ".join(f"{x:.1f}" for x in os.getloadavg())
            print(f"{kind}: starting (load average {load})", flush=True)
            server = start_bench_server(kind, Path(tmp) / "server")
            try:
                asyncio.run(bench(server, args, Path(tmp) / "gateway", results))
            finally:
                server.stop()
    mode = (
        f"rate {args.rate} msg/s, {args.seconds} s"
        if args.rate
        else (f"{','.join(map(str, args.messages))} messages, window {args.window}")
    )
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{mode}; {time.perf_counter() - began:.0f} s in all; load average now {load}")
    report_paths(results, args)
    if args.rate:
        report_rate(results, args)
    else:
        report_baselines(results, args)


if __name__ == "__main__":
    main()
