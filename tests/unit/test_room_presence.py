# ruff: noqa: E501  (literal XML reads best on one line)
"""What of a member's presence reaches the others: content-free elements only (issue 8.4; II.1)."""

from __future__ import annotations

import pytest

from tests.unit.threads_stanza_base import ALICE, BOB, WARD, ThreadStanzaTest, oid

pytestmark = pytest.mark.requirement("II.1")

MUC = "http://jabber.org/protocol/muc"
MUC_USER = "http://jabber.org/protocol/muc#user"
CAPS = "http://jabber.org/protocol/caps"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
VER = "q07IKJEyjvHSyhy//CH0CxmKi8w="


def seen_by_bob(extra: str) -> str:
    """Alice's presence as Bob receives it, with ``extra`` before the room's elements."""
    return (
        f'<presence from="{WARD}/Alice" to="{BOB}/pc">{extra}'
        f'<x xmlns="{MUC_USER}"><item affiliation="member" role="participant" jid="{ALICE}/phone"/></x>'
        f'<occupant-id xmlns="urn:xmpp:occupant-id:0" id="{oid(ALICE)}"/></presence>'
    )


class TestPresenceAllowlist(ThreadStanzaTest):
    def alice_joins_with(self, payload: str) -> None:
        self.join(f"{BOB}/pc", "Bob")
        self.recv_settled(
            f'<presence from="{ALICE}/phone" to="{WARD}/Alice"><x xmlns="{MUC}"/>{payload}</presence>'
        )

    def test_status_text_never_reaches_other_members(self) -> None:
        self.alice_joins_with("<show>away</show><status>Bed 12: Hans Mueller, K+ 6.1</status>")
        self.next_sent()  # Bob's presence to Alice
        self.send(seen_by_bob("<show>away</show>"))

    def test_caps_priority_and_avatar_hash_reach_other_members(self) -> None:
        photo = "01b87fcd030b72895ff8e88db57ec525450f000d"
        self.alice_joins_with(
            f'<priority>5</priority><c xmlns="{CAPS}" hash="sha-1" node="https://gajim.org" ver="{VER}"/>'
            f'<x xmlns="vcard-temp:x:update"><photo>{photo}</photo></x>'
        )
        self.next_sent()
        self.send(
            seen_by_bob(
                f'<priority>5</priority><c xmlns="{CAPS}" hash="sha-1" node="https://gajim.org" ver="{VER}"/>'
                f'<x xmlns="vcard-temp:x:update"><photo>{photo}</photo></x>'
            )
        )

    def test_unknown_elements_and_links_are_dropped(self) -> None:
        self.alice_joins_with(
            '<x xmlns="jabber:x:oob"><url>https://example.org/patient-12.pdf</url></x>'
            '<nick xmlns="http://jabber.org/protocol/nick">Hans Mueller</nick>'
            '<idle xmlns="urn:xmpp:idle:1" since="2026-01-01T00:00:00Z"/>'
        )
        self.next_sent()
        self.send(seen_by_bob(""))

    def test_text_disguised_as_caps_or_show_is_dropped(self) -> None:
        self.alice_joins_with(
            "<show>K+ 6.1</show><priority>bed 12</priority>"
            f'<c xmlns="{CAPS}" hash="sha-1" node="Hans Mueller bed 12" ver="{VER}"/>'
            '<x xmlns="vcard-temp:x:update"><photo>Hans Mueller</photo></x>'
        )
        self.next_sent()
        self.send(seen_by_bob(""))

    def test_a_members_own_muc_user_and_occupant_id_are_replaced_by_the_rooms(self) -> None:
        self.alice_joins_with(
            f'<x xmlns="{MUC_USER}"><item affiliation="owner" role="moderator"/></x>'
            '<occupant-id xmlns="urn:xmpp:occupant-id:0" id="forged"/>'
        )
        self.next_sent()
        self.send(seen_by_bob(""))

    def test_a_presence_update_is_filtered_too(self) -> None:
        self.join(f"{BOB}/pc", "Bob")
        self.join(f"{ALICE}/phone", "Alice")
        self.recv_settled(
            f'<presence from="{ALICE}/phone" to="{WARD}/Alice"><show>xa</show><status>call me re bed 12</status></presence>'
        )
        self.send(seen_by_bob("<show>xa</show>"))  # Bob joined first: he is told first

    def test_a_deeply_nested_presence_is_refused_before_it_is_copied(self) -> None:
        nested = "<a xmlns='urn:x'>" * 500 + "</a>" * 500
        self.recv_settled(
            f'<presence from="{ALICE}/phone" to="{WARD}/Alice"><x xmlns="{MUC}"/>{nested}</presence>'
        )
        self.send(
            f'<presence from="{WARD}/Alice" to="{ALICE}/phone" type="error"><x xmlns="{MUC}"/>'
            f'<error type="modify"><not-acceptable xmlns="{STANZAS}"/>'
            f'<text xmlns="{STANZAS}">The stanza was not accepted: it is nested more than 16 levels deep.</text></error></presence>'
        )
        self.send(None)
        assert not self.host.room("ward")
