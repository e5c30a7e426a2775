"""The async engine: SQLite (WAL, synchronous=FULL) by default, PostgreSQL for production."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")


class StoreUnavailable(Exception):
    """The store cannot be reached or written; callers fail closed (I.12)."""


class StoreConflict(Exception):
    """A write broke a constraint: a unique name already taken, a row still referenced.

    Not an outage: the store works, the request does not fit what is stored. The
    service that wrote says what it means (a thread name taken, an archive that may
    not be deleted); ``str()`` never includes the bound values (I.12).
    """


SQLITE_BUSY_SECONDS = 30


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL for concurrent readers; FULL so an acknowledged append survives power loss.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # One writer at a time: a CLI write waits for the gateway's group commit (and the
    # other way round) as long as the connect timeout says, not 5 s, which a loaded disk
    # with synchronous=FULL can exceed; the relay bounds its own wait (STORE_TIMEOUT).
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
    cursor.close()


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    """An Alembic config pointing at the migrations shipped inside the package."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


class Store:
    """Owns the engine and hands out sessions; the only door to the database."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        # Bound values are archived stanzas and identity keys: never in error texts (I.12).
        kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_SECONDS}
        else:
            # A black-holed connection must fail (and the message be refused), not hang.
            kwargs["pool_pre_ping"] = True
            kwargs["connect_args"] = {"command_timeout": 30, "timeout": 10}
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    async def migrate(self) -> None:
        """Apply all Alembic migrations (run at every start; idempotent)."""

        def upgrade(conn: Connection) -> None:
            command.upgrade(alembic_config(conn), "heads")

        try:
            async with self.engine.begin() as conn:
                await conn.run_sync(upgrade)
        except (OSError, DBAPIError, OperationalError) as exc:
            raise StoreUnavailable(f"cannot migrate the store ({type(exc).__name__})") from exc

    async def revision(self) -> set[str]:
        """The migration heads the database is at."""

        def current(conn: Connection) -> set[str]:
            from alembic.runtime.migration import MigrationContext

            return set(MigrationContext.configure(conn).get_current_heads())

        async with self.engine.connect() as conn:
            return await conn.run_sync(current)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction, committed on success.

        Store faults surface as StoreUnavailable so callers fail closed; a broken
        constraint surfaces as StoreConflict, which the caller turns into its own error.
        """
        async with _faults(), self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction without the ORM, committed on success: for the
        relay's inserts (archive and delivery rows), which need no ORM objects (issue
        13). Faults surface as with :meth:`session`."""
        async with _faults(), self.engine.begin() as connection:
            yield connection

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """A connection for a read without the ORM, rolled back when done: the change
        check before every message costs half of a session's hand-offs (issue 13).
        Faults surface as with :meth:`session`."""
        async with _faults(), self.engine.connect() as connection:
            yield connection

    async def close(self) -> None:
        await self.engine.dispose()


@asynccontextmanager
async def _faults() -> AsyncIterator[None]:
    """Store faults as the callers of :class:`Store` see them: StoreConflict for a broken
    constraint, StoreUnavailable for the rest, named, without bound values (I.12)."""
    try:
        yield
    except IntegrityError as exc:
        raise StoreConflict(f"store constraint violated ({type(exc.orig).__name__})") from exc
    except (OSError, DBAPIError, OperationalError) as exc:
        if "database is locked" in str(getattr(exc, "orig", "")):
            raise StoreUnavailable(
                f"store busy: another writer held the SQLite database for "
                f"{SQLITE_BUSY_SECONDS} s ({type(exc).__name__}); try again"
            ) from exc
        raise StoreUnavailable(f"store error ({type(exc).__name__})") from exc
