"""HL7 v2 text the bridge reads and writes, without a socket (I.6): ADT checks, ACKs, MDM."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import hl7  # type: ignore[import-untyped]
import pytest

from tests.unit.test_bridge_support import ward_round
from xmpp_clinic.bridge.adt import AdtEvent, AdtRefusal, ack, read
from xmpp_clinic.bridge.cases import Case
from xmpp_clinic.bridge.fhir import transcript
from xmpp_clinic.bridge.mdm import MdmDocument, build
from xmpp_clinic.bridge.outbox import backoff
from xmpp_clinic.settings.bridge import Hl7PushSettings

pytestmark = pytest.mark.requirement("I.6")

MSH = "MSH|^~\\&|HIS|HOSP|XC|CLINIC|20260302080000||ADT^{t}^ADT_{t}|C1|P|2.5"


def message(trigger: str, *segments: str) -> str:
    return "\r".join([MSH.format(t=trigger), *segments]) + "\r"


def pv1(visit: str = "V1", ward: str = "ICU", admit: str = "", discharge: str = "") -> str:
    fields = ["PV1", "1", "I", ward, *[""] * 15, visit, *[""] * 24, admit, discharge]
    return "|".join(fields)


def test_a01_reads_patient_visit_ward_and_admission() -> None:
    event = read(message("A01", "PID|1||P42^^^HIS^PI", pv1(admit="202603020815")))
    assert event == AdtEvent(
        "A01", "C1", "P42", "V1", "ICU", datetime(2026, 3, 2, 8, 15, tzinfo=UTC)
    )


def test_a40_reads_the_merged_patient() -> None:
    event = read(message("A40", "PID|1||P42", "MRG|P7^^^HIS"))
    assert isinstance(event, AdtEvent) and (event.patient, event.merged_patient) == ("P42", "P7")


@pytest.mark.parametrize(
    ("text", "where", "error"),
    [
        (message("A01", pv1()), ("PID", 0), 100),
        (message("A01", "PID|1||", pv1()), ("PID", 3), 101),
        (message("A01", "PID|1||P 42", pv1()), ("PID", 3), 102),
        (message("A01", "PID|1||P42", pv1(ward="")), ("PV1", 3), 101),
        (message("A03", "PID|1||P42", pv1(discharge="2026-03-02")), ("PV1", 45), 102),
        (message("A40", "PID|1||P42"), ("MRG", 0), 100),
        (message("A02", "PID|1||P42", pv1()), ("MSH", 9), 201),
        (message("A01", "PID|1||P42", pv1()).replace("ADT^A01", "ORU^R01"), ("MSH", 9), 200),
        (message("A01", "PID|1||P42", pv1()).replace("|C1|", "||"), ("MSH", 10), 101),
    ],
)
def test_malformed_adt_is_refused_naming_the_field(
    text: str, where: tuple[str, int], error: int
) -> None:
    refusal = read(text)
    assert isinstance(refusal, AdtRefusal)
    assert ((refusal.segment, refusal.field), refusal.error, refusal.code) == (where, error, "AR")


def test_not_hl7_at_all_is_refused() -> None:
    refusal = read("GET / HTTP/1.1\r\n")
    assert isinstance(refusal, AdtRefusal) and refusal.segment == "MSH"


def test_ar_ack_swaps_the_parties_and_names_the_field() -> None:
    text = message("A01", "PID|1||P42", pv1(visit=""))
    refusal = read(text)
    assert isinstance(refusal, AdtRefusal)
    reply = hl7.parse(ack(text, "AR", control_id="C1", trigger="A01", refusal=refusal))
    msh = reply.segment("MSH")
    assert (str(msh(3)), str(msh(5)), str(msh(9))) == ("XC", "HIS", "ACK^A01^ACK")
    assert (str(reply.segment("MSA")(1)), str(reply.segment("MSA")(2))) == ("AR", "C1")
    assert str(reply.segment("ERR")(2)) == "PV1^1^19"
    assert str(reply.segment("MSA")(3)) == "PV1-19 is required"


def test_mdm_escapes_delimiters_and_splits_lines() -> None:
    hl7_settings = Hl7PushSettings(host="his", port=2575)
    copies = ward_round()
    text = transcript("icu-bed3", "ICU | bed ^3", copies)
    doc = MdmDocument(
        "ID1", "T02", "icu-bed3", 1, Case("V1", "P42", "ICU", None, None), text, copies[0].at
    )
    parsed = hl7.parse(build(doc, hl7_settings, datetime(2026, 3, 2, tzinfo=UTC)))
    obx = parsed.segments("OBX")
    assert len(obx) == len(text.splitlines())
    assert parsed.unescape(str(obx[0](5))) == "Thread icu-bed3: ICU | bed ^3"
    assert str(parsed.segment("PV1")(19)) == "V1"
    assert str(parsed.segment("MSH")(18)) == "UNICODE UTF-8"


def test_backoff_doubles_and_is_capped() -> None:
    s = Hl7PushSettings(retry_first_seconds=5.0, retry_max_seconds=60.0)
    assert [backoff(n, s) for n in (1, 2, 3, 5)] == [
        timedelta(seconds=5),
        timedelta(seconds=10),
        timedelta(seconds=20),
        timedelta(seconds=60),
    ]
