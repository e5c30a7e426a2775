"""Memory benchmark: the gateway with 10 k threads, 50 k devices, 2 k joined occupants (issue 13).

Seeds the store directly (bulk insert, no XMPP): THREADS care threads, of which
OCCUPANTS / PER_THREAD are "active" (PER_THREAD members each, every one of them joined)
and the rest inactive with 3 to 6 random members each; DEVICES legacy OMEMO device rows
over PERSONS people (each person's first device approved, up to 3 approved, the rest
revoked, expired or pending: inactive rows). Only the occupants get accounts on the
private server. Then ``xmpp-clinic run`` starts (as its own process, default policy:
manual approval, the seeded approvals decide), and the bench records the gateway's
VmRSS (``/proc/<pid>/status``):

- after start: the component is online and the gateway's CPU has gone quiet;
- after joins: every occupant has published its device list and joined its thread;
- every SAMPLE seconds while the occupants send OMEMO-shaped messages (keys for every
  approved device of the thread's members, as relay.py's) at RATE per second in all,
  round-robin over the active threads, for MINUTES.

After joining, each client's stream is handed to relay.py's ``RawCounter``, which only
counts message ids, so 2 k clients fit in one process. Run by hand, never in CI:

    .venv/bin/python bench/memory.py --server ejabberd --minutes 10
    .venv/bin/python bench/memory.py --threads 500 --devices 2000 --occupants 100 --minutes 1

``--trace`` runs the gateway under tracemalloc (bench/memory_probe.py) and prints what
holds its memory at each step (slower and larger: its RSS is not the gateway's).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from slixmpp import JID, ClientXMPP
from slixmpp.exceptions import IqError
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).parent))
from relay import PASSWORD, cpu_seconds, server_pid, take_over

from xmpp_clinic.clock import utcnow
from xmpp_clinic.config import load_settings
from xmpp_clinic.dev.bots import connect_bot, disconnect_bot
from xmpp_clinic.dev.servers import DevServer, ServerKind, make_server, write_gateway_config
from xmpp_clinic.omemo import LEGACY, LEGACY_NS
from xmpp_clinic.store import Store
from xmpp_clinic.store.models.devices import DeviceRecord
from xmpp_clinic.store.models.threads import Member, Thread

CHUNK = 5000  # rows per INSERT
FIRST_DEVICE_ID = 1_000_000  # device d has id FIRST_DEVICE_ID + d: unique over all people
MAX_APPROVED = 3  # policy.max_devices_per_person's default
JOIN_TIMEOUT = 120.0
GRACE = 15.0  # seconds after the last message for deliveries still in flight
# The shape of relay.py's PAYLOAD: a 72-byte legacy key per recipient device.
KEY = f"Mw{'A' * 94}"


@dataclass
class Layout:
    """Who is in which thread and which devices each person has (all seeded)."""

    domain: str
    persons: int
    members: list[list[int]]  # thread index -> person indexes, the first is the owner
    active: int  # threads 0 .. active - 1 are joined and talk
    devices: list[tuple[int, int, str, bool]]  # (person, device id, state, announced)
    approved: dict[int, list[int]] = field(default_factory=dict)  # person -> device ids

    def jid(self, person: int) -> str:
        return f"p{person:05d}@{self.domain}"

    @staticmethod
    def name(thread: int) -> str:
        return f"t{thread:05d}"


def plan(
    domain: str, threads: int, devices: int, persons: int, occupants: int, per_thread: int
) -> Layout:
    """The seeded world, the same for the same sizes (fixed random seed)."""
    if not per_thread <= occupants <= min(persons, devices):
        raise SystemExit("need PER_THREAD <= OCCUPANTS <= min(PERSONS, DEVICES)")
    active = occupants // per_thread
    if active > threads:
        raise SystemExit("more active threads (OCCUPANTS / PER_THREAD) than THREADS")
    rng = random.Random(13)
    members = [list(range(t * per_thread, (t + 1) * per_thread)) for t in range(active)]
    members += [rng.sample(range(persons), rng.randint(3, 6)) for _ in range(active, threads)]
    rows: list[tuple[int, int, str, bool]] = []
    approved: dict[int, list[int]] = {}
    for d in range(devices):
        person = d % persons
        mine = approved.setdefault(person, [])
        if d < persons or (len(mine) < MAX_APPROVED and rng.random() < 0.5):
            state = "approved"
            mine.append(FIRST_DEVICE_ID + d)
        else:
            state = rng.choices(("revoked", "expired", "pending"), (4, 3, 3))[0]
        announced = state in ("approved", "pending") or rng.random() < 0.5
        rows.append((person, FIRST_DEVICE_ID + d, state, announced))
    return Layout(domain, persons, members, active, rows, approved)


async def seed(config: Path, layout: Layout) -> None:
    """Threads, memberships and device rows by bulk insert (no XMPP, no audit events)."""
    store = Store(load_settings(config).store.url)
    rng = random.Random(7)
    now = utcnow()
    try:
        await store.migrate()
        threads = [
            {"id": t + 1, "name": layout.name(t), "title": f"Care thread {t}", "kind": "group",
             "subject": "", "created_at": now - timedelta(days=30)}
            for t in range(len(layout.members))
        ]  # fmt: skip
        members = [
            {"thread_id": t + 1, "jid": layout.jid(p), "since": now - timedelta(days=30),
             "affiliation": "owner" if i == 0 else "member"}
            for t, people in enumerate(layout.members) for i, p in enumerate(people)
        ]  # fmt: skip
        devices = [device_row(layout, d, rng.randbytes(32), now) for d in layout.devices]
        for model, rows in ((Thread, threads), (Member, members), (DeviceRecord, devices)):
            for first in range(0, len(rows), CHUNK):
                async with store.session() as session:
                    await session.execute(insert(model), rows[first : first + CHUNK])
    finally:
        await store.close()


def device_row(
    layout: Layout, device: tuple[int, int, str, bool], key: bytes, now: Any
) -> dict[str, Any]:
    person, device_id, state, announced = device
    decided = state != "pending"
    return {
        "jid": layout.jid(person), "namespace": LEGACY_NS, "device_id": device_id,
        "label": None, "identity_key": key, "fingerprint": key.hex(), "state": state,
        "state_changed_at": now - timedelta(days=20), "active": announced,
        "first_seen": now - timedelta(days=60), "last_seen": now - timedelta(days=1),
        "approved_by": "it@hospital" if decided else None,
        "approved_at": now - timedelta(days=50) if decided else None,
        "revoked_by": "it@hospital" if state == "revoked" else None,
        "revoked_at": now - timedelta(days=20) if state == "revoked" else None,
        "reason": "lost" if state == "revoked" else None, "asset_id": None,
        "valid_until": now + timedelta(days=180 if state != "expired" else -20),
        "expiry_warned_at": None,
    }  # fmt: skip


def rss_kib(pid: int | None, field: str = "VmRSS") -> int:
    """VmRSS (or another ``/proc/<pid>/status`` field, VmHWM: the peak) of ``pid`` in
    KiB; 0 where it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


