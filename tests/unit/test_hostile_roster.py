"""A hostile roster item never fails a person's roster sync (issue 8.1; I.12, I.3).

A person's roster holds what they or their server put there, including addresses
slixmpp's JID class rejects (an emoji in the localpart). Reading such a roster skips the
item and the sync of that person goes on.
"""

from __future__ import annotations

import logging
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from slixmpp import Iq

from tests.unit.harness import COMPONENT, ComponentTest, make_settings
from tests.unit.test_directory_roster import ALICE, BOB, directory
from xmpp_clinic.directory.model import Directory
from xmpp_clinic.directory.roster import RosterItem
from xmpp_clinic.xmpp.component import ClinicComponent
from xmpp_clinic.xmpp.privilege import Privileges
from xmpp_clinic.xmpp.roster_sync import RosterSync, roster_items

SYRINGE = "\N{SYRINGE}"


def test_items_without_a_usable_address_are_skipped_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    iq = Iq(
        xml=ET.fromstring(
            f"""<iq xmlns="jabber:client" type="result" id="1"><query xmlns="jabber:iq:roster">
                  <item jid="{SYRINGE}@hospital.test" name="x"><group>Clinic</group></item>
                  <item name="no address"/>
                  <item jid="{"a" * 1100}@hospital.test"/>
                  <item jid="{BOB}" name="Bob"><group>Clinic</group></item>
                </query></iq>"""
        )
    )
    with caplog.at_level(logging.INFO, logger="xmpp_clinic.xmpp.roster_sync"):
        items = roster_items(iq)
    assert items == {BOB: RosterItem(BOB, "Bob", frozenset({"Clinic"}))}
    [record] = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert record.__dict__["skipped"] == 3
    assert SYRINGE not in caplog.text  # the address may carry anything: not logged


class TestHostileRosterItem(ComponentTest):
    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.start(ClinicComponent(make_settings(Path(self._tmp.name))))
        self.privileges = Privileges(self.xmpp, user_domains=["hospital.test"])
        self.privileges.attach()

    def tearDown(self) -> None:
        super().tearDown()
        self._tmp.cleanup()

    async def _directory(self) -> Directory:
        return directory()

    @pytest.mark.requirement("I.3")
    def test_a_roster_with_an_emoji_item_is_still_brought_in_line(self) -> None:
        self.recv_settled(
            f"""<message from="hospital.test" to="{COMPONENT}">
                  <privilege xmlns="urn:xmpp:privilege:2"><perm access="roster" type="both"/>
                  </privilege></message>"""
        )
        sync = RosterSync(self.xmpp, self.privileges, self._directory, lambda: [], group="Clinic")
        future = self.started(sync.refresh())
        self.send(
            f"""<iq type="get" id="1" to="{ALICE}" from="{COMPONENT}">
                  <query xmlns="jabber:iq:roster"/></iq>"""
        )
        self.recv(
            f"""<iq type="result" id="1" from="{ALICE}" to="{COMPONENT}">
                  <query xmlns="jabber:iq:roster">
                    <item jid="{SYRINGE}@hospital.test" name="x"><group>Clinic</group></item>
                    <item jid="{BOB}" name="Bob"><group>Clinic</group></item>
                  </query></iq>"""
        )
        # Alice's sync goes on: Bob's entry is renamed as the directory says.
        self.send(
            f"""<iq type="set" id="2" to="{ALICE}" from="{COMPONENT}">
                  <query xmlns="jabber:iq:roster">
                    <item jid="{BOB}" name="Bob B"><group>Clinic</group></item>
                  </query></iq>"""
        )
        self.recv(f'<iq type="result" id="2" from="{ALICE}" to="{COMPONENT}"/>')
        self.send(
            f"""<iq type="get" id="3" to="{BOB}" from="{COMPONENT}">
                  <query xmlns="jabber:iq:roster"/></iq>"""
        )
        self.recv(
            f"""<iq type="result" id="3" from="{BOB}" to="{COMPONENT}">
                  <query xmlns="jabber:iq:roster"/></iq>"""
        )
        self.send(
            f"""<iq type="set" id="4" to="{BOB}" from="{COMPONENT}">
                  <query xmlns="jabber:iq:roster">
                    <item jid="{ALICE}" name="Alice A"><group>Clinic</group></item>
                  </query></iq>"""
        )
        self.recv(f'<iq type="result" id="4" from="{BOB}" to="{COMPONENT}"/>')
        self.send(
            f"""<iq type="get" id="5" to="carol@hospital.test" from="{COMPONENT}">
                  <query xmlns="jabber:iq:roster"/></iq>"""
        )
        self.recv(
            f"""<iq type="result" id="5" from="carol@hospital.test" to="{COMPONENT}">
                  <query xmlns="jabber:iq:roster"/></iq>"""
        )
        self.run_coro(future)
