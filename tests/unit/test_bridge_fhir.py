"""FHIR resources built from documentation copies, validated by fhir.resources (I.6, II.2)."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.documentreference import DocumentReference

from tests.unit.test_bridge_support import ward_round
from xmpp_clinic.bridge.cases import Case
from xmpp_clinic.bridge.fhir import (
    as_json,
    communication,
    document_reference,
    thread_id,
    transcript,
)
from xmpp_clinic.bridge.guard import RateLimit

pytestmark = pytest.mark.requirement("I.6", "II.2")

CASE = Case("V100", "P42", "ICU", None, None)


def test_a_gap_is_a_communication_with_unknown_status_and_no_payload() -> None:
    gap = ward_round()[1]
    resource = Communication.model_validate(as_json(communication("icu-bed3", CASE, gap)))
    assert resource.status == "unknown"
    assert resource.payload is None
    assert resource.statusReason is not None


def test_unbound_thread_has_no_subject_or_encounter() -> None:
    resource = communication("icu-bed3", None, ward_round()[0])
    assert resource.subject is None and resource.encounter is None


def test_names_fhir_forbids_become_digests() -> None:
    assert thread_id("icu-bed3") == "icu-bed3"
    odd = thread_id("ward_7")
    assert odd.startswith("x-") and len(odd) == 34
    assert communication("ward_7", None, ward_round()[0]).id == f"{odd}.1"


def test_transcript_marks_gaps_files_and_missing_parts() -> None:
    first, gap, with_file = ward_round()
    partial = type(first)(4, "s-4", first.sender, first.at, "Part one", parts_missing=1)
    text = transcript("icu-bed3", "ICU bed 3", [first, gap, with_file, partial])
    assert "(no documentation copy of this message)" in text
    assert "file scan.png (image/png, 2048 bytes)" in text
    assert "(1 part(s) of this message never arrived)" in text


def test_document_reference_hash_is_sha1_of_the_transcript() -> None:
    import hashlib

    copies = ward_round()
    doc = DocumentReference.model_validate(
        as_json(document_reference("icu-bed3", "ICU bed 3", CASE, copies))
    )
    attachment = doc.content[0].attachment
    assert attachment.hash == hashlib.sha1(attachment.data).digest()
    assert attachment.size == len(attachment.data)
    assert doc.status == "current" and doc.docStatus == "final"


def test_rate_limit_counts_per_key_per_minute() -> None:
    limit = RateLimit(per_minute=2)
    assert [limit.allow("a", 0.0) for _ in range(3)] == [True, True, False]
    assert limit.allow("b", 1.0)
    assert limit.allow("a", 61.0)  # the next minute starts afresh


async def test_store_down_is_503_problem_not_a_crash() -> None:
    import httpx

    from xmpp_clinic.bridge.api import BridgeContext, create_app
    from xmpp_clinic.bridge.records import NoDocumentation
    from xmpp_clinic.store import Store

    store = Store("sqlite+aiosqlite:////nonexistent-folder/x.db")
    app = create_app(BridgeContext(store, NoDocumentation()))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as client:
        reply = await client.get("/threads", headers={"Authorization": "Bearer xc_x"})
    await store.close()
    assert reply.status_code == 503
    assert reply.headers["content-type"] == "application/problem+json"
