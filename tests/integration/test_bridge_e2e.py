"""From real OMEMO members to the HIS, on a real Prosody and a real ejabberd (I.6, II.2).

The gateway runs as ``xmpp-clinic run`` builds it (records member, device approval
"all"); the bridge runs beside it on the same store as ``xmpp-clinic bridge serve`` runs
it (API on loopback, ADT listener, MDM outbox). The HIS is the ``hl7`` package: its
asyncio MLLP client sends A01, its asyncio MLLP server receives the MDM.

Two slixmpp-omemo members write in a documented thread bound to the case of the A01:
a PDF shared through the server's own upload service (XEP-0454 over XEP-0363), a part
set in the order 1, 3, 2 and another with part 2 held back. Then: the API returns the
messages in order with sender and time, the file with its size and hash (and serves
it), each set reassembled and the missing part named; the FHIR ``Communication`` and
``DocumentReference`` validate and carry the patient and encounter from the A01;
``threads close`` starts the retention and delivers an MDM^T02 with the transcript to
the listener.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import tomllib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import tomli_w
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.documentreference import DocumentReference
from slixmpp import ClientXMPP
from slixmpp.exceptions import PresenceError

from tests.helpers.bots import disconnect_bot
from tests.helpers.omemo import connect_omemo_bot, join_thread, send_omemo_groupchat
from tests.integration.conftest import PASSWORD, GatewayHandle, write_config
from tests.integration.test_bridge_adt import His, adt, closed_at, pv1
from tests.integration.test_bridge_hl7 import FakeHis, free_port
from xmpp_clinic.app import Gateway
from xmpp_clinic.bridge.documentation import open_copies
from xmpp_clinic.bridge.service import BridgeService
from xmpp_clinic.bridge.tokens import TokenBook
from xmpp_clinic.client import ThreadPoster
from xmpp_clinic.clock import utcnow
from xmpp_clinic.config import load_settings
from xmpp_clinic.dev.servers import DevServer
from xmpp_clinic.dev.servers.upload import request_slot
from xmpp_clinic.records.aesgcm import encrypt
from xmpp_clinic.settings.bridge import BridgeSettings
from xmpp_clinic.store import Store

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(300),
    pytest.mark.requirement("I.6", "II.2"),
]

PATIENT, VISIT = "P42", "V100"
SET_TEXT = "Befund: " + "Hb 13.2 g/dl; " * 12  # three parts of at most 64 bytes
HELD_BACK = "Plan: " + "Kontrolle morgen; " * 8
SWAB = b"%PDF-1.4\n% wound swab: MRSA negative\n%%EOF\n"


@dataclass
class Clinic:
    """The gateway, the bridge beside it, the HIS's MLLP receiver, a records:read token."""

    handle: GatewayHandle
    bridge: BridgeService
    store: Store
    his: FakeHis
    token: str

    async def raw_copies(self, thread: str) -> int:
        member = self.handle.gateway.records.member
        assert member is not None
        return len(await member.documentation.read(thread))

    async def wait_copies(self, thread: str, count: int, timeout: float = 60) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while await self.raw_copies(thread) < count:
            assert asyncio.get_running_loop().time() < deadline, f"fewer than {count} copies"
            await asyncio.sleep(0.2)

    def api(self) -> httpx.AsyncClient:
        assert self.bridge.http is not None
        return httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.bridge.http.port}",
            headers={"Authorization": f"Bearer {self.token}"},
        )


