"""Delivery records, part sets and documentation copies go with their archive range (I.7).

Rows other rooms keep about archived messages (issue 11's ``message_deliveries`` and
``part_sets``, issue 14's ``documentation``) are purged with the messages they belong to;
delivery records also after ``retention.delivery_records_days``; the documentation chain
keeps verifying from its new anchor (I.6, II.2, II.3).
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from xmpp_clinic.archive.messages import MessageArchive, NewMessage
from xmpp_clinic.records.documentation import Content, Documentation, NewCopy
from xmpp_clinic.retention.linked import attachments_table
from xmpp_clinic.retention.purge import Purger
from xmpp_clinic.retention.reapply import reapply
from xmpp_clinic.retention.receipts import ReceiptBook, load_public_key
from xmpp_clinic.retention.threads import ThreadRetentionService
from xmpp_clinic.settings.retention import RetentionSettings
from xmpp_clinic.store import Store
from xmpp_clinic.store.models.completeness import DeliveryRow, PartSetRow
from xmpp_clinic.threads import ThreadService

pytestmark = pytest.mark.requirement("I.7", "II.3")

ALICE = "alice@hospital.test"
BOB = "bob@hospital.test"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
PARTS = "urn:xmpp-clinic:parts:0"
KEY = secrets.token_bytes(32)  # the records key file's key
LINKED = f" scan aesgcm://upload.hospital.test/x/scan.jpg#{'ab' * 44}"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}")
    await store.migrate()
    yield store
    await store.close()


def purger(store: Store, tmp_path: Path, **settings: object) -> tuple[Purger, ReceiptBook]:
    book = ReceiptBook(store, tmp_path / "keys" / "receipt.pem", tmp_path / "receipts")
    return Purger(store, RetentionSettings.model_validate(settings), book), book


def part(set_id: str, n: int, of: int) -> str:
    return f'<part xmlns="{PARTS}" set="{set_id}" n="{n}" of="{of}" />'


async def ward(store: Store, messages: list[tuple[int, str]]) -> int:
    """Thread "ward" with messages sent ``age`` minutes before NOW, each with ``extra``
    inside its stanza, and for each a delivery record for Bob."""
    thread = await ThreadService(store, user_domains=["hospital.test"]).create(
        "ward", "Ward", [ALICE, BOB]
    )
    archive = MessageArchive(store)
    for n, (age, extra) in enumerate(messages):
        at = NOW - timedelta(minutes=age)
        stanza = f'<message xmlns="jabber:component:accept" id="m{n}">{extra}</message>'
        entry = await archive.append(
            NewMessage(thread.id, f"m{n}", at, ALICE, "phone", "Alice", "occ", stanza)
        )
        async with store.session() as session:
            session.add(
                DeliveryRow(thread="ward", seq=entry.seq, stanza_id=f"m{n}", sender=ALICE,
                            member=BOB, at=at, delivered_at=at)
            )  # fmt: skip
    await ThreadRetentionService(store).set_period("ward", 2, actor="cli:test")
    return thread.id


async def part_set(
    store: Store, set_id: str, received: str, of: int, age: int, **flags: bool
) -> None:
    async with store.session() as session:
        session.add(
            PartSetRow(thread="ward", set_id=set_id, sender=ALICE, nick="Alice", of=of,
                       received=received, first_at=NOW - timedelta(minutes=age), **flags)
        )  # fmt: skip


async def test_purged_messages_take_their_delivery_records(store: Store, tmp_path: Path) -> None:
    """II.3: Bob's delivery records of the purged messages go; the young one's stays."""
    await ward(store, [(10, ""), (5, ""), (1, "")])
    job, _ = purger(store, tmp_path)
    outcome = await job.run(actor="gateway", rule="schedule", now=NOW)
    assert (outcome.messages, outcome.linked.deliveries) == (2, 2)
    async with store.session() as session:
        left = (await session.scalars(select(DeliveryRow.stanza_id))).all()
    assert left == ["m2"]
    assert outcome.receipt is not None
    item = [i for i in outcome.receipt.body["items"] if i["what"] == "delivery-records"]
    assert item == [{"what": "delivery-records", "thread": "ward", "through_seq": 2, "count": 2}]


async def test_delivery_records_go_after_their_own_period(store: Store, tmp_path: Path) -> None:
    """II.3: retention.delivery_records_days, shorter than the thread's period, applies."""
    await ward(store, [(3 * 24 * 60, ""), (60, "")])
    await ThreadRetentionService(store).set_period("ward", 30 * 24 * 60, actor="cli:test")
    job, _ = purger(store, tmp_path, delivery_records_days=2)
    outcome = await job.run(actor="gateway", rule="schedule", now=NOW)
    assert (outcome.messages, outcome.linked.deliveries) == (0, 1)
    async with store.session() as session:
        left = (await session.scalars(select(DeliveryRow.stanza_id))).all()
    assert left == ["m1"]


