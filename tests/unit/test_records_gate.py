"""The records gate: documented threads' messages decrypted, stored encrypted, chained;
gaps recorded and told; fail closed when the copy cannot be stored (I.6, II.1, I.12)."""

from __future__ import annotations

import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from tests.helpers.twomemo import Directory
from tests.unit.test_records_helpers import DirectoryAdapter, Sender, announce
from xmpp_clinic.omemo import LEGACY, OMEMO2, OmemoHeader, parse_header
from xmpp_clinic.policy.verdict import MessageContext, ReasonCode, Verdict
from xmpp_clinic.records.documentation import Documentation, DocumentationError
from xmpp_clinic.records.identity import RecordsDevice
from xmpp_clinic.records.keys import read_key
from xmpp_clinic.store import Store, StoreUnavailable
from xmpp_clinic.store.models.records import DocumentationCopy
from xmpp_clinic.xmpp.records_gate import GAP_NOTICE, RecordsGate

COMPONENT = "clinic.hospital.test"
RECORDS = f"records@{COMPONENT}"
THREAD = f"icu-1@{COMPONENT}"
ANNA, BEN, KAI = "anna@hospital.test", "ben@hospital.test", "kai@hospital.test"
CLIENT = "jabber:component:accept"


@dataclass
class Inner:
    """The policy double: accepts (or refuses) and remembers what it was shown."""

    verdict: Verdict = field(default_factory=Verdict.accept)
    seen: list[MessageContext] = field(default_factory=list)

    async def evaluate(self, ctx: MessageContext) -> Verdict:
        self.seen.append(ctx)
        return self.verdict


@dataclass
class World:
    store: Store
    device: RecordsDevice
    documentation: Documentation
    directory: Directory
    tmp: Path


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}")
    await store.migrate()
    directory = Directory()
    device, _ = await RecordsDevice.open(
        store, tmp_path / "records-key", RECORDS, DirectoryAdapter(directory)
    )
    await announce(device, directory)
    documentation = Documentation(store, read_key(tmp_path / "records-key"))
    yield World(store, device, documentation, directory, tmp_path)
    await device.close()
    await store.close()


def message(sender: str, encrypted: ET.Element, msg_id: str) -> ET.Element:
    root = ET.Element(
        f"{{{CLIENT}}}message",
        {"from": f"{sender}/phone", "to": THREAD, "type": "groupchat", "id": msg_id},
    )
    root.append(encrypted)
    return root


def context(sender: str, stanza: ET.Element, documented: bool = True) -> MessageContext:
    members = {ANNA, BEN, KAI} | ({RECORDS} if documented else set())
    return MessageContext(THREAD, sender, frozenset(members), stanza)


async def sent(world: World, gate: RecordsGate, who: Sender, text: str, msg_id: str) -> Verdict:
    others = sorted({ANNA, BEN, KAI} - {who.jid})
    for other in others:
        if (who.version.uri, other) not in world.directory.device_lists:
            await Sender.create(other, who.version, world.directory)
    element = await who.encrypt(text, [RECORDS, *others])
    return await gate.evaluate(context(who.jid, message(who.jid, element, msg_id)))


@pytest.mark.requirement("I.6")
async def test_documented_messages_are_stored_in_order_with_sender(world: World) -> None:
    gate = RecordsGate(Inner(), world.device, world.documentation)
    anna = await Sender.create(ANNA, LEGACY, world.directory)
    kai = await Sender.create(KAI, OMEMO2, world.directory)
    for who, text, msg_id in ((anna, "BP 120/80", "m1"), (kai, "Pulse 64", "m2"),
                              (anna, "Started heparin", "m3")):  # fmt: skip
        assert not (await sent(world, gate, who, text, msg_id)).rejected
    copies = await world.documentation.read("icu-1")
    assert [(c.position, c.sender, c.body, c.message_id) for c in copies] == [
        (1, ANNA, "BP 120/80", "m1"),
        (2, KAI, "Pulse 64", "m2"),
        (3, ANNA, "Started heparin", "m3"),
    ]
    assert "Pulse 64" in copies[1].sce_content and "urn:xmpp:sce:1" in copies[1].sce_content
    assert copies[0].sce_content == ""  # legacy OMEMO encrypts the body alone