@asynccontextmanager
async def running(
    server: DevServer, folder: Path, **sections: dict[str, Any]
) -> AsyncIterator[Clinic]:
    """The gateway and the bridge beside it, with ``sections`` added to the config."""
    bridge = {
        "enabled": True,
        "listen": f"127.0.0.1:{free_port()}",
        "hl7": {"host": "127.0.0.1", "port": free_port(), "poll_seconds": 0.2},
        "adt": {"listen": f"127.0.0.1:{free_port()}"},
    }
    for key, value in sections.pop("bridge", {}).items():
        bridge[key] = {**bridge[key], **value} if isinstance(value, dict) else value
    path = write_config(server, folder, policy={"device_approval": "all"}, bridge=bridge)
    if sections:  # write_config's own ``directory`` is the folder: add the rest here
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        path.write_text(tomli_w.dumps({**data, **sections}), encoding="utf-8")
    settings = load_settings(path)
    # `xmpp-clinic run` without its bridge: the bridge runs beside it, as `bridge serve`.
    gateway = Gateway(settings.model_copy(update={"bridge": BridgeSettings()}))
    await gateway.start()
    store = Store(settings.store.url)
    service: BridgeService | None = None
    try:
        await gateway.component.wait_online(timeout=15)
        await store.migrate()
        service = BridgeService(
            settings.bridge, store, await open_copies(store, settings.records.key_file)
        )
        await service.start()
        token = await TokenBook(store).create("HIS", ["records:read"], actor="test")
        async with FakeHis(settings.bridge.hl7.port) as his:
            handle = GatewayHandle(gateway, settings, path, server)
            yield Clinic(handle, service, store, his, token)
    finally:
        if service is not None:
            await service.stop()
        await store.close()
        await gateway.stop()


@pytest.fixture
async def clinic(xmpp_server: DevServer, tmp_path: Path) -> AsyncIterator[Clinic]:
    """Documented attachments are fetched from the server's own upload service."""
    upload = urlsplit(xmpp_server.upload_url_base)
    records = {"attachment_hosts": [f"http://{upload.hostname}:{upload.port}"]}
    async with running(xmpp_server, tmp_path, records=records) as found:
        yield found


async def share(bot: ClientXMPP, server: DevServer, name: str, content: bytes) -> str:
    """A file shared the XEP-0454 way: encrypted, PUT into an upload slot; its link."""
    ciphertext, fragment = encrypt(content, secrets.token_bytes(12), secrets.token_bytes(32))
    slot = await request_slot(bot, server.upload_jid, name, len(ciphertext), "application/pdf")
    async with httpx.AsyncClient(trust_env=False) as http:
        headers = slot.headers | {"Content-Type": "application/pdf"}
        stored = await http.put(slot.put_url, content=ciphertext, headers=headers)
    assert stored.status_code in (200, 201), stored.status_code
    return "aesgcm://" + slot.get_url.split("://", 1)[1] + "#" + fragment


@pytest.fixture
async def ward_clinic(xmpp_server: DevServer, tmp_path: Path) -> AsyncIterator[Clinic]:
    """With a directory and ward 4B's case threads bound to its group ``ward-4b``."""
    async with running(
        xmpp_server,
        tmp_path,
        directory={"max_removal_share": 1.0},
        bridge={"adt": {"ward_threads": {"4B": "ward-4b"}}},
    ) as found:
        yield found


async def post_parts(bot: ClientXMPP, thread: str, text: str, order: list[int]) -> None:
    """``text`` as a part set of three, sent in ``order`` (a part left out never comes)."""
    parts = await ThreadPoster(bot, thread, max_part_bytes=64).encrypt_parts(text)
    assert len(parts) == 3
    for n in order:
        parts[n - 1].send()


