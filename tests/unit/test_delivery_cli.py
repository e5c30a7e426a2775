"""``xmpp-clinic threads delivery NAME [--since] [--json]`` for IT (II.2)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.unit.cli_store import build_template, use_template, write_config
from xmpp_clinic.cli import app
from xmpp_clinic.clock import utcnow
from xmpp_clinic.completeness.delivery_store import Deliveries
from xmpp_clinic.config import load_settings
from xmpp_clinic.store import Store
from xmpp_clinic.threads import ThreadService

pytestmark = pytest.mark.requirement("II.2")

ALICE, BOB, CAROL = (f"{n}@hospital.test" for n in ("alice", "bob", "carol"))
runner = CliRunner()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory.mktemp("template"))


@pytest.fixture
def config(tmp_path: Path, template: Path) -> Path:
    path = write_config(tmp_path, user_domains=["hospital.test"])
    use_template(template, path)

    async def seed() -> None:
        store = Store(load_settings(path).store.url)
        try:
            await ThreadService(store, user_domains=["hospital.test"]).create(
                "ward", "Ward", [ALICE, BOB, CAROL]
            )
            deliveries = Deliveries(store)
            old, new = utcnow() - timedelta(days=3), utcnow()
            members = [ALICE, BOB, CAROL]
            rows = Deliveries.rows("ward", 1, "sid-1", ALICE, old, members, [BOB])
            rows += Deliveries.rows("ward", 2, "sid-2", ALICE, new, members, [])
            await deliveries.insert(rows)
            await deliveries.fetched(CAROL, ["sid-1"], new)
        finally:
            await store.close()

    asyncio.run(seed())
    return path


def cli(config: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--config", str(config)])
    return result.exit_code, result.output


def test_every_message_and_member_with_its_status(config: Path) -> None:
    code, out = cli(config, "threads", "delivery", "ward")
    assert code == 0
    lines = [line.split("\t")[:5] for line in out.splitlines()]
    assert lines == [
        ["1", "sid-1", ALICE, BOB, "delivered"],
        ["1", "sid-1", ALICE, CAROL, "fetched"],
        ["2", "sid-2", ALICE, BOB, "not yet"],
        ["2", "sid-2", ALICE, CAROL, "not yet"],
    ]


def test_since_and_json(config: Path) -> None:
    code, out = cli(config, "threads", "delivery", "ward", "--since", "24h", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [(r["stanza_id"], r["member"], r["status"]) for r in rows] == [
        ("sid-2", BOB, "not yet"),
        ("sid-2", CAROL, "not yet"),
    ]


def test_an_unknown_thread_or_a_bad_since_is_an_error(config: Path) -> None:
    assert cli(config, "threads", "delivery", "nosuch")[0] == 1
    assert cli(config, "threads", "delivery", "ward", "--since", "yesterday")[0] == 2