@pytest.mark.requirement("I.6", "I.4")
async def test_the_policy_never_sees_the_records_device(world: World) -> None:
    inner = Inner()
    gate = RecordsGate(inner, world.device, world.documentation)
    anna = await Sender.create(ANNA, LEGACY, world.directory)
    await sent(world, gate, anna, "x", "m1")
    [shown] = inner.seen
    assert RECORDS not in shown.members
    header = parse_header(shown.stanza)
    assert isinstance(header, OmemoHeader)
    assert await world.device.device_id() not in {k.rid for k in header.keys}
    assert header.keys  # the others' keys are still there


@pytest.mark.requirement("I.6")
async def test_undocumented_thread_is_not_decrypted(world: World) -> None:
    inner = Inner()
    gate = RecordsGate(inner, world.device, world.documentation)
    anna = await Sender.create(ANNA, LEGACY, world.directory)
    element = await anna.encrypt("off the record", [RECORDS])
    stanza = message(ANNA, element, "m1")
    verdict = await gate.evaluate(context(ANNA, stanza, documented=False))
    assert not verdict.rejected and inner.seen[0].stanza is stanza
    assert await world.documentation.read("icu-1") == []


@pytest.mark.requirement("I.6")
async def test_message_without_records_key_is_relayed_and_the_gap_told(world: World) -> None:
    gate = RecordsGate(Inner(), world.device, world.documentation)
    anna = await Sender.create(ANNA, LEGACY, world.directory)
    await Sender.create(BEN, LEGACY, world.directory)
    element = await anna.encrypt("forgot records", [BEN])
    verdict = await gate.evaluate(context(ANNA, message(ANNA, element, "m1")))
    assert not verdict.rejected
    assert verdict.notices == (GAP_NOTICE,)
    [gap] = await world.documentation.read("icu-1")
    assert (gap.kind, gap.sender, gap.body, gap.gap_reason) == ("gap", ANNA, "", "no-key")


@pytest.mark.requirement("I.6")
async def test_refused_message_is_not_documented(world: World) -> None:
    refused = Verdict.reject(ReasonCode.SENDER_DEVICE_NOT_APPROVED, "no")
    gate = RecordsGate(Inner(refused), world.device, world.documentation)
    anna = await Sender.create(ANNA, LEGACY, world.directory)
    assert (await sent(world, gate, anna, "x", "m1")).rejected
    assert await world.documentation.read("icu-1") == []


class BrokenDocumentation(Documentation):
    async def append(self, copy: object) -> int:  # type: ignore[override]
        raise StoreUnavailable("store error (OperationalError)")


@pytest.mark.requirement("I.6", "I.12")
async def test_copy_not_stored_means_message_refused(world: World) -> None:
    broken = BrokenDocumentation(world.store, b"\x00" * 32)
    gate = RecordsGate(Inner(), world.device, broken)
    anna = await Sender.create(ANNA, LEGACY, world.directory)
    verdict = await sent(world, gate, anna, "x", "m1")
    assert verdict.rejected and verdict.reason is ReasonCode.DOCUMENTATION_NOT_STORED
    assert verdict.refusal.condition == "internal-server-error"


@pytest.mark.requirement("I.6", "II.1")
async def test_the_database_holds_no_plaintext(world: World) -> None:
    gate = RecordsGate(Inner(), world.device, world.documentation)
    anna = await Sender.create(ANNA, LEGACY, world.directory)
    kai = await Sender.create(KAI, OMEMO2, world.directory)
    await sent(world, gate, anna, "Patient Zorbulon allergic", "m1")
    await sent(world, gate, kai, "Zorbulon pulse 64", "m2")
    assert len(await world.documentation.read("icu-1")) == 2
    db = sqlite3.connect(world.tmp / "clinic.db")
    tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
    for table in tables:
        for row in db.execute(f'select * from "{table}"'):
            assert "Zorbulon" not in repr(row), table
    db.close()
    await world.store.close()
    for path in world.tmp.glob("clinic.db*"):
        assert b"Zorbulon" not in path.read_bytes(), path


