"""The records member's device lists and bundles, served by the component (I.6, II.1)."""

from __future__ import annotations

import asyncio
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.helpers.twomemo import Directory
from tests.unit.harness import COMPONENT, ComponentTest, make_settings, migrated_store
from tests.unit.test_records_helpers import DirectoryAdapter
from xmpp_clinic.omemo import LEGACY_NS, OMEMO2_NS
from xmpp_clinic.records.identity import RecordsDevice
from xmpp_clinic.store import Store
from xmpp_clinic.xmpp.component import ClinicComponent
from xmpp_clinic.xmpp.records_pep import RecordsPep

RECORDS = f"records@{COMPONENT}"
ANNA = "anna@hospital.test/phone"
PUBSUB = "http://jabber.org/protocol/pubsub"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def assert_error(answer: ET.Element, condition: str) -> None:
    assert answer.get("type") == "error", ET.tostring(answer)
    assert (answer.get("from"), answer.get("to"), answer.get("id")) == (RECORDS, ANNA, "q1")
    assert answer.find(f".//{{{STANZAS}}}{condition}") is not None, ET.tostring(answer)


class RecordsPepTest(ComponentTest):
    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        tmp = Path(self._tmp.name)
        self.start(ClinicComponent(make_settings(tmp)))
        self.store: Store = self.run_coro(migrated_store(tmp / "records.db"))
        self.device, _ = self.run_coro(
            RecordsDevice.open(
                self.store, tmp / "records-key", RECORDS, DirectoryAdapter(Directory())
            )
        )
        self.device_id = self.run_coro(self.device.device_id())
        # python-omemo's signed pre-key rotation runs for the device's lifetime.
        self._waited_on |= {t for t in asyncio.all_tasks(asyncio.get_event_loop()) if not t.done()}
        RecordsPep(self.xmpp, self.device).attach()

    def tearDown(self) -> None:
        self.run_coro(self.device.close())
        self.run_coro(self.store.close())
        super().tearDown()
        self._tmp.cleanup()

    def ask(self, node: str, item: str = "") -> ET.Element:
        want = f'<item id="{item}"/>' if item else ""
        self.recv_settled(
            f"""<iq type="get" id="q1" from="{ANNA}" to="{RECORDS}">
                  <pubsub xmlns="{PUBSUB}"><items node="{node}">{want}</items></pubsub></iq>"""
        )
        return self.next_sent()

    def payload(self, answer: ET.Element, node: str, item: str) -> ET.Element:
        assert answer.get("type") == "result", ET.tostring(answer)
        assert (answer.get("from"), answer.get("to"), answer.get("id")) == (RECORDS, ANNA, "q1")
        items = answer.find(f"{{{PUBSUB}}}pubsub/{{{PUBSUB}}}items")
        assert items is not None and items.get("node") == node
        (found,) = items.findall(f"{{{PUBSUB}}}item")
        assert found.get("id") == item
        return found[0]

    @pytest.mark.requirement("I.6")
    def test_legacy_device_list_names_the_records_device(self) -> None:
        node = f"{LEGACY_NS}.devicelist"
        listing = self.payload(self.ask(node), node, "current")
        assert listing.tag == f"{{{LEGACY_NS}}}list"
        assert [d.get("id") for d in listing] == [str(self.device_id)]

    @pytest.mark.requirement("I.6")
    def test_omemo2_device_list_names_the_same_device(self) -> None:
        node = "urn:xmpp:omemo:2:devices"
        listing = self.payload(self.ask(node), node, "current")
        assert listing.tag == f"{{{OMEMO2_NS}}}devices"
        assert [d.get("id") for d in listing] == [str(self.device_id)]

    @pytest.mark.requirement("I.6")
    def test_legacy_bundle_carries_one_hundred_pre_keys(self) -> None:
        node = f"{LEGACY_NS}.bundles:{self.device_id}"
        bundle = self.payload(self.ask(node), node, "current")
        assert bundle.tag == f"{{{LEGACY_NS}}}bundle"
        assert len(bundle.findall(f".//{{{LEGACY_NS}}}preKeyPublic")) == 100

    @pytest.mark.requirement("I.6")
    def test_omemo2_bundle_is_the_item_named_by_the_device_id(self) -> None:
        node = "urn:xmpp:omemo:2:bundles"
        bundle = self.payload(self.ask(node, str(self.device_id)), node, str(self.device_id))
        assert bundle.tag == f"{{{OMEMO2_NS}}}bundle"
        assert len(bundle.findall(f".//{{{OMEMO2_NS}}}pk")) == 100

    @pytest.mark.requirement("I.6")
    def test_bundle_of_another_device_is_not_found(self) -> None:
        answer = self.ask("urn:xmpp:omemo:2:bundles", str(self.device_id + 1))
        assert_error(answer, "item-not-found")

    @pytest.mark.requirement("I.6")
    def test_unknown_node_is_not_found(self) -> None:
        assert_error(self.ask("urn:xmpp:avatar:metadata"), "item-not-found")

    @pytest.mark.requirement("I.6")
    def test_nobody_publishes_to_the_records_member(self) -> None:
        self.recv(
            f"""<iq type="set" id="p1" from="{ANNA}" to="{RECORDS}">
                  <pubsub xmlns="{PUBSUB}"><publish node="{LEGACY_NS}.devicelist">
                    <item id="current"><list xmlns="{LEGACY_NS}"/></item>
                  </publish></pubsub></iq>"""
        )
        self.expect_error(ANNA, RECORDS, "forbidden", "p1")

    @pytest.mark.requirement("I.6")
    def test_disco_says_what_the_records_member_is(self) -> None:
        self.recv_settled(
            f"""<iq type="get" id="d1" from="{ANNA}" to="{RECORDS}">
                  <query xmlns="http://jabber.org/protocol/disco#info"/></iq>"""
        )
        answer = self.next_sent()
        assert answer.get("type") == "result", ET.tostring(answer)
        identity = answer.find(".//{http://jabber.org/protocol/disco#info}identity")
        assert identity is not None
        assert identity.get("name") == "Documentation service (patient record)"
        assert (identity.get("category"), identity.get("type")) == ("account", "registered")
