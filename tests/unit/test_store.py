"""The store migrates itself, runs SQLite in WAL/FULL, and works on PostgreSQL too."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import delete, func, inspect, select, text
from sqlalchemy.engine import Connection

from xmpp_clinic.store import Base, Store, StoreConflict, StoreUnavailable
from xmpp_clinic.store.changes import ChangeWatcher, bump
from xmpp_clinic.store.engine import alembic_config
from xmpp_clinic.store.models import GatewayEvent
from xmpp_clinic.store.models.messages import ArchivedMessage
from xmpp_clinic.store.models.threads import Thread

AT = datetime(2024, 5, 1, 8, 0, 0, 123456, tzinfo=UTC)


async def _exercise(store: Store) -> None:
    await store.migrate()
    await store.migrate()  # idempotent: a restart applies nothing twice
    assert "0001" in await store.revision() or await store.revision()
    seen: list[str] = []

    async def on_devices() -> None:
        seen.append("devices")

    watcher = ChangeWatcher(store)
    watcher.on_change("devices", on_devices)
    assert await watcher.refresh() == set()
    async with store.session() as session:
        await bump(session, "devices")
    assert await watcher.refresh() == {"devices"}
    assert await watcher.refresh() == set()
    async with store.session() as session:
        await bump(session, "devices")
        await bump(session, "threads")
    assert await watcher.refresh() == {"devices", "threads"}
    assert seen == ["devices", "devices"]


@pytest.mark.requirement("I.12")
async def test_the_change_check_with_the_store_gone_fails_closed(tmp_path: Path) -> None:
    """The read before every message: a store that cannot be read is StoreUnavailable
    (the relay refuses the message), never a raw driver error or an empty answer."""
    store = Store(f"sqlite+aiosqlite:///{tmp_path}/gone/store.db")  # no such directory
    try:
        with pytest.raises(StoreUnavailable, match=r"store error \(OperationalError\)"):
            await ChangeWatcher(store).refresh()
    finally:
        await store.close()


async def test_sqlite_store_migrates_and_tracks_changes(tmp_path: Path) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        await _exercise(store)
        async with store.session() as session:
            mode = (await session.execute(text("PRAGMA journal_mode"))).scalar()
            sync = (await session.execute(text("PRAGMA synchronous"))).scalar()
        assert mode == "wal"
        assert sync == 2  # FULL
    finally:
        await store.close()


@pytest.mark.postgres
async def test_postgres_store_migrates_and_tracks_changes(pg_url: str) -> None:
    store = Store(pg_url)
    try:
        assert store.backend == "postgresql"
        await _exercise(store)
    finally:
        await store.close()


async def test_unreachable_store_fails_closed_with_clear_error() -> None:
    store = Store("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        with pytest.raises(StoreUnavailable, match="cannot migrate"):
            await store.migrate()
    finally:
        await store.close()


async def test_concurrent_refresh_waits_for_listeners_to_finish(tmp_path: Path) -> None:
    """A message arriving mid-reload must not be judged on the old state (I.5)."""
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        await store.migrate()
        watcher = ChangeWatcher(store)
        reloaded = asyncio.Event()
        started = asyncio.Event()
        release = asyncio.Event()

        async def slow_reload() -> None:
            started.set()
            await release.wait()
            reloaded.set()

        watcher.on_change("devices", slow_reload)
        await watcher.refresh()
        async with store.session() as session:
            await bump(session, "devices")
        first = asyncio.ensure_future(watcher.refresh())
        await started.wait()
        second = asyncio.ensure_future(watcher.refresh())  # the message path's refresh
        await asyncio.sleep(0)
        assert not second.done()  # it waits for the reload in progress
        release.set()
        await second
        assert reloaded.is_set()
        assert await first == {"devices"}
    finally:
        await store.close()


async def test_failed_listener_is_retried_on_next_refresh(tmp_path: Path) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        await store.migrate()
        watcher = ChangeWatcher(store)
        calls: list[int] = []

        async def flaky() -> None:
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("store hiccup")

        watcher.on_change("threads", flaky)
        async with store.session() as session:
            await bump(session, "threads")
        with pytest.raises(RuntimeError):
            await watcher.refresh()
        assert await watcher.refresh() == {"threads"}
        assert len(calls) == 2
    finally:
        await store.close()


# ------------------------------------------------------------------ schema and types
async def _schema_differences(store: Store) -> list[object]:
    def diff(conn: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))

    async with store.engine.connect() as conn:
        return await conn.run_sync(diff)


async def _archive_foreign_key(store: Store) -> dict[str, Any]:
    def foreign_keys(conn: Connection) -> list[Any]:
        return list(inspect(conn).get_foreign_keys("thread_messages"))

    async with store.engine.connect() as conn:
        (found,) = await conn.run_sync(foreign_keys)
    return dict(found)


def _script_heads() -> set[str]:
    """The heads of the package's migration scripts: where a migrated store must be."""
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


async def _check_schema(store: Store) -> None:
    """Every table migrated exactly as the models say; the archive is not cascaded."""
    await store.migrate()
    assert await store.revision() == _script_heads()
    assert await _schema_differences(store) == []
    fk = await _archive_foreign_key(store)
    assert fk["referred_table"] == "threads"
    assert (fk.get("options") or {}).get("ondelete") in (None, "NO ACTION")


