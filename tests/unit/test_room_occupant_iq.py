# ruff: noqa: E501  (literal XML reads best on one line)
"""Caps, ping and version queries to an occupant reach them, and the answer comes back (issue 9.6).

The id the occupant sees is the gateway's own; tests read it from the forwarded stanza.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any
from unittest import mock

import pytest

from tests.unit.threads_stanza_base import ALICE, BOB, EVE, WARD, ThreadStanzaTest

pytestmark = pytest.mark.requirement("II.4")

INFO = "http://jabber.org/protocol/disco#info"
VERSION = "jabber:iq:version"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NODE = "https://gajim.org#q07IKJEyjvHSyhy//CH0CxmKi8w="


def shape(element: ET.Element) -> Any:
    """An element as comparable data (prefixes aside)."""
    return (
        element.tag,
        sorted(element.attrib.items()),
        (element.text or "").strip(),
        [shape(c) for c in element],
    )


class TestOccupantIq(ThreadStanzaTest):
    def setUp(self) -> None:
        super().setUp()
        self.join(f"{ALICE}/phone", "Alice")
        self.join(f"{BOB}/pc", "Bob")

    def forwarded_id(self, expected: str) -> str:
        """Check the forwarded query (``{id}`` stands for the gateway's id); its id."""
        sent = self.next_sent()
        forward_id = sent.get("id", "")
        assert forward_id.startswith("occ-")
        assert shape(sent) == shape(ET.fromstring(expected.replace("{id}", forward_id)))
        return forward_id

    def test_caps_query_to_an_occupant_reaches_them_and_the_answer_comes_back(self) -> None:
        self.recv_settled(
            f'<iq type="get" id="c1" from="{ALICE}/phone" to="{WARD}/Bob"><query xmlns="{INFO}" node="{NODE}"/></iq>'
        )
        fid = self.forwarded_id(
            f'<iq xmlns="jabber:component:accept" type="get" id="{{id}}" from="{WARD}/Alice" to="{BOB}/pc"><query xmlns="{INFO}" node="{NODE}"/></iq>'
        )
        self.recv_settled(
            f'<iq type="result" id="{fid}" from="{BOB}/pc" to="{WARD}/Alice"><query xmlns="{INFO}" node="{NODE}">'
            '<identity category="client" type="pc" name="Gajim"/><feature var="urn:xmpp:omemo:2"/>'
            '<x xmlns="jabber:x:data" type="result"><field var="FORM_TYPE" type="hidden"><value>urn:xmpp:dataforms:softwareinfo</value></field><field var="software"><value>Gajim</value></field></x>'
            '<x xmlns="jabber:x:data" type="result"><field var="FORM_TYPE" type="hidden"><value>urn:x:contact</value></field><field var="note"><value>Bed 12 Hans Mueller</value></field></x>'
            "</query></iq>"
        )
        self.send(
            f'<iq type="result" id="c1" from="{WARD}/Bob" to="{ALICE}/phone"><query xmlns="{INFO}" node="{NODE}">'
            '<identity category="client" type="pc" name="Gajim"/><feature var="urn:xmpp:omemo:2"/>'
            '<x xmlns="jabber:x:data" type="result"><field var="FORM_TYPE" type="hidden"><value>urn:xmpp:dataforms:softwareinfo</value></field><field var="software"><value>Gajim</value></field></x>'
            "</query></iq>"
        )

    def test_ping_to_another_occupant_is_answered_by_that_occupant(self) -> None:
        self.recv_settled(
            f'<iq type="get" id="p1" from="{ALICE}/phone" to="{WARD}/Bob"><ping xmlns="urn:xmpp:ping"/></iq>'
        )
        fid = self.forwarded_id(
            f'<iq xmlns="jabber:component:accept" type="get" id="{{id}}" from="{WARD}/Alice" to="{BOB}/pc"><ping xmlns="urn:xmpp:ping"/></iq>'
        )
        self.recv_settled(f'<iq type="result" id="{fid}" from="{BOB}/pc" to="{WARD}/Alice"/>')
        self.send(f'<iq type="result" id="p1" from="{WARD}/Bob" to="{ALICE}/phone"/>')

    def test_version_answer_comes_back_without_extra_elements(self) -> None:
        self.recv_settled(
            f'<iq type="get" id="v1" from="{ALICE}/phone" to="{WARD}/Bob"><query xmlns="{VERSION}"/></iq>'
        )
        fid = self.forwarded_id(
            f'<iq xmlns="jabber:component:accept" type="get" id="{{id}}" from="{WARD}/Alice" to="{BOB}/pc"><query xmlns="{VERSION}"/></iq>'
        )
        self.recv_settled(
            f'<iq type="result" id="{fid}" from="{BOB}/pc" to="{WARD}/Alice"><query xmlns="{VERSION}"><name>Profanity</name><version>0.13.1</version><note>Bed 12</note></query></iq>'
        )
        self.send(
            f'<iq type="result" id="v1" from="{WARD}/Bob" to="{ALICE}/phone"><query xmlns="{VERSION}"><name>Profanity</name><version>0.13.1</version></query></iq>'
        )

    def test_an_error_answer_comes_back_without_its_text(self) -> None:
        self.recv_settled(
            f'<iq type="get" id="v2" from="{ALICE}/phone" to="{WARD}/Bob"><query xmlns="{VERSION}"/></iq>'
        )
        fid = self.next_sent().get("id")
        self.recv_settled(
            f'<iq type="error" id="{fid}" from="{BOB}/pc" to="{WARD}/Alice"><error type="cancel"><service-unavailable xmlns="{STANZAS}"/><text xmlns="{STANZAS}">Hans Mueller</text></error></iq>'
        )
        self.send(
            f'<iq type="error" id="v2" from="{WARD}/Bob" to="{ALICE}/phone"><error type="cancel"><service-unavailable xmlns="{STANZAS}"/></error></iq>'
        )

    def test_an_answer_from_someone_else_is_not_routed(self) -> None:
        self.recv_settled(
            f'<iq type="get" id="v3" from="{ALICE}/phone" to="{WARD}/Bob"><query xmlns="{VERSION}"/></iq>'
        )
        fid = self.next_sent().get("id")
        self.recv_settled(
            f'<iq type="result" id="{fid}" from="{EVE}/x" to="{WARD}/Alice"><query xmlns="{VERSION}"><name>forged</name></query></iq>'
        )
        self.send(None)

    def test_an_occupant_that_never_answers_gives_a_timeout(self) -> None:
        with mock.patch.object(self.xmpp.loop, "call_later") as timer:
            self.recv_settled(
                f'<iq type="get" id="v4" from="{ALICE}/phone" to="{WARD}/Bob"><query xmlns="{VERSION}"/></iq>'
            )
        self.next_sent()
        delay, expire, forward_id = timer.call_args.args
        assert delay == 30.0
        expire(forward_id)  # thirty seconds later
        self.send(
            f'<iq type="error" id="v4" from="{WARD}/Bob" to="{ALICE}/phone"><error type="wait"><remote-server-timeout xmlns="{STANZAS}"/><text xmlns="{STANZAS}">The occupant did not answer.</text></error></iq>'
        )

    def test_other_queries_to_an_occupant_are_feature_not_implemented(self) -> None:
        self.recv_settled(
            f'<iq type="get" id="x1" from="{ALICE}/phone" to="{WARD}/Bob"><vCard xmlns="vcard-temp"/></iq>'
        )
        self.send(
            f'<iq type="error" id="x1" from="{WARD}/Bob" to="{ALICE}/phone"><error type="cancel"><feature-not-implemented xmlns="{STANZAS}"/><text xmlns="{STANZAS}">Only disco#info, ping and version queries reach occupants of a care thread.</text></error></iq>'
        )

    def test_a_query_to_an_unknown_nick_is_item_not_found(self) -> None:
        self.recv_settled(
            f'<iq type="get" id="u1" from="{ALICE}/phone" to="{WARD}/Nobody"><query xmlns="{INFO}"/></iq>'
        )
        self.expect_error(f"{ALICE}/phone", f"{WARD}/Nobody", "item-not-found", "u1")

    def test_a_member_who_has_not_joined_is_told_to_join_first(self) -> None:
        self.recv_settled(
            f'<iq type="get" id="n1" from="{ALICE}/laptop" to="{WARD}/Bob"><query xmlns="{INFO}"/></iq>'
        )
        self.expect_error(f"{ALICE}/laptop", f"{WARD}/Bob", "not-acceptable", "n1")

    def test_an_outsider_learns_nothing_about_occupants(self) -> None:
        self.recv_settled(
            f'<iq type="get" id="o1" from="{EVE}/x" to="{WARD}/Bob"><query xmlns="{INFO}"/></iq>'
        )
        self.expect_error(f"{EVE}/x", f"{WARD}/Bob", "item-not-found", "o1")
        self.send(None)

    def test_self_ping_is_still_answered_by_the_room(self) -> None:
        self.recv_settled(
            f'<iq type="get" id="s1" from="{ALICE}/phone" to="{WARD}/Alice"><ping xmlns="urn:xmpp:ping"/></iq>'
        )
        self.send(f'<iq type="result" id="s1" from="{WARD}/Alice" to="{ALICE}/phone"/>')

    def test_too_many_queries_waiting_are_refused_with_resource_constraint(self) -> None:
        with mock.patch("xmpp_clinic.xmpp.occupant_iq.MAX_PER_ASKER", 1):
            self.recv_settled(
                f'<iq type="get" id="w1" from="{ALICE}/phone" to="{WARD}/Bob"><query xmlns="{VERSION}"/></iq>'
            )
            self.next_sent()  # forwarded to Bob, who does not answer yet
            self.recv_settled(
                f'<iq type="get" id="w2" from="{ALICE}/phone" to="{WARD}/Bob"><query xmlns="{VERSION}"/></iq>'
            )
        self.send(
            f'<iq type="error" id="w2" from="{WARD}/Bob" to="{ALICE}/phone"><error type="wait"><resource-constraint xmlns="{STANZAS}"/><text xmlns="{STANZAS}">Too many queries waiting.</text></error></iq>'
        )
