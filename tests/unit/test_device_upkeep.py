"""The gateway's device upkeep: notices go out as chat messages, arrivals are discovered (I.5)."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest
from slixmpp import JID

from tests.unit.harness import migrated_store
from xmpp_clinic.config import PolicySettings
from xmpp_clinic.omemo import LEGACY_NS
from xmpp_clinic.registry.model import ObservedDevice
from xmpp_clinic.registry.service import DeviceRegistry
from xmpp_clinic.xmpp import device_upkeep
from xmpp_clinic.xmpp.device_upkeep import DeviceUpkeep
from xmpp_clinic.xmpp.pep import RefreshResult

COMPONENT = "clinic.hospital.test"
BOB = "bob@hospital.test"


class FakeComponent:
    """What DeviceUpkeep uses of the component: its JID, whether online, send()."""

    def __init__(self, online: bool = True) -> None:
        self.boundjid = JID(COMPONENT)
        self.online = online
        self.sent: list[ET.Element] = []

    def send(self, data: str) -> None:
        self.sent.append(
            ET.fromstring(data.replace("<message ", '<message xmlns="jabber:component:accept" ', 1))
        )


class FakeDiscovery:
    def __init__(self) -> None:
        self.asked: list[str] = []
        self.release = asyncio.Event()

    async def refresh(self, jid: str) -> None:
        self.asked.append(jid)
        await self.release.wait()

    async def run_periodic(self, members: Any, *, after_round: Any = None) -> None:
        await asyncio.Event().wait()


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[DeviceRegistry]:
    store = await migrated_store(tmp_path / "upkeep.db")
    yield DeviceRegistry(store, PolicySettings())
    await store.close()


async def no_members() -> Iterable[str]:
    return []


def upkeep(component: FakeComponent, registry: DeviceRegistry, discovery: Any) -> DeviceUpkeep:
    # No PEP subscriptions here: test_pep_watch.py covers them on a slixmpp stream.
    return DeviceUpkeep(component, registry, discovery, no_members, watch=False)  # type: ignore[arg-type]


@pytest.mark.requirement("I.5")
async def test_pending_device_notice_is_sent_as_a_chat_message_from_the_gateway(
    registry: DeviceRegistry,
) -> None:
    await registry.observe(BOB, LEGACY_NS, {7: ObservedDevice()})
    component = FakeComponent()
    assert await upkeep(component, registry, FakeDiscovery()).send_notices() == 1
    [sent] = component.sent
    assert (sent.get("from"), sent.get("to"), sent.get("type")) == (COMPONENT, BOB, "chat")
    body = sent.findtext("{jabber:component:accept}body") or ""
    assert body.startswith("Your device (id 7) is waiting for approval by hospital IT")
    assert await registry.take_notices() == []  # sent once


@pytest.mark.requirement("I.5")
async def test_notices_wait_in_the_store_while_the_gateway_is_offline(
    registry: DeviceRegistry,
) -> None:
    await registry.observe(BOB, LEGACY_NS, {7: ObservedDevice()})
    component = FakeComponent(online=False)
    assert await upkeep(component, registry, FakeDiscovery()).send_notices() == 0
    assert component.sent == []
    assert len(await registry.take_notices()) == 1


class DroppingComponent(FakeComponent):
    """Goes offline after ``keep`` stanzas, as a connection that drops mid-batch."""

    def __init__(self, keep: int) -> None:
        super().__init__()
        self.keep = keep

    def send(self, data: str) -> None:
        super().send(data)
        if len(self.sent) >= self.keep:
            self.online = False


@pytest.mark.requirement("I.5")
async def test_notices_not_sent_before_a_disconnect_stay_queued(
    registry: DeviceRegistry,
) -> None:
    await registry.observe(BOB, LEGACY_NS, {7: ObservedDevice(), 8: ObservedDevice()})
    component = DroppingComponent(keep=1)
    assert await upkeep(component, registry, FakeDiscovery()).send_notices() == 1
    (left,) = await registry.take_notices()
    assert "(id 8)" in left.text  # the one that was not sent is still queued
    component.online = True
    assert await upkeep(component, registry, FakeDiscovery()).send_notices() == 1
    assert [s.findtext("{jabber:component:accept}body", "")[:20] for s in component.sent] == [
        "Your device (id 7) i",
        "Your device (id 8) i",
    ]
    assert await registry.take_notices() == []


@pytest.mark.requirement("I.5")
async def test_notices_stay_queued_when_sending_fails(registry: DeviceRegistry) -> None:
    await registry.observe(BOB, LEGACY_NS, {7: ObservedDevice()})

    class Broken(FakeComponent):
        def send(self, data: str) -> None:
            raise ConnectionError("stream closed")

    with pytest.raises(ConnectionError):
        await upkeep(Broken(), registry, FakeDiscovery()).send_notices()
    assert len(await registry.take_notices()) == 1


@pytest.mark.requirement("I.5")
async def test_arrivals_of_one_person_are_coalesced(registry: DeviceRegistry) -> None:
    discovery = FakeDiscovery()
    keeper = upkeep(FakeComponent(), registry, discovery)
    keeper.member_arrived(f"{BOB}/phone")
    await asyncio.sleep(0)
    for _ in range(3):  # three more joins while the first refresh runs
        keeper.member_arrived(f"{BOB}/tablet")
    await asyncio.sleep(0)
    assert discovery.asked == [BOB]
    discovery.release.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert discovery.asked == [BOB, BOB]  # one more, for what changed meanwhile
    await keeper.stop()


class KeylessDiscovery:
    """A refresh that found a listed device whose bundle was not published yet."""

    def __init__(self, keyless: int) -> None:
        self.asked: list[str] = []
        self.keyless = keyless

    async def refresh(self, jid: str) -> RefreshResult:
        self.asked.append(jid)
        return RefreshResult(jid, keyless=self.keyless)


@pytest.mark.requirement("I.4")
async def test_a_device_list_event_reads_a_late_bundle_once_more(
    registry: DeviceRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 9.7: a client may publish the list before the bundle."""
    monkeypatch.setattr(device_upkeep, "BUNDLE_RETRY_SECONDS", 0.01)
    discovery = KeylessDiscovery(keyless=1)
    keeper = upkeep(FakeComponent(), registry, discovery)
    keeper._list_changed(BOB)
    await asyncio.sleep(0.1)
    assert discovery.asked == [BOB, BOB]  # once more, not forever
    keeper.member_arrived(BOB)  # a join does not wait for bundles
    await asyncio.sleep(0.1)
    assert discovery.asked == [BOB, BOB, BOB]
    await keeper.stop()


@pytest.mark.requirement("I.4")
async def test_an_event_with_every_bundle_read_is_one_refresh(registry: DeviceRegistry) -> None:
    discovery = KeylessDiscovery(keyless=0)
    keeper = upkeep(FakeComponent(), registry, discovery)
    keeper._list_changed(BOB)
    await asyncio.sleep(0.05)
    assert discovery.asked == [BOB]
    await keeper.stop()
