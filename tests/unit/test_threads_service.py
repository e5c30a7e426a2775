"""The thread service over a real SQLite store: creation, members, change counters (IV.2)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from xmpp_clinic.archive.audit import AuditLog
from xmpp_clinic.limits import MAX_TITLE_CHARS
from xmpp_clinic.store import Base, Store
from xmpp_clinic.store.changes import ChangeWatcher
from xmpp_clinic.threads import (
    UNKNOWN_ACTOR,
    ConcurrentChange,
    InvalidThread,
    MemberInfo,
    MemberNotFound,
    ThreadBook,
    ThreadExists,
    ThreadNotFound,
    ThreadService,
    direct_name,
)

MY_TABLES = {"threads", "thread_members", "thread_messages"}
DOMAINS = ("hospital.test", "h.test")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}")
    await store.migrate()
    yield store
    await store.close()


@pytest.mark.requirement("IV.2")
async def test_create_thread_records_members_and_owner(store: Store) -> None:
    service = ThreadService(store, user_domains=DOMAINS)
    thread = await service.create(
        "Ward-3",
        "Ward 3",
        ["Alice@hospital.test", "bob@hospital.test"],
        owner="carol@hospital.test",
    )
    assert thread.name == "ward-3"
    assert {(m.jid, m.affiliation) for m in thread.members} == {
        ("alice@hospital.test", "member"),
        ("bob@hospital.test", "member"),
        ("carol@hospital.test", "owner"),
    }
    assert (await service.get("ward-3")).title == "Ward 3"


@pytest.mark.requirement("IV.2")
async def test_duplicate_thread_is_refused(store: Store) -> None:
    service = ThreadService(store, user_domains=DOMAINS)
    await service.create("ward", "W", ["a@h.test"])
    with pytest.raises(ThreadExists, match="a thread named 'ward' already exists"):
        await service.create("ward", "W", ["b@h.test"])


@pytest.mark.requirement("IV.2")
async def test_two_creates_of_one_name_at_once_say_the_name_is_taken(store: Store) -> None:
    """The store's unique name decides a race; the loser hears why, not 'store down'."""
    service = ThreadService(store, user_domains=DOMAINS)
    outcomes = await asyncio.gather(
        *(service.create("ward", "W", [f"{n}@h.test"]) for n in "abc"), return_exceptions=True
    )
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(refused) == 2 and all(isinstance(o, ThreadExists) for o in refused)
    assert len(await service.list()) == 1


@pytest.mark.requirement("IV.2")
@pytest.mark.parametrize("title", ["Ward 3\nBed 12", "tab\there", "x" * (MAX_TITLE_CHARS + 1)])
async def test_titles_are_one_bounded_line(store: Store, title: str) -> None:
    """A line break in a title breaks every list that shows it (threads list, disco)."""
    service = ThreadService(store, user_domains=DOMAINS)
    with pytest.raises(InvalidThread):
        await service.create("ward", title, ["a@h.test"])
    await service.create("ward", "Ward 3", ["a@h.test"])
    with pytest.raises(InvalidThread):
        await service.set_title("ward", title)
    assert (await service.get("ward")).title == "Ward 3"
    await service.set_title("ward", "  ")
    assert (await service.get("ward")).title == "ward"  # blank: the name stands in


@pytest.mark.requirement("IV.2")
async def test_member_jids_are_normalised_once(store: Store) -> None:
    service = ThreadService(store, user_domains=DOMAINS)
    thread = await service.create("ward", "W", [" Alice@H.Test "])
    assert thread.member_jids == {"alice@h.test"}
    with pytest.raises(InvalidThread, match="longer than 1023 bytes"):
        await service.add_member("ward", "a" * 1024 + "@h.test")


@pytest.mark.requirement("IV.2")
@pytest.mark.parametrize("name", ["", "-x", "a b", "x@y", "a" * 65, "ünï"])
async def test_invalid_names_are_refused(store: Store, name: str) -> None:
    with pytest.raises(InvalidThread):
        await ThreadService(store, user_domains=DOMAINS).create(name, "T", ["a@h.test"])


@pytest.mark.requirement("IV.2")
@pytest.mark.parametrize("jid", ["alice", "alice@h.test/phone", "@h.test", "a@b@c"])
async def test_invalid_member_jids_are_refused(store: Store, jid: str) -> None:
    with pytest.raises(InvalidThread):
        await ThreadService(store, user_domains=DOMAINS).create("ward", "T", [jid])


@pytest.mark.requirement("IV.2")
async def test_add_change_and_remove_member(store: Store) -> None:
    service = ThreadService(store, user_domains=DOMAINS)
    await service.create("ward", "W", ["a@h.test"])
    added = await service.add_member("ward", "b@h.test")
    assert added.affiliation == "member"
    promoted = await service.add_member("ward", "b@h.test", "admin")
    assert promoted.affiliation == "admin" and promoted.since == added.since
    await service.remove_member("ward", "b@h.test")
    assert (await service.get("ward")).member_jids == {"a@h.test"}
    with pytest.raises(MemberNotFound):
        await service.remove_member("ward", "b@h.test")
    with pytest.raises(ThreadNotFound):
        await service.add_member("nope", "b@h.test")
    with pytest.raises(InvalidThread):
        await service.add_member("ward", "b@h.test", "visitor")