async def quiet(pid: int, *, busy: float = 0.1, period: float = 3.0, limit: float = 300.0) -> str:
    """Wait until ``pid`` uses under ``busy`` of a core over ``period`` s (at most ``limit``
    s); says how long it took."""
    began = time.perf_counter()
    while time.perf_counter() - began < limit:
        before = cpu_seconds(pid)
        await asyncio.sleep(period)
        if cpu_seconds(pid) - before < busy * period:
            return f"quiet after {time.perf_counter() - began:.0f} s more"
    return f"still busy after {limit:.0f} s more"


class Traffic:
    """Sent messages and how many of the thread's other occupants have each."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}
        self.sender: dict[str, int] = {}
        self.expected: dict[str, int] = {}
        self.seen: Counter[str] = Counter()
        self.done: dict[str, float] = {}
        self.other = 0  # messages the bench did not send: notices, errors

    def receive(self, key: str, who: int) -> None:
        if key not in self.sent:
            self.other += 1
        elif who != self.sender[key] and key not in self.done:  # reflections not counted
            self.seen[key] += 1
            if self.seen[key] == self.expected[key]:
                self.done[key] = time.perf_counter()


def message(room: str, key: str, sid: int, keys: str) -> str:
    """An OMEMO-shaped groupchat message, as relay.py's stanza() with this thread's keys."""
    return (
        f'<message to="{room}" type="groupchat" id="{key}" xmlns="jabber:client">'
        f'<encrypted xmlns="{LEGACY_NS}"><header sid="{sid}">{keys}'
        f"<iv>AAAAAAAAAAAAAAAA</iv></header><payload>{'B' * 64}</payload></encrypted>"
        "<body>This message is OMEMO encrypted.</body></message>"
    )


async def publish(bot: ClientXMPP, own: JID, listing: ET.Element, attempts: int = 30) -> None:
    """Publish the device list; ejabberd 23.01 answers item-not-found to some of many
    concurrent first publishes (its PEP node creation), so those are tried again."""
    rng = random.Random()
    for attempt in range(attempts):
        try:
            await bot.plugin["xep_0060"].publish(
                own, LEGACY.device_list_node, id="current", payload=listing, timeout=JOIN_TIMEOUT
            )
            return
        except IqError as exc:
            if exc.condition != "item-not-found" or attempt == attempts - 1:
                raise
            await asyncio.sleep(rng.uniform(0.05, 0.5))


async def occupant(
    server: DevServer, layout: Layout, person: int, thread: int, slots: asyncio.Semaphore
) -> ClientXMPP:
    """Log in, publish the announced devices to PEP, join the thread (as clients do)."""
    async with slots:
        plugins = ("xep_0030", "xep_0045", "xep_0060")
        bot = await connect_bot(layout.jid(person), PASSWORD, server, plugins=plugins,
                                send_presence=False)  # fmt: skip
        listing = ET.Element(f"{{{LEGACY_NS}}}list")
        for owner, device_id, _state, announced in layout.devices[person :: layout.persons]:
            assert owner == person
            if announced:
                ET.SubElement(listing, f"{{{LEGACY_NS}}}device", id=str(device_id))
        await publish(bot, JID(layout.jid(person)), listing)
        room = JID(f"{layout.name(thread)}@{server.component_jid}")
        await bot.plugin["xep_0045"].join_muc_wait(
            room, f"n{person}", maxstanzas=0, timeout=JOIN_TIMEOUT
        )
        return bot


async def wait_online(server: DevServer, layout: Layout, gateway: subprocess.Popen[bytes]) -> None:
    """Until the component answers disco#info (it has connected to the server)."""
    probe = await connect_bot(layout.jid(0), PASSWORD, server, send_presence=False)
    try:
        for _attempt in range(600):
            if gateway.poll() is not None:
                raise SystemExit(f"the gateway exited with {gateway.returncode}")
            try:
                await probe.plugin["xep_0030"].get_info(jid=server.component_jid, timeout=5)
                return
            except Exception:
                await asyncio.sleep(0.5)
        raise SystemExit("the gateway did not come online")
    finally:
        await disconnect_bot(probe)


