# ruff: noqa: E501  (literal XML reads best on one line)
"""Joining and leaving a care thread, stanza by stanza (XEP-0045 7; IV.2)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from unittest import mock

import pytest

from tests.unit.threads_stanza_base import (
    ALICE,
    BOB,
    CAROL,
    COMPONENT,
    EVE,
    WARD,
    ThreadStanzaTest,
    oid,
)
from xmpp_clinic.store import StoreUnavailable
from xmpp_clinic.xmpp.routing import ToThread

pytestmark = pytest.mark.requirement("IV.2")

MUC = "http://jabber.org/protocol/muc"
MUC_USER = "http://jabber.org/protocol/muc#user"


class TestJoin(ThreadStanzaTest):
    def test_first_member_gets_self_presence_with_110_100_170_then_empty_subject(self) -> None:
        self.recv_settled(
            f'<presence from="{ALICE}/phone" to="{WARD}/Alice"><x xmlns="{MUC}"/></presence>'
        )
        self.send(f"""
          <presence from="{WARD}/Alice" to="{ALICE}/phone">
            <x xmlns="{MUC_USER}">
              <item affiliation="member" role="participant" jid="{ALICE}/phone"/>
              <status code="100"/><status code="170"/><status code="110"/>
            </x>
            <occupant-id xmlns="urn:xmpp:occupant-id:0" id="{oid(ALICE)}"/>
          </presence>""")
        self.send(
            f'<message from="{WARD}" to="{ALICE}/phone" type="groupchat"><subject/></message>'
        )

    def test_second_member_sees_first_then_self_and_first_sees_second(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.recv_settled(
            f'<presence from="{CAROL}/pc" to="{WARD}/Carol"><x xmlns="{MUC}"/><show>away</show></presence>'
        )
        self.send(f"""
          <presence from="{WARD}/Alice" to="{CAROL}/pc">
            <x xmlns="{MUC_USER}"><item affiliation="member" role="participant" jid="{ALICE}/phone"/></x>
            <occupant-id xmlns="urn:xmpp:occupant-id:0" id="{oid(ALICE)}"/>
          </presence>""")
        self.send(f"""
          <presence from="{WARD}/Carol" to="{ALICE}/phone">
            <show>away</show>
            <x xmlns="{MUC_USER}"><item affiliation="owner" role="moderator" jid="{CAROL}/pc"/></x>
            <occupant-id xmlns="urn:xmpp:occupant-id:0" id="{oid(CAROL)}"/>
          </presence>""")
        self.send(f"""
          <presence from="{WARD}/Carol" to="{CAROL}/pc">
            <show>away</show>
            <x xmlns="{MUC_USER}">
              <item affiliation="owner" role="moderator" jid="{CAROL}/pc"/>
              <status code="100"/><status code="170"/><status code="110"/>
            </x>
            <occupant-id xmlns="urn:xmpp:occupant-id:0" id="{oid(CAROL)}"/>
          </presence>""")
        self.send(f'<message from="{WARD}" to="{CAROL}/pc" type="groupchat"><subject/></message>')

    def test_non_member_is_refused_with_registration_required(self) -> None:
        self.recv_settled(f'<presence from="{EVE}/x" to="{WARD}/Eve"><x xmlns="{MUC}"/></presence>')
        self.send(f"""
          <presence from="{WARD}/Eve" to="{EVE}/x" type="error">
            <x xmlns="{MUC}"/>
            <error type="auth">
              <registration-required xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>
              <text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">Members only.</text>
            </error>
          </presence>""")
        self.send(None)

    def test_unknown_thread_answers_like_a_members_only_thread(self) -> None:
        self.recv_settled(
            f'<presence from="{ALICE}/x" to="nosuch@{COMPONENT}/A"><x xmlns="{MUC}"/></presence>'
        )
        self.send(f"""
          <presence from="nosuch@{COMPONENT}/A" to="{ALICE}/x" type="error">
            <x xmlns="{MUC}"/>
            <error type="auth">
              <registration-required xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>
              <text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">Members only.</text>
            </error>
          </presence>""")

    def test_unknown_threads_are_refused_without_reading_the_store(self) -> None:
        with mock.patch.object(self.service, "list", wraps=self.service.list) as reads:
            for n in range(3):
                self.recv_settled(
                    f'<presence from="{EVE}/x" to="probe{n}@{COMPONENT}/E"><x xmlns="{MUC}"/></presence>'
                )
                self.expect_error(f"{EVE}/x", f"probe{n}@{COMPONENT}/E", "registration-required")
        assert reads.call_count == 0

    def test_join_with_the_store_down_says_wait_and_admits_nobody(self) -> None:
        with mock.patch.object(self.service, "list", side_effect=StoreUnavailable("down")):
            self.recv_settled(
                f'<presence from="{ALICE}/phone" to="{WARD}/Alice"><x xmlns="{MUC}"/></presence>'
            )
        sent = self.expect_error(f"{ALICE}/phone", f"{WARD}/Alice", "internal-server-error")
        error = next(child for child in sent if child.tag.endswith("}error"))
        assert error.get("type") == "wait"
        self.send(None)
        assert not self.host.room("ward")

    def test_thread_created_a_moment_ago_is_joinable(self) -> None:
        self.run_coro(self.service.create("icu", "ICU", [ALICE]))  # as the CLI would
        self.now += 1  # the book was last checked a second ago: it may be stale
        self.recv_settled(
            f'<presence from="{ALICE}/x" to="icu@{COMPONENT}/A"><x xmlns="{MUC}"/></presence>'
        )
        sent = self.next_sent()
        while sent.tag.endswith("message"):  # the new thread's membership announcements
            sent = self.next_sent()
        assert sent.get("from") == f"icu@{COMPONENT}/A" and sent.get("type") is None

    def test_nick_of_another_person_conflicts(self) -> None:
        self.join(f"{ALICE}/phone", "Doc")
        self.recv_settled(
            f'<presence from="{BOB}/pc" to="{WARD}/Doc"><x xmlns="{MUC}"/></presence>'
        )
        self.send(f"""
          <presence from="{WARD}/Doc" to="{BOB}/pc" type="error">
            <x xmlns="{MUC}"/>
            <error type="cancel">
              <conflict xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>
              <text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">That nickname is in use.</text>
            </error>
          </presence>""")

    def test_second_resource_of_same_member_shares_the_nick_silently(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.join(f"{BOB}/pc", "Bob")
        self.recv_settled(
            f'<presence from="{ALICE}/tablet" to="{WARD}/Alice"><x xmlns="{MUC}"/></presence>'
        )
        self.send(f"""
          <presence from="{WARD}/Bob" to="{ALICE}/tablet">
            <x xmlns="{MUC_USER}"><item affiliation="member" role="participant" jid="{BOB}/pc"/></x>
            <occupant-id xmlns="urn:xmpp:occupant-id:0" id="{oid(BOB)}"/>
          </presence>""")
        # Bob is not told again about Alice: the nick was already present.
        self.send(f"""
          <presence from="{WARD}/Alice" to="{ALICE}/tablet">
            <x xmlns="{MUC_USER}">
              <item affiliation="member" role="participant" jid="{ALICE}/tablet"/>
              <status code="100"/><status code="170"/><status code="110"/>
            </x>
            <occupant-id xmlns="urn:xmpp:occupant-id:0" id="{oid(ALICE)}"/>
          </presence>""")
        self.send(
            f'<message from="{WARD}" to="{ALICE}/tablet" type="groupchat"><subject/></message>'
        )

    def test_leave_tells_self_and_others(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.join(f"{BOB}/pc", "Bob")
        self.recv_settled(f'<presence from="{BOB}/pc" to="{WARD}/Bob" type="unavailable"/>')
        self.send(f"""
          <presence from="{WARD}/Bob" to="{BOB}/pc" type="unavailable">
            <x xmlns="{MUC_USER}">
              <item affiliation="member" role="none" jid="{BOB}/pc"/><status code="110"/>
            </x>
            <occupant-id xmlns="urn:xmpp:occupant-id:0" id="{oid(BOB)}"/>
          </presence>""")
        self.send(f"""
          <presence from="{WARD}/Bob" to="{ALICE}/phone" type="unavailable">
            <x xmlns="{MUC_USER}"><item affiliation="member" role="none" jid="{BOB}/pc"/></x>
            <occupant-id xmlns="urn:xmpp:occupant-id:0" id="{oid(BOB)}"/>
          </presence>""")

    def test_removed_member_is_kicked_with_321_and_others_are_told(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.join(f"{BOB}/pc", "Bob")
        self.run_coro(self.service.remove_member("ward", BOB))
        self.run_coro(self.host.reload())
        self.settle()
        self.send(f"""
          <presence from="{WARD}/Bob" to="{BOB}/pc" type="unavailable">
            <x xmlns="{MUC_USER}">
              <item affiliation="none" role="none" jid="{BOB}/pc"/>
              <status code="321"/><status code="110"/>
            </x>
            <occupant-id xmlns="urn:xmpp:occupant-id:0" id="{oid(BOB)}"/>
          </presence>""")
        self.send(f"""
          <presence from="{WARD}/Bob" to="{ALICE}/phone" type="unavailable">
            <x xmlns="{MUC_USER}">
              <item affiliation="none" role="none" jid="{BOB}/pc"/><status code="321"/>
            </x>
            <occupant-id xmlns="urn:xmpp:occupant-id:0" id="{oid(BOB)}"/>
          </presence>""")
        # The affiliation change: to occupants, then to members who are not present.
        item = f'<x xmlns="{MUC_USER}"><item affiliation="none" role="none" jid="{BOB}"/></x>'
        self.send(f'<message from="{WARD}" to="{ALICE}/phone">{item}</message>')
        self.send(f'<message from="{WARD}" to="{CAROL}">{item}</message>')
        self.send(f'<message from="{WARD}" to="{BOB}">{item}</message>')
        # And Bob cannot come back.
        self.recv_settled(
            f'<presence from="{BOB}/pc" to="{WARD}/Bob"><x xmlns="{MUC}"/></presence>'
        )
        self.send(f"""
          <presence from="{WARD}/Bob" to="{BOB}/pc" type="error">
            <x xmlns="{MUC}"/>
            <error type="auth">
              <registration-required xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>
              <text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">Members only.</text>
            </error>
          </presence>""")

    def test_shutdown_sends_332_to_every_occupant(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.run_coro(self.host.shutdown())
        self.send(f"""
          <presence from="{WARD}/Alice" to="{ALICE}/phone" type="unavailable">
            <x xmlns="{MUC_USER}">
              <item affiliation="member" role="none" jid="{ALICE}/phone"/>
              <status code="332"/><status code="110"/>
            </x>
            <occupant-id xmlns="urn:xmpp:occupant-id:0" id="{oid(ALICE)}"/>
          </presence>""")

    def test_self_ping_succeeds_for_occupants_only(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.recv_settled(
            f'<iq type="get" id="p1" from="{ALICE}/phone" to="{WARD}/Alice"><ping xmlns="urn:xmpp:ping"/></iq>'
        )
        self.send(f'<iq type="result" id="p1" from="{WARD}/Alice" to="{ALICE}/phone"/>')
        self.recv_settled(
            f'<iq type="get" id="p2" from="{BOB}/pc" to="{WARD}/Bob"><ping xmlns="urn:xmpp:ping"/></iq>'
        )
        self.expect_error(f"{BOB}/pc", f"{WARD}/Bob", "not-acceptable", "p2")

    def test_a_malformed_address_is_not_a_thread(self) -> None:
        matcher = ToThread("presence", COMPONENT)
        bad = ET.fromstring(f'<presence xmlns="jabber:component:accept" to="a@b@{COMPONENT}/x"/>')
        assert matcher.match(bad) is False
        good = ET.fromstring(f'<presence xmlns="jabber:component:accept" to="{WARD}/x"/>')
        assert matcher.match(good) is True