async def test_real_members_reach_the_api_fhir_and_the_his(
    make_users: Callable[..., list[str]], clinic: Clinic
) -> None:
    started = utcnow() - timedelta(seconds=1)
    assert clinic.bridge.adt is not None
    admit = adt("A01", "A1", f"PID|1||{PATIENT}^^^HIS^PI||Doe^Jane", pv1(VISIT))
    reply = await His(clinic.bridge.adt.port).send(admit)
    assert str(reply.segment("MSA")(1)) == "AA"  # type: ignore[attr-defined]

    anna, ben = make_users("anna", "ben")
    await clinic.handle.acli("threads", "create", "icu", "--title", "ICU bed 3", "--member", anna,
              "--member", ben, "--documented", "--case", VISIT)  # fmt: skip
    thread = f"icu@{clinic.handle.jid}"
    server = clinic.handle.server
    bots = list(
        await asyncio.gather(*(connect_omemo_bot(u, PASSWORD, server) for u in (anna, ben)))
    )
    try:
        await join_thread(bots[0], thread, "Anna")
        await join_thread(bots[1], thread, "Ben")
        await send_omemo_groupchat(bots[0], thread, "BP 120/80 at 08:00")
        await clinic.wait_copies("icu", 1)
        await send_omemo_groupchat(bots[1], thread, "Heparin 5000 IE started")
        await clinic.wait_copies("icu", 2)
        link = await share(bots[1], server, "swab.pdf", SWAB)
        await send_omemo_groupchat(bots[1], thread, f"Swab report {link}")
        await clinic.wait_copies("icu", 3)
        await post_parts(bots[0], thread, SET_TEXT, [1, 3, 2])
        await clinic.wait_copies("icu", 6)
        await post_parts(bots[1], thread, HELD_BACK, [1, 3])
        await clinic.wait_copies("icu", 8)
    finally:
        await asyncio.gather(*(disconnect_bot(b) for b in bots))

    async with clinic.api() as api:
        for _ in range(100):  # the records member fetches the file after the copy
            items = (await api.get("/threads/icu/messages")).json()["items"]
            if items[2]["attachments"] and items[2]["attachments"][0]["status"] != "pending":
                break
            await asyncio.sleep(0.2)
        assert (
            [(m["sender"], m["body"], m["parts"], m["missing_parts"]) for m in items]
            == [
                (anna, "BP 120/80 at 08:00", 1, []),
                (ben, "Heparin 5000 IE started", 1, []),
                (ben, f"Swab report {link.split('#')[0]}", 1, []),  # the key stays here
                (anna, SET_TEXT, 3, []),
                (ben, HELD_BACK[:64] + HELD_BACK[128:], 3, [2]),
            ]
        )
        (swab,) = items[2]["attachments"]
        assert (swab["title"], swab["status"], swab["media_type"], swab["size"]) == (
            "swab.pdf", "stored", "application/pdf", len(SWAB),
        )  # fmt: skip
        assert swab["sha1"] == hashlib.sha1(SWAB).hexdigest()
        assert (await api.get(swab["url"])).content == SWAB
        seqs = [m["seq"] for m in items]
        assert seqs == sorted(seqs) and len(set(seqs)) == 5
        times = [m["at"] for m in items]
        assert times == sorted(times)
        assert all(started.isoformat() <= t for t in times)

        searched = await api.get("/fhir/Communication?thread=icu")
        assert link.split("#")[1] not in searched.text
        bundle = Bundle.model_validate(searched.json())
        assert bundle.entry is not None and len(bundle.entry) == 5
        resources = [Communication.model_validate(e.resource.model_dump()) for e in bundle.entry]
        for resource in resources:
            assert resource.subject is not None and resource.subject.identifier.value == PATIENT
            assert resource.encounter is not None and resource.encounter.identifier.value == VISIT
        assert [r.sender.identifier.value for r in resources] == [anna, ben, ben, anna, ben]
        file = resources[2].payload[1].contentAttachment
        assert (file.size, file.hash) == (len(SWAB), hashlib.sha1(SWAB).digest())
        assert resources[3].payload[0].contentString == SET_TEXT
        assert resources[4].note is not None
        assert resources[4].note[0].text == "part 2 of 3 never arrived"

        raw = (await api.get("/fhir/DocumentReference/icu")).json()
        document = DocumentReference.model_validate(raw)
        assert document.subject is not None and document.subject.identifier.value == PATIENT
        assert document.context is not None
        assert document.context.encounter[0].identifier.value == VISIT

    closing = await clinic.handle.acli("threads", "close", "icu")
    assert "queued MDM^T02 v1" in closing.stdout
    assert await closed_at(clinic.store, "icu") is not None  # retention started
    for _ in range(100):
        if clinic.his.received:
            break
        await asyncio.sleep(0.1)
    (mdm,) = clinic.his.received
    assert str(mdm.segment("MSH")(9)) == "MDM^T02^MDM_T02"  # type: ignore[attr-defined]
    assert str(mdm.segment("PID")(3)) == PATIENT  # type: ignore[attr-defined]
    assert str(mdm.segment("PV1")(19)) == VISIT  # type: ignore[attr-defined]
    text = "\n".join(str(obx(5)) for obx in mdm.segments("OBX"))  # type: ignore[attr-defined]
    for said in ("BP 120/80 at 08:00", "Heparin 5000 IE started", SET_TEXT.strip()):
        assert said in text
    assert f"{anna}: BP 120/80" in text
    assert "(part 2 of 3 never arrived)" in text
    assert f"file swab.pdf (application/pdf, {len(SWAB)} bytes)" in text
    assert link.split("#")[1] not in str(mdm)
    for _ in range(50):
        if not await clinic.bridge.outbox.pending():  # type: ignore[union-attr]
            break
        await asyncio.sleep(0.1)
    assert "outbox empty" in (await clinic.handle.acli("bridge", "outbox")).stdout