class Probe:
    """tracemalloc snapshots of a gateway run under bench/memory_probe.py (``--trace``)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.taken: list[tuple[str, Path]] = []

    def command(self, cli: list[str]) -> list[str]:
        if self.directory is None:
            return cli
        script = Path(__file__).with_name("memory_probe.py")
        return [sys.executable, str(script), str(self.directory), *cli[3:]]

    async def take(self, pid: int, label: str) -> None:
        if self.directory is None:
            return
        n = len(self.taken) + 1
        os.kill(pid, signal.SIGUSR1)
        done = self.directory / f"snapshot-{n}.done"
        while not done.exists():
            await asyncio.sleep(0.5)
        self.taken.append((label, self.directory / f"snapshot-{n}.dump"))

    def report(self, top: int = 15) -> None:
        if not self.taken:
            return
        snaps = [(label, tracemalloc.Snapshot.load(str(path))) for label, path in self.taken]
        label, first = snaps[0]
        total = sum(stat.size for stat in first.statistics("filename")) >> 10
        print(f"\ntracemalloc, {label}: {total:,} KiB traced")
        for stat in first.statistics("filename")[:top]:
            print(f"  {stat.size >> 10:>9,} KiB {stat.count:>9,}  {stat.traceback[0].filename}")
        for (before_label, before), (after_label, after) in itertools.pairwise(snaps):
            print(f"\ntracemalloc, {before_label} -> {after_label} (by line):")
            for diff in after.compare_to(before, "lineno")[:top]:
                frame = diff.traceback[0]
                print(f"  {diff.size_diff >> 10:>+9,} KiB {diff.count_diff:>+9,}  "
                      f"{frame.filename}:{frame.lineno}")  # fmt: skip


async def bench(server: DevServer, args: argparse.Namespace, workdir: Path, log: Path) -> None:
    layout = plan(server.domain, args.threads, args.devices, args.persons, args.occupants,
                  args.per_thread)  # fmt: skip
    began = time.perf_counter()
    users = {f"p{p:05d}": PASSWORD for p in range(args.occupants)}
    server.register_many(users)
    print(f"registered {len(users)} accounts in {time.perf_counter() - began:.1f} s")
    config = write_gateway_config(server, workdir, logging={"level": "WARNING"})
    began = time.perf_counter()
    await seed(config, layout)
    states = Counter(state for _p, _d, state, _a in layout.devices)
    print(f"seeded {len(layout.members)} threads, {sum(map(len, layout.members))} memberships, "
          f"{len(layout.devices)} devices of {layout.persons} people ({dict(states)}) "
          f"in {time.perf_counter() - began:.1f} s")  # fmt: skip
    env = {**os.environ, "XMPP_CLINIC_CONFIG": str(config)}
    probe = Probe(workdir / "tracemalloc" if args.trace else None)
    cli = [sys.executable, "-m", "xmpp_clinic", "run"]
    # (phase, seconds, gateway VmRSS, gateway VmHWM, server VmRSS), KiB
    samples: list[tuple[str, float, int, int, int]] = []
    bots: list[ClientXMPP] = []
    with log.open("wb") as log_file:
        began = time.perf_counter()
        gateway = subprocess.Popen(probe.command(cli), env=env, stderr=log_file)
        spid = server_pid(server)

        def sample(phase: str) -> None:
            pid, at = gateway.pid, time.perf_counter() - began
            samples.append((phase, at, rss_kib(pid), rss_kib(pid, "VmHWM"), rss_kib(spid)))

        try:
            await wait_online(server, layout, gateway)
            print(f"gateway online after {time.perf_counter() - began:.1f} s")
            settled = await quiet(gateway.pid)
            sample("start")
            await probe.take(gateway.pid, "after start")
            print(f"after start ({settled}): {samples[-1][2]:,} KiB")
            slots = asyncio.Semaphore(args.concurrency)
            began_joins = time.perf_counter()
            bots = list(await asyncio.gather(*(
                occupant(server, layout, p, t, slots)
                for t in range(layout.active) for p in layout.members[t]
            )))  # fmt: skip
            joined = time.perf_counter() - began_joins
            settled = await quiet(gateway.pid)
            sample("joined")
            await probe.take(gateway.pid, "after joins")
            print(f"{len(bots)} occupants joined {layout.active} threads in {joined:.1f} s; "
                  f"after joins ({settled}): {samples[-1][2]:,} KiB")  # fmt: skip
            traffic = await drive(bots, layout, server, args, lambda: sample("traffic"))
            await probe.take(gateway.pid, "after traffic")
            alive = gateway.poll() is None
        finally:
            await asyncio.gather(*(disconnect_bot(b) for b in bots))
            gateway.terminate()
            try:
                gateway.wait(30)
            except subprocess.TimeoutExpired:
                gateway.kill()
                gateway.wait()
    report(server.kind, args, samples, traffic, alive, log)
    probe.report()


async def drive(
    bots: list[ClientXMPP],
    layout: Layout,
    server: DevServer,
    args: argparse.Namespace,
    sample: Any,
) -> Traffic:
    """RATE messages/s round-robin over the active threads for MINUTES; samples RSS."""
    traffic = Traffic()
    counters = take_over(bots)
    for who, counter in enumerate(counters):
        counter.on_id = lambda key, who=who: traffic.receive(key, who)
    rng = random.Random(11)
    keys = {
        t: "".join(f'<key rid="{d}">{KEY}</key>' for p in people for d in layout.approved[p])
        for t, people in enumerate(layout.members[: layout.active])
    }
    per_thread = args.per_thread
    loop = asyncio.get_running_loop()
    start = next_sample = loop.time()
    seconds, interval = args.minutes * 60, 1 / args.rate
    n = 0
    while (now := loop.time()) - start < seconds:
        if now >= next_sample:
            sample()
            next_sample += args.sample
        thread = n % layout.active
        who = thread * per_thread + rng.randrange(per_thread)  # bots are in thread order
        person = layout.members[thread][who - thread * per_thread]
        key = f"mem-{n}"
        traffic.sent[key] = time.perf_counter()
        traffic.sender[key] = who
        traffic.expected[key] = per_thread - 1
        room = f"{layout.name(thread)}@{server.component_jid}"
        bots[who].send_raw(message(room, key, layout.approved[person][0], keys[thread]))
        n += 1
        await asyncio.sleep(max(0.0, start + n * interval - loop.time()))
    deadline = loop.time() + GRACE
    while len(traffic.done) < len(traffic.sent) and loop.time() < deadline:
        await asyncio.sleep(0.2)
    sample()
    return traffic


def slope_mb_min(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of (seconds, KiB) in MB per minute; 0 with fewer than 2 points."""
    if len(points) < 2:
        return 0.0
    fit = statistics.linear_regression([at for at, _ in points], [kib for _, kib in points])
    return fit.slope * 60 / 1024


