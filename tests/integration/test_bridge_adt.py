"""ADT over a real MLLP connection: admit binds, discharge closes, merge moves (I.6, I.7).

The HIS side is the ``hl7`` package's asyncio MLLP client; the gateway side is the
bridge's listener on a free loopback port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import hl7  # type: ignore[import-untyped]
import pytest
from hl7.mllp import open_hl7_connection  # type: ignore[import-untyped]
from sqlalchemy import select

from tests.unit.test_bridge_support import documented_store
from xmpp_clinic.archive import audit
from xmpp_clinic.bridge.adt_listener import AdtListener
from xmpp_clinic.bridge.cases import CaseBook
from xmpp_clinic.store import Store
from xmpp_clinic.store.models.retention import ThreadRetention
from xmpp_clinic.store.models.threads import Thread

pytestmark = pytest.mark.requirement("I.6", "I.7")

MSH = (
    "MSH|^~\\&|HIS|HOSPITAL|XMPP-CLINIC|CLINIC|20260302080000||"
    "ADT^{trigger}^ADT_{trigger}|{cid}|P|2.5"
)


def adt(trigger: str, cid: str, *segments: str) -> str:
    return "\r".join(
        [MSH.format(trigger=trigger, cid=cid), f"EVN|{trigger}|20260302080000", *segments]
    )


def pv1(visit: str, ward: str = "ICU", discharge: str = "") -> str:
    fields = ["PV1", "1", "I", f"{ward}^3^1"] + [""] * 15 + [visit] + [""] * 26
    fields[45] = discharge
    return "|".join(fields)


class His:
    def __init__(self, port: int) -> None:
        self.port = port
        self.closed_seen: list[list[str]] = []

    async def send(self, text: str) -> object:
        reader, writer = await open_hl7_connection("127.0.0.1", self.port, encoding="utf-8")
        try:
            writer.writemessage(hl7.parse(text))
            await writer.drain()
            return await reader.readmessage()
        finally:
            writer.close()


@pytest.fixture
async def wired(tmp_path: Path) -> AsyncIterator[tuple[Store, His]]:
    store, _ = await documented_store(tmp_path / "clinic.db")
    closed: list[list[str]] = []

    async def on_closed(threads: list[str]) -> None:
        closed.append(threads)

    listener = AdtListener("127.0.0.1:0", store, on_closed)
    await listener.start()
    his = His(listener.port)
    his.closed_seen = closed
    try:
        yield store, his
    finally:
        await listener.stop()
        await store.close()


async def closed_at(store: Store, thread: str) -> object:
    async with store.session() as session:
        tid = await session.scalar(select(Thread.id).where(Thread.name == thread))
        row = await session.get(ThreadRetention, tid)
        return None if row is None else row.closed_at


async def test_a01_admits_then_a03_closes_the_bound_thread(wired: tuple[Store, His]) -> None:
    store, his = wired
    reply = await his.send(adt("A01", "C1", "PID|1||P42^^^HIS^PI||Doe^Jane", pv1("V100")))
    assert str(reply.segment("MSA")(1)) == "AA" and str(reply.segment("MSA")(2)) == "C1"
    cases = CaseBook(store)
    await cases.bind("icu-bed3", "V100", actor="test")  # threads create icu-bed3 --case V100
    case = await cases.case_of("icu-bed3")
    assert case is not None and (case.patient, case.ward) == ("P42", "ICU")
    assert await closed_at(store, "icu-bed3") is None

    reply = await his.send(adt("A03", "C2", "PID|1||P42", pv1("V100", discharge="20260305120000")))
    assert str(reply.segment("MSA")(1)) == "AA"
    when = await closed_at(store, "icu-bed3")
    assert when is not None and when.isoformat() == "2026-03-05T12:00:00+00:00"
    assert his.closed_seen == [["icu-bed3"]]
    async with store.session() as session:
        actions = [e.action for e in await audit.events(session, subject="icu-bed3")]
    assert "thread.closed" in actions  # retention's own event: its period has started


async def test_a08_updates_the_ward(wired: tuple[Store, His]) -> None:
    store, his = wired
    await his.send(adt("A01", "C1", "PID|1||P42", pv1("V100")))
    reply = await his.send(adt("A08", "C2", "PID|1||P42", pv1("V100", ward="CARDIO")))
    assert str(reply.segment("MSA")(1)) == "AA"
    await CaseBook(store).bind("icu-bed3", "V100", actor="test")
    case = await CaseBook(store).case_of("icu-bed3")
    assert case is not None and case.ward == "CARDIO"


async def test_a40_moves_cases_to_the_surviving_patient(wired: tuple[Store, His]) -> None:
    store, his = wired
    await his.send(adt("A01", "C1", "PID|1||P-OLD", pv1("V100")))
    reply = await his.send(adt("A40", "C2", "PID|1||P42", "MRG|P-OLD"))
    assert str(reply.segment("MSA")(1)) == "AA"
    await CaseBook(store).bind("icu-bed3", "V100", actor="test")
    case = await CaseBook(store).case_of("icu-bed3")
    assert case is not None and case.patient == "P42"


async def test_a01_without_visit_number_is_ar_naming_pv1_19(wired: tuple[Store, His]) -> None:
    store, his = wired
    reply = await his.send(adt("A01", "C9", "PID|1||P42", pv1("")))
    assert str(reply.segment("MSA")(1)) == "AR"
    assert str(reply.segment("MSA")(2)) == "C9"
    err = reply.segment("ERR")
    assert str(err(2)) == "PV1^1^19"
    assert str(err(3)(1)(1)) == "101"
    assert await CaseBook(store).bindings() == {}


async def test_bad_timestamp_and_unknown_event_are_named(wired: tuple[Store, His]) -> None:
    _, his = wired
    reply = await his.send(adt("A03", "C3", "PID|1||P42", pv1("V1", discharge="yesterday")))
    assert (str(reply.segment("MSA")(1)), str(reply.segment("ERR")(2))) == ("AR", "PV1^1^45")
    reply = await his.send(adt("A99", "C4", "PID|1||P42", pv1("V1")))
    assert (str(reply.segment("MSA")(1)), str(reply.segment("ERR")(2))) == ("AR", "MSH^1^9")


async def test_discharge_of_unknown_visit_is_ae(wired: tuple[Store, His]) -> None:
    _, his = wired
    reply = await his.send(adt("A03", "C5", "PID|1||P42", pv1("V404")))
    assert str(reply.segment("MSA")(1)) == "AE"
    assert str(reply.segment("ERR")(2)) == "PV1^1^19"
