"""`audit verify` names the sequence number of a deleted archived message (II.2)."""

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

pytestmark = pytest.mark.requirement("II.2")

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


def archive_four_then(config: Path, *statements: str) -> int | None:
    """Archive messages 1..4 in thread 'ward', run ``statements``, return ``verify``."""

    async def go() -> int | None:
        store = Store(load_settings(config).store.url)
        try:
            await store.migrate()
            thread = await ThreadService(store, user_domains=["hospital.test"]).create(
                "ward", "Ward", members=[ALICE]
            )
            archive = MessageArchive(store)
            for n in range(1, 5):
                await archive.append(
                    NewMessage(
                        thread.id, f"s{n}", datetime.now(UTC), ALICE, "phone", "Alice",
                        "occ", f"<message id='m{n}'/>",
                    )
                )  # fmt: skip
            for statement in statements:
                async with store.session() as session:
                    await session.execute(text(statement))
            return await MessageArchive(store).verify(thread.id)
        finally:
            await store.close()

    return asyncio.run(go())


@pytest.mark.requirement("II.2")
@pytest.mark.parametrize("missing", [1, 2, 3])
def test_a_deleted_message_is_named_by_its_sequence_number(config: Path, missing: int) -> None:
    assert archive_four_then(config, f"DELETE FROM thread_messages WHERE seq = {missing}") == (
        missing
    )
    result = runner.invoke(app, ["audit", "verify", "--config", str(config)])
    assert result.exit_code == 1
    assert f"message archive of thread ward BROKEN at message {missing}" in result.output


@pytest.mark.requirement("II.2")
def test_an_edit_before_a_gap_is_reported_first(config: Path) -> None:
    found = archive_four_then(
        config,
        "UPDATE thread_messages SET stanza = '<message id=\"x\"/>' WHERE seq = 1",
        "DELETE FROM thread_messages WHERE seq = 3",
    )
    assert found == 1


@pytest.mark.requirement("II.2")
def test_an_intact_archive_has_no_gap(config: Path) -> None:
    assert archive_four_then(config) is None
