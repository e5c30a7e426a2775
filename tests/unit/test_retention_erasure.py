"""`threads delete` and `erase --person` leave no row naming them but receipt and event (I.7)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, inspect, select, text

from xmpp_clinic.archive.audit import AuditEvent, AuditLog
from xmpp_clinic.archive.messages import ArchiveQuery, MessageArchive, NewMessage
from xmpp_clinic.records.documentation import Content, Documentation, NewCopy
from xmpp_clinic.retention.erasure import Eraser
from xmpp_clinic.retention.receipts import ReceiptBook, load_public_key, verify
from xmpp_clinic.retention.scrub import name_pattern
from xmpp_clinic.retention.server_mam import NoServerArchive, ServerPurge, ServerRequest
from xmpp_clinic.store import Store
from xmpp_clinic.store.models.completeness import DeliveryRow, PartSetRow
from xmpp_clinic.store.models.devices import DeviceNoticeRecord, DeviceRecord
from xmpp_clinic.store.models.directory import DirectoryJid, DirectoryMembership, DirectoryPerson
from xmpp_clinic.store.models.messages import ArchivedMessage
from xmpp_clinic.threads import ThreadService

pytestmark = pytest.mark.requirement("I.7")

ALICE = "alice@hospital.test"
MALICE = "malice@hospital.test"
BOB = "bob@hospital.test"
KEY = bytes(range(32))  # the records key file's key


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}")
    await store.migrate()
    yield store
    await store.close()


class FakeServer:
    """A server archive that records what it was asked and does it."""

    kind = "fake"
    can_expire = True

    def __init__(self) -> None:
        self.asked: list[ServerRequest] = []

    async def purge(self, requests: list[ServerRequest]) -> list[ServerPurge]:
        self.asked += requests
        return [r.outcome(self.kind, True, 3, "") for r in requests]


def eraser(store: Store, tmp_path: Path, server: object = None) -> Eraser:
    book = ReceiptBook(store, tmp_path / "key.pem", tmp_path / "receipts")
    return Eraser(store, book, batch=3, server=server)  # type: ignore[arg-type]


async def scan(store: Store, needle: str) -> list[tuple[str, str]]:
    """Every (table, column) of every table in the database whose text holds ``needle``."""

    def tables(conn: Connection) -> dict[str, list[str]]:
        found = inspect(conn)
        return {t: [c["name"] for c in found.get_columns(t)] for t in found.get_table_names()}

    pattern = name_pattern(needle)  # whole JIDs: alice@ is not inside malice@
    async with store.engine.connect() as conn:
        layout = await conn.run_sync(tables)
        hits: list[tuple[str, str]] = []
        for table, columns in layout.items():
            for column in columns:
                rows = await conn.execute(text(f'SELECT "{column}" FROM "{table}"'))
                for (value,) in rows:
                    raw = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                    if pattern.search(raw):
                        hits.append((table, column))
    return hits


async def populate(store: Store) -> int:
    service = ThreadService(store, user_domains=["hospital.test"])
    ward = await service.create("ward", "Ward 7", [ALICE, BOB, MALICE])
    other = await service.create("icu", f"ICU with {ALICE}", [ALICE, BOB])
    archive = MessageArchive(store)
    for n, (thread, sender) in enumerate(
        [(ward.id, ALICE), (ward.id, BOB), (other.id, ALICE), (ward.id, MALICE), (ward.id, ALICE)]
    ):
        await archive.append(
            NewMessage(thread, f"m{n}", datetime.now(UTC), sender, "phone", sender.split("@")[0],
                       "occ", f"<message id='m{n}'><addresses jid='{sender}/phone'/></message>")
        )  # fmt: skip
    async with store.session() as session:
        session.add(DeviceRecord(jid=ALICE, namespace="omemo", device_id=7, state="approved"))
        session.add(DeviceNoticeRecord(jid=ALICE, text=f"device 7 of {ALICE} approved"))
    await AuditLog(store).record(AuditEvent(f"xmpp:{ALICE}", "device.approved", "ok", ALICE))
    async with store.session() as session:  # directory, completeness (issue 11)
        person = DirectoryPerson(key="uid=alice", name="Dr Alice Example", staff_id="S-17",
                                 role="physician")  # fmt: skip
        person.jids = [DirectoryJid(jid=ALICE)]
        person.groups = [DirectoryMembership(group="ward-7")]
        session.add(person)
        now = datetime.now(UTC)
        for n, (sender, member) in enumerate([(BOB, ALICE), (ALICE, BOB)]):
            session.add(
                DeliveryRow(thread="ward", seq=n + 1, stanza_id=f"m{n}", sender=sender,
                            member=member, at=now)
            )  # fmt: skip
        session.add(
            PartSetRow(thread="ward", set_id="s1", sender=ALICE, nick="Al", of=2, received="1",
                       first_at=now)
        )  # fmt: skip
    docs = Documentation(store, KEY)  # the records member's copies (issue 14)
    for n, sender in enumerate([BOB, ALICE, BOB]):
        said = f"t{n}" if n != 2 else f"t{n} aesgcm://upload.hospital.test/x/scan.jpg#{'ab' * 44}"
        await docs.append(NewCopy("ward", datetime.now(UTC), sender, f"d{n}", Content(said)))
    async with store.session() as session:  # rows other rooms keep by thread name and JID
        await session.execute(
            text("INSERT INTO thread_nicks (thread, jid, nick) VALUES ('ward', :j, 'Al')"),
            {"j": ALICE},
        )
        await session.execute(
            text("INSERT INTO thread_occupants (thread, jid, nick, since) "
                 "VALUES ('ward', :j, 'Al', '2026-11-30 10:00:00')"),
            {"j": f"{ALICE}/phone"},
        )  # fmt: skip
    return ward.id


async def test_erased_person_is_named_only_by_receipt_and_event(
    store: Store, tmp_path: Path
) -> None:
    """I.7, II.3: every table is scanned; only the receipt and person.erased name Alice."""
    await populate(store)
    erasure = await eraser(store, tmp_path).erase_person(ALICE, actor="cli:dpo")
    hits = await scan(store, ALICE)
    assert sorted(set(hits)) == [("audit_events", "subject"), ("deletion_receipts", "body")]
    events = await AuditLog(store).events(subject=ALICE)
    assert [e.action for e in events] == ["person.erased"]
    assert erasure.receipt.body["items"][0]["deleted"] == {
        "memberships": 2, "devices": 1, "notices": 1, "thread_nicks": 1, "thread_occupants": 1,
        "directory_persons": 1, "directory_jids": 1, "directory_memberships": 1,
        "delivery_records": 1, "part_sets": 1,
    }  # fmt: skip
    async with store.session() as session:  # the name and staff id are gone with the row
        assert (await session.scalars(select(DirectoryPerson))).all() == []
        assert (await session.scalars(select(DeliveryRow.member))).all() == [BOB]


async def test_erasure_keeps_the_documentation_chain_readable(store: Store, tmp_path: Path) -> None:
    """I.6, II.2: Alice's copies stay under the pseudonym and the chain still verifies."""
    await populate(store)
    erasure = await eraser(store, tmp_path).erase_person(ALICE, actor="cli:dpo")
    copies = await Documentation(store, KEY).read("ward")
    assert [(c.sender, c.body[:2]) for c in copies] == [
        (BOB, "t0"), (erasure.pseudonym, "t1"), (BOB, "t2"),
    ]  # fmt: skip
    assert len(copies[2].attachments) == 1  # re-linked after the changed copy, still bound
    item = next(
        i for i in erasure.receipt.body["items"] if i["what"] == "documentation-pseudonymised"
    )
    assert [(t["thread"], t["positions"]) for t in item["threads"]] == [("ward", [2])]


