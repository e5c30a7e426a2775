"""Case threads per admission on mapped wards, from ADT over a real MLLP connection (I.6, IV.2).

``[bridge.adt.ward_threads]`` maps ward 4B to the directory group ``ward-4b``. An A01 on
4B opens one documented thread for that admission, bound to the case and to the ward's
staff; a repeated A01 changes nothing; an unmapped ward gets no thread; A08 and A40 reach
the thread through its case; A03 closes it (its retention starts). The HIS side is the
``hl7`` package's asyncio MLLP client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.test_bridge_adt import His, adt, closed_at, pv1
from xmpp_clinic.archive import audit
from xmpp_clinic.bridge.adt_listener import AdtListener
from xmpp_clinic.bridge.cases import CaseBook
from xmpp_clinic.directory.model import Directory, Person
from xmpp_clinic.directory.service import DirectoryService
from xmpp_clinic.store import Store
from xmpp_clinic.threads import ThreadService

pytestmark = pytest.mark.requirement("I.6", "IV.2", "I.7")

DOMAIN = "hospital.example"
NURSE, DOCTOR, OTHER = (f"{n}@{DOMAIN}" for n in ("nurse4b", "doctor4b", "icu-nurse"))
WARDS = {"4B": "ward-4b", "ICU": "ward-icu", "5C": "team-icu"}


class Ward:
    """The listener with ``WARDS``, its store, the HIS and what A03 closed."""

    def __init__(self, store: Store, his: His, closed: list[list[str]]) -> None:
        self.store, self.his, self.closed = store, his, closed
        self.threads = ThreadService(store, user_domains=[DOMAIN], directory=True)

    async def names(self) -> list[str]:
        return [t.name for t in await self.threads.list()]


@pytest.fixture
async def ward(tmp_path: Path) -> AsyncIterator[Ward]:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}")
    await store.migrate()
    staff = Directory(
        [
            Person("s1", "Nurse 4B", "s1", "nurse", (NURSE,), frozenset({"ward-4b"})),
            Person("s2", "Doctor 4B", "s2", "doctor", (DOCTOR,), frozenset({"ward-4b"})),
            Person("s3", "ICU Nurse", "s3", "nurse", (OTHER,), frozenset({"team-icu"})),
        ]
    )
    await DirectoryService(store, max_removal_share=1.0).apply(staff, actor="test", source="t")
    closed: list[list[str]] = []

    async def on_closed(threads: list[str]) -> None:
        closed.append(threads)

    listener = AdtListener("127.0.0.1:0", store, on_closed, WARDS)
    await listener.start()
    try:
        yield Ward(store, His(listener.port), closed)
    finally:
        await listener.stop()
        await store.close()


def code(reply: object) -> str:
    return str(reply.segment("MSA")(1))  # type: ignore[attr-defined]


async def test_admission_on_a_mapped_ward_opens_one_documented_case_thread(ward: Ward) -> None:
    reply = await ward.his.send(
        adt("A01", "C1", "PID|1||P42^^^HIS^PI||Doe^Jane", pv1("V100", "4B"))
    )
    assert code(reply) == "AA"
    info = await ward.threads.get("ward-4b-v100")
    assert info.documented
    assert {m.jid for m in info.members} == {NURSE, DOCTOR}  # the ward's staff, nobody else
    assert info.title == "Ward 4B, case V100" and "Doe" not in info.title
    assert await ward.threads.groups_of("ward-4b-v100") == ("ward-4b",)
    case = await CaseBook(ward.store).case_of("ward-4b-v100")
    assert case is not None and (case.visit, case.patient, case.ward) == ("V100", "P42", "4B")

    again = await ward.his.send(adt("A01", "C2", "PID|1||P42", pv1("V100", "4B")))
    assert code(again) == "AA"
    assert await ward.names() == ["ward-4b-v100"]
    async with ward.store.session() as session:
        events = await audit.events(session, subject="ward-4b-v100")
    assert [e.action for e in events].count("bridge.thread-bound") == 1

    other = await ward.his.send(adt("A01", "C3", "PID|1||P43", pv1("V101", "4B")))
    assert code(other) == "AA"
    assert await ward.names() == ["ward-4b-v100", "ward-4b-v101"]  # one per admission


async def test_an_unmapped_ward_is_admitted_without_a_thread(ward: Ward) -> None:
    reply = await ward.his.send(adt("A01", "C1", "PID|1||P42", pv1("V200", "CARDIO")))
    assert code(reply) == "AA"
    assert await ward.names() == []
    assert await CaseBook(ward.store).bindings() == {}


async def test_a_ward_group_missing_from_the_directory_is_ae_and_changes_nothing(
    ward: Ward,
) -> None:
    reply = await ward.his.send(adt("A01", "C1", "PID|1||P42", pv1("V300", "ICU")))
    assert code(reply) == "AE"
    err = reply.segment("ERR")  # type: ignore[attr-defined]
    assert str(err(2)) == "PV1^1^3" and "ward-icu" in str(err(3))
    assert await ward.names() == []
    async with ward.store.session() as session:
        assert [e for e in await audit.events(session) if e.subject == "V300"] == []


async def test_update_merge_and_discharge_reach_the_case_thread(ward: Ward) -> None:
    await ward.his.send(adt("A01", "C1", "PID|1||P-OLD", pv1("V100", "4B")))
    assert code(await ward.his.send(adt("A08", "C2", "PID|1||P-OLD", pv1("V100", "4B")))) == "AA"
    assert code(await ward.his.send(adt("A40", "C3", "PID|1||P42", "MRG|P-OLD"))) == "AA"
    case = await CaseBook(ward.store).case_of("ward-4b-v100")
    assert case is not None and case.patient == "P42"

    assert await closed_at(ward.store, "ward-4b-v100") is None
    discharge = adt("A03", "C4", "PID|1||P42", pv1("V100", "4B", discharge="20260305120000"))
    assert code(await ward.his.send(discharge)) == "AA"
    when = await closed_at(ward.store, "ward-4b-v100")
    assert when is not None and when.isoformat() == "2026-03-05T12:00:00+00:00"
    assert ward.closed == [["ward-4b-v100"]]


async def test_a_name_taken_by_someone_elses_thread_is_left_alone(ward: Ward) -> None:
    await ward.threads.create("ward-4b-v300", "Handover", [NURSE], actor="test")
    reply = await ward.his.send(adt("A01", "C1", "PID|1||P42", pv1("V300", "4B")))
    assert code(reply) == "AA"
    bindings = await CaseBook(ward.store).bindings()
    assert "ward-4b-v300" not in bindings  # the hand-made thread is not the case's record
    [(name, case)] = bindings.items()
    assert name.startswith("ward-4b-v300-") and case.visit == "V300"
    assert (await ward.threads.get(name)).documented
    again = await ward.his.send(adt("A01", "C2", "PID|1||P42", pv1("V300", "4B")))
    assert code(again) == "AA" and list(await CaseBook(ward.store).bindings()) == [name]


async def test_a_case_moved_to_another_ward_takes_its_thread_to_that_wards_staff(
    ward: Ward,
) -> None:
    """A08 with a new PV1-3: the case thread is bound to the new ward's group, then
    unbound from the old one (its staff leave, 321); a move to a ward whose group is
    missing is AE and changes nothing."""
    await ward.his.send(adt("A01", "C1", "PID|1||P42", pv1("V100", "4B")))
    missing = await ward.his.send(adt("A08", "C2", "PID|1||P42", pv1("V100", "ICU")))
    assert code(missing) == "AE"
    assert await ward.threads.groups_of("ward-4b-v100") == ("ward-4b",)
    case = await CaseBook(ward.store).case_of("ward-4b-v100")
    assert case is not None and case.ward == "4B"  # the case did not move either

    moved = await ward.his.send(adt("A08", "C3", "PID|1||P42", pv1("V100", "5C")))
    assert code(moved) == "AA"
    info = await ward.threads.get("ward-4b-v100")
    assert {m.jid for m in info.members} == {OTHER}
    assert await ward.threads.groups_of("ward-4b-v100") == ("team-icu",)
    case = await CaseBook(ward.store).case_of("ward-4b-v100")
    assert case is not None and case.ward == "5C"
