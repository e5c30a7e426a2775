# ruff: noqa: E501  (literal XML reads best on one line)
"""After kill -9, nobody is left out silently (issue 8.10; I.12).

The host writes who is joined and whose nick is whose; a host started on the same store
(as after a crash: nothing in memory) tells the sessions written down to rejoin (332)
and keeps their nicks bound.
"""

from __future__ import annotations

import pytest

from tests.unit.threads_stanza_base import ALICE, BOB, WARD, ThreadStanzaTest, oid
from xmpp_clinic.xmpp.occupant_journal import ThreadRows
from xmpp_clinic.xmpp.threads import ThreadHost

pytestmark = pytest.mark.requirement("I.12")

MUC = "http://jabber.org/protocol/muc"
MUC_USER = "http://jabber.org/protocol/muc#user"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


class TestRestart(ThreadStanzaTest):
    def crash_and_start(self) -> ThreadHost:
        """A new host on the same store and stream, as after kill -9 and a restart."""
        assert self.host.journal is not None
        self.run_coro(self.host.journal.flush())
        fresh = ThreadHost(self.xmpp, self.settings, self.service)
        self.run_coro(fresh.load())
        self.host = fresh
        return fresh

    def test_who_is_joined_is_written_down(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.join(f"{BOB}/pc", "Bob")
        assert self.host.journal is not None
        rows = self.run_coro(self.host.journal.load())
        assert rows == {
            "ward": ThreadRows(
                {f"{ALICE}/phone": "Alice", f"{BOB}/pc": "Bob"}, {ALICE: "Alice", BOB: "Bob"}
            )
        }

    def test_a_leave_is_written_down_and_the_nick_stays_bound(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.recv_settled(f'<presence from="{ALICE}/phone" to="{WARD}/Alice" type="unavailable"/>')
        assert self.host.journal is not None
        assert self.run_coro(self.host.journal.load()) == {"ward": ThreadRows({}, {ALICE: "Alice"})}

    def test_after_a_crash_every_session_that_was_joined_is_told_to_rejoin(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.join(f"{BOB}/pc", "Bob")
        fresh = self.crash_and_start()
        self.run_coro(fresh.restore())
        self.send(f"""
          <presence from="{WARD}/Alice" to="{ALICE}/phone" type="unavailable">
            <x xmlns="{MUC_USER}"><item affiliation="member" role="none" jid="{ALICE}/phone"/><status code="332"/><status code="110"/></x>
            <occupant-id xmlns="urn:xmpp:occupant-id:0" id="{oid(ALICE)}"/>
          </presence>""")
        self.send(f"""
          <presence from="{WARD}/Bob" to="{BOB}/pc" type="unavailable">
            <x xmlns="{MUC_USER}"><item affiliation="member" role="none" jid="{BOB}/pc"/><status code="332"/><status code="110"/></x>
            <occupant-id xmlns="urn:xmpp:occupant-id:0" id="{oid(BOB)}"/>
          </presence>""")
        self.send(None)
        assert fresh.journal is not None
        assert self.run_coro(fresh.journal.load()) == {
            "ward": ThreadRows({}, {ALICE: "Alice", BOB: "Bob"})
        }

    def test_a_reconnect_of_the_link_tells_present_occupants_nothing(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.run_coro(self.host.restore())  # session_start again, same process
        self.send(None)
        assert self.host.room("ward").get(f"{ALICE}/phone") is not None

    def test_a_nick_stays_bound_across_a_crash(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.recv_settled(f'<presence from="{ALICE}/phone" to="{WARD}/Alice" type="unavailable"/>')
        self.drain()
        fresh = self.crash_and_start()
        self.run_coro(fresh.restore())
        assert fresh.room("ward").bindings() == {ALICE: "Alice"}

    def test_a_clean_shutdown_leaves_no_sessions_to_tell(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.run_coro(self.host.shutdown())
        self.drain()
        assert self.host.journal is not None
        assert self.run_coro(self.host.journal.load()) == {"ward": ThreadRows({}, {ALICE: "Alice"})}

    def test_a_message_from_a_session_that_is_not_joined_gets_the_rejoin_error(self) -> None:
        self.recv_settled(
            f'<message type="groupchat" id="m1" from="{ALICE}/phone" to="{WARD}"><body>x</body></message>'
        )
        sent = self.expect_error(f"{ALICE}/phone", WARD, "not-acceptable", "m1")
        assert sent.get("type") == "error"

    def test_rows_of_a_thread_deleted_meanwhile_are_forgotten(self) -> None:
        assert self.host.journal is not None
        self.host.journal.changed("gone", ThreadRows({f"{ALICE}/phone": "Alice"}, {ALICE: "Alice"}))
        self.settle()
        self.run_coro(self.host.restore())
        self.settle()
        self.send(None)
        assert "gone" not in self.run_coro(self.host.journal.load())
