"""Imports over a real SQLite store: threads follow groups, offboarding, the guard (IV.2, III.3)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Connection

from xmpp_clinic.archive.audit import AuditLog
from xmpp_clinic.config import PolicySettings
from xmpp_clinic.directory.csv_import import read_csv
from xmpp_clinic.directory.model import Directory, TooManyRemovals
from xmpp_clinic.directory.service import DirectoryService
from xmpp_clinic.omemo import LEGACY_NS
from xmpp_clinic.registry.model import DeviceState, ObservedDevice
from xmpp_clinic.registry.service import DeviceRegistry
from xmpp_clinic.store import Base, Store
from xmpp_clinic.store.changes import ChangeWatcher
from xmpp_clinic.threads import InvalidThread, NotInDirectory, ThreadService

pytestmark = pytest.mark.requirement("IV.2", "III.3")

DOMAINS = frozenset({"hospital.test"})
HEADER = "jid,name,staff_id,role,groups\n"
TWO_WARDS = (
    HEADER + "alice@hospital.test,Alice,1,nurse,ward-a\n"
    "bob@hospital.test,Bob,2,nurse,ward-a\n"
    "carol@hospital.test,Carol,3,physician,ward-b\n"
    "dave@hospital.test,Dave,4,physician,ward-b\n"
)


def csv(text: str) -> Directory:
    parsed = read_csv(text.encode(), DOMAINS)
    assert parsed.bad_rows == ()
    return parsed.directory


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}")
    await store.migrate()
    yield store
    await store.close()


@pytest.fixture
def registry(store: Store) -> DeviceRegistry:
    return DeviceRegistry(store, PolicySettings(device_approval="all"))


@pytest.fixture
def directory(store: Store, registry: DeviceRegistry) -> DirectoryService:
    return DirectoryService(store, max_removal_share=0.10, registry=registry)


@pytest.fixture
def threads(store: Store) -> ThreadService:
    return ThreadService(store, user_domains=DOMAINS, directory=True)


async def members(threads: ThreadService, name: str) -> set[str]:
    return {m.jid for m in (await threads.get(name)).members}


async def test_the_models_match_the_migration(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    def compare(conn: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))

    async with store.engine.connect() as conn:
        diffs = await conn.run_sync(compare)
    mine = [d for d in diffs if "directory" in repr(d) or "thread_b" in repr(d)]
    assert mine == []


async def test_a_thread_bound_to_a_ward_has_exactly_its_people(
    directory: DirectoryService, threads: ThreadService
) -> None:
    await directory.apply(csv(TWO_WARDS), actor="test", source="csv")
    await threads.create("ward-a-care", "Ward A", [], groups=["ward-a"])
    assert await members(threads, "ward-a-care") == {"alice@hospital.test", "bob@hospital.test"}
    assert await threads.groups_of("ward-a-care") == ("ward-a",)


async def test_moving_a_person_between_wards_moves_their_membership(
    store: Store, directory: DirectoryService, threads: ThreadService
) -> None:
    await directory.apply(csv(TWO_WARDS), actor="test", source="csv")
    await threads.create("a", "Ward A", [], groups=["ward-a"])
    await threads.create("b", "Ward B", [], groups=["ward-b"])
    watcher = ChangeWatcher(store)
    await watcher.refresh()
    moved = TWO_WARDS.replace("Bob,2,nurse,ward-a", "Bob,2,nurse,ward-b")
    result = await directory.apply(csv(moved), actor="test", source="csv")
    assert await members(threads, "a") == {"alice@hospital.test"}
    assert "bob@hospital.test" in await members(threads, "b")
    assert {(c.thread, c.removed, c.added) for c in result.threads} == {
        ("a", ("bob@hospital.test",), ()),
        ("b", (), ("bob@hospital.test",)),
    }
    assert {"threads", "directory"} <= await watcher.refresh()  # a running gateway reloads


async def test_a_dry_run_shows_the_diff_and_changes_nothing(
    directory: DirectoryService, threads: ThreadService
) -> None:
    await directory.apply(csv(TWO_WARDS), actor="test", source="csv")
    await threads.create("a", "Ward A", [], groups=["ward-a"])
    fewer = TWO_WARDS.replace("bob@hospital.test,Bob,2,nurse,ward-a\n", "")
    result = await directory.apply(csv(fewer), actor="t", source="csv", dry_run=True, force=True)
    assert [p.key for p in result.diff.removed] == ["2"] and not result.applied
    assert result.threads[0].removed == ("bob@hospital.test",)
    assert await members(threads, "a") == {"alice@hospital.test", "bob@hospital.test"}
    assert len(await directory.snapshot()) == 4


async def test_a_truncated_export_is_refused_and_nothing_changes(
    directory: DirectoryService, threads: ThreadService
) -> None:
    rows = "".join(f"p{i}@hospital.test,P{i},{i},nurse,ward-a\n" for i in range(200))
    await directory.apply(csv(HEADER + rows), actor="t", source="csv")
    await threads.create("a", "Ward A", [], groups=["ward-a"])
    truncated = HEADER + "".join(rows.splitlines(keepends=True)[:3])
    with pytest.raises(TooManyRemovals, match="197 of 200"):
        await directory.apply(csv(truncated), actor="t", source="csv")
    assert len(await directory.snapshot()) == 200
    assert len(await members(threads, "a")) == 200


async def test_a_person_who_leaves_loses_every_thread_and_every_device(
    store: Store, directory: DirectoryService, threads: ThreadService, registry: DeviceRegistry
) -> None:
    await directory.apply(csv(TWO_WARDS), actor="test", source="csv")
    await threads.create("a", "Ward A", [], groups=["ward-a"])
    await threads.create("by-hand", "Chat", ["bob@hospital.test", "carol@hospital.test"])
    await registry.observe("bob@hospital.test", LEGACY_NS, {7: ObservedDevice(None)})
    without_bob = TWO_WARDS.replace("bob@hospital.test,Bob,2,nurse,ward-a\n", "")
    result = await directory.apply(csv(without_bob), actor="t", source="csv", force=True)
    assert result.left == ("bob@hospital.test",) and result.revoked == 1
    assert "bob@hospital.test" not in await members(threads, "a")
    assert "bob@hospital.test" not in await members(threads, "by-hand")
    devices = await registry.devices("bob@hospital.test")
    assert [d.state for d in devices] == [DeviceState.REVOKED]
    events = [(e.action, e.subject) for e in await AuditLog(store).events()]
    assert ("directory.left", "bob@hospital.test") in events


async def test_only_persons_in_the_directory_can_be_added(
    directory: DirectoryService, threads: ThreadService
) -> None:
    await directory.apply(csv(TWO_WARDS), actor="test", source="csv")
    with pytest.raises(NotInDirectory, match="not a person in the hospital directory"):
        await threads.create("x", "X", ["mallory@hospital.test"])
    await threads.create("x", "X", ["alice@hospital.test"])
    with pytest.raises(NotInDirectory):
        await threads.add_member("x", "mallory@hospital.test")


async def test_binding_an_unknown_group_is_refused(
    directory: DirectoryService, threads: ThreadService
) -> None:
    await directory.apply(csv(TWO_WARDS), actor="test", source="csv")
    with pytest.raises(InvalidThread, match="no group named 'ward-z'"):
        await threads.create("z", "Z", [], groups=["ward-z"])


async def test_unbinding_removes_those_there_only_through_the_group(
    directory: DirectoryService, threads: ThreadService
) -> None:
    await directory.apply(csv(TWO_WARDS), actor="test", source="csv")
    await threads.create("a", "A", ["carol@hospital.test"], groups=["ward-a"])
    info = await threads.unbind("a", "ward-a")
    assert {m.jid for m in info.members} == {"carol@hospital.test"}
    info = await threads.bind("a", "ward-b")
    assert {m.jid for m in info.members} == {"carol@hospital.test", "dave@hospital.test"}


async def test_a_second_import_of_the_same_file_changes_nothing(
    directory: DirectoryService,
) -> None:
    await directory.apply(csv(TWO_WARDS), actor="test", source="csv")
    again = await directory.apply(csv(TWO_WARDS), actor="test", source="csv")
    assert again.diff.empty and again.threads == ()


async def test_the_periodic_sync_applies_reads_and_refuses_a_truncated_one(
    directory: DirectoryService, threads: ThreadService
) -> None:
    from xmpp_clinic.directory.csv_import import Parsed
    from xmpp_clinic.directory.sync import DirectorySync

    reads = [csv(TWO_WARDS), csv(HEADER + "alice@hospital.test,Alice,1,nurse,ward-a\n")]

    def read() -> Parsed:
        return Parsed(reads.pop(0), ())

    sync = DirectorySync(directory, read, interval_seconds=3600, source="ldap:test")
    first = await sync.run_once()
    assert first is not None and len(first.diff.added) == 4
    assert await sync.run_once() is None  # 3 of 4 would leave: refused, logged
    assert len(await directory.snapshot()) == 4


async def test_a_member_through_a_group_is_not_removed_by_hand(
    directory: DirectoryService, threads: ThreadService
) -> None:
    await directory.apply(csv(TWO_WARDS), actor="test", source="csv")
    await threads.create("a", "A", ["carol@hospital.test"], groups=["ward-a"])
    with pytest.raises(InvalidThread, match="through its group"):
        await threads.remove_member("a", "alice@hospital.test")
    await threads.remove_member("a", "carol@hospital.test")  # added by hand: removable
    assert await members(threads, "a") == {"alice@hospital.test", "bob@hospital.test"}
