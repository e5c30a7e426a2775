"""MAM at hospital scale: a page of 50 from a thread archive of 1 M or 10 M messages (II.2).

Fills one care thread's archive with N chained messages by bulk insert (not through
XMPP; the rows are what the relay writes: the full OMEMO stanza of a thread of
``--keys`` members, ~3 KB for 20), starts ``xmpp-clinic run`` against a private server and
has a member ask for pages of 50 over XMPP, three ways, each ``--pages`` times:

- latest: the newest page (``<before/>``), what every client asks first;
- middle: the page after a random id in the archive's middle half (keyset paging);
- range: ``start``/``end`` around a random middle point (a date range of ~10 pages).

Latency = IQ sent until its result (every ``<result>`` message arrives before it).
Seeding is kept between runs in ``--workdir`` per store and size, so the expensive fill
is done once. Run by hand, never in CI:

    .venv/bin/python bench/mam.py --server ejabberd --store both --messages 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from xml.etree import ElementTree as ET

import asyncpg
from slixmpp import ClientXMPP
from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).parent))
from relay import PASSWORD, stanza

from xmpp_clinic.archive.chain import GENESIS, link
from xmpp_clinic.archive.messages import row_canonical
from xmpp_clinic.clock import utcnow
from xmpp_clinic.config import load_settings
from xmpp_clinic.dev.bots import connect_bot, disconnect_bot
from xmpp_clinic.dev.servers import DevServer, ServerKind, start_server, write_gateway_config
from xmpp_clinic.store import Store
from xmpp_clinic.store.models.messages import ArchivedMessage
from xmpp_clinic.store.models.threads import Thread


class RawReader(asyncio.Protocol):
    """Takes over the member's stream once connected: waits for one IQ result by its id and
    counts the ``<result>`` elements before it, reading bytes only (as relay.py's clients
    do), so the client's own parsing is not part of the figure."""

    def __init__(self, bot: ClientXMPP) -> None:
        self.bot = bot
        self.buffer = b""
        self.waiting: tuple[bytes, asyncio.Future[int]] | None = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiting is not None:
            marker, done = self.waiting
            if marker in self.buffer and not done.done():
                done.set_result(self.buffer.count(b"<result "))
                self.buffer, self.waiting = b"", None
        else:
            self.buffer = self.buffer[-256:]

    def eof_received(self) -> bool | None:
        self.bot.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.bot.connection_lost(exc)

    async def ask(self, thread: str, query: str) -> tuple[float, int]:
        """Send a MAM query; seconds until its result and how many results came."""
        iq_id = uuid.uuid4().hex
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.buffer, self.waiting = b"", (f"id='{iq_id}'".encode(), done)
        assert self.bot.transport is not None
        began = time.perf_counter()
        self.bot.transport.write(f"<iq type='set' id='{iq_id}' to='{thread}'>{query}</iq>".encode())
        results = await asyncio.wait_for(done, 60)
        return time.perf_counter() - began, results