def report(
    kind: str,
    args: argparse.Namespace,
    samples: list[tuple[str, float, int, int, int]],
    traffic: Traffic,
    alive: bool,
    log: Path,
) -> None:
    def mb(kib: float) -> str:
        return f"{kib / 1024:.1f}"

    print(f"\n{kind}: {args.threads} threads, {args.devices} devices of {args.persons} people, "
          f"{args.occupants} occupants in threads of {args.per_thread}, "
          f"{args.rate} msg/s for {args.minutes} min")  # fmt: skip
    print(f"{'phase':<10}{'t s':>8}{'gateway MB':>12}{'peak MB':>9}{'server MB':>11}")
    for phase, at, gw, peak, srv in samples:
        print(f"{phase:<10}{at:>8.0f}{mb(gw):>12}{mb(peak):>9}{mb(srv):>11}")
    during = [(at, gw) for phase, at, gw, _p, _s in samples if phase == "traffic"]
    rss = [gw for _at, gw in during]
    start = next(gw for phase, _at, gw, _p, _s in samples if phase == "start")
    joined = next(gw for phase, _at, gw, _p, _s in samples if phase == "joined")
    slope = slope_mb_min(during)
    late = slope_mb_min(during[len(during) // 2 :])
    latencies = sorted(traffic.done[k] - traffic.sent[k] for k in traffic.done)
    p50 = 1000 * statistics.median(latencies) if latencies else 0.0
    p99 = 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0
    print(
        f"gateway VmRSS MB: start {mb(start)}, after joins {mb(joined)}, during traffic "
        f"min {mb(min(rss))} max {mb(max(rss))} last {mb(rss[-1])}, slope {slope:+.2f} MB/min "
        f"(second half {late:+.2f})"
    )
    missing = len(traffic.sent) - len(traffic.done)
    print(
        f"messages: {len(traffic.sent)} sent, {len(traffic.done)} reached every other "
        f"occupant, {missing} did not; p50 {p50:.0f} ms, p99 {p99:.0f} ms; "
        f"{traffic.other} other messages received (notices, errors)"
    )
    print(f"gateway {'alive' if alive else 'DEAD'} at the end; its log: {log}")
    peak = samples[-1][3]
    verdict = "holds" if max([start, joined, *rss]) <= 300 * 1024 else "MISSED"
    print(f"RSS <= 300 MB: {verdict} (sampled); the gateway's peak VmHWM was {mb(peak)} MB")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """The module docstring as written, and every option's default."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--server", choices=("prosody", "ejabberd"), default="ejabberd")
    parser.add_argument("--threads", type=int, default=10_000, help="care threads seeded")
    parser.add_argument("--devices", type=int, default=50_000, help="device rows seeded")
    parser.add_argument("--persons", type=int, default=12_000, help="people owning them")
    parser.add_argument("--occupants", type=int, default=2_000, help="clients joined")
    parser.add_argument("--per-thread", type=int, default=20, help="occupants per active thread")
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes of traffic")
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second in all")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between RSS samples")
    parser.add_argument("--concurrency", type=int, default=50, help="clients logging in at once")
    parser.add_argument("--trace", action="store_true", help="tracemalloc in the gateway")
    return parser.parse_args(argv)


def start_server(kind: ServerKind, run_dir: Path) -> DevServer:
    """The private server, able to hold thousands of client connections.

    ``ejabberdctl`` starts the VM through ``su``, which gives the ejabberd user 1024 open
    files, and the Erlang VM caps its sockets at that number when it starts: past ~1000
    clients, accepts fail with "too many open files". So ejabberd's ``erl`` is started
    through a wrapper that raises the soft limit to the hard one first (ejabberdctl.cfg
    may set ``ERL``).
    """
    server = make_server(kind, run_dir)
    if kind == "ejabberd":
        erl = shutil.which("erl") or "/usr/bin/erl"
        server.home.mkdir(parents=True, exist_ok=True)
        wrapper = server.home / "erl-nofile"
        wrapper.write_text(f'#!/bin/sh\nulimit -n "$(ulimit -Hn)"\nexec {erl} "$@"\n')
        wrapper.chmod(0o755)
        ctl_config = server.render_ctl_config
        server.render_ctl_config = lambda: f"{ctl_config()}ERL={wrapper}\n"  # type: ignore[method-assign]
    server.start()
    return server


def main() -> None:
    args = parse_args()
    kind: ServerKind = args.server
    log = Path(tempfile.gettempdir()) / f"memory-{kind}-gateway.log"
    with tempfile.TemporaryDirectory(prefix=f"bench-memory-{kind}-") as tmp:
        server = start_server(kind, Path(tmp) / "server")
        try:
            workdir = Path(tmp) / "gateway"
            workdir.mkdir()
            asyncio.run(bench(server, args, workdir, log))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
