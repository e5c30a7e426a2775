"""The store migrates itself, runs SQLite in WAL/FULL, and works on PostgreSQL too."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from xmpp_clinic.store import Store, StoreUnavailable
from xmpp_clinic.store.changes import ChangeWatcher, bump


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

        async def slow_reload() -> None:
            started.set()
            await asyncio.sleep(0.2)
            reloaded.set()

        watcher.on_change("devices", slow_reload)
        await watcher.refresh()
        async with store.session() as session:
            await bump(session, "devices")
        first = asyncio.ensure_future(watcher.refresh())
        await started.wait()
        await watcher.refresh()  # the message path's refresh
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
