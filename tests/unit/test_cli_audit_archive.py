"""`audit verify` also proves each thread's message archive untouched (II.2, I.11)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from tests.unit.cli_store import build_template, use_template, write_config
from xmpp_clinic.archive.messages import MessageArchive, NewMessage
from xmpp_clinic.cli import app
from xmpp_clinic.config import load_settings
from xmpp_clinic.store import Store
from xmpp_clinic.threads import ThreadService

ALICE = "alice@hospital.test"
runner = CliRunner()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory.mktemp("template"))


@pytest.fixture
def config(tmp_path: Path, template: Path) -> Path:
    path = write_config(tmp_path)
    use_template(template, path)
    return path


def run_sql(config: Path, statement: str | None = None) -> None:
    """Archive two messages in thread 'ward' (first call) or run ``statement``."""

    async def go() -> None:
        store = Store(load_settings(config).store.url)
        try:
            await store.migrate()
            if statement is not None:
                async with store.session() as session:
                    await session.execute(text(statement))
                return
            service = ThreadService(store, user_domains=["hospital.test"])
            thread = await service.create("ward", "Ward", members=[ALICE])
            archive = MessageArchive(store)
            for n in (1, 2):
                await archive.append(
                    NewMessage(
                        thread.id, f"s{n}", datetime.now(UTC), ALICE, "phone", "Alice",
                        "occ", f"<message id='m{n}'/>",
                    )
                )  # fmt: skip
        finally:
            await store.close()

    asyncio.run(go())


def verify(config: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["audit", "verify", "--config", str(config)])
    return result.exit_code, result.output


@pytest.mark.requirement("II.2")
def test_intact_archive_verifies(config: Path) -> None:
    run_sql(config)
    code, out = verify(config)
    assert code == 0, out
    assert "message archives intact" in out


@pytest.mark.requirement("II.2")
def test_edited_archived_message_is_detected(config: Path) -> None:
    run_sql(config)
    run_sql(config, "UPDATE thread_messages SET stanza = '<message id=\"x\"/>' WHERE seq = 1")
    code, out = verify(config)
    assert code == 1
    assert "message archive of thread ward BROKEN at message 1" in out


@pytest.mark.requirement("II.2")
def test_deleted_archived_message_is_detected(config: Path) -> None:
    run_sql(config)
    run_sql(config, "DELETE FROM thread_messages WHERE seq = 1")
    code, out = verify(config)
    assert code == 1
    assert "thread ward BROKEN" in out
