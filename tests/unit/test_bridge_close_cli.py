"""``threads close`` queues a documented thread's transcript for the HIS, once (I.6, I.7).

With ``[bridge.hl7] host`` set, closing starts the retention period and queues an MDM
document when the HIS lacks some of the thread's documentation; without the records
key nothing changes and the operator is told why.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import tomli_w
from typer.testing import CliRunner

from tests.unit.test_bridge_support import ALICE, BOB, DOMAIN, T0
from xmpp_clinic.archive import audit
from xmpp_clinic.bridge.outbox import Outbox
from xmpp_clinic.bridge.records import NoDocumentation
from xmpp_clinic.cli import app
from xmpp_clinic.records.documentation import Content, Documentation, NewCopy
from xmpp_clinic.records.keys import create_key
from xmpp_clinic.settings.bridge import Hl7PushSettings
from xmpp_clinic.store import Store
from xmpp_clinic.threads import ThreadService

pytestmark = pytest.mark.requirement("I.6", "I.7")

runner = CliRunner()


def write_config(tmp_path: Path, *, hl7: bool = True) -> Path:
    path = tmp_path / "clinic.toml"
    data = {
        "xmpp": {"component_jid": "clinic.hospital.test", "secret": "s", "user_domains": [DOMAIN]},
        "store": {"url": f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}"},
        "records": {"key_file": str(tmp_path / "records-key")},
        "bridge": {"hl7": {"host": "127.0.0.1", "port": 9}} if hl7 else {},
    }
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    async def seed() -> None:
        store = Store(f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}")
        await store.migrate()
        threads = ThreadService(store, user_domains=[DOMAIN])
        await threads.create("icu", "ICU", [ALICE, BOB], documented=True)
        await threads.create("quiet", "Quiet", [ALICE])
        documentation = Documentation(store, create_key(tmp_path / "records-key"))
        await documentation.append(NewCopy("icu", T0, ALICE, "m1", Content("Sats 94%.")))
        await store.close()

    asyncio.run(seed())
    return write_config(tmp_path)


def close(config: Path, name: str) -> tuple[int, str]:
    result = runner.invoke(app, ["threads", "close", name, "-c", str(config)])
    return result.exit_code, result.output


async def _state(config: Path) -> tuple[list[str], int]:
    store = Store(f"sqlite+aiosqlite:///{config.parent / 'clinic.db'}")
    try:
        pending = await Outbox(store, NoDocumentation(), Hl7PushSettings()).pending()
        async with store.session() as session:
            closings = [e for e in await audit.events(session) if e.action == "thread.closed"]
        return [f"{p.thread} MDM^{p.event} v{p.version}" for p in pending], len(closings)
    finally:
        await store.close()


def state(config: Path) -> tuple[list[str], int]:
    return asyncio.run(_state(config))


def test_closing_a_documented_thread_queues_its_transcript_once(config: Path) -> None:
    code, out = close(config, "icu")
    assert code == 0, out
    assert "retention period started" in out and "queued MDM^T02 v1 for the HIS" in out
    code, out = close(config, "icu")  # still waiting: the waiting one carries everything
    assert code == 0 and "queued" not in out
    code, out = close(config, "quiet")  # not documented: retention only
    assert code == 0 and "queued" not in out
    assert state(config) == (["icu MDM^T02 v1"], 3)


def test_without_the_records_key_nothing_is_closed(config: Path) -> None:
    (config.parent / "records-key").unlink()
    code, out = close(config, "icu")
    assert code != 0
    assert "not closed" in out and "records-key" in out
    assert state(config) == ([], 0)


def test_without_an_hl7_receiver_closing_needs_no_key(config: Path, tmp_path: Path) -> None:
    (tmp_path / "records-key").unlink()
    code, out = close(write_config(tmp_path, hl7=False), "icu")
    assert code == 0 and "queued" not in out
    assert state(config) == ([], 1)