async def test_erasure_purges_the_persons_server_archive(store: Store, tmp_path: Path) -> None:
    """I.7: the person's whole server MAM is asked for; the result is in the receipt."""
    await populate(store)
    server = FakeServer()
    erasure = await eraser(store, tmp_path, server).erase_person(ALICE, actor="cli:dpo")
    assert [(r.user, r.action) for r in server.asked] == [(ALICE, "remove-user")]
    items = [i for i in erasure.receipt.body["items"] if i["what"] == "server-archive"]
    assert [(i["user"], i["done"], i["count"]) for i in items] == [(ALICE, True, 3)]


async def test_erasure_reports_what_the_server_could_not_purge(
    store: Store, tmp_path: Path
) -> None:
    await populate(store)
    erasure = await eraser(store, tmp_path, NoServerArchive()).erase_person(ALICE, actor="c:d")
    items = [i for i in erasure.receipt.body["items"] if i["what"] == "server-archive"]
    assert [(i["action"], i["done"]) for i in items] == [("remove-user", False)]
    assert "server_archive is 'none'" in items[0]["detail"]


async def test_erasure_keeps_every_chain_verifiable(store: Store, tmp_path: Path) -> None:
    """II.2: audit log and both archives verify after the rewrite; heads are in the receipt."""
    ward = await populate(store)
    erasure = await eraser(store, tmp_path).erase_person(ALICE, actor="cli:dpo")
    assert (await AuditLog(store).verify()).intact
    archive = MessageArchive(store)
    for thread in await ThreadService(store, user_domains=[]).list():
        assert await archive.verify(thread.id) is None
    rewritten = erasure.receipt.body["items"][1]["threads"]
    assert {t["thread_id"] for t in rewritten} == {ward, ward + 1}
    verify(erasure.receipt, load_public_key(tmp_path / "key.pem"))


