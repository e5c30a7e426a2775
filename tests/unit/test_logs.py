"""Logs never carry message content, keys or secrets, at any level (I.12, II.3)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from xmpp_clinic.archive.messages import MessageArchive, NewMessage
from xmpp_clinic.config import LoggingSettings
from xmpp_clinic.logs import setup_logging
from xmpp_clinic.store import Store
from xmpp_clinic.threads import ThreadService

MARKER = "PATIENT-MARKER-4711"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("sqlalchemy", "slixmpp")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, value in levels.items():
        logging.getLogger(name).setLevel(value)


@pytest.mark.requirement("I.12", "II.3")
@pytest.mark.parametrize("level", ["DEBUG", "INFO"])
async def test_archiving_a_message_logs_no_content(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], restore_logging: None, level: str
) -> None:
    setup_logging(LoggingSettings(level=level, json_format=True))  # type: ignore[call-arg]
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        await store.migrate()
        service = ThreadService(store, user_domains=["hospital.test"])
        thread = await service.create("ward", "Ward", members=["alice@hospital.test"])
        stanza = f"<message><body>{MARKER}</body></message>"
        await MessageArchive(store).append(
            NewMessage(
                thread.id, "s1", datetime.now(UTC), "alice@hospital.test", "phone", "Alice",
                "occ1", stanza,
            )
        )  # fmt: skip
        logging.getLogger("xmpp_clinic.test").info("archived", extra={"care_thread": "ward"})
    finally:
        await store.close()
    err = capfd.readouterr().err
    assert '"event": "archived"' in err  # the handler really writes to stderr
    assert MARKER not in err
    for line in err.strip().splitlines():
        json.loads(line)
