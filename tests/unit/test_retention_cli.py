"""The retention verbs as an operator runs them (I.7): set-retention, purge, receipts."""

from __future__ import annotations

import asyncio
import json
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.unit.cli_store import build_template, use_template, write_config
from xmpp_clinic.archive.messages import ArchiveQuery, MessageArchive, NewMessage
from xmpp_clinic.cli import app
from xmpp_clinic.clock import utcnow
from xmpp_clinic.config import load_settings
from xmpp_clinic.store import Store
from xmpp_clinic.threads import ThreadService

pytestmark = pytest.mark.requirement("I.7")

ALICE = "alice@hospital.test"
runner = CliRunner()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory.mktemp("template"))


@pytest.fixture
def config(tmp_path: Path, template: Path) -> Path:
    path = write_config(tmp_path, user_domains=["hospital.test"])
    use_template(template, path)
    return path


def seed(config: Path, ages: list[int]) -> None:
    """Thread 'ward' with messages sent ``ages`` minutes ago."""

    async def go() -> None:
        store = Store(load_settings(config).store.url)
        try:
            await store.migrate()
            thread = await ThreadService(store, user_domains=["hospital.test"]).create(
                "ward", "Ward", [ALICE]
            )
            archive = MessageArchive(store)
            for n, age in enumerate(ages):
                await archive.append(
                    NewMessage(thread.id, f"m{n}", utcnow() - timedelta(minutes=age), ALICE,
                               "phone", "Alice", "occ", f"<message id='m{n}'/>")
                )  # fmt: skip
        finally:
            await store.close()

    asyncio.run(go())


def remaining(config: Path) -> list[str]:
    async def go() -> list[str]:
        store = Store(load_settings(config).store.url)
        try:
            page = await MessageArchive(store).query(ArchiveQuery(1))
            return [e.stanza_id for e in page.entries]
        finally:
            await store.close()

    return asyncio.run(go())


def cli(config: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--config", str(config)])
    return result.exit_code, result.output


def test_set_retention_takes_minute_periods(config: Path) -> None:
    seed(config, [])
    assert cli(config, "threads", "set-retention", "ward", "--messages", "90m") == (
        0, "messages of ward are kept 90m\n",
    )  # fmt: skip
    code, out = cli(config, "threads", "set-retention", "ward", "--messages", "3 weeks")
    assert code == 2 and "30d, 12h or 90m" in out


def test_purge_removes_old_messages_and_receipt_verifies(config: Path, tmp_path: Path) -> None:
    """I.7: a 2-minute thread; purge, audit verify passes, the receipt verifies."""
    seed(config, [10, 5, 0])
    assert cli(config, "threads", "set-retention", "ward", "--messages", "2m")[0] == 0
    code, out = cli(config, "purge", "--dry-run")
    assert code == 0 and "ward\t2m (thread)\t2 messages due" in out
    assert remaining(config) == ["m0", "m1", "m2"]
    code, out = cli(config, "purge")
    assert code == 0 and out.startswith("purged 2 messages from 1 thread"), out
    assert remaining(config) == ["m2"]
    assert cli(config, "audit", "verify")[0] == 0
    code, out = cli(config, "purge", "receipts", "--json")
    receipts = json.loads(out)
    assert receipts[0]["receipt"]["items"][0]["count"] == 2
    saved = tmp_path / "one.json"
    saved.write_text(json.dumps(receipts[0]))
    code, out = cli(config, "purge", "verify-receipt", str(saved))
    assert code == 0 and "valid" in out
    receipts[0]["receipt"]["items"][0]["last_seq"] = 1
    saved.write_text(json.dumps(receipts[0]))
    code, out = cli(config, "purge", "verify-receipt", str(saved))
    assert code == 1 and "INVALID" in out
    key = tmp_path / "receipt-key.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    assert len(list((tmp_path / "receipts").glob("*.json"))) == 1


def test_close_then_delete_thread(config: Path) -> None:
    seed(config, [1])
    code, out = cli(config, "threads", "close", "ward")
    assert code == 0 and out.startswith("closed ward")
    code, out = cli(config, "threads", "delete", "ward", "--yes", "--settle", "0")
    assert code == 0
    # no server interface configured: said, not ignored (I.7)
    assert out.startswith(f"server none: {ALICE} NOT DONE: retention.server_archive is 'none'")
    assert "\ndeleted thread ward; receipt " in out
    assert cli(config, "threads", "list")[1] == ""
    assert cli(config, "audit", "verify")[0] == 0
    code, out = cli(config, "threads", "delete", "ward", "--yes")
    assert code == 1 and "no thread named 'ward'" in out


def test_erase_person(config: Path) -> None:
    seed(config, [1])
    code, out = cli(config, "erase", "--person", ALICE, "--yes")
    assert code == 0 and out.startswith(f"erased {ALICE} (now erased-")
    assert cli(config, "audit", "verify")[0] == 0
    code, out = cli(config, "erase", "--person", "not a jid", "--yes")
    assert code == 2


def test_purge_of_one_thread_only(config: Path) -> None:
    seed(config, [10, 0])
    assert cli(config, "threads", "set-retention", "ward", "--messages", "2m")[0] == 0
    code, out = cli(config, "purge", "--thread", "ward", "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["messages"], data["threads"][0]["thread"]) == (1, "ward")
    assert data["receipt"]["receipt"]["items"][0]["count"] == 1
    code, out = cli(config, "purge", "--thread", "nope")
    assert code == 2 and "no thread named 'nope'" in out


@pytest.mark.parametrize(
    ("section", "values", "key"),
    [
        ("backup", {"recipients": ["ABCD1234"]}, "backup.recipients"),
        ("retention", {"purge_interval_minutes": 0}, "retention.purge_interval_minutes"),
        ("retention", {"server_archive": "openfire"}, "retention.server_archive"),
        ("retention", {"purge_batch": "2000"}, "retention.purge_batch"),
    ],
)
def test_bad_retention_keys_are_named(
    tmp_path: Path, section: str, values: dict[str, object], key: str
) -> None:
    """I.12: a wrong [retention] or [backup] key is bad config naming the key (exit 2)."""
    import tomli_w

    path = write_config(tmp_path)
    data = tomllib.loads(path.read_text())
    data[section] = values
    path.write_text(tomli_w.dumps(data))
    code, out = cli(path, "purge", "--dry-run")
    assert code == 2 and key in out, out
