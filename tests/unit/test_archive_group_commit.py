"""Group commit in the message archive: one durable transaction for concurrent appends.

Appends that arrive while a commit is in flight are written together in the next
transaction; each caller returns only once its own row is committed; the hash chain of
every thread follows the order of the calls (II.2); a failed commit fails every caller
in it, and the next append works (fail closed, I.12).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from xmpp_clinic.app import Gateway
from xmpp_clinic.archive.messages import ArchiveEntry, ArchiveQuery, MessageArchive, NewMessage
from xmpp_clinic.config import Settings, StoreSettings, XmppSettings
from xmpp_clinic.store import Store, StoreUnavailable
from xmpp_clinic.store.models.messages import ArchivedMessage
from xmpp_clinic.store.models.threads import Thread

AT = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


async def _archived(session: AsyncConnection) -> int:
    return int(await session.scalar(select(func.count()).select_from(ArchivedMessage)) or 0)


class ObservedStore(Store):
    """A real SQLite store that records each write transaction and can hold or fail it.

    ``hold`` keeps a write open before its commit (a commit "in flight"); ``fail`` makes
    the next write roll back with StoreUnavailable, as a full disk would.
    """

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.writes: list[int] = []  # rows in each committed write transaction
        self.hold: asyncio.Event | None = None
        self.holding = asyncio.Event()
        self.fail = 0

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncConnection]:
        async with super().writing() as connection:
            before = await _archived(connection)
            yield connection
            rows = await _archived(connection) - before  # the archive writes with Core inserts
            if not rows:
                return
            if self.hold is not None:
                self.holding.set()
                await self.hold.wait()
            if self.fail:
                self.fail -= 1
                raise StoreUnavailable("disk full")
            self.writes.append(rows)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ObservedStore]:
    store = ObservedStore(f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}")
    await store.migrate()
    async with store.session() as session:
        session.add_all(Thread(id=n, name=f"t{n}", title=f"T{n}", kind="group") for n in (1, 2))
    store.writes.clear()
    try:
        yield store
    finally:
        await store.close()


def message(n: int, thread_id: int = 1) -> NewMessage:
    return NewMessage(
        thread_id, f"sid-{thread_id}-{n}", AT, "alice@hospital.test", "phone", "alice",
        "occ-alice", f"<message id='{n}'/>",
    )  # fmt: skip


async def stored(store: Store, thread_id: int) -> list[tuple[int, str]]:
    async with store.session() as session:
        query = (
            select(ArchivedMessage.seq, ArchivedMessage.stanza_id)
            .where(ArchivedMessage.thread_id == thread_id)
            .order_by(ArchivedMessage.id)
        )
        return [(seq, sid) for seq, sid in (await session.execute(query)).all()]


@pytest.mark.requirement("II.2")
async def test_concurrent_appends_share_one_transaction_in_call_order(
    store: ObservedStore,
) -> None:
    archive = MessageArchive(store)
    entries = await asyncio.gather(*(archive.append(message(n)) for n in range(1, 11)))
    assert store.writes == [10]
    assert [e.seq for e in entries] == list(range(1, 11))
    assert await stored(store, 1) == [(n, f"sid-1-{n}") for n in range(1, 11)]
    assert await archive.verify(1) is None


@pytest.mark.requirement("II.2")
async def test_appends_during_a_commit_go_together_into_the_next_one(
    store: ObservedStore,
) -> None:
    archive = MessageArchive(store)
    store.hold = asyncio.Event()
    first = asyncio.create_task(archive.append(message(1)))
    await store.holding.wait()  # message 1's commit is in flight
    later = [archive.submit(message(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0)  # one turn of the loop: nothing may be acknowledged yet
    assert not first.done()  # not acknowledged before its commit
    store.hold.set()
    entries = [await first, *await asyncio.gather(*later)]
    assert store.writes == [1, 3]
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert await archive.verify(1) is None


@pytest.mark.requirement("II.2")
async def test_each_thread_keeps_its_own_chain_within_a_batch(store: ObservedStore) -> None:
    archive = MessageArchive(store)
    calls = [message(1, 1), message(1, 2), message(2, 1), message(2, 2), message(3, 1)]
    entries = await asyncio.gather(*(archive.append(m) for m in calls))
    assert store.writes == [5]
    assert [e.seq for e in entries] == [1, 1, 2, 2, 3]
    assert await archive.verify(1) is None
    assert await archive.verify(2) is None


@pytest.mark.requirement("II.2")
async def test_a_failed_commit_fails_every_caller_in_it_and_stores_nothing(
    store: ObservedStore,
) -> None:
    archive = MessageArchive(store)
    await archive.append(message(1))
    store.fail = 1
    outcomes = await asyncio.gather(
        *(archive.append(message(n)) for n in (2, 3, 4)), return_exceptions=True
    )
    assert all(isinstance(o, StoreUnavailable) for o in outcomes)
    assert await stored(store, 1) == [(1, "sid-1-1")]


@pytest.mark.requirement("II.2")
async def test_the_next_append_after_a_failure_continues_the_stored_chain(
    store: ObservedStore,
) -> None:
    archive = MessageArchive(store)
    await archive.append(message(1))
    store.fail = 1
    with pytest.raises(StoreUnavailable):
        await asyncio.gather(archive.append(message(2)), archive.append(message(3)))
    entry = await archive.append(message(4))
    assert entry.seq == 2  # the chain head was reloaded: no gap for the refused messages
    assert await stored(store, 1) == [(1, "sid-1-1"), (2, "sid-1-4")]
    assert await archive.verify(1) is None


@pytest.mark.requirement("II.2")
async def test_appends_queued_behind_a_failing_commit_are_committed_after_it(
    store: ObservedStore,
) -> None:
    archive = MessageArchive(store)
    store.hold, store.fail = asyncio.Event(), 1
    failing = asyncio.create_task(archive.append(message(1)))
    await store.holding.wait()
    queued = [asyncio.create_task(archive.append(message(n))) for n in (2, 3)]
    await asyncio.sleep(0)
    store.hold.set()
    with pytest.raises(StoreUnavailable):
        await failing
    entries: list[ArchiveEntry] = list(await asyncio.gather(*queued))
    assert [e.seq for e in entries] == [1, 2]
    assert store.writes == [2]
    assert await archive.verify(1) is None


@pytest.mark.requirement("II.2")
async def test_group_committed_entries_are_served_in_archive_order(
    store: ObservedStore,
) -> None:
    archive = MessageArchive(store)
    await asyncio.gather(*(archive.append(message(n)) for n in range(1, 6)))
    page = await archive.query(ArchiveQuery(thread_id=1))
    assert [e.stanza_id for e in page.entries] == [f"sid-1-{n}" for n in range(1, 6)]
    async with store.session() as session:
        count = (await session.execute(select(func.count(ArchivedMessage.id)))).scalar_one()
    assert count == 5


@pytest.mark.requirement("II.2")
async def test_stopping_the_writer_refuses_its_callers_instead_of_leaving_them_silent(
    store: ObservedStore,
) -> None:
    """At shutdown the sender must get an error, not a message that vanished (I.12)."""
    archive = MessageArchive(store)
    store.hold = asyncio.Event()
    first = archive.submit(message(1))
    await store.holding.wait()  # its commit is in flight
    queued = archive.submit(message(2))
    assert archive._writer is not None
    archive._writer.cancel()
    await archive.drain()  # returns once the cancelled writer has settled its callers
    for future in (first, queued):
        assert future.done() and not future.cancelled()
        assert isinstance(future.exception(), StoreUnavailable)


@pytest.mark.requirement("II.2")
async def test_drain_waits_for_the_commit_in_flight_and_what_queued_behind_it(
    store: ObservedStore,
) -> None:
    archive = MessageArchive(store)
    await archive.drain()  # nothing submitted: returns at once
    store.hold = asyncio.Event()
    first = archive.submit(message(1))
    await store.holding.wait()
    queued = archive.submit(message(2))
    draining = asyncio.create_task(archive.drain())
    await asyncio.sleep(0)
    assert not draining.done()  # the commit of message 1 is still in flight
    store.hold.set()
    await draining
    assert first.result().seq == 1 and queued.result().seq == 2
    assert store.writes == [1, 1]


@pytest.mark.requirement("II.2")
async def test_gateway_stop_closes_the_store_only_after_archive_commits(
    store: ObservedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message accepted before shutdown is committed, not cut off by closing the
    store under the group-commit writer (II.2)."""
    settings = Settings(
        xmpp=XmppSettings(component_jid="clinic.hospital.test", user_domains=["hospital.test"]),
        store=StoreSettings(url=store.url),
    )
    gateway = Gateway(settings)
    await gateway.store.close()
    gateway.store, gateway.archive = store, MessageArchive(store)

    async def no_stop_event(kind: str) -> None:
        return None

    monkeypatch.setattr(gateway, "_record", no_stop_event)
    store.hold = asyncio.Event()
    pending = gateway.archive.submit(message(1))
    await store.holding.wait()
    closed_after: list[bool] = []
    close = store.close

    async def observed_close() -> None:
        closed_after.append(pending.done())
        await close()

    monkeypatch.setattr(store, "close", observed_close)
    stop_component = gateway.component.stop
    component_stopped = asyncio.Event()

    async def observed_stop() -> None:
        await stop_component()
        component_stopped.set()

    monkeypatch.setattr(gateway.component, "stop", observed_stop)
    stopping = asyncio.create_task(gateway.stop())
    await component_stopped.wait()  # stop() runs on to the store without yielding
    assert closed_after == []
    store.hold.set()
    await stopping
    assert closed_after == [True]
    assert pending.result().seq == 1