async def test_erasure_leaves_a_similar_jid_alone(store: Store, tmp_path: Path) -> None:
    await populate(store)
    await eraser(store, tmp_path).erase_person(ALICE, actor="cli:dpo")
    assert ("thread_members", "jid") in await scan(store, MALICE)


async def test_gateway_appends_after_erasure_chain_correctly(store: Store, tmp_path: Path) -> None:
    """A running archive reloads its heads (forget_heads) and keeps the chain intact."""
    ward = await populate(store)
    archive = MessageArchive(store)
    await archive.append(
        NewMessage(ward, "before", datetime.now(UTC), BOB, "", "bob", "occ", "<message/>")
    )
    await eraser(store, tmp_path).erase_person(ALICE, actor="cli:dpo")
    await archive.forget_heads()
    await archive.append(
        NewMessage(ward, "after", datetime.now(UTC), BOB, "", "bob", "occ", "<message/>")
    )
    assert await archive.verify(ward) is None


async def test_deleted_thread_is_named_only_by_receipt_and_event(
    store: Store, tmp_path: Path
) -> None:
    """I.7: the thread, its members and archive are gone; the audit chain still verifies."""
    ward = await populate(store)
    erasure = await eraser(store, tmp_path).delete_thread("ward", actor="cli:dpo", settle=0)
    hits = await scan(store, "ward")
    assert sorted(set(hits)) == [("audit_events", "subject"), ("deletion_receipts", "body")]
    deleted = await AuditLog(store).events(subject="ward")
    assert [e.action for e in deleted] == ["thread.deleted"]
    assert (await AuditLog(store).verify()).intact
    page = await MessageArchive(store).query(ArchiveQuery(ward))
    assert page.entries == []
    item = erasure.receipt.body["items"][1]
    assert (item["first_seq"], item["last_seq"], item["count"]) == (1, 4, 4)
    copies = next(i for i in erasure.receipt.body["items"] if i["what"] == "documentation")
    assert (copies["first_position"], copies["last_position"], copies["count"]) == (1, 3, 3)
    assert [t.name for t in await ThreadService(store, user_domains=[]).list()] == ["icu"]


async def test_erasure_pseudonymises_the_persons_nick_in_their_archived_messages(
    store: Store, tmp_path: Path
) -> None:
    """I.7: the nick a person wrote under names them too; Bob's messages keep theirs, and
    the chain verifies after the rewrite (II.2)."""
    thread = await ThreadService(store, user_domains=["hospital.test"]).create(
        "nicks", "Nicks", [ALICE, BOB]
    )
    archive = MessageArchive(store)
    for n, (sender, nick) in enumerate([(ALICE, "Dr Alice & Co"), (BOB, "Bob")]):
        escaped = nick.replace("&", "&amp;")
        await archive.append(
            NewMessage(thread.id, f"n{n}", datetime.now(UTC), sender, "phone", nick, "occ",
                       f'<message from="nicks@clinic.test/{escaped}" type="groupchat" id="n{n}">'
                       "<body>enc</body></message>")
        )  # fmt: skip
    erasure = await eraser(store, tmp_path).erase_person(ALICE, actor="cli:dpo")
    pseudonym = erasure.pseudonym.partition("@")[0]
    async with store.session() as session:
        rows = (await session.execute(
            select(ArchivedMessage.nick, ArchivedMessage.stanza).order_by(ArchivedMessage.seq)
        )).all()  # fmt: skip
    assert [nick for nick, _ in rows] == [pseudonym, "Bob"]
    assert rows[0][1].startswith(f'<message from="nicks@clinic.test/{pseudonym}" type=')
    assert rows[1][1].startswith('<message from="nicks@clinic.test/Bob" type=')
    assert "Alice" not in rows[0][1]
    assert await archive.verify(thread.id) is None
