"""Device lists and bundles read from members' PEP feed the registry (I.4, I.5)."""

from __future__ import annotations

import asyncio
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from slixmpp.test.mocksocket import TestSocket as MockSocket

from tests.unit.harness import COMPONENT, ComponentTest, make_settings, migrated_store
from xmpp_clinic.config import PolicySettings
from xmpp_clinic.omemo import LEGACY, LEGACY_NS, OMEMO2, OMEMO2_NS
from xmpp_clinic.registry.model import DeviceState
from xmpp_clinic.registry.service import DeviceRegistry
from xmpp_clinic.xmpp.component import ClinicComponent
from xmpp_clinic.xmpp.pep import (
    ComponentPep,
    DeviceDiscovery,
    PepError,
    PepUnavailable,
    items_of,
    parse_bundle_identity,
    parse_device_list,
)

ALICE = "alice@hospital.test"
FP = "4701d08488451f545a409fb58ae3e58581ca40ac3f7f114698cd71deac73ca01"

LEGACY_LIST = """<list xmlns="eu.siacs.conversations.axolotl">
  <device id="1111"/><device id="2222"/></list>"""
OMEMO2_LIST = """<devices xmlns="urn:xmpp:omemo:2">
  <device id="3333" label="Kaidan on ward phone"/></devices>"""
LEGACY_BUNDLE = """<bundle xmlns="eu.siacs.conversations.axolotl">
  <signedPreKeyPublic signedPreKeyId="1">BQ==</signedPreKeyPublic>
  <signedPreKeySignature>AA==</signedPreKeySignature>
  <identityKey>BUcB0ISIRR9UWkCftYrj5YWBykCsP38RRpjNcd6sc8oB</identityKey>
  <prekeys><preKeyPublic preKeyId="1">BQ==</preKeyPublic></prekeys></bundle>"""
OMEMO2_BUNDLE = """<bundle xmlns="urn:xmpp:omemo:2">
  <spk id="1">AA==</spk><spks>AA==</spks>
  <ik>A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=</ik>
  <prekeys><pk id="1">AA==</pk></prekeys></bundle>"""


@pytest.mark.requirement("I.4")
def test_legacy_device_list_is_read() -> None:
    assert parse_device_list(LEGACY, ET.fromstring(LEGACY_LIST)) == {1111: None, 2222: None}


@pytest.mark.requirement("I.4")
def test_omemo2_device_list_keeps_labels() -> None:
    devices = parse_device_list(OMEMO2, ET.fromstring(OMEMO2_LIST))
    assert devices == {3333: "Kaidan on ward phone"}


@pytest.mark.requirement("I.4")
def test_missing_device_list_means_no_devices() -> None:
    assert parse_device_list(LEGACY, None) == {}


@pytest.mark.requirement("I.4")
def test_device_list_with_bad_id_is_refused() -> None:
    bad = '<list xmlns="eu.siacs.conversations.axolotl"><device id="12a"/></list>'
    with pytest.raises(PepError):
        parse_device_list(LEGACY, ET.fromstring(bad))


@pytest.mark.requirement("I.4")
@pytest.mark.parametrize("raw", ["0", "2147483648", "99999999999999999999999", "-1", "+7", " 7"])
def test_device_ids_outside_31_bits_are_refused(raw: str) -> None:
    """Issue 8.9: the OMEMO device id range (1 .. 2^31-1) holds for PEP lists too."""
    bad = f'<list xmlns="eu.siacs.conversations.axolotl"><device id="{raw}"/></list>'
    with pytest.raises(PepError, match="from 1 to 2147483647"):
        parse_device_list(LEGACY, ET.fromstring(bad))


@pytest.mark.requirement("I.4")
def test_the_largest_device_id_is_accepted() -> None:
    top = '<list xmlns="eu.siacs.conversations.axolotl"><device id="2147483647"/></list>'
    assert parse_device_list(LEGACY, ET.fromstring(top)) == {2147483647: None}


@pytest.mark.requirement("I.4")
def test_device_list_of_the_wrong_version_is_refused() -> None:
    with pytest.raises(PepError):
        parse_device_list(OMEMO2, ET.fromstring(LEGACY_LIST))


@pytest.mark.requirement("I.4")
def test_huge_device_list_is_refused() -> None:
    devices = "".join(f'<device id="{n}"/>' for n in range(1, 200))
    with pytest.raises(PepError):
        parse_device_list(LEGACY, ET.fromstring(f'<list xmlns="{LEGACY_NS}">{devices}</list>'))


@pytest.mark.requirement("I.4")
def test_legacy_bundle_gives_the_curve25519_identity_key() -> None:
    key = parse_bundle_identity(LEGACY, ET.fromstring(LEGACY_BUNDLE))
    assert key.hex() == FP


