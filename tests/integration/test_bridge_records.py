"""The API over the records member's real documentation copies (issue 14) (I.6, II.2).

Copies are written with :class:`Documentation` (AES-GCM at rest, hash-chained), read by
the bridge's adapter and served over uvicorn; a broken chain is a 503, never half a record.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.communication import Communication
from sqlalchemy import update

from tests.unit.test_bridge_support import ALICE, BOB, DOMAIN, T0
from xmpp_clinic.bridge.api import BridgeContext
from xmpp_clinic.bridge.cases import CaseBook
from xmpp_clinic.bridge.documentation import RecordsCopies
from xmpp_clinic.bridge.http import HttpBridge
from xmpp_clinic.bridge.tokens import TokenBook
from xmpp_clinic.records.documentation import Content, Documentation, NewCopy
from xmpp_clinic.records.keys import KEY_BYTES
from xmpp_clinic.records.vetting import VettedFile
from xmpp_clinic.settings.bridge import BridgeSettings
from xmpp_clinic.store import Store
from xmpp_clinic.store.models.records import DocumentationCopy
from xmpp_clinic.threads import ThreadService

pytestmark = pytest.mark.requirement("I.6", "II.2")


async def test_real_documentation_copies_in_order_and_a_broken_chain_is_503(tmp_path: Path) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}")
    await store.migrate()
    await ThreadService(store, user_domains=[DOMAIN]).create("icu-bed3", "ICU", [ALICE, BOB])
    documentation = Documentation(store, secrets.token_bytes(KEY_BYTES))
    await documentation.append(NewCopy("icu-bed3", T0, ALICE, "m1", Content("Sats 94%.")))
    await documentation.append(
        NewCopy("icu-bed3", T0 + timedelta(minutes=1), BOB, "m2", None, "no-key")
    )
    await documentation.append(
        NewCopy("icu-bed3", T0 + timedelta(minutes=2), ALICE, "m3", Content("O2 2l."))
    )
    await CaseBook(store).admit("V100", "P42", "ICU", at=None, actor="test")
    await CaseBook(store).bind("icu-bed3", "V100", actor="test")
    token = await TokenBook(store).create("HIS", ["records:read"], actor="test")
    bridge = HttpBridge(
        BridgeSettings(enabled=True, listen="127.0.0.1:0"),
        BridgeContext(store, RecordsCopies(documentation)),
    )
    await bridge.start()
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{bridge.port}", headers=headers
        ) as client:
            page = (await client.get("/threads/icu-bed3/messages")).json()
            assert [(m["seq"], m["sender"], m["body"], m["gap"]) for m in page["items"]] == [
                (1, ALICE, "Sats 94%.", False),
                (2, BOB, "", True),
                (3, ALICE, "O2 2l.", False),
            ]
            bundle = Bundle.model_validate((await client.get("/fhir/Communication")).json())
            assert bundle.entry is not None and len(bundle.entry) == 3

            async with store.session() as session:  # someone edits a stored copy
                await session.execute(
                    update(DocumentationCopy)
                    .where(DocumentationCopy.position == 2)
                    .values(sender="mallory@hospital.example")
                )
            broken = await client.get("/threads/icu-bed3/messages")
            assert broken.status_code == 503
            assert "broken at 2" in broken.json()["detail"]
            fhir_broken = await client.get("/fhir/DocumentReference/icu-bed3")
            assert fhir_broken.status_code == 503
            assert fhir_broken.json()["resourceType"] == "OperationOutcome"
    finally:
        await bridge.stop()
        await store.close()


@pytest.mark.requirement("I.6", "I.10")
async def test_stored_attachments_are_served_with_their_hash_and_gaps_are_said(
    tmp_path: Path,
) -> None:
    """The records room's attachments (issue 14): a stored file is a FHIR Attachment with
    size and SHA-1, served decrypted by the API; one not stored is named with its reason."""
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}")
    await store.migrate()
    await ThreadService(store, user_domains=[DOMAIN]).create("wound", "Wound", [ALICE, BOB])
    documentation = Documentation(store, secrets.token_bytes(KEY_BYTES))
    text = "Wound day 3: aesgcm://upload.hospital.example/a/scan.pdf#00 aesgcm://upload.hospital.example/b/big.png#11"
    position = await documentation.append(NewCopy("wound", T0, ALICE, "m1", Content(text)))
    pdf = b"%PDF-1.4 wound documentation"
    await documentation.settle_attachment(
        "wound", position, 1, VettedFile(pdf, "application/pdf", False)
    )
    await documentation.settle_attachment("wound", position, 2, "too-large")
    token = await TokenBook(store).create("HIS", ["records:read"], actor="test")
    bridge = HttpBridge(
        BridgeSettings(enabled=True, listen="127.0.0.1:0"),
        BridgeContext(store, RecordsCopies(documentation, store)),
    )
    await bridge.start()
    base = f"http://127.0.0.1:{bridge.port}"
    try:
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {token}"}
        ) as client:
            (message,) = (await client.get("/threads/wound/messages")).json()["items"]
            assert "#" not in message["body"]  # the links' keys stay in the gateway
            stored, gap = message["attachments"]
            assert (stored["title"], stored["media_type"], stored["size"], stored["status"]) == (
                "scan.pdf", "application/pdf", len(pdf), "stored",
            )  # fmt: skip
            assert stored["sha1"] == hashlib.sha1(pdf).hexdigest()
            assert (gap["title"], gap["status"], gap["reason"]) == ("big.png", "gap", "too-large")
            assert "#" not in stored["url"] and "upload.hospital.example" not in stored["url"]
            served = await client.get(stored["url"])
            assert served.status_code == 200 and served.content == pdf
            assert served.headers["content-type"] == "application/pdf"
            refused = await client.get(gap["url"])
            assert refused.status_code == 404 and "too-large" in refused.json()["detail"]
            anonymous = await httpx.AsyncClient(base_url=base).get(stored["url"])
            assert anonymous.status_code == 401

            raw = (await client.get("/fhir/Communication")).json()
            sent = raw["entry"][0]["resource"]["payload"][1]["contentAttachment"]["hash"]
            assert sent == base64.b64encode(hashlib.sha1(pdf).digest()).decode()
            bundle = Bundle.model_validate(raw)
            assert bundle.entry is not None
            resource = Communication.model_validate(bundle.entry[0].resource.model_dump())
            assert resource.payload is not None
            (attachment,) = [p.contentAttachment for p in resource.payload if p.contentAttachment]
            assert attachment.hash == hashlib.sha1(pdf).digest()  # decoded by the model
            assert (attachment.size, attachment.contentType) == (len(pdf), "application/pdf")
            assert attachment.url == base + stored["url"]
            assert resource.note is not None
            assert resource.note[0].text == "file big.png not in the record (too-large)"
    finally:
        await bridge.stop()
        await store.close()