async def _deleting_an_archived_thread_is_refused(store: Store) -> None:
    """Deleting archived messages is retention's job, with receipts (I.7, II.2)."""
    async with store.session() as session:
        session.add(Thread(id=10, name="ward", title="W", kind="group"))
        await session.flush()  # no relationship orders the two inserts
        session.add(
            ArchivedMessage(
                thread_id=10, seq=1, stanza_id="s1", at=AT, sender="a@h.test", nick="a",
                occupant_id="o", stanza="<message/>", digest=bytes(32),
            )
        )  # fmt: skip
    await _refused_to_delete(store, 10)
    async with store.session() as session:
        assert await session.scalar(select(func.count(ArchivedMessage.id))) == 1


async def _duplicate_is_a_conflict_not_an_outage(store: Store) -> None:
    async with store.session() as session:
        session.add(Thread(name="dup", title="D", kind="group"))
    with pytest.raises(StoreConflict) as raised:
        async with store.session() as session:
            session.add(Thread(name="dup", title="D", kind="group"))
    assert not isinstance(raised.value, StoreUnavailable)
    assert "dup" not in str(raised.value)  # bound values never reach error texts


async def _timestamps_are_stored_and_read_as_utc(store: Store) -> None:
    """Whatever offset a caller used, the store holds UTC and hands back aware UTC."""
    berlin = timezone(timedelta(hours=2))
    async with store.session() as session:
        session.add(GatewayEvent(id=1, kind="start", version="1", at=AT.astimezone(berlin)))
        session.add(GatewayEvent(id=2, kind="stop", version="1", at=AT.replace(tzinfo=None)))
    async with store.session() as session:
        rows = (await session.scalars(select(GatewayEvent).order_by(GatewayEvent.id))).all()
        assert [row.at for row in rows] == [AT, AT]
        assert all(row.at.utcoffset() == timedelta(0) for row in rows)
        # Comparisons are made in UTC too: a bound with another offset finds the same rows.
        later = (AT + timedelta(seconds=1)).astimezone(berlin)
        query = select(func.count(GatewayEvent.id)).where(GatewayEvent.at < later)
        assert await session.scalar(query) == 2


async def _exercise_schema(store: Store) -> None:
    await _check_schema(store)
    await _duplicate_is_a_conflict_not_an_outage(store)
    await _deleting_an_archived_thread_is_refused(store)
    await _timestamps_are_stored_and_read_as_utc(store)


async def test_sqlite_schema_conflicts_and_timestamps(tmp_path: Path) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        await _exercise_schema(store)
    finally:
        await store.close()


@pytest.mark.postgres
async def test_postgres_schema_conflicts_and_timestamps(pg_url: str) -> None:
    store = Store(pg_url)
    try:
        await _exercise_schema(store)
    finally:
        await store.close()


async def test_upgrade_to_0004_keeps_every_archived_message(tmp_path: Path) -> None:
    """A store from before 0004 (two branches, archive cascaded) keeps its rows (SQLite
    rebuilds the table in batch mode) and loses the cascade; downgrading restores it."""
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:

        def upgrade_to(revisions: tuple[str, ...]) -> Callable[[Connection], None]:
            def run(conn: Connection) -> None:
                for revision in revisions:
                    command.upgrade(alembic_config(conn), revision)

            return run

        async with store.engine.begin() as conn:
            await conn.run_sync(upgrade_to(("0002", "0003")))
        async with store.engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO threads VALUES (1, 'ward', 'W', 'group', '', :at)"), {"at": AT}
            )
            for seq in (1, 2):
                await conn.execute(
                    text(
                        "INSERT INTO thread_messages VALUES "
                        "(:seq, 1, :seq, :sid, :at, 'a@h.test', '', 'a', 'o', '<m/>', :digest)"
                    ),
                    {"seq": seq, "sid": f"s{seq}", "at": AT, "digest": bytes(32)},
                )
        assert await store.revision() == {"0002", "0003"}
        assert (await _archive_foreign_key(store))["options"].get("ondelete") == "CASCADE"
        await store.migrate()
        assert await store.revision() == _script_heads()
        async with store.session() as session:
            rows = (await session.execute(select(ArchivedMessage.seq, ArchivedMessage.at))).all()
        assert rows == [(1, AT), (2, AT)]
        assert await _schema_differences(store) == []
        await _refused_to_delete(store, 1)

        def downgrade(conn: Connection) -> None:
            command.downgrade(alembic_config(conn), "0003")  # 0004 only; 0002 stays

        async with store.engine.begin() as conn:
            await conn.run_sync(downgrade)
        assert await store.revision() == {"0002", "0003"}
        assert (await _archive_foreign_key(store))["options"].get("ondelete") == "CASCADE"
        async with store.session() as session:
            assert await session.scalar(select(func.count(ArchivedMessage.id))) == 2
    finally:
        await store.close()


async def _refused_to_delete(store: Store, thread_id: int) -> None:
    with pytest.raises(StoreConflict):
        async with store.session() as session:
            await session.execute(delete(Thread).where(Thread.id == thread_id))


@pytest.mark.requirement("I.12")
async def test_a_write_locked_out_waits_then_says_the_store_is_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer holding SQLite past the busy timeout is named as such, not as an
    unreachable database (the CLI's advice would be wrong), and the writer fails closed."""
    import sqlite3

    monkeypatch.setattr("xmpp_clinic.store.engine.SQLITE_BUSY_SECONDS", 1)
    path = tmp_path / "busy.db"
    store = Store(f"sqlite+aiosqlite:///{path}")
    await store.migrate()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write transaction
    try:
        began = asyncio.get_running_loop().time()
        with pytest.raises(StoreUnavailable, match="store busy: another writer held the SQLite"):
            async with store.session() as session:
                session.add(GatewayEvent(kind="test", version="0"))
        assert asyncio.get_running_loop().time() - began >= 0.9  # it waited first
    finally:
        holder.rollback()
        holder.close()
        await store.close()