@pytest.mark.requirement("I.4")
def test_omemo2_bundle_gives_the_ed25519_identity_key() -> None:
    key = parse_bundle_identity(OMEMO2, ET.fromstring(OMEMO2_BUNDLE))
    assert len(key) == 32 and key.hex() != FP


@pytest.mark.requirement("I.4")
def test_bundle_without_identity_key_is_refused() -> None:
    with pytest.raises(PepError):
        parse_bundle_identity(OMEMO2, ET.fromstring(f'<bundle xmlns="{OMEMO2_NS}"/>'))


@pytest.mark.requirement("I.4")
def test_bundle_with_garbage_identity_key_is_refused() -> None:
    bad = f'<bundle xmlns="{LEGACY_NS}"><identityKey>!!notbase64</identityKey></bundle>'
    with pytest.raises(PepError):
        parse_bundle_identity(LEGACY, ET.fromstring(bad))


@pytest.mark.requirement("I.4")
def test_bundle_nodes_follow_each_version() -> None:
    assert LEGACY.bundle_node(7) == ("eu.siacs.conversations.axolotl.bundles:7", None)
    assert OMEMO2.bundle_node(7) == ("urn:xmpp:omemo:2:bundles", "7")


@pytest.mark.requirement("I.4")
def test_items_are_taken_from_a_pubsub_result() -> None:
    result = ET.fromstring(
        '<iq xmlns="jabber:component:accept" type="result"><pubsub '
        'xmlns="http://jabber.org/protocol/pubsub"><items node="n"><item id="current">'
        f"{LEGACY_LIST}</item></items></pubsub></iq>"
    )
    (payload,) = items_of(result)
    assert payload.tag == f"{{{LEGACY_NS}}}list"


class FakePep:
    """A PEP service holding literal payloads per (jid, node, item id)."""

    def __init__(self, nodes: dict[tuple[str, str, str | None], str]) -> None:
        self.nodes = nodes
        self.down: set[str] = set()

    async def items(
        self, jid: str, node: str, item_id: str | None = None
    ) -> list[ET.Element] | None:
        if node in self.down:
            raise PepUnavailable("remote-server-timeout")
        xml = self.nodes.get((jid, node, item_id))
        return None if xml is None else [ET.fromstring(xml)]


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[DeviceRegistry]:
    store = await migrated_store(tmp_path / "pep.db")
    yield DeviceRegistry(store, PolicySettings())
    await store.close()


def alice_pep() -> FakePep:
    return FakePep(
        {
            (ALICE, "eu.siacs.conversations.axolotl.devicelist", None): LEGACY_LIST,
            (ALICE, "eu.siacs.conversations.axolotl.bundles:1111", None): LEGACY_BUNDLE,
            (ALICE, "urn:xmpp:omemo:2:devices", None): OMEMO2_LIST,
            (ALICE, "urn:xmpp:omemo:2:bundles", "3333"): OMEMO2_BUNDLE,
        }
    )


@pytest.mark.requirement("I.4")
async def test_refresh_registers_new_devices_as_pending(registry: DeviceRegistry) -> None:
    result = await DeviceDiscovery(alice_pep(), registry).refresh(f"{ALICE}/phone")
    assert result.listed == {LEGACY_NS: 2, OMEMO2_NS: 1}
    devices = {(d.namespace, d.device_id): d for d in await registry.devices(ALICE)}
    assert {d.state for d in devices.values()} == {DeviceState.PENDING}
    assert devices[(LEGACY_NS, 1111)].fingerprint == FP
    assert devices[(OMEMO2_NS, 3333)].fingerprint == FP  # same key pair, both versions
    assert devices[(OMEMO2_NS, 3333)].label == "Kaidan on ward phone"


@pytest.mark.requirement("I.4")
async def test_device_without_readable_bundle_has_no_fingerprint(registry: DeviceRegistry) -> None:
    await DeviceDiscovery(alice_pep(), registry).refresh(ALICE)
    (device,) = [d for d in await registry.devices(ALICE) if d.device_id == 2222]
    assert device.fingerprint is None


@pytest.mark.requirement("I.4")
async def test_device_gone_from_pep_becomes_inactive(registry: DeviceRegistry) -> None:
    pep = alice_pep()
    discovery = DeviceDiscovery(pep, registry)
    await discovery.refresh(ALICE)
    pep.nodes[(ALICE, "eu.siacs.conversations.axolotl.devicelist", None)] = (
        '<list xmlns="eu.siacs.conversations.axolotl"><device id="2222"/></list>'
    )
    await discovery.refresh(ALICE)
    active = {d.device_id: d.active for d in await registry.devices(ALICE)}
    assert active == {1111: False, 2222: True, 3333: True}