@pytest.mark.requirement("I.6")
async def test_tampered_copy_breaks_the_chain(world: World) -> None:
    gate = RecordsGate(Inner(), world.device, world.documentation)
    anna = await Sender.create(ANNA, LEGACY, world.directory)
    await sent(world, gate, anna, "one", "m1")
    await sent(world, gate, anna, "two", "m2")
    async with world.store.session() as session:
        await session.execute(
            update(DocumentationCopy)
            .where(DocumentationCopy.position == 1)
            .values(sender="mallory@hospital.test")
        )
    with pytest.raises(DocumentationError, match="broken at 1"):
        await world.documentation.read("icu-1")


@pytest.mark.requirement("I.6")
async def test_since_and_until_select_a_window(world: World) -> None:
    gate = RecordsGate(Inner(), world.device, world.documentation)
    anna = await Sender.create(ANNA, LEGACY, world.directory)
    await sent(world, gate, anna, "one", "m1")
    await sent(world, gate, anna, "two", "m2")
    first, second = await world.documentation.read("icu-1")
    since = await world.documentation.read("icu-1", since=second.at)
    assert [c.body for c in since] == ["two"]
    until = await world.documentation.read("icu-1", until=second.at)
    assert [c.body for c in until] == ["one"]
    assert first.at < second.at


@pytest.mark.requirement("I.6", "II.2")
async def test_copy_is_linked_to_the_archived_stanza_and_sequence(world: World) -> None:
    gate = RecordsGate(Inner(), world.device, world.documentation)
    anna = await Sender.create(ANNA, LEGACY, world.directory)
    await sent(world, gate, anna, "one", "m1")
    assert await world.documentation.link("icu-1", "m1", ANNA, "sid-7", 7)
    assert not await world.documentation.link("icu-1", "m1", ANNA, "sid-8", 8)  # taken
    assert not await world.documentation.link("icu-1", "m1", BEN, "sid-9", 9)  # not Ben's
    [copy] = await world.documentation.read("icu-1")
    assert (copy.stanza_id, copy.seq) == ("sid-7", 7)
    # The link is not part of the chain: linking later does not break it.


@pytest.mark.requirement("I.6", "I.7")
async def test_retention_purges_old_copies_and_the_rest_still_verifies(world: World) -> None:
    gate = RecordsGate(Inner(), world.device, world.documentation)
    anna = await Sender.create(ANNA, LEGACY, world.directory)
    for n, text in enumerate(("one", "two", "three"), start=1):
        await sent(world, gate, anna, text, f"m{n}")
    _one, two, _three = await world.documentation.read("icu-1")
    assert await world.documentation.purge(two.at) == 1
    left = await world.documentation.read("icu-1")
    assert [(c.position, c.body) for c in left] == [(2, "two"), (3, "three")]
    await sent(world, gate, anna, "four", "m4")
    assert [c.position for c in await world.documentation.read("icu-1")] == [2, 3, 4]
    async with world.store.session() as session:  # a copy removed from the middle
        await session.execute(delete(DocumentationCopy).where(DocumentationCopy.position == 3))
    with pytest.raises(DocumentationError, match="broken at 3"):
        await world.documentation.read("icu-1")


@pytest.mark.requirement("I.6")
async def test_key_transport_for_others_is_no_gap(world: World) -> None:
    gate = RecordsGate(Inner(), world.device, world.documentation)
    anna = await Sender.create(ANNA, LEGACY, world.directory)
    await Sender.create(BEN, LEGACY, world.directory)
    element = await anna.encrypt("x", [BEN])
    payload = element.find(f"{{{LEGACY.uri}}}payload")
    assert payload is not None
    element.remove(payload)  # what a key transport message carries: keys, no payload
    verdict = await gate.evaluate(context(ANNA, message(ANNA, element, "kt1")))
    assert not verdict.rejected and verdict.notices == ()
    assert await world.documentation.read("icu-1") == []
