"""Shared test settings: PostgreSQL for store tests, required in CI."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest

DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


async def _reachable(url: str) -> str | None:
    import asyncpg

    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    try:
        conn = await asyncio.wait_for(asyncpg.connect(dsn), 5)
    except Exception as exc:  # any failure means: not usable here
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A PostgreSQL URL of a fresh database, dropped afterwards.

    Skipped with the reason where no PostgreSQL is reachable, unless
    ``XMPP_CLINIC_REQUIRE_PG=1`` (CI), where that is a failure.
    """
    import asyncpg

    base = os.environ.get("XMPP_CLINIC_TEST_PG_URL", DEFAULT_PG_URL)
    problem = await _reachable(base)
    if problem is not None:
        message = f"PostgreSQL not reachable at {base} ({problem}); set XMPP_CLINIC_TEST_PG_URL"
        if os.environ.get("XMPP_CLINIC_REQUIRE_PG") == "1":
            pytest.fail(message)
        pytest.skip(message)
    database = f"xc_{uuid.uuid4().hex[:12]}"
    admin_dsn = base.replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(admin_dsn)
    await conn.execute(f'CREATE DATABASE "{database}"')
    await conn.close()
    try:
        yield base.rsplit("/", 1)[0] + "/" + database
    finally:
        conn = await asyncpg.connect(admin_dsn)
        await conn.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
        await conn.close()