@pytest.mark.requirement("IV.2")
async def test_direct_thread_is_stable_and_has_two_members(store: Store) -> None:
    service = ThreadService(store, user_domains=DOMAINS)
    first = await service.open_direct("a@h.test", "b@h.test")
    again = await service.open_direct("b@h.test", "a@h.test")
    assert first.id == again.id and first.kind == "direct"
    assert first.name == direct_name("a@h.test", "b@h.test")
    with pytest.raises(InvalidThread):
        await service.add_member(first.name, "c@h.test")
    with pytest.raises(InvalidThread):
        await service.create("dm", "T", ["a@h.test"], kind="direct")


@pytest.mark.requirement("IV.2")
async def test_every_change_bumps_the_threads_counter(store: Store) -> None:
    watcher = ChangeWatcher(store)
    service = ThreadService(store, user_domains=DOMAINS)
    await watcher.refresh()
    await service.create("ward", "W", ["a@h.test"])
    assert "threads" in await watcher.refresh()
    assert await watcher.refresh() == set()
    await service.add_member("ward", "b@h.test")
    assert "threads" in await watcher.refresh()
    await service.remove_member("ward", "b@h.test")
    assert "threads" in await watcher.refresh()


@pytest.mark.requirement("IV.2")
async def test_book_diff_names_every_membership_change(store: Store) -> None:
    service = ThreadService(store, user_domains=DOMAINS)
    await service.create("ward", "W", ["a@h.test", "b@h.test"])
    before = ThreadBook(await service.list())
    await service.remove_member("ward", "a@h.test")
    await service.add_member("ward", "b@h.test", "admin")
    await service.add_member("ward", "c@h.test")
    after = ThreadBook(await service.list())
    changes = {(c.jid, c.before, c.after) for c in before.changes_to(after)}
    assert changes == {
        ("a@h.test", "member", None),
        ("b@h.test", "member", "admin"),
        ("c@h.test", None, "member"),
    }
    assert [t.name for t in after.threads_of("c@h.test")] == ["ward"]
    assert after.threads_of("a@h.test") == []


@pytest.mark.requirement("IV.2")
async def test_every_membership_change_is_audited_without_content(store: Store) -> None:
    """Create, add, promote, remove and rename each leave one event (IV.2, IV.4)."""
    service = ThreadService(store, user_domains=DOMAINS)
    await service.create(
        "ward", "Bed 12: Mr Smith", ["a@h.test"], owner="o@h.test", actor="cli:root"
    )
    await service.add_member("ward", "b@h.test", actor="xmpp:o@h.test")
    await service.add_member("ward", "b@h.test", "admin", actor="xmpp:o@h.test")
    await service.add_member("ward", "b@h.test", "admin", actor="xmpp:o@h.test")  # no change
    await service.remove_member("ward", "a@h.test", actor="cli:root")
    await service.set_title("ward", "Bed 14: Mrs Jones")
    events = await AuditLog(store).events()
    assert [(e.actor, e.action, e.reason, e.subject, e.note) for e in events] == [
        ("cli:root", "thread.created", "group", "ward", ""),
        ("cli:root", "thread.member-added", "member", "ward", "a@h.test"),
        ("cli:root", "thread.member-added", "owner", "ward", "o@h.test"),
        ("xmpp:o@h.test", "thread.member-added", "member", "ward", "b@h.test"),
        ("xmpp:o@h.test", "thread.member-changed", "member-to-admin", "ward", "b@h.test"),
        ("cli:root", "thread.member-removed", "member", "ward", "a@h.test"),
        (UNKNOWN_ACTOR, "thread.title-changed", "renamed", "ward", ""),
    ]
    assert not any("Smith" in str(e.as_json()) or "Jones" in str(e.as_json()) for e in events)
    assert (await AuditLog(store).verify()).intact


@pytest.mark.requirement("IV.2")
async def test_adding_one_person_twice_at_once_is_never_a_store_outage(store: Store) -> None:
    service = ThreadService(store, user_domains=DOMAINS)
    await service.create("ward", "W", ["a@h.test"])
    outcomes = await asyncio.gather(
        *(service.add_member("ward", "b@h.test") for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(o, MemberInfo | ConcurrentChange) for o in outcomes), outcomes
    assert (await service.get("ward")).member_jids == {"a@h.test", "b@h.test"}
    added = [e for e in await AuditLog(store).events() if e.note == "b@h.test"]
    assert [e.action for e in added] == ["thread.member-added"]


@pytest.mark.requirement("IV.2")
async def test_a_refused_change_leaves_no_event(store: Store) -> None:
    service = ThreadService(store, user_domains=DOMAINS)
    await service.create("ward", "W", ["a@h.test"])
    before = len(await AuditLog(store).events())
    with pytest.raises(ThreadExists):
        await service.create("ward", "W", ["b@h.test"])
    with pytest.raises(MemberNotFound):
        await service.remove_member("ward", "b@h.test")
    assert len(await AuditLog(store).events()) == before


@pytest.mark.requirement("IV.2")
async def test_migration_matches_models(store: Store) -> None:
    def diff(conn: Connection) -> list[object]:
        ctx = MigrationContext.configure(conn)
        return list(compare_metadata(ctx, Base.metadata))

    async with store.engine.connect() as conn:
        differences = await conn.run_sync(diff)
    mine = [d for d in differences if MY_TABLES & set(_tables_of(d))]
    assert mine == []


def _tables_of(difference: object) -> list[str]:
    """Table names mentioned by an alembic diff entry (tuples, or lists of tuples)."""
    text = repr(difference)
    return [t for t in MY_TABLES if f"'{t}'" in text or f"{t}." in text or f"({t}" in text]
