"""The bridge's HTTP API served by uvicorn on loopback, read with httpx (I.6, II.2, II.3).

Real server, real sockets, a migrated SQLite store; documentation copies from the
store-backed fake (the records member is another issue).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.documentreference import DocumentReference

from tests.unit.test_bridge_support import documented_store
from xmpp_clinic.archive import audit
from xmpp_clinic.bridge.api import BridgeContext
from xmpp_clinic.bridge.cases import CaseBook
from xmpp_clinic.bridge.fhir import PATIENT_SYSTEM, VISIT_SYSTEM
from xmpp_clinic.bridge.http import HttpBridge
from xmpp_clinic.bridge.tokens import TokenBook
from xmpp_clinic.settings.bridge import BridgeSettings
from xmpp_clinic.store import Store

pytestmark = pytest.mark.requirement("I.6", "II.2", "II.3")


class Live:
    def __init__(self, store: Store, client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
        self.store, self.client, self.tokens = store, client, tokens

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    async def requests_audited(self) -> list[audit.RecordedEvent]:
        async with self.store.session() as session:
            return [e for e in await audit.events(session) if e.action == "bridge.request"]


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    store, copies = await documented_store(tmp_path / "clinic.db")
    book = TokenBook(store)
    tokens = {
        "HIS": await book.create("HIS", ["records:read"], actor="test"),
        "AUDITOR": await book.create("AUDITOR", ["audit:read"], actor="test"),
    }
    cases = CaseBook(store)
    await cases.admit("V100", "P42", "ICU", at=None, actor="test")
    await cases.bind("icu-bed3", "V100", actor="test")
    settings = BridgeSettings(enabled=True, listen="127.0.0.1:0", rate_per_minute=1000)
    bridge = HttpBridge(settings, BridgeContext(store, copies, page_limit=2, rate_per_minute=1000))
    await bridge.start()
    try:
        base = f"http://127.0.0.1:{bridge.port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            yield Live(store, client, tokens)
    finally:
        await bridge.stop()
        await store.close()


async def test_no_token_is_401_problem_and_audited(live: Live) -> None:
    reply = await live.client.get("/threads")
    assert reply.status_code == 401
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["detail"] == "a bearer token is required"
    (event,) = await live.requests_audited()
    assert (event.actor, event.reason, event.note) == (
        "bridge:anonymous",
        "unauthorized",
        "GET /threads 401",
    )


async def test_token_without_scope_is_403_and_audited(live: Live) -> None:
    reply = await live.client.get("/threads/icu-bed3/messages", headers=live.auth("AUDITOR"))
    assert reply.status_code == 403
    assert reply.json()["detail"] == "the token lacks scope records:read"
    (event,) = await live.requests_audited()
    assert (event.actor, event.reason, event.subject) == ("bridge:AUDITOR", "forbidden", "icu-bed3")


async def test_revoked_token_is_refused(live: Live) -> None:
    await TokenBook(live.store).revoke("HIS", actor="test")
    reply = await live.client.get("/threads", headers=live.auth("HIS"))
    assert reply.status_code == 401


async def test_messages_in_order_with_gap_and_paging(live: Live) -> None:
    first = await live.client.get("/threads/icu-bed3/messages", headers=live.auth("HIS"))
    assert first.status_code == 200
    page = first.json()
    assert [m["seq"] for m in page["items"]] == [1, 2]
    assert page["items"][0]["body"] == "BP 120/80, stable."
    assert page["items"][1]["gap"] is True
    more = await live.client.get(
        "/threads/icu-bed3/messages",
        params={"after": page["next_cursor"]},
        headers=live.auth("HIS"),
    )
    assert [m["seq"] for m in more.json()["items"]] == [3]
    assert more.json()["next_cursor"] is None
    events = await live.requests_audited()
    assert [(e.actor, e.reason, e.subject) for e in events] == [
        ("bridge:HIS", "ok", "icu-bed3")
    ] * 2
    assert all("BP" not in e.note for e in events)  # no content in the audit trail


async def test_threads_filtered_by_patient_and_case(live: Live) -> None:
    by_patient = await live.client.get(
        "/threads", params={"patient": "P42"}, headers=live.auth("HIS")
    )
    (item,) = by_patient.json()["items"]
    assert item["name"] == "icu-bed3" and item["documented"] is True
    assert item["case"]["visit"] == "V100" and item["case"]["ward"] == "ICU"
    none = await live.client.get("/threads", params={"case": "V999"}, headers=live.auth("HIS"))
    assert none.json()["items"] == []


async def test_not_documented_thread_is_404(live: Live) -> None:
    reply = await live.client.get("/threads/quiet/messages", headers=live.auth("HIS"))
    assert reply.status_code == 404
    assert reply.json()["detail"] == "the thread is not documented"


async def test_page_size_over_limit_names_the_parameter(live: Live) -> None:
    reply = await live.client.get("/threads", params={"limit": 3}, headers=live.auth("HIS"))
    assert reply.status_code == 422
    assert reply.json()["detail"].startswith("query.limit:")


async def test_thread_audit_needs_audit_scope(live: Live) -> None:
    denied = await live.client.get("/threads/icu-bed3/audit", headers=live.auth("HIS"))
    assert denied.status_code == 403
    actions, cursor = [], "0"
    while cursor is not None:
        reply = await live.client.get(
            "/threads/icu-bed3/audit", params={"after": cursor}, headers=live.auth("AUDITOR")
        )
        actions += [e["action"] for e in reply.json()["items"]]
        cursor = reply.json()["next_cursor"]
    assert actions[0] == "thread.created"
    assert "bridge.thread-bound" in actions
    assert "bridge.request" in actions  # the refused read above is in the thread's trail


async def test_fhir_communications_validate_and_carry_patient_and_encounter(live: Live) -> None:
    reply = await live.client.get(
        "/fhir/Communication", params={"patient": "P42"}, headers=live.auth("HIS")
    )
    assert reply.headers["content-type"] == "application/fhir+json"
    bundle = Bundle.model_validate(reply.json())
    assert bundle.type == "searchset" and bundle.entry is not None
    first = Communication.model_validate(bundle.entry[0].resource.model_dump())
    assert first.subject.identifier.system == PATIENT_SYSTEM
    assert first.subject.identifier.value == "P42"
    assert first.encounter.identifier.value == "V100"
    assert first.payload[0].contentString == "BP 120/80, stable."
    assert first.sender.identifier.value == "alice@hospital.example"
    assert [e.resource.id for e in bundle.entry] == ["icu-bed3.1", "icu-bed3.2"]
    assert any(link.relation == "next" for link in bundle.link or [])
    one = await live.client.get("/fhir/Communication/icu-bed3.3", headers=live.auth("HIS"))
    third = Communication.model_validate(one.json())
    assert third.payload[1].contentAttachment.hash == b"\x01" * 20
    assert (
        one.json()["payload"][1]["contentAttachment"]["hash"]
        == base64.b64encode(b"\x01" * 20).decode()
    )


async def test_fhir_document_reference_is_the_plain_text_transcript(live: Live) -> None:
    reply = await live.client.get("/fhir/DocumentReference/icu-bed3", headers=live.auth("HIS"))
    doc = DocumentReference.model_validate(reply.json())
    attachment = doc.content[0].attachment
    assert attachment.contentType == "text/plain; charset=utf-8"
    text = attachment.data.decode()  # fhir.resources decodes base64Binary
    assert text.index("BP 120/80") < text.index("no documentation copy") < text.index("Scan")
    assert doc.subject.identifier.value == "P42"
    assert doc.context.encounter[0].identifier.system == VISIT_SYSTEM


async def test_fhir_refusal_is_operation_outcome(live: Live) -> None:
    reply = await live.client.get("/fhir/DocumentReference")
    assert reply.status_code == 401
    assert reply.json()["resourceType"] == "OperationOutcome"
    assert reply.json()["issue"][0]["code"] == "login"


async def test_capability_statement_at_metadata(live: Live) -> None:
    reply = await live.client.get("/fhir/metadata")
    statement = CapabilityStatement.model_validate(reply.json())
    kinds = {r.type for r in statement.rest[0].resource}
    assert kinds == {"Communication", "DocumentReference"}


async def test_openapi_is_published(live: Live) -> None:
    spec = (await live.client.get("/openapi.json")).json()
    assert "/threads/{name}/messages" in spec["paths"]
    assert "ProblemDetails" in spec["components"]["schemas"]


async def test_over_the_rate_is_429_and_audited(tmp_path: Path) -> None:
    store, copies = await documented_store(tmp_path / "clinic.db")
    bridge = HttpBridge(
        BridgeSettings(enabled=True, listen="127.0.0.1:0"),
        BridgeContext(store, copies, rate_per_minute=2),
    )
    await bridge.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{bridge.port}") as client:
            codes = [(await client.get("/fhir/metadata")).status_code for _ in range(3)]
            refused = await client.get("/threads")
        async with store.session() as session:
            reasons = [
                e.reason for e in await audit.events(session) if e.action == "bridge.request"
            ]
    finally:
        await bridge.stop()
        await store.close()
    assert codes == [200, 200, 429]
    assert refused.status_code == 429 and refused.headers["retry-after"] == "60"
    assert refused.headers["content-type"] == "application/problem+json"
    assert reasons == ["ok", "ok", "rate-limited", "rate-limited"]
