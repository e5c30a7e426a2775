"""Pushing to the HIS when a thread closes and on a schedule, without duplicates (I.6).

A document goes out when a documented thread has copies the HIS has not accepted yet:
T02 the first time, T10 once the thread went on; nothing while one is still waiting
(it is built when sent, so it carries the newest copies) and nothing when the HIS
already has everything. The HIS is the ``hl7`` package's asyncio MLLP server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.integration.test_bridge_hl7 import FakeHis, free_port, settings
from tests.unit.test_bridge_support import ALICE, T0, StoredCopies, documented_store
from xmpp_clinic.bridge.outbox import Outbox, schedule
from xmpp_clinic.bridge.records import DocumentedMessage
from xmpp_clinic.store import Store

pytestmark = pytest.mark.requirement("I.6")


@pytest.fixture
async def seeded(tmp_path: Path) -> AsyncIterator[tuple[Store, StoredCopies]]:
    store, copies = await documented_store(tmp_path / "clinic.db")
    try:
        yield store, copies
    finally:
        await store.close()


async def test_a_push_goes_out_only_for_what_the_his_does_not_have(
    seeded: tuple[Store, StoredCopies],
) -> None:
    store, copies = seeded
    port = free_port()
    outbox = Outbox(store, copies, settings(port))
    assert await outbox.push_if_new("quiet", actor="test") is None  # not documented
    first = await outbox.push_if_new("icu-bed3", actor="test")
    assert first is not None and first.event == "T02"
    assert await outbox.push_if_new("icu-bed3", actor="test") is None  # one is waiting
    async with FakeHis(port) as his:
        assert await outbox.deliver_due() == 1
        assert await outbox.push_if_new("icu-bed3", actor="test") is None  # HIS has it all

        later = DocumentedMessage(4, "s-4", ALICE, T0 + timedelta(hours=1), "Transferred.")
        await copies.document("icu-bed3", [later])
        second = await outbox.push_if_new("icu-bed3", actor="test")
        assert second is not None and (second.event, second.version) == ("T10", 2)
        assert await outbox.deliver_due() == 1
    assert [str(m.segment("MSH")(9)) for m in his.received] == [
        "MDM^T02^MDM_T02",
        "MDM^T10^MDM_T02",
    ]
    assert "Transferred." in str(his.received[1])


async def test_the_schedule_pushes_documented_threads_with_new_copies(
    seeded: tuple[Store, StoredCopies],
) -> None:
    store, copies = seeded
    port = free_port()
    outbox = Outbox(store, copies, settings(port))
    task = asyncio.create_task(schedule(outbox, 0.1, actor="test"))
    try:
        for _ in range(50):
            if await outbox.pending():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # more passes: still the one document
        assert [(p.thread, p.event) for p in await outbox.pending()] == [("icu-bed3", "T02")]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