async def test_settled_part_sets_go_when_their_parts_are_purged(
    store: Store, tmp_path: Path
) -> None:
    """II.2: a set whose every archived part is purged goes; a set one of whose parts is
    still archived stays, and so does a set that is still owed a notice."""
    await ward(
        store,
        [(10, part("gone", 1, 2)), (9, part("gone", 2, 2)), (8, part("split", 1, 2)),
         (7, part("owed", 1, 2)), (1, part("split", 2, 2))],
    )  # fmt: skip
    await part_set(store, "gone", "1,2", 2, 10)
    await part_set(store, "split", "1,2", 2, 8)
    await part_set(store, "owed", "1", 2, 7)  # missing part not announced yet
    job, _ = purger(store, tmp_path)
    outcome = await job.run(actor="gateway", rule="schedule", now=NOW)
    assert (outcome.messages, outcome.linked.part_sets) == (4, 1)
    async with store.session() as session:
        left = sorted((await session.scalars(select(PartSetRow.set_id))).all())
    assert left == ["owed", "split"]


async def test_an_announced_incomplete_set_goes_with_its_parts(
    store: Store, tmp_path: Path
) -> None:
    await ward(store, [(10, part("lost", 1, 3)), (1, "")])
    await part_set(store, "lost", "1", 3, 10, missing_noticed=True)
    job, _ = purger(store, tmp_path)
    assert (await job.run(actor="gateway", rule="schedule", now=NOW)).linked.part_sets == 1


async def documentation(store: Store, ages: list[int], thread: str = "ward") -> Documentation:
    docs = Documentation(store, KEY)
    for n, age in enumerate(ages):
        at = NOW - timedelta(minutes=age)
        said = f"text {n}" + (LINKED if n == 0 else "")  # the first one links a file
        await docs.append(NewCopy(thread, at, ALICE, f"m{n}", Content(said)))
    return docs


async def test_documentation_copies_go_with_the_range_and_the_rest_verifies(
    store: Store, tmp_path: Path
) -> None:
    """I.6, I.7: copies older than the thread's period go from the start of the chain;
    the rest, and copies appended later, read back through the checked chain."""
    await ward(store, [(10, ""), (5, ""), (1, "")])
    docs = await documentation(store, [10, 5, 1])
    files = attachments_table()
    assert files is not None
    async with store.session() as session:
        assert (await session.execute(select(files.c.position))).all() == [(1,)]
    job, _ = purger(store, tmp_path, purge_batch=10)
    outcome = await job.run(actor="gateway", rule="schedule", now=NOW)
    assert outcome.linked.documentation == 2
    assert [m.body for m in await docs.read("ward")] == ["text 2"]
    await docs.append(NewCopy("ward", NOW, BOB, "late", Content("later")))
    assert [m.body for m in await docs.read("ward")] == ["text 2", "later"]
    assert outcome.receipt is not None
    item = next(i for i in outcome.receipt.body["items"] if i["what"] == "documentation")
    assert (item["thread"], item["first_position"], item["last_position"], item["count"]) == (
        "ward", 1, 2, 2,
    )  # fmt: skip
    async with store.session() as session:  # the first copy's attachment went with it
        assert (await session.execute(select(files.c.position))).all() == []


async def test_copies_of_a_deleted_thread_follow_the_default_period(
    store: Store, tmp_path: Path
) -> None:
    docs = await documentation(store, [3 * 24 * 60, 60], thread="gone")
    job, _ = purger(store, tmp_path, messages_days=2)
    outcome = await job.run(actor="gateway", rule="schedule", now=NOW)
    assert outcome.linked.documentation == 1
    assert [m.body for m in await docs.read("gone")] == ["text 1"]


async def test_a_restore_reapplies_the_linked_purges(store: Store, tmp_path: Path) -> None:
    """I.9: an old backup does not bring delivery records or documentation copies back."""
    await ward(store, [(10, ""), (5, ""), (1, "")])
    await documentation(store, [10, 5, 1])
    source, copy = (
        sqlite3.connect(tmp_path / "clinic.db"),
        sqlite3.connect(tmp_path / "restored.db"),
    )
    source.backup(copy)  # the backup, taken before the purge
    source.close()
    copy.close()
    job, book = purger(store, tmp_path)
    outcome = await job.run(actor="gateway", rule="schedule", now=NOW)
    assert outcome.receipt is not None
    restored = Store(f"sqlite+aiosqlite:///{tmp_path / 'restored.db'}")
    try:
        public = load_public_key(tmp_path / "keys" / "receipt.pem")
        since = NOW - timedelta(days=1)
        await reapply(restored, [outcome.receipt], public, book, since=since, actor="cli:t")
        async with restored.session() as session:
            left = (await session.scalars(select(DeliveryRow.stanza_id))).all()
        assert left == ["m2"]
        again = Documentation(restored, KEY)
        assert [m.body for m in await again.read("ward")] == ["text 2"]
    finally:
        await restored.close()
