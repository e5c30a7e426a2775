"""Purge by retention period keeps the chains provable and signs a receipt (I.7, IV.8, II.3)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from xmpp_clinic.archive.audit import AuditLog
from xmpp_clinic.archive.messages import ArchiveQuery, MessageArchive, NewMessage
from xmpp_clinic.retention.purge import Purger
from xmpp_clinic.retention.receipts import (
    ReceiptBook,
    ReceiptInvalid,
    SignedReceipt,
    load_public_key,
    verify,
)
from xmpp_clinic.retention.threads import ThreadRetentionService
from xmpp_clinic.settings.retention import RetentionSettings
from xmpp_clinic.store import Store
from xmpp_clinic.store.models.devices import DeviceRecord
from xmpp_clinic.threads import ThreadService

pytestmark = pytest.mark.requirement("I.7", "IV.8", "II.3")

ALICE = "alice@hospital.test"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}")
    await store.migrate()
    yield store
    await store.close()


def purger(store: Store, tmp_path: Path, **settings: object) -> tuple[Purger, ReceiptBook]:
    book = ReceiptBook(store, tmp_path / "keys" / "receipt.pem", tmp_path / "receipts")
    return Purger(store, RetentionSettings.model_validate(settings), book), book


async def thread_with_messages(store: Store, name: str, ages: list[int]) -> int:
    """A thread whose messages were sent ``ages`` minutes before NOW, oldest first."""
    thread = await ThreadService(store, user_domains=["hospital.test"]).create(
        name, name.title(), [ALICE]
    )
    archive = MessageArchive(store)
    for n, age in enumerate(ages):
        await archive.append(
            NewMessage(thread.id, f"{name}-{n}", NOW - timedelta(minutes=age), ALICE, "phone",
                       "Alice", "occ", f"<message id='{name}-{n}'/>")
        )  # fmt: skip
    return thread.id


async def stanza_ids(store: Store, thread_id: int) -> list[str]:
    page = await MessageArchive(store).query(ArchiveQuery(thread_id, limit=250))
    return [e.stanza_id for e in page.entries]


async def test_two_minute_thread_loses_only_older_messages(store: Store, tmp_path: Path) -> None:
    """I.7: a 2-minute retention removes older messages from the archive and from MAM."""
    ward = await thread_with_messages(store, "ward", [10, 5, 3, 1, 0])
    await ThreadRetentionService(store).set_period("ward", 2, actor="cli:test")
    job, _ = purger(store, tmp_path)
    outcome = await job.run(actor="cli:test", rule="manual", now=NOW)
    assert outcome.messages == 3
    assert await stanza_ids(store, ward) == ["ward-3", "ward-4"]
    assert await MessageArchive(store).verify(ward) is None
    assert (await AuditLog(store).verify()).intact


async def test_purge_continues_the_chain_for_new_messages(store: Store, tmp_path: Path) -> None:
    """II.2: after a purge, new appends still chain from the head and verify from the anchor."""
    ward = await thread_with_messages(store, "ward", [10, 9])
    await ThreadRetentionService(store).set_period("ward", 2, actor="cli:test")
    job, _ = purger(store, tmp_path)
    await job.run(actor="cli:test", rule="manual", now=NOW)
    archive = MessageArchive(store)  # a fresh gateway: the head comes from the anchor
    await archive.append(
        NewMessage(ward, "late", NOW, ALICE, "phone", "Alice", "occ", "<message id='late'/>")
    )
    assert await archive.verify(ward) is None
    assert await stanza_ids(store, ward) == ["late"]


async def test_default_period_applies_without_override(store: Store, tmp_path: Path) -> None:
    ward = await thread_with_messages(store, "ward", [3 * 24 * 60, 60])
    job, _ = purger(store, tmp_path, messages_days=2)
    outcome = await job.run(actor="gateway", rule="schedule", now=NOW)
    assert outcome.messages == 1
    assert await stanza_ids(store, ward) == ["ward-1"]


async def test_closed_thread_keeps_all_until_its_period_ends(store: Store, tmp_path: Path) -> None:
    """I.7: `threads close` starts the period; nothing goes before it ends, all of it after."""
    ward = await thread_with_messages(store, "ward", [600, 300, 1])
    service = ThreadRetentionService(store)
    await service.set_period("ward", 60, actor="cli:test")
    await service.close("ward", actor="cli:test", at=NOW - timedelta(minutes=30))
    job, _ = purger(store, tmp_path)
    assert (await job.run(actor="gateway", rule="schedule", now=NOW)).messages == 0
    later = NOW + timedelta(minutes=31)
    assert (await job.run(actor="gateway", rule="schedule", now=later)).messages == 3
    assert await stanza_ids(store, ward) == []
    assert await MessageArchive(store).verify(ward) is None


async def test_small_batches_purge_everything_due(store: Store, tmp_path: Path) -> None:
    ward = await thread_with_messages(store, "ward", list(range(60, 0, -1)))
    await ThreadRetentionService(store).set_period("ward", 5, actor="cli:test")
    job, _ = purger(store, tmp_path, purge_batch=10)
    seen: list[int] = []
    outcome = await job.run(actor="cli:test", rule="manual", now=NOW, progress=seen.append)
    assert outcome.messages == 56 and sum(seen) == 56 and len(seen) == 6
    assert outcome.ranges[0].first == 1 and outcome.ranges[0].last == 56
    assert await MessageArchive(store).verify(ward) is None


async def test_dry_run_deletes_nothing(store: Store, tmp_path: Path) -> None:
    ward = await thread_with_messages(store, "ward", [10, 0])
    await ThreadRetentionService(store).set_period("ward", 2, actor="cli:test")
    job, _ = purger(store, tmp_path)
    outcome = await job.run(actor="cli:test", rule="manual", now=NOW, dry_run=True)
    assert [d.count for d in outcome.threads] == [1]
    assert outcome.receipt is None
    assert len(await stanza_ids(store, ward)) == 2


async def test_receipt_lists_the_range_and_verifies(store: Store, tmp_path: Path) -> None:
    """I.7: the receipt says thread, range, count and policy, and its signature holds."""
    await thread_with_messages(store, "ward", [10, 5, 0])
    await ThreadRetentionService(store).set_period("ward", 2, actor="cli:test")
    job, book = purger(store, tmp_path)
    receipt = (await job.run(actor="cli:test", rule="manual", now=NOW)).receipt
    assert receipt is not None
    item = receipt.body["items"][0]
    assert (item["thread"], item["first_seq"], item["last_seq"], item["count"]) == ("ward", 1, 2, 2)
    assert item["policy"] == "2m (thread)"
    public = load_public_key(tmp_path / "keys" / "receipt.pem")
    files = list((tmp_path / "receipts").glob("*.json"))
    assert len(files) == 1
    verify(SignedReceipt.loads(files[0].read_text()), public)
    assert [r.id for r in await book.list()] == [receipt.id]
    assert (tmp_path / "keys" / "receipt.pem").stat().st_mode & 0o777 == 0o600


async def test_tampered_receipt_fails(store: Store, tmp_path: Path) -> None:
    await thread_with_messages(store, "ward", [10, 0])
    await ThreadRetentionService(store).set_period("ward", 2, actor="cli:test")
    job, _ = purger(store, tmp_path)
    receipt = (await job.run(actor="cli:test", rule="manual", now=NOW)).receipt
    assert receipt is not None
    doc = json.loads(receipt.dumps())
    doc["receipt"]["items"][0]["count"] = 0
    with pytest.raises(ReceiptInvalid, match="changed"):
        verify(
            SignedReceipt.loads(json.dumps(doc)), load_public_key(tmp_path / "keys" / "receipt.pem")
        )


async def test_purge_is_an_audit_event_naming_no_thread(store: Store, tmp_path: Path) -> None:
    await thread_with_messages(store, "ward", [10, 0])
    await ThreadRetentionService(store).set_period("ward", 2, actor="cli:test")
    job, _ = purger(store, tmp_path)
    receipt = (await job.run(actor="cli:test", rule="manual", now=NOW)).receipt
    assert receipt is not None
    last = (await AuditLog(store).events())[-1]
    assert (last.action, last.subject) == ("retention.purged", f"receipt:{receipt.id}")
    assert "ward" not in last.note


async def test_old_audit_metadata_is_pruned_and_chain_verifies(
    store: Store, tmp_path: Path
) -> None:
    """II.3: audit events past audit_metadata_days go; the chain verifies from its base."""
    await thread_with_messages(store, "ward", [0])
    job, _ = purger(store, tmp_path, audit_metadata_days=1)
    outcome = await job.run(actor="gateway", rule="schedule", now=NOW + timedelta(days=400))
    assert outcome.audit_events == 2  # thread.created, member-added
    report = await AuditLog(store).verify()
    assert report.intact and report.count == 1


async def test_stale_pending_devices_are_forgotten(store: Store, tmp_path: Path) -> None:
    """IV.8: pending devices older than pending_devices_days go; approved recent ones stay."""
    async with store.session() as session:
        for n, (state, seen) in enumerate(
            [("pending", NOW - timedelta(days=8)), ("approved", NOW - timedelta(days=1))]
        ):
            session.add(
                DeviceRecord(
                    jid=ALICE, namespace="omemo", device_id=n + 1, state=state,
                    first_seen=seen, last_seen=seen, state_changed_at=seen,
                )
            )  # fmt: skip
    job, _ = purger(store, tmp_path)
    outcome = await job.run(actor="gateway", rule="schedule", now=NOW)
    assert outcome.devices == 1
    async with store.session() as session:
        left = (await session.scalars(select(DeviceRecord.state))).all()
    assert left == ["approved"]


async def test_a_round_touches_only_threads_with_something_due(
    store: Store, tmp_path: Path
) -> None:
    """Issue 13: threads whose messages are all within their period cost the purge round
    no linked-row work (10 000 threads every 15 minutes); what is due is still purged."""
    await thread_with_messages(store, "quiet", [3, 1, 0])
    await thread_with_messages(store, "empty", [])
    old = await thread_with_messages(store, "old", [10, 1])
    await ThreadRetentionService(store).set_period("old", 2, actor="cli:test")
    job, _ = purger(store, tmp_path, messages_days=1)
    touched: list[str] = []
    original = job._linked.with_range

    async def spy(counts: Any, thread: str, *args: Any) -> list[dict[str, object]]:
        touched.append(thread)
        return await original(counts, thread, *args)

    job._linked.with_range = spy  # type: ignore[method-assign]
    due = {d.name: (d.first, d.last, d.count) for d in await job.due(NOW)}
    assert due == {"empty": (1, 0, 0), "old": (1, 1, 1), "quiet": (1, 0, 0)}
    outcome = await job.run(actor="cli:test", rule="manual", now=NOW)
    assert touched == ["old"] and outcome.messages == 1
    assert await stanza_ids(store, old) == ["old-1"]
    # Once purged, the thread keeps being looked at (its anchor moved): an interrupted
    # round's linked rows are still taken by the next one.
    touched.clear()
    await job.run(actor="cli:test", rule="manual", now=NOW)
    assert touched == ["old"]
