"""Occupants of a deleted thread are kicked like removed members (issue 8; IV.2).

When a thread vanishes from the book, the reload used to find nothing to act on and
left its occupants in a room that no longer existed, still able to read its presence.
"""

from __future__ import annotations

from unittest import mock

import pytest

from tests.unit.threads_stanza_base import ALICE, BOB, WARD, ThreadStanzaTest, oid

pytestmark = pytest.mark.requirement("IV.2")

MUC = "http://jabber.org/protocol/muc"
MUC_USER = "http://jabber.org/protocol/muc#user"
OCCUPANT_ID = "urn:xmpp:occupant-id:0"


class TestDeletedThread(ThreadStanzaTest):
    def test_occupants_of_a_deleted_thread_are_kicked_with_321(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.join(f"{BOB}/pc", "Bob")
        with mock.patch.object(self.service, "list", mock.AsyncMock(return_value=[])):
            self.run_coro(self.host.reload())
        self.settle()
        self.send(f"""
          <presence from="{WARD}/Alice" to="{ALICE}/phone" type="unavailable">
            <x xmlns="{MUC_USER}">
              <item affiliation="none" role="none" jid="{ALICE}/phone"/>
              <status code="321"/><status code="110"/>
            </x>
            <occupant-id xmlns="{OCCUPANT_ID}" id="{oid(ALICE)}"/>
          </presence>""")
        self.send(f"""
          <presence from="{WARD}/Alice" to="{BOB}/pc" type="unavailable">
            <x xmlns="{MUC_USER}">
              <item affiliation="none" role="none" jid="{ALICE}/phone"/><status code="321"/>
            </x>
            <occupant-id xmlns="{OCCUPANT_ID}" id="{oid(ALICE)}"/>
          </presence>""")
        # To the occupants left and the person removed; not to every absent member once
        # per other member of a thread that is gone.
        alice_item = (
            f'<x xmlns="{MUC_USER}"><item affiliation="none" role="none" jid="{ALICE}"/></x>'
        )
        self.send(f'<message from="{WARD}" to="{BOB}/pc">{alice_item}</message>')
        self.send(f'<message from="{WARD}" to="{ALICE}">{alice_item}</message>')
        self.send(f"""
          <presence from="{WARD}/Bob" to="{BOB}/pc" type="unavailable">
            <x xmlns="{MUC_USER}">
              <item affiliation="none" role="none" jid="{BOB}/pc"/>
              <status code="321"/><status code="110"/>
            </x>
            <occupant-id xmlns="{OCCUPANT_ID}" id="{oid(BOB)}"/>
          </presence>""")
        bob_item = f'<x xmlns="{MUC_USER}"><item affiliation="none" role="none" jid="{BOB}"/></x>'
        self.send(f'<message from="{WARD}" to="{BOB}">{bob_item}</message>')
        self.drain()  # the owner's own notice
        assert "ward" not in self.host.rooms  # nothing is left of the room
        # And nobody can come back into it.
        with mock.patch.object(self.service, "list", mock.AsyncMock(return_value=[])):
            self.recv_settled(
                f'<presence from="{ALICE}/phone" to="{WARD}/Alice"><x xmlns="{MUC}"/></presence>'
            )
        sent = self.next_sent()
        assert sent.get("type") == "error" and sent.get("to") == f"{ALICE}/phone"