CHUNK = 20_000
PAGE = 50
PG_ADMIN = os.environ.get("XMPP_CLINIC_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
STEP = timedelta(milliseconds=10)  # the seeded messages are 10 ms apart


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def seed(url: str, count: int, payload: str) -> datetime:
    """``count`` chained messages in thread "bench", 10 ms apart, ending an hour ago."""
    store = Store(url)
    first_at = utcnow() - timedelta(hours=1) - STEP * count
    try:
        async with store.session() as session:
            thread_id = await session.scalar(select(Thread.id).where(Thread.name == "bench"))
            have = await session.scalar(
                select(ArchivedMessage.seq)
                .where(ArchivedMessage.thread_id == thread_id)
                .order_by(ArchivedMessage.seq.desc())
                .limit(1)
            )
        assert thread_id is not None
        if have == count:
            async with store.session() as session:
                at = await session.scalar(
                    select(ArchivedMessage.at).where(
                        ArchivedMessage.thread_id == thread_id, ArchivedMessage.seq == 1
                    )
                )
            assert at is not None
            return at
        assert not have, "the workdir holds a partial seed: delete it"
        previous, began = GENESIS, time.perf_counter()
        table = ArchivedMessage.__table__
        for first in range(1, count + 1, CHUNK):
            rows = []
            for seq in range(first, min(first + CHUNK, count + 1)):
                row = SimpleNamespace(
                    thread_id=thread_id, seq=seq, stanza_id=f"old-{seq}",
                    at=first_at + STEP * seq, sender="bench0@x", sender_resource="",
                    nick="m0", occupant_id="o", stanza=payload,
                )  # fmt: skip
                previous = link(previous, row_canonical(row))  # type: ignore[arg-type]
                rows.append(vars(row) | {"digest": previous})
            async with store.session() as session:
                await session.execute(insert(table), rows)
            done = min(first + CHUNK - 1, count)
            if done % 500_000 < CHUNK or done == count:
                rate = done / (time.perf_counter() - began)
                print(f"  seeded {done:,} ({rate:,.0f} rows/s)", flush=True)
        return first_at + STEP
    finally:
        await store.close()


def mam_query(fields: dict[str, str], rsm: str) -> str:
    """A MAM query as text (written to the stream as is)."""
    form = ""
    if fields:
        values = {"FORM_TYPE": "urn:xmpp:mam:2", **fields}
        form = "<x xmlns='jabber:x:data' type='submit'>" + "".join(
            f"<field var='{var}'><value>{value}</value></field>" for var, value in values.items()
        ) + "</x>"  # fmt: skip
    rsm_set = f"<set xmlns='http://jabber.org/protocol/rsm'>{rsm}</set>"
    return f"<query xmlns='urn:xmpp:mam:2' queryid='bench'>{form}{rsm_set}</query>"


async def timed(bot: ClientXMPP, thread: str, query: str) -> float:
    iq = bot.make_iq_set(ito=thread)
    iq.append(ET.fromstring(query))
    began = time.perf_counter()
    await iq.send(timeout=60)
    return time.perf_counter() - began


def figures(seconds: list[float]) -> tuple[float, float]:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return 1000 * statistics.median(ordered), 1000 * p99


async def measure(
    server: DevServer,
    url: str,
    label: str,
    count: int,
    pages: int,
    payload: str,
    workdir: Path,
    seed_only: bool = False,
) -> list[tuple[str, str, float, float]]:
    reader = f"reader@{server.domain}"
    config = write_gateway_config(
        server, workdir, logging={"level": "WARNING"}, store={"url": url},
        threads={"history_for_new_members": "all"},
    )  # fmt: skip
    env = {**os.environ, "XMPP_CLINIC_CONFIG": str(config)}
    cli = [sys.executable, "-m", "xmpp_clinic"]
    listed = subprocess.run([*cli, "threads", "list"], env=env, capture_output=True, text=True)
    if "bench" not in listed.stdout:
        subprocess.run([*cli, "threads", "create", "bench", "--title", "Bench",
                        "--member", reader], env=env, check=True)  # fmt: skip
    began = time.perf_counter()
    first_at = await seed(load_settings(config).store.url, count, payload)
    print(f"{label}: {count:,} messages ready in {time.perf_counter() - began:.1f} s")
    if seed_only:
        return []
    log = (workdir / "gateway.log").open("w")
    gateway = subprocess.Popen([*cli, "run"], env=env, stderr=log)
    bot = None
    rows: list[tuple[str, str, float, float]] = []
    try:
        bot = await connect_bot(reader, PASSWORD, server, plugins=("xep_0030",))
        thread = f"bench@{server.component_jid}"
        for _attempt in range(100):  # until the gateway is attached
            try:
                await timed(bot, thread, mam_query({}, "<max>1</max><before/>"))
                break
            except Exception:
                await asyncio.sleep(0.2)
        rng = random.Random(7)
        shapes = {
            "latest": lambda: mam_query({}, f"<max>{PAGE}</max><before/>"),
            "middle (after id)": lambda: mam_query(
                {}, f"<max>{PAGE}</max><after>old-{middle(rng, count)}</after>"
            ),
            "range (start/end)": lambda: _range(rng, count, first_at),
        }
        reader = RawReader(bot)
        assert bot.transport is not None
        bot.transport.set_protocol(reader)
        for shape, make in shapes.items():
            seconds = []
            for _ in range(pages):
                took, results = await reader.ask(thread, make())
                assert results == PAGE, f"{shape}: {results} results, not {PAGE}"
                seconds.append(took)
            p50, p99 = figures(seconds)
            rows.append((label, shape, p50, p99))
            print(f"  {shape:<20} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms", flush=True)
    finally:
        if bot is not None:
            await disconnect_bot(bot)
        gateway.terminate()
        gateway.wait(10)
    return rows


def middle(rng: random.Random, count: int) -> int:
    """A random seq in the archive's middle half."""
    return rng.randint(count // 4, 3 * count // 4)


def _range(rng: random.Random, count: int, first_at: datetime) -> str:
    start = first_at + STEP * (middle(rng, count) - 1)
    end = start + STEP * (10 * PAGE)
    fields = {"start": stamp(start), "end": stamp(end)}
    return mam_query(fields, f"<max>{PAGE}</max>")


async def pg_database(name: str) -> str:
    """A PostgreSQL database for the bench, kept between runs; its asyncpg URL."""
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = PG_ADMIN.replace("postgresql://", "postgresql+asyncpg://", 1).rsplit("/", 1)[0]
    return f"{base}/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", choices=("prosody", "ejabberd"), default="ejabberd")
    parser.add_argument("--store", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--pages", type=int, default=200, help="queries per shape")
    parser.add_argument("--keys", type=int, default=20,
                        help="OMEMO keys per archived stanza (a thread of N members)")  # fmt: skip
    parser.add_argument("--seed-only", action="store_true",
                        help="fill the stores and stop (measure later, quietly)")  # fmt: skip
    parser.add_argument("--workdir", type=Path, default=Path("build/bench-mam"),
                        help="kept between runs: the seeded stores")  # fmt: skip
    args = parser.parse_args()
    kind: ServerKind = args.server
    # As the relay archives it: no ``to``, no stream namespace, from the sender's nick.
    payload = stanza("bench@clinic", "old", args.keys)
    payload = payload.replace(' to="bench@clinic"', ' from="bench@clinic/m0"')
    payload = payload.replace(' xmlns="jabber:client"', "")
    stores = ("sqlite", "postgresql") if args.store == "both" else (args.store,)
    results: list[tuple[str, str, float, float]] = []
    with tempfile.TemporaryDirectory(prefix=f"bench-mam-{kind}-") as tmp:
        server = start_server(kind, Path(tmp) / "server")
        try:
            server.register_many({"reader": PASSWORD})
            for name in stores:
                workdir = (args.workdir / f"{name}-{args.messages}-{args.keys}keys").resolve()
                workdir.mkdir(parents=True, exist_ok=True)
                if name == "sqlite":
                    url = f"sqlite+aiosqlite:///{workdir.resolve() / 'xmpp-clinic.db'}"
                else:
                    url = asyncio.run(pg_database(f"bench_mam_{args.messages}_{args.keys}"))
                results += asyncio.run(
                    measure(
                        server,
                        url,
                        name,
                        args.messages,
                        args.pages,
                        payload,
                        workdir,
                        args.seed_only,
                    )
                )
        finally:
            server.stop()
    print(f"\n{kind}, {args.messages:,} archived messages, page of {PAGE}, "
          f"{args.pages} queries per shape")  # fmt: skip
    print("| store | query | p50 ms | p99 ms |\n|---|---|---|---|")
    for label, shape, p50, p99 in results:
        print(f"| {label} | {shape} | {p50:.1f} | {p99:.1f} |")


if __name__ == "__main__":
    main()