@pytest.mark.requirement("I.4")
async def test_unreachable_pep_changes_nothing(registry: DeviceRegistry) -> None:
    pep = alice_pep()
    discovery = DeviceDiscovery(pep, registry)
    await discovery.refresh(ALICE)
    pep.down.add("eu.siacs.conversations.axolotl.devicelist")
    result = await discovery.refresh(ALICE)
    assert result.failed == {LEGACY_NS: "remote-server-timeout"}
    assert all(d.active for d in await registry.devices(ALICE))


@pytest.mark.requirement("I.4")
async def test_periodic_refresh_runs_for_every_member(registry: DeviceRegistry) -> None:
    discovery = DeviceDiscovery(alice_pep(), registry, refresh_seconds=0.01)

    async def members() -> list[str]:
        return [ALICE]

    task = asyncio.ensure_future(discovery.run_periodic(members))
    for _ in range(250):  # both namespaces are recorded within a few rounds
        await asyncio.sleep(0.02)
        if len(await registry.devices(ALICE)) == 3:
            break
    task.cancel()
    assert len(await registry.devices(ALICE)) == 3


class TestComponentPep(ComponentTest):
    """The component's own PEP queries, as stanzas on the wire."""

    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.start(ClinicComponent(make_settings(Path(self._tmp.name))))
        self.pep = ComponentPep(self.xmpp, timeout=5)

    def tearDown(self) -> None:
        super().tearDown()
        self._tmp.cleanup()

    def sent(self) -> None:
        """Drop the next stanza sent (the query itself, tested elsewhere)."""
        self.settle()
        socket = self.xmpp.socket
        assert isinstance(socket, MockSocket)
        assert socket.next_sent() is not None

    @pytest.mark.requirement("I.4")
    def test_device_list_is_asked_of_the_users_bare_jid(self) -> None:
        future = self.started(self.pep.items(ALICE, "eu.siacs.conversations.axolotl.devicelist"))
        self.send(
            f"""<iq type="get" id="1" to="{ALICE}" from="{COMPONENT}">
                  <pubsub xmlns="http://jabber.org/protocol/pubsub">
                    <items node="eu.siacs.conversations.axolotl.devicelist" max_items="1"/>
                  </pubsub></iq>"""
        )
        self.recv(
            f"""<iq type="result" id="1" from="{ALICE}" to="{COMPONENT}">
                  <pubsub xmlns="http://jabber.org/protocol/pubsub">
                    <items node="eu.siacs.conversations.axolotl.devicelist">
                      <item id="current">{LEGACY_LIST}</item></items></pubsub></iq>"""
        )
        (payload,) = self.run_coro(future) or []
        assert parse_device_list(LEGACY, payload) == {1111: None, 2222: None}

    @pytest.mark.requirement("I.4")
    def test_omemo2_bundle_is_asked_by_item_id(self) -> None:
        future = self.started(self.pep.items(ALICE, "urn:xmpp:omemo:2:bundles", "3333"))
        self.send(
            f"""<iq type="get" id="1" to="{ALICE}" from="{COMPONENT}">
                  <pubsub xmlns="http://jabber.org/protocol/pubsub">
                    <items node="urn:xmpp:omemo:2:bundles"><item id="3333"/></items>
                  </pubsub></iq>"""
        )
        self.recv(
            f"""<iq type="result" id="1" from="{ALICE}" to="{COMPONENT}">
                  <pubsub xmlns="http://jabber.org/protocol/pubsub">
                    <items node="urn:xmpp:omemo:2:bundles">
                      <item id="3333">{OMEMO2_BUNDLE}</item></items></pubsub></iq>"""
        )
        (payload,) = self.run_coro(future) or []
        assert len(parse_bundle_identity(OMEMO2, payload)) == 32

    @pytest.mark.requirement("I.4")
    def test_missing_node_means_no_devices(self) -> None:
        future = self.started(self.pep.items(ALICE, "urn:xmpp:omemo:2:devices"))
        self.sent()
        self.recv(
            f"""<iq type="error" id="1" from="{ALICE}" to="{COMPONENT}">
                  <error type="cancel"><item-not-found
                    xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>"""
        )
        assert self.run_coro(future) is None

    @pytest.mark.requirement("I.4")
    def test_refused_query_is_unavailable_not_empty(self) -> None:
        future = self.started(self.pep.items(ALICE, "urn:xmpp:omemo:2:devices"))
        self.sent()
        self.recv(
            f"""<iq type="error" id="1" from="{ALICE}" to="{COMPONENT}">
                  <error type="auth"><forbidden
                    xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>"""
        )
        with pytest.raises(PepUnavailable):
            self.run_coro(future)
