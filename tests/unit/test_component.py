"""The component describes itself and serves the privacy notice (I.1, II.4)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.unit.harness import COMPONENT, ComponentTest, make_settings
from xmpp_clinic import __version__
from xmpp_clinic.xmpp.component import ClinicComponent

pytestmark = pytest.mark.requirement("I.1", "II.4")


class TestComponentDiscovery(ComponentTest):
    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        settings = make_settings(
            Path(self._tmp.name),
            privacy={
                "notice_url": "https://hospital.test/privacy",
                "controller_contact": "mailto:dpo@hospital.test",
            },
        )
        self.start(ClinicComponent(settings))

    def tearDown(self) -> None:
        super().tearDown()
        self._tmp.cleanup()

    def test_disco_info_shows_conference_identity_and_privacy_notice(self) -> None:
        self.recv(
            f"""<iq type="get" id="d1" from="alice@hospital.test/phone" to="{COMPONENT}">
                  <query xmlns="http://jabber.org/protocol/disco#info"/>
                </iq>"""
        )
        self.send(
            f"""<iq type="result" id="d1" to="alice@hospital.test/phone" from="{COMPONENT}">
              <query xmlns="http://jabber.org/protocol/disco#info">
                <identity category="conference" type="text" name="Care threads (xmpp-clinic)"/>
                <identity category="component" type="generic" name="xmpp-clinic"/>
                <feature var="http://jabber.org/protocol/disco#info"/>
                <feature var="http://jabber.org/protocol/disco#items"/>
                <feature var="http://jabber.org/protocol/muc"/>
                <feature var="http://jabber.org/protocol/commands"/>
                <feature var="jabber:iq:version"/>
                <feature var="urn:xmpp:ping"/>
                <x xmlns="jabber:x:data" type="result">
                  <field var="FORM_TYPE" type="hidden">
                    <value>urn:xmpp-clinic:privacy:0</value>
                  </field>
                  <field var="privacy-notice-url" type="text-single"
                         label="Privacy notice (GDPR Art. 13)">
                    <value>https://hospital.test/privacy</value>
                  </field>
                  <field var="controller-contact" type="text-single"
                         label="Data protection contact">
                    <value>mailto:dpo@hospital.test</value>
                  </field>
                  <field var="documentation-service" type="text-single"
                         label="Documented threads include the documentation service">
                    <value>records@{COMPONENT}</value>
                  </field>
                </x>
              </query>
            </iq>""",
            use_values=False,
        )

    def test_ping_is_answered(self) -> None:
        self.recv(
            f"""<iq type="get" id="p1" from="alice@hospital.test/phone" to="{COMPONENT}">
                  <ping xmlns="urn:xmpp:ping"/>
                </iq>"""
        )
        self.send(f'<iq type="result" id="p1" to="alice@hospital.test/phone" from="{COMPONENT}"/>')

    def test_version_names_the_gateway(self) -> None:
        self.recv(
            f"""<iq type="get" id="v1" from="alice@hospital.test/phone" to="{COMPONENT}">
                  <query xmlns="jabber:iq:version"/>
                </iq>"""
        )
        self.send(
            f"""<iq type="result" id="v1" to="alice@hospital.test/phone" from="{COMPONENT}">
                  <query xmlns="jabber:iq:version">
                    <name>xmpp-clinic</name><version>{__version__}</version>
                  </query>
                </iq>"""
        )
