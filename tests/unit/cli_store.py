"""A migrated SQLite store for CLI tests: built once per session, copied per test.

Migrating a fresh database costs a quarter of a second; the CLI tests need dozens of
fresh stores, so each starts from a copy of one migrated (and, where asked, seeded) file.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import tomli_w

from xmpp_clinic.store import Store

Fill = Callable[[Store], Awaitable[None]]


def build_template(folder: Path, fill: Fill | None = None) -> Path:
    """``folder/clinic.db``, migrated, then filled by ``fill``; closed (WAL checkpointed)."""
    path = folder / "clinic.db"

    async def go() -> None:
        store = Store(f"sqlite+aiosqlite:///{path}")
        try:
            await store.migrate()
            if fill is not None:
                await fill(store)
        finally:
            await store.close()

    asyncio.run(go())
    return path


def use_template(template: Path, config: Path) -> None:
    """Put a copy of ``template`` where ``config``'s store lives (``clinic.db`` beside it)."""
    shutil.copyfile(template, config.parent / "clinic.db")


def write_config(folder: Path, **xmpp: object) -> Path:
    """A config with an inline secret and the store ``folder/clinic.db``."""
    path = folder / "clinic.toml"
    data = {
        "xmpp": {"component_jid": "clinic.hospital.test", "secret": "s", **xmpp},
        "store": {"url": f"sqlite+aiosqlite:///{folder / 'clinic.db'}"},
    }
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path
