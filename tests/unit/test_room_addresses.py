# ruff: noqa: E501  (literal XML reads best on one line)
"""Addresses slixmpp cannot parse get an answer, never a dropped link (issue 8.1; I.12).

Prosody accepts an emoji in a resource or localpart; slixmpp's JID class does not. Each
test sends one such stanza and checks the answer, then that the component still works.
"""

from __future__ import annotations

from unittest import mock

import pytest

from tests.unit.threads_stanza_base import ALICE, COMPONENT, WARD, ThreadStanzaTest

pytestmark = pytest.mark.requirement("I.12")

MUC = "http://jabber.org/protocol/muc"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
SYRINGE = "\N{SYRINGE}"
NICK_TEXT = (
    "That nickname cannot be used here: it has characters this service cannot represent "
    "(for example emoji) or is too long. Choose a nickname of letters, digits and spaces."
)
FROM_TEXT = "Your address cannot be used with this service (unsupported characters or length)."
TO_TEXT = "That address is not valid (unsupported characters or length)."


class TestUnparsableAddresses(ThreadStanzaTest):
    def still_answers(self) -> None:
        """The link is up: a ping to the component is answered."""
        self.recv_settled(
            f'<iq type="get" id="alive" from="{ALICE}/phone" to="{COMPONENT}"><ping xmlns="urn:xmpp:ping"/></iq>'
        )
        self.send(f'<iq type="result" id="alive" from="{COMPONENT}" to="{ALICE}/phone"/>')

    def test_joining_with_an_emoji_nick_says_the_nickname_cannot_be_used(self) -> None:
        self.recv_settled(
            f'<presence from="{ALICE}/phone" to="{WARD}/{SYRINGE}"><x xmlns="{MUC}"/></presence>'
        )
        self.send(f"""
          <presence from="{WARD}/{SYRINGE}" to="{ALICE}/phone" type="error">
            <x xmlns="{MUC}"/>
            <error type="modify"><not-acceptable xmlns="{STANZAS}"/><text xmlns="{STANZAS}">{NICK_TEXT}</text></error>
          </presence>""")
        self.still_answers()

    def test_a_client_with_an_emoji_resource_is_told_its_address_cannot_be_used(self) -> None:
        self.recv_settled(
            f'<message type="groupchat" id="m1" from="{ALICE}/{SYRINGE}" to="{WARD}"><body>x</body></message>'
        )
        self.send(f"""
          <message from="{WARD}" to="{ALICE}/{SYRINGE}" type="error" id="m1">
            <error type="modify"><jid-malformed xmlns="{STANZAS}"/><text xmlns="{STANZAS}">{FROM_TEXT}</text></error>
          </message>""")
        self.still_answers()

    def test_a_query_to_the_component_from_an_emoji_resource_is_answered(self) -> None:
        self.recv_settled(
            f'<iq type="get" id="q1" from="{ALICE}/{SYRINGE}" to="{COMPONENT}"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>'
        )
        self.send(f"""
          <iq from="{COMPONENT}" to="{ALICE}/{SYRINGE}" type="error" id="q1">
            <error type="modify"><jid-malformed xmlns="{STANZAS}"/><text xmlns="{STANZAS}">{FROM_TEXT}</text></error>
          </iq>""")
        self.still_answers()

    def test_a_ping_to_an_emoji_occupant_address_is_jid_malformed(self) -> None:
        self.recv_settled(
            f'<iq type="get" id="p1" from="{ALICE}/phone" to="{WARD}/{SYRINGE}"><ping xmlns="urn:xmpp:ping"/></iq>'
        )
        self.send(f"""
          <iq from="{WARD}/{SYRINGE}" to="{ALICE}/phone" type="error" id="p1">
            <error type="modify"><jid-malformed xmlns="{STANZAS}"/><text xmlns="{STANZAS}">{TO_TEXT}</text></error>
          </iq>""")
        self.still_answers()

    def test_an_emoji_thread_name_is_jid_malformed(self) -> None:
        self.recv_settled(
            f'<presence from="{ALICE}/phone" to="w{SYRINGE}@{COMPONENT}/Alice"><x xmlns="{MUC}"/></presence>'
        )
        self.send(f"""
          <presence from="w{SYRINGE}@{COMPONENT}/Alice" to="{ALICE}/phone" type="error">
            <x xmlns="{MUC}"/>
            <error type="modify"><jid-malformed xmlns="{STANZAS}"/><text xmlns="{STANZAS}">{TO_TEXT}</text></error>
          </presence>""")
        self.still_answers()

    def test_an_over_long_resource_is_refused_not_fatal(self) -> None:
        resource = "r" * 1100
        self.recv_settled(
            f'<iq type="get" id="l1" from="{ALICE}/{resource}" to="{WARD}"><ping xmlns="urn:xmpp:ping"/></iq>'
        )
        self.expect_error(f"{ALICE}/{resource}", WARD, "jid-malformed", "l1")
        self.still_answers()

    def test_errors_and_leaves_from_bad_addresses_are_dropped_silently(self) -> None:
        self.recv_settled(
            f'<presence type="unavailable" from="{ALICE}/{SYRINGE}" to="{WARD}/Alice"/>'
        )
        self.recv_settled(
            f'<message type="error" from="{ALICE}/{SYRINGE}" to="{WARD}"><error type="cancel"/></message>'
        )
        self.recv_settled(f'<iq type="result" id="r1" from="{ALICE}/{SYRINGE}" to="{WARD}"/>')
        self.send(None)
        self.still_answers()

    def test_a_bug_in_the_address_check_drops_one_stanza_not_the_link(self) -> None:
        with mock.patch("xmpp_clinic.xmpp.addresses.refusal", side_effect=RuntimeError("bug")):
            self.recv_settled(
                f'<presence from="{ALICE}/phone" to="{WARD}/Alice"><x xmlns="{MUC}"/></presence>'
            )
        self.send(None)
        self.still_answers()
