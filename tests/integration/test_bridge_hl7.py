"""MDM^T02 pushed over MLLP to a real listener (hl7's asyncio server as the HIS) (I.6).

The outbox is durable: a document waits while the HIS is down, survives a restart of
the bridge, and is delivered exactly once when the HIS is back; AE is retried and shown.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import hl7  # type: ignore[import-untyped]
import pytest
from hl7.mllp import start_hl7_server  # type: ignore[import-untyped]
from sqlalchemy import update

from tests.unit.test_bridge_support import StoredCopies, documented_store
from xmpp_clinic.bridge.cases import CaseBook
from xmpp_clinic.bridge.outbox import Outbox
from xmpp_clinic.clock import utcnow
from xmpp_clinic.settings.bridge import Hl7PushSettings
from xmpp_clinic.store import Store
from xmpp_clinic.store.models.bridge import BridgeOutbox

pytestmark = pytest.mark.requirement("I.6")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeHis:
    """An MLLP receiver: keeps every message, answers with the next code (then AA)."""

    def __init__(self, port: int, answers: list[str] | None = None, silent: bool = False) -> None:
        self.port, self.answers, self.silent = port, list(answers or []), silent
        self.received: list[object] = []
        self.server: asyncio.AbstractServer | None = None

    async def _client(self, reader: object, writer: object) -> None:
        try:
            while True:
                message = await reader.readmessage()  # type: ignore[attr-defined]
                self.received.append(message)
                if self.silent:
                    continue
                code = self.answers.pop(0) if self.answers else "AA"
                ack = message.create_ack(code)
                if code != "AA":
                    # MSA is the ACK's last segment: MSA-3 is the text the HIS explains with.
                    ack = hl7.parse(str(ack).rstrip("\r") + "|document type not accepted")
                writer.writemessage(ack)  # type: ignore[attr-defined]
                await writer.drain()  # type: ignore[attr-defined]
        except asyncio.IncompleteReadError:
            pass

    async def __aenter__(self) -> FakeHis:
        self.server = await start_hl7_server(self._client, "127.0.0.1", self.port, encoding="utf-8")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def seeded(tmp_path: Path) -> AsyncIterator[tuple[Store, StoredCopies, Path]]:
    path = tmp_path / "clinic.db"
    store, copies = await documented_store(path)
    cases = CaseBook(store)
    await cases.admit("V100", "P42", "ICU", at=None, actor="test")
    await cases.bind("icu-bed3", "V100", actor="test")
    try:
        yield store, copies, path
    finally:
        await store.close()


def settings(port: int, **extra: float) -> Hl7PushSettings:
    return Hl7PushSettings(host="127.0.0.1", port=port, **extra)  # type: ignore[arg-type]


async def make_due(store: Store) -> None:
    async with store.session() as session:
        await session.execute(
            update(BridgeOutbox).values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


async def test_mdm_t02_carries_the_transcript_patient_and_visit(
    seeded: tuple[Store, StoredCopies, Path],
) -> None:
    store, copies, _ = seeded
    port = free_port()
    outbox = Outbox(store, copies, settings(port))
    async with FakeHis(port) as his:
        await outbox.enqueue("icu-bed3", actor="test")
        assert await outbox.deliver_due() == 1
    (message,) = his.received
    assert str(message.segment("MSH")(9)) == "MDM^T02^MDM_T02"
    assert str(message.segment("PID")(3)) == "P42"
    assert str(message.segment("PV1")(19)) == "V100"
    assert str(message.segment("TXA")(12)) == "icu-bed3/v1"
    lines = [str(obx(5)) for obx in message.segments("OBX")]
    assert "BP 120/80, stable." in " ".join(lines)
    assert await outbox.pending() == []


async def test_second_push_is_a_t10_replacing_the_first(
    seeded: tuple[Store, StoredCopies, Path],
) -> None:
    store, copies, _ = seeded
    port = free_port()
    outbox = Outbox(store, copies, settings(port))
    async with FakeHis(port) as his:
        await outbox.enqueue("icu-bed3", actor="test")
        await outbox.deliver_due()
        await outbox.enqueue("icu-bed3", actor="test")
        await outbox.deliver_due()
    second = his.received[1]
    assert str(second.segment("MSH")(9)) == "MDM^T10^MDM_T02"
    assert (str(second.segment("TXA")(12)), str(second.segment("TXA")(13))) == (
        "icu-bed3/v2",
        "icu-bed3/v1",
    )


async def test_listener_down_waits_and_is_delivered_once_after_restart(
    seeded: tuple[Store, StoredCopies, Path],
) -> None:
    store, copies, path = seeded
    port = free_port()
    outbox = Outbox(store, copies, settings(port))
    await outbox.enqueue("icu-bed3", actor="test")
    assert await outbox.deliver_due() == 0
    (waiting,) = await outbox.pending()
    assert waiting.attempts == 1 and waiting.last_result.startswith("unreachable")
    await store.close()  # the bridge stops ...

    again = Store(f"sqlite+aiosqlite:///{path}")  # ... and starts again
    try:
        await again.migrate()
        outbox = Outbox(again, StoredCopies(again), settings(port))
        assert [p.control_id for p in await outbox.pending()] == [waiting.control_id]
        await make_due(again)
        async with FakeHis(port) as his:
            assert await outbox.deliver_due() == 1
            await make_due(again)
            assert await outbox.deliver_due() == 0
        assert len(his.received) == 1
        assert str(his.received[0].segment("MSH")(10)) == waiting.control_id
        assert await outbox.pending() == []
    finally:
        await again.close()


async def test_ae_ack_is_retried_and_reported(seeded: tuple[Store, StoredCopies, Path]) -> None:
    store, copies, _ = seeded
    port = free_port()
    outbox = Outbox(store, copies, settings(port, retry_first_seconds=30.0))
    async with FakeHis(port, answers=["AE"]) as his:
        await outbox.enqueue("icu-bed3", actor="test")
        assert await outbox.deliver_due() == 0
        (entry,) = await outbox.pending()
        assert entry.last_result == "AE: document type not accepted"
        assert timedelta(seconds=25) < entry.next_attempt_at - utcnow() <= timedelta(seconds=30)
        assert await outbox.deliver_due() == 0  # not due yet: backoff holds
        await make_due(store)
        assert await outbox.deliver_due() == 1
    assert len(his.received) == 2


async def test_no_ack_is_a_timeout(seeded: tuple[Store, StoredCopies, Path]) -> None:
    store, copies, _ = seeded
    port = free_port()
    outbox = Outbox(store, copies, settings(port, ack_timeout_seconds=0.3))
    async with FakeHis(port, silent=True):
        await outbox.enqueue("icu-bed3", actor="test")
        assert await outbox.deliver_due() == 0
    (entry,) = await outbox.pending()
    assert entry.last_result == "timeout: no ACK"


async def test_discharge_queues_the_transcript_and_a_restarted_service_delivers_it_once(
    seeded: tuple[Store, StoredCopies, Path],
) -> None:
    """ADT A03 -> outbox while the HIS is down -> bridge restarts -> HIS back -> one MDM."""
    from tests.integration.test_bridge_adt import His, adt, pv1
    from xmpp_clinic.bridge.service import BridgeService
    from xmpp_clinic.settings.bridge import AdtSettings, BridgeSettings

    store, copies, path = seeded
    his_port = free_port()
    config = BridgeSettings(
        hl7=settings(his_port, poll_seconds=0.1, retry_first_seconds=0.1),
        adt=AdtSettings(listen="127.0.0.1:0"),
    )
    service = BridgeService(config, store, copies)
    await service.start()
    assert service.adt is not None and service.outbox is not None
    reply = await His(service.adt.port).send(adt("A03", "D1", "PID|1||P42", pv1("V100")))
    assert str(reply.segment("MSA")(1)) == "AA"
    for _ in range(50):  # the outbox has tried (HIS down) at least once
        pending = await service.outbox.pending()
        if pending and pending[0].attempts:
            break
        await asyncio.sleep(0.05)
    assert pending[0].last_result.startswith("unreachable")
    await service.stop()
    await store.close()

    again = Store(f"sqlite+aiosqlite:///{path}")
    try:
        service = BridgeService(config, again, StoredCopies(again))
        async with FakeHis(his_port) as his:
            await service.start()
            assert service.outbox is not None
            for _ in range(100):
                if his.received and not await service.outbox.pending():
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.4)  # several more polls: nothing is sent twice
            await service.stop()
        assert len(his.received) == 1
        assert str(his.received[0].segment("MSH")(10)) == pending[0].control_id
    finally:
        await again.close()


async def test_only_documented_threads_are_queued(seeded: tuple[Store, StoredCopies, Path]) -> None:
    store, copies, _ = seeded
    outbox = Outbox(store, copies, settings(free_port()))
    assert await outbox.enqueue_documented("quiet", actor="test") is None
    queued = await outbox.enqueue_documented("icu-bed3", actor="test")
    assert queued is not None and queued.event == "T02"
    assert [p.thread for p in await outbox.pending()] == ["icu-bed3"]