async def join_when_known(bot: ClientXMPP, thread: str, nick: str, timeout: float = 20) -> None:
    """Join once the gateway has applied the thread the ADT listener created (change poll)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await join_thread(bot, thread, nick)
            return
        except PresenceError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def delivered(his: FakeHis, count: int) -> object:
    for _ in range(100):
        if len(his.received) >= count:
            break
        await asyncio.sleep(0.1)
    assert len(his.received) == count
    return his.received[-1]


@pytest.mark.requirement("I.6", "I.7", "IV.2")
async def test_an_admission_on_a_mapped_ward_gives_its_staff_a_case_thread_that_discharge_sends(
    make_users: Callable[..., list[str]], ward_clinic: Clinic, tmp_path: Path
) -> None:
    clinic = ward_clinic
    anna, ben = make_users("anna", "ben")
    export = tmp_path / "staff.csv"
    export.write_text(
        f"jid,name,staff_id,role,groups\n{anna},Anna,1,nurse,ward-4b\n{ben},Ben,2,doctor,ward-4b\n",
        encoding="utf-8",
    )
    await clinic.handle.acli("directory", "import", str(export))
    assert clinic.bridge.adt is not None
    his = His(clinic.bridge.adt.port)
    admit = adt("A01", "W1", "PID|1||P77^^^HIS^PI||Roe^Max", pv1("V200", "4B"))
    assert str((await his.send(admit)).segment("MSA")(1)) == "AA"  # type: ignore[attr-defined]
    thread = f"ward-4b-v200@{clinic.handle.jid}"
    bots = list(
        await asyncio.gather(
            *(connect_omemo_bot(u, PASSWORD, clinic.handle.server) for u in (anna, ben))
        )
    )
    try:
        await join_when_known(bots[0], thread, "Anna")
        await join_when_known(bots[1], thread, "Ben")
        await send_omemo_groupchat(bots[0], thread, "Admitted to 4B, obs stable")
        await clinic.wait_copies("ward-4b-v200", 1)
        await send_omemo_groupchat(bots[1], thread, "Mobilise tomorrow")
        await clinic.wait_copies("ward-4b-v200", 2)

        discharge = adt("A03", "W2", "PID|1||P77", pv1("V200", "4B", "20260305120000"))
        reply = await his.send(discharge)
        assert str(reply.segment("MSA")(1)) == "AA"  # type: ignore[attr-defined]
        assert await closed_at(clinic.store, "ward-4b-v200") is not None
        first = await delivered(clinic.his, 1)
        assert str(first.segment("MSH")(9)) == "MDM^T02^MDM_T02"  # type: ignore[attr-defined]
        assert str(first.segment("PID")(3)) == "P77"  # type: ignore[attr-defined]
        assert str(first.segment("PV1")(19)) == "V200"  # type: ignore[attr-defined]
        assert "Mobilise tomorrow" in str(first) and "Roe" not in str(first)

        # Closing again with nothing new sends nothing; the thread goes on: a T10.
        again = await clinic.handle.acli("threads", "close", "ward-4b-v200")
        assert "queued" not in again.stdout
        await send_omemo_groupchat(bots[0], thread, "Discharge letter handed over")
        await clinic.wait_copies("ward-4b-v200", 3)
        more = await clinic.handle.acli("threads", "close", "ward-4b-v200")
        assert "queued MDM^T10 v2" in more.stdout
        second = await delivered(clinic.his, 2)
        assert str(second.segment("MSH")(9)) == "MDM^T10^MDM_T02"  # type: ignore[attr-defined]
        assert str(second.segment("TXA")(13)) == "ward-4b-v200/v1"  # type: ignore[attr-defined]
        assert "Discharge letter handed over" in str(second)
    finally:
        await asyncio.gather(*(disconnect_bot(b) for b in bots))
