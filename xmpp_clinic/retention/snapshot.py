"""A consistent, backend-neutral snapshot of the store: every table as JSON lines (I.9).

Taken online while the gateway runs: PostgreSQL reads everything in one REPEATABLE READ
transaction; SQLite is first copied with SQLite's online backup API (one consistent
copy even while the gateway writes) and the copy is read. Rows are written as JSON, so
a snapshot of SQLite restores into PostgreSQL and back; bytes are base64, timestamps
ISO 8601 UTC. Tables are read and loaded in foreign-key order.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from xmpp_clinic.clock import as_utc
from xmpp_clinic.store import Store
from xmpp_clinic.store.base import Base

Progress = Callable[[int], None]
# Tables a migration fills (the audit head's genesis row): replaced by the snapshot's rows.
CONTENT_TABLES = ("threads", "thread_messages", "audit_events", "devices")
CHUNK = 1000


class StoreNotEmpty(Exception):
    """A restore target that already holds threads, messages, events or devices."""


def tables() -> list[Table]:
    """Every table the models define, parents before children."""
    import xmpp_clinic.store.models  # noqa: F401  (registers every table)

    return list(Base.metadata.sorted_tables)


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    return value


def _decoder(table: Table) -> Callable[[dict[str, Any]], dict[str, Any]]:
    kinds: dict[str, type] = {}
    for column in table.columns:
        try:
            kinds[column.name] = column.type.python_type
        except NotImplementedError:
            kinds[column.name] = object

    def decode(row: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in row.items():
            kind = kinds.get(name, object)
            if value is not None and kind is bytes:
                value = base64.b64decode(value)
            elif value is not None and kind is datetime:
                value = datetime.fromisoformat(value)
            out[name] = value
        return out

    return decode


def _sqlite_path(url: str) -> Path | None:
    prefix = "sqlite+aiosqlite:///"
    return Path(url[len(prefix) :]) if url.startswith(prefix) else None


@asynccontextmanager
async def consistent(store: Store) -> AsyncIterator[AsyncConnection]:
    """A connection that sees one point in time of ``store`` for as long as it is open."""
    path = _sqlite_path(store.url)
    if path is None:
        async with store.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                await conn.execute(text("SET TRANSACTION READ ONLY"))
                yield conn
        return
    with tempfile.TemporaryDirectory(prefix="xc-snapshot-") as folder:
        copy = Path(folder) / "snapshot.db"
        source = sqlite3.connect(path, timeout=30)
        target = sqlite3.connect(copy)
        try:
            source.backup(target)  # SQLite's online backup: one consistent copy
        finally:
            target.close()
            source.close()
        snapshot = Store(f"sqlite+aiosqlite:///{copy}")
        try:
            async with snapshot.engine.connect() as conn:
                yield conn
        finally:
            await snapshot.close()


async def dump(conn: AsyncConnection, progress: Progress | None = None) -> AsyncIterator[str]:
    """JSON lines ``{"table": ..., "row": {...}}`` of every table, in foreign-key order."""
    for table in tables():
        order = list(table.primary_key.columns) or list(table.columns)
        result = await conn.stream(select(table).order_by(*order))
        async for chunk in result.mappings().partitions(CHUNK):
            for row in chunk:
                encoded = {k: _encode(v) for k, v in row.items()}
                yield json.dumps({"table": table.name, "row": encoded}, separators=(",", ":"))
            if progress is not None:
                progress(len(chunk))


async def counts(conn: AsyncConnection) -> dict[str, int]:
    found: dict[str, int] = {}
    for table in tables():
        found[table.name] = int(
            (await conn.execute(select(func.count()).select_from(table))).scalar_one()
        )
    return found


async def load(store: Store, lines: Iterable[str], progress: Progress | None = None) -> int:
    """Load a snapshot into ``store`` (migrated, without content); returns rows loaded."""
    known = {t.name: t for t in tables()}
    decoders = {name: _decoder(t) for name, t in known.items()}
    loaded = 0
    async with store.engine.begin() as conn:
        for name in CONTENT_TABLES:
            if (await conn.execute(select(func.count()).select_from(known[name]))).scalar_one():
                raise StoreNotEmpty(f"the target store already has {name}; restore needs an "
                                    "empty store")  # fmt: skip
        for table in reversed(tables()):
            await conn.execute(delete(table))
        batch: list[dict[str, Any]] = []
        current: str | None = None
        for line in lines:
            entry = json.loads(line)
            if entry["table"] != current or len(batch) >= CHUNK:
                loaded += await _flush(conn, known, current, batch, progress)
                batch, current = [], entry["table"]
            batch.append(decoders[entry["table"]](entry["row"]))
        loaded += await _flush(conn, known, current, batch, progress)
        if conn.dialect.name == "postgresql":
            await _reset_sequences(conn)
    return loaded


async def _flush(conn: AsyncConnection, known: dict[str, Table], name: str | None,
                 batch: list[dict[str, Any]], progress: Progress | None) -> int:  # fmt: skip
    if name is None or not batch:
        return 0
    await conn.execute(insert(known[name]), batch)
    if progress is not None:
        progress(len(batch))
    return len(batch)


async def _reset_sequences(conn: AsyncConnection) -> None:
    """Serial ids continue after the restored rows (PostgreSQL keeps sequences apart)."""
    for table in tables():
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or keys[0].autoincrement is False:
            continue
        column = keys[0].name
        sequence = (
            await conn.execute(
                text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column}
            )
        ).scalar_one()
        if sequence is None:
            continue
        await conn.execute(
            text(
                f'SELECT setval(:s, COALESCE((SELECT MAX("{column}") FROM "{table.name}"), 0) + 1,'
                " false)"
            ),
            {"s": sequence},
        )
