"""The audit log is append-only and tamper-evident (II.2, I.5, IV.4)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from xmpp_clinic.archive import audit
from xmpp_clinic.archive.audit import AuditEvent, AuditLog
from xmpp_clinic.store import Store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}")
    await store.migrate()
    yield store
    await store.close()


def event(n: int) -> AuditEvent:
    return AuditEvent("cli:it", "device.revoked", "revoked", f"bob@hospital.test/omemo/{n}", "lost")


async def fill(store: Store, count: int = 5) -> AuditLog:
    log = AuditLog(store)
    for n in range(1, count + 1):
        assert await log.record(event(n)) == n
    return log


async def sql(store: Store, statement: str) -> None:
    async with store.session() as session:
        await session.execute(text(statement))


@pytest.mark.requirement("II.2", "IV.4")
async def test_untouched_log_verifies(store: Store) -> None:
    report = await (await fill(store)).verify()
    assert report.intact and report.count == 5 and report.head_seq == 5


@pytest.mark.requirement("II.2", "IV.4")
async def test_empty_log_verifies(store: Store) -> None:
    report = await AuditLog(store).verify()
    assert report.intact and report.count == 0


@pytest.mark.requirement("II.2", "IV.4")
async def test_modified_event_is_found(store: Store) -> None:
    log = await fill(store)
    await sql(store, "UPDATE audit_events SET reason = 'approved' WHERE seq = 3")
    report = await log.verify()
    assert not report.intact and report.broken_seq == 3
    assert report.broken is not None and report.broken.reason == "approved"


@pytest.mark.requirement("II.2", "IV.4")
async def test_modified_timestamp_is_found(store: Store) -> None:
    log = await fill(store)
    async with store.session() as session:
        await session.execute(
            text("UPDATE audit_events SET at = :at WHERE seq = 2"),
            {"at": datetime(2020, 1, 1, tzinfo=UTC)},
        )
    assert (await log.verify()).broken_seq == 2


@pytest.mark.requirement("II.2", "IV.4")
async def test_deleted_event_is_found(store: Store) -> None:
    log = await fill(store)
    await sql(store, "DELETE FROM audit_events WHERE seq = 2")
    report = await log.verify()
    assert report.broken_seq == 2 and "missing" in (report.problem or "")


@pytest.mark.requirement("II.2", "IV.4")
async def test_deleted_newest_event_is_found(store: Store) -> None:
    log = await fill(store)
    await sql(store, "DELETE FROM audit_events WHERE seq = 5")
    report = await log.verify()
    assert not report.intact and report.broken_seq == 5


@pytest.mark.requirement("II.2", "IV.4")
async def test_reordered_events_are_found(store: Store) -> None:
    log = await fill(store)
    await sql(store, "UPDATE audit_events SET seq = 100 WHERE seq = 2")
    await sql(store, "UPDATE audit_events SET seq = 2 WHERE seq = 3")
    await sql(store, "UPDATE audit_events SET seq = 3 WHERE seq = 100")
    assert (await log.verify()).broken_seq == 2


@pytest.mark.requirement("II.2", "IV.4")
async def test_renumbered_events_are_found(store: Store) -> None:
    log = await fill(store)
    await sql(store, "DELETE FROM audit_events WHERE seq = 2")
    await sql(store, "UPDATE audit_events SET seq = seq - 1 WHERE seq > 2")
    await sql(store, "UPDATE audit_head SET seq = 4")
    assert (await log.verify()).broken_seq == 2


@pytest.mark.requirement("II.2", "IV.4")
async def test_deleted_head_is_found(store: Store) -> None:
    log = await fill(store)
    await sql(store, "DELETE FROM audit_head")
    report = await log.verify()
    assert not report.intact and "head" in (report.problem or "")


@pytest.mark.requirement("II.2", "IV.4")
async def test_append_after_deleted_head_is_refused(store: Store) -> None:
    log = await fill(store)
    await sql(store, "DELETE FROM audit_head")
    with pytest.raises(audit.AuditUnavailable):
        await log.record(event(9))


@pytest.mark.requirement("II.2", "IV.4")
async def test_events_keep_who_what_why_and_no_more(store: Store) -> None:
    log = await fill(store, 1)
    (recorded,) = await log.events()
    assert recorded.as_json().keys() == {
        "seq",
        "at",
        "actor",
        "action",
        "reason",
        "subject",
        "note",
        "hash",
    }


@pytest.mark.requirement("II.2", "IV.4")
async def test_overlong_fields_are_cut_before_hashing(store: Store) -> None:
    log = AuditLog(store)
    await log.record(AuditEvent("x" * 1000, "a", "r", "s" * 1000))
    assert (await log.verify()).intact


@pytest.mark.requirement("II.2", "IV.4")
async def test_pruned_log_still_verifies(store: Store) -> None:
    log = await fill(store)
    async with store.session() as session:
        removed = await audit.prune(session, datetime.now(UTC) + timedelta(seconds=1))
    assert removed == 5
    await log.record(event(6))
    report = await log.verify()
    assert report.intact and report.count == 1 and report.head_seq == 6


@pytest.mark.requirement("II.2", "IV.4")
async def test_events_filter_by_subject(store: Store) -> None:
    log = await fill(store)
    found = await log.events(subject="bob@hospital.test/omemo/4")
    assert [e.seq for e in found] == [4]


@pytest.mark.requirement("II.2", "IV.4")
@pytest.mark.postgres
async def test_audit_chain_on_postgres(pg_url: str) -> None:
    store = Store(pg_url)
    try:
        await store.migrate()
        log = await fill(store)
        assert (await log.verify()).intact
        await sql(store, "UPDATE audit_events SET note = 'found' WHERE seq = 4")
        assert (await log.verify()).broken_seq == 4
    finally:
        await store.close()
