"""What the bridge tests share: a store, threads, and a store-backed documentation fake.

The records room (issue 14) is not built yet; :class:`StoredCopies` stands in for it
behind the bridge's :class:`~xmpp_clinic.bridge.records.DocumentationCopies` protocol.
It keeps its copies in a table of its own in the test's store (created here, not by a
migration), so they survive a restart of the bridge the way the real ones will.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from xmpp_clinic.bridge.records import DocumentedAttachment, DocumentedMessage
from xmpp_clinic.store import Store
from xmpp_clinic.threads import ThreadService

pytestmark = pytest.mark.requirement("I.6")

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
DOMAIN = "hospital.example"
ALICE, BOB = f"alice@{DOMAIN}", f"bob@{DOMAIN}"


class StoredCopies:
    """Documentation copies in a test table: (thread, seq) -> JSON of the message."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def create(self) -> None:
        async with self._store.session() as session:
            await session.execute(
                text(
                    "CREATE TABLE IF NOT EXISTS fake_copies (thread TEXT, seq INTEGER, "
                    "data TEXT, PRIMARY KEY (thread, seq))"
                )
            )
            await session.execute(text("CREATE TABLE IF NOT EXISTS fake_documented (thread TEXT)"))

    async def document(self, thread: str, messages: Sequence[DocumentedMessage]) -> None:
        async with self._store.session() as session:
            await session.execute(text("INSERT INTO fake_documented VALUES (:t)"), {"t": thread})
            for m in messages:
                data = {
                    "stanza_id": m.stanza_id,
                    "sender": m.sender,
                    "at": m.at.isoformat(),
                    "body": m.body,
                    "gap": m.gap,
                    "parts_missing": m.parts_missing,
                    "attachments": [
                        [a.url, a.media_type, a.size, a.sha1.hex(), a.title] for a in m.attachments
                    ],
                }
                await session.execute(
                    text("INSERT INTO fake_copies VALUES (:t, :s, :d)"),
                    {"t": thread, "s": m.seq, "d": json.dumps(data)},
                )

    async def documented(self, thread: str) -> bool:
        async with self._store.session() as session:
            found = await session.scalar(
                text("SELECT count(*) FROM fake_documented WHERE thread = :t"), {"t": thread}
            )
        return bool(found)

    async def copies(
        self, thread: str, *, after_seq: int = 0, limit: int | None = None
    ) -> Sequence[DocumentedMessage]:
        async with self._store.session() as session:
            rows = (
                await session.execute(
                    text(
                        "SELECT seq, data FROM fake_copies WHERE thread = :t AND seq > :a "
                        "ORDER BY seq LIMIT :l"
                    ),
                    {"t": thread, "a": after_seq, "l": -1 if limit is None else limit},
                )
            ).all()
        out = []
        for seq, raw in rows:
            d = json.loads(raw)
            files = tuple(
                DocumentedAttachment(u, t, s, bytes.fromhex(h), n)
                for u, t, s, h, n in d["attachments"]
            )
            out.append(
                DocumentedMessage(
                    seq, d["stanza_id"], d["sender"], datetime.fromisoformat(d["at"]), d["body"],
                    files, d["gap"], d["parts_missing"],
                )
            )  # fmt: skip
        return out

    async def attachment(
        self, thread: str, position: int, number: int
    ) -> tuple[DocumentedAttachment, bytes] | None:
        """The fake keeps no files: none is found (the API answers 404)."""
        return None


def ward_round() -> list[DocumentedMessage]:
    """Three documented messages, the second one a gap, the third with a file."""
    scan = DocumentedAttachment(
        "https://upload.hospital.example/x/scan.png", "image/png", 2048, b"\x01" * 20, "scan.png"
    )
    return [
        DocumentedMessage(1, "s-1", ALICE, T0, "BP 120/80, stable."),
        DocumentedMessage(2, "s-2", BOB, T0 + timedelta(minutes=1), "", gap=True),
        DocumentedMessage(3, "s-3", ALICE, T0 + timedelta(minutes=2), "Scan attached.", (scan,)),
    ]


async def documented_store(path: Path) -> tuple[Store, StoredCopies]:
    """A migrated store with thread ``icu-bed3`` (documented) and ``quiet`` (not)."""
    store = Store(f"sqlite+aiosqlite:///{path}")
    await store.migrate()
    copies = StoredCopies(store)
    await copies.create()
    threads = ThreadService(store, user_domains=[DOMAIN])
    await threads.create("icu-bed3", "ICU bed 3", [ALICE, BOB], actor="test")
    await threads.create("quiet", "Quiet", [ALICE], actor="test")
    await copies.document("icu-bed3", ward_round())
    return store, copies


@pytest.fixture
async def seeded(tmp_path: Path) -> AsyncIterator[tuple[Store, StoredCopies]]:
    store, copies = await documented_store(tmp_path / "clinic.db")
    try:
        yield store, copies
    finally:
        await store.close()


async def test_fake_copies_come_back_in_sequence(seeded: tuple[Store, StoredCopies]) -> None:
    _, copies = seeded
    got = await copies.copies("icu-bed3", after_seq=1, limit=5)
    assert [m.seq for m in got] == [2, 3]
    assert got[1].attachments[0].sha1 == b"\x01" * 20
    assert not await copies.documented("quiet")
