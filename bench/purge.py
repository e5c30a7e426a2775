"""Purge benchmark: a 100 k-message purge while 20 members of the same thread talk (I.7).

Seeds the care thread with N archived messages two days old (chained, as the relay
would have written them), starts ``xmpp-clinic run``, joins 20 members, and has member
0 send OMEMO-shaped messages at a steady window. First a quiet phase (no purge), then
``xmpp-clinic purge`` runs as its own process (as an operator would) and the sending
goes on until it ends. Latency = send until all 19 other members have the message; a
message that never reaches all 19 counts as lost. Run by hand, never in CI:

    .venv/bin/python bench/purge.py --server ejabberd --seed 100000
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
from datetime import timedelta
from pathlib import Path

from slixmpp import JID, ClientXMPP
from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).parent))
from relay import MEMBERS, PASSWORD, RawCounter, register_devices, stanza, take_over

from xmpp_clinic.archive.chain import GENESIS, link
from xmpp_clinic.archive.messages import row_canonical
from xmpp_clinic.clock import utcnow
from xmpp_clinic.config import load_settings
from xmpp_clinic.dev.bots import connect_bot, disconnect_bot
from xmpp_clinic.dev.servers import (
    DevServer,
    ServerKind,
    start_server,
    write_gateway_config,
)
from xmpp_clinic.store import Store
from xmpp_clinic.store.models.messages import ArchivedMessage
from xmpp_clinic.store.models.threads import Thread

CHUNK = 5000
OLD_STANZA = stanza("bench@clinic", "old")  # ~3 KB, as relayed


async def seed(config: Path, count: int) -> None:
    """``count`` chained messages two days old in thread "bench" (bulk, no relay)."""
    store = Store(load_settings(config).store.url)
    try:
        async with store.session() as session:
            thread_id = await session.scalar(select(Thread.id).where(Thread.name == "bench"))
        assert thread_id is not None
        previous, start = GENESIS, utcnow() - timedelta(days=2)
        for first in range(1, count + 1, CHUNK):
            rows = []
            for seq in range(first, min(first + CHUNK, count + 1)):
                row = ArchivedMessage(
                    thread_id=thread_id, seq=seq, stanza_id=f"old-{seq}",
                    at=start + timedelta(milliseconds=seq), sender="bench0@x", sender_resource="",
                    nick="m0", occupant_id="o", stanza=OLD_STANZA,
                )  # fmt: skip
                previous = link(previous, row_canonical(row))
                rows.append({c.name: getattr(row, c.name) for c in ArchivedMessage.__table__.c
                             if c.name != "id"} | {"digest": previous})  # fmt: skip
            async with store.session() as session:
                await session.execute(insert(ArchivedMessage), rows)
    finally:
        await store.close()


class Meter:
    """Send at a window; per message: sent time, how many have it, done time."""

    def __init__(self, receivers: int, window: int) -> None:
        self.receivers = receivers
        self.sent: dict[str, float] = {}
        self.seen: dict[str, int] = {}
        self.done: dict[str, float] = {}
        self.window = asyncio.Semaphore(window)

    def receive(self, key: str) -> None:
        if key in self.sent and key not in self.done:
            self.seen[key] = self.seen.get(key, 0) + 1
            if self.seen[key] == self.receivers:
                self.done[key] = time.perf_counter()
                self.window.release()

    async def send_until(self, sender: ClientXMPP, room: str, prefix: str,
                         stop: asyncio.Event, timeout: float = 30) -> list[str]:  # fmt: skip
        keys: list[str] = []
        while not stop.is_set():
            try:
                await asyncio.wait_for(self.window.acquire(), timeout)
            except TimeoutError:
                break  # in flight for too long: counted as lost below
            key = f"{prefix}-{len(keys)}"
            keys.append(key)
            self.sent[key] = time.perf_counter()
            sender.send_raw(stanza(room, key))
        deadline = time.perf_counter() + timeout
        while any(k not in self.done for k in keys) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        return keys

    def figures(self, keys: list[str]) -> dict[str, float]:
        latencies = sorted(self.done[k] - self.sent[k] for k in keys if k in self.done)
        if not latencies:
            return {"sent": len(keys), "lost": len(keys), "p50_ms": 0.0, "p99_ms": 0.0}
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        return {
            "sent": len(keys), "lost": len(keys) - len(latencies),
            "p50_ms": 1000 * statistics.median(latencies), "p99_ms": 1000 * p99,
            "max_ms": 1000 * latencies[-1],
        }  # fmt: skip


async def bench(
    server: DevServer,
    count: int,
    window: int,
    quiet: float,
    batch: int,
    rest: float,
    workdir: Path,
) -> None:
    users = server.register_many({f"bench{i}": PASSWORD for i in range(MEMBERS)})
    config = write_gateway_config(
        server, workdir, logging={"level": "WARNING"}, policy={"device_approval": "all"},
        retention={"purge_interval_minutes": 10080, "purge_batch": batch, "purge_rest": rest},
    )  # fmt: skip
    env = {**os.environ, "XMPP_CLINIC_CONFIG": str(config)}
    cli = [sys.executable, "-m", "xmpp_clinic"]
    members = [a for u in users for a in ("--member", u)]
    subprocess.run([*cli, "threads", "create", "bench", "--title", "Bench", *members],
                   env=env, check=True)  # fmt: skip
    subprocess.run([*cli, "threads", "set-retention", "bench", "--messages", "1d"], env=env,
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    began = time.perf_counter()
    await seed(config, count)
    print(f"seeded {count} messages in {time.perf_counter() - began:.1f} s")
    await register_devices(config, users)
    gateway = subprocess.Popen([*cli, "run"], env=env, stderr=subprocess.DEVNULL)
    bots: list[ClientXMPP] = []
    try:
        bots = list(await asyncio.gather(*(
            connect_bot(u, PASSWORD, server, plugins=("xep_0030", "xep_0045")) for u in users
        )))  # fmt: skip
        thread = f"bench@{server.component_jid}"
        for _attempt in range(50):
            try:
                muc = bots[0].plugin["xep_0045"]
                await muc.join_muc_wait(JID(thread), "m0", maxstanzas=0, timeout=5)
                break
            except Exception:
                await asyncio.sleep(0.2)
        for i, bot in enumerate(bots[1:], 1):
            await bot.plugin["xep_0045"].join_muc_wait(JID(thread), f"m{i}", maxstanzas=0,
                                                       timeout=10)  # fmt: skip
        await asyncio.sleep(1.0)
        take_over(bots[:1])
        counters: list[RawCounter] = take_over(bots[1:])
        meter = Meter(len(counters), window)
        for counter in counters:
            counter.on_id = meter.receive
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(quiet, stop.set)
        baseline = await meter.send_until(bots[0], thread, "quiet", stop)
        stop = asyncio.Event()
        began = time.perf_counter()
        purge = await asyncio.create_subprocess_exec(
            *cli, "purge", env=env, stdout=asyncio.subprocess.PIPE
        )
        sending = asyncio.ensure_future(meter.send_until(bots[0], thread, "purge", stop))
        output, _ = await purge.communicate()
        purge_seconds = time.perf_counter() - began
        stop.set()
        during = await sending
        verify = subprocess.run([*cli, "audit", "verify"], env=env, capture_output=True,
                                text=True)  # fmt: skip
        print(f"\n{server.kind}: {MEMBERS} members, window {window}, purge of {count} messages "
              f"in batches of {batch}, rest {rest}")  # fmt: skip
        print(f"purge: {output.decode().splitlines()[0]} in {purge_seconds:.1f} s "
              f"({count / purge_seconds:,.0f} msg/s), exit {purge.returncode}")  # fmt: skip
        print(f"audit verify after: exit {verify.returncode}")
        print(f"{'phase':<14}{'sent':>8}{'lost':>6}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
        for label, keys in (("quiet", baseline), ("during purge", during)):
            f = meter.figures(keys)
            print(f"{label:<14}{f['sent']:>8.0f}{f['lost']:>6.0f}{f['p50_ms']:>9.1f}"
                  f"{f['p99_ms']:>9.1f}{f.get('max_ms', 0):>9.1f}")  # fmt: skip
    finally:
        await asyncio.gather(*(disconnect_bot(b) for b in bots))
        gateway.terminate()
        gateway.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", choices=("prosody", "ejabberd"), default="ejabberd")
    parser.add_argument("--seed", type=int, default=100_000, help="archived messages to purge")
    parser.add_argument("--window", type=int, default=20, help="messages in flight at most")
    parser.add_argument("--quiet", type=float, default=10.0, help="seconds without purge first")
    parser.add_argument("--batch", type=int, default=2000, help="retention.purge_batch")
    parser.add_argument("--rest", type=float, default=1.0, help="retention.purge_rest")
    args = parser.parse_args()
    kind: ServerKind = args.server
    with tempfile.TemporaryDirectory(prefix=f"bench-purge-{kind}-") as tmp:
        server = start_server(kind, Path(tmp) / "server")
        try:
            workdir = Path(tmp) / "gateway"
            workdir.mkdir()
            asyncio.run(
                bench(server, args.seed, args.window, args.quiet, args.batch, args.rest, workdir)
            )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
