# ruff: noqa: E501  (literal XML reads best on one line)
"""Re-joins, nick changes and nick lookalikes, stanza by stanza (issues 9.4, 9.5, 8.6; IV.2).

Alice and Bob are members of ``ward``, Carol its owner (threads_stanza_base.py).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.unit.threads_stanza_base import ALICE, BOB, CAROL, WARD, ThreadStanzaTest, oid
from xmpp_clinic.threads import ThreadInfo
from xmpp_clinic.xmpp.occupants import Occupant

pytestmark = pytest.mark.requirement("IV.2")

MUC = "http://jabber.org/protocol/muc"
MUC_USER = "http://jabber.org/protocol/muc#user"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
OCC = "urn:xmpp:occupant-id:0"


def presence(
    nick: str, to: str, jid: str, aff: str = "member", codes: str = "", extra: str = ""
) -> str:
    """An occupant's presence as the room sends it."""
    role = "moderator" if aff == "owner" else "participant"
    status = "".join(f'<status code="{c}"/>' for c in codes.split())
    return (
        f'<presence from="{WARD}/{nick}" to="{to}">{extra}'
        f'<x xmlns="{MUC_USER}"><item affiliation="{aff}" role="{role}" jid="{jid}"/>{status}</x>'
        f'<occupant-id xmlns="{OCC}" id="{oid(jid.split("/")[0])}"/></presence>'
    )


def refusal(nick: str, to: str, condition: str, etype: str, text: str) -> str:
    return (
        f'<presence from="{WARD}/{nick}" to="{to}" type="error"><x xmlns="{MUC}"/>'
        f'<error type="{etype}"><{condition} xmlns="{STANZAS}"/><text xmlns="{STANZAS}">{text}</text></error></presence>'
    )


def subject(to: str) -> str:
    return f'<message from="{WARD}" to="{to}" type="groupchat"><subject/></message>'


class TestRejoin(ThreadStanzaTest):
    def test_rejoining_session_gets_everyone_again_then_itself_then_the_subject(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.join(f"{BOB}/pc", "Bob")
        self.recv_settled(
            f'<presence from="{ALICE}/phone" to="{WARD}/Alice"><x xmlns="{MUC}"/></presence>'
        )
        self.send(presence("Bob", f"{ALICE}/phone", f"{BOB}/pc"))
        self.send(presence("Alice", f"{BOB}/pc", f"{ALICE}/phone"))
        self.send(presence("Alice", f"{ALICE}/phone", f"{ALICE}/phone", codes="100 170 110"))
        self.send(subject(f"{ALICE}/phone"))
        self.send(None)

    def test_rejoin_sends_the_history_between_self_presence_and_subject(self) -> None:
        seen: list[tuple[str, str, str | None]] = []

        async def history(thread: ThreadInfo, occupant: Occupant, muc: ET.Element | None) -> None:
            seen.append(
                (
                    thread.name,
                    occupant.jid,
                    None if muc is None else muc.findtext(f"{{{MUC}}}password"),
                )
            )
            self.host.send(
                ET.fromstring(
                    f'<message xmlns="jabber:component:accept" from="{WARD}/Bob" to="{occupant.jid}" type="groupchat"/>'
                )
            )

        self.host.history_sender = history
        self.join(f"{ALICE}/phone", "Alice")
        self.recv_settled(
            f'<presence from="{ALICE}/phone" to="{WARD}/Alice"><x xmlns="{MUC}"><password>p</password></x></presence>'
        )
        self.send(presence("Alice", f"{ALICE}/phone", f"{ALICE}/phone", codes="100 170 110"))
        self.send(f'<message from="{WARD}/Bob" to="{ALICE}/phone" type="groupchat"/>')
        self.send(subject(f"{ALICE}/phone"))
        assert seen == [("ward", f"{ALICE}/phone", None), ("ward", f"{ALICE}/phone", "p")]

    def test_a_failing_history_sender_still_ends_the_join_with_the_subject(self) -> None:
        async def broken(thread: ThreadInfo, occupant: Occupant, muc: ET.Element | None) -> None:
            raise RuntimeError("archive gone")

        self.host.history_sender = broken
        self.recv_settled(
            f'<presence from="{ALICE}/phone" to="{WARD}/Alice"><x xmlns="{MUC}"/></presence>'
        )
        self.send(presence("Alice", f"{ALICE}/phone", f"{ALICE}/phone", codes="100 170 110"))
        self.send(subject(f"{ALICE}/phone"))

    def test_presence_update_without_muc_element_is_only_broadcast(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.join(f"{BOB}/pc", "Bob")
        self.recv_settled(
            f'<presence from="{ALICE}/phone" to="{WARD}/Alice"><show>dnd</show></presence>'
        )
        self.send(
            presence(
                "Alice", f"{ALICE}/phone", f"{ALICE}/phone", codes="110", extra="<show>dnd</show>"
            )
        )
        self.send(presence("Alice", f"{BOB}/pc", f"{ALICE}/phone", extra="<show>dnd</show>"))
        self.send(None)


class TestNickChange(ThreadStanzaTest):
    def test_nick_change_sends_303_to_all_110_to_self_then_the_new_nick(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.join(f"{BOB}/pc", "Bob")
        self.recv_settled(f'<presence from="{ALICE}/phone" to="{WARD}/Ally"/>')
        self.send(f"""
          <presence from="{WARD}/Alice" to="{ALICE}/phone" type="unavailable">
            <x xmlns="{MUC_USER}">
              <item affiliation="member" role="participant" jid="{ALICE}/phone" nick="Ally"/>
              <status code="303"/><status code="110"/>
            </x>
            <occupant-id xmlns="{OCC}" id="{oid(ALICE)}"/>
          </presence>""")
        self.send(f"""
          <presence from="{WARD}/Alice" to="{BOB}/pc" type="unavailable">
            <x xmlns="{MUC_USER}">
              <item affiliation="member" role="participant" jid="{ALICE}/phone" nick="Ally"/>
              <status code="303"/>
            </x>
            <occupant-id xmlns="{OCC}" id="{oid(ALICE)}"/>
          </presence>""")
        self.send(presence("Ally", f"{ALICE}/phone", f"{ALICE}/phone", codes="110"))
        self.send(presence("Ally", f"{BOB}/pc", f"{ALICE}/phone"))
        self.send(None)

    def test_after_a_nick_change_messages_come_from_the_new_nick(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.recv_settled(f'<presence from="{ALICE}/phone" to="{WARD}/Ally"/>')
        self.drain()
        assert [o.nick for o in self.host.room("ward").sessions()] == ["Ally"]

    def test_nick_change_to_a_present_members_nick_conflicts_and_changes_nothing(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.join(f"{BOB}/pc", "Bob")
        self.recv_settled(f'<presence from="{ALICE}/phone" to="{WARD}/bob"/>')
        self.send(
            refusal("bob", f"{ALICE}/phone", "conflict", "cancel", "That nickname is in use.")
        )
        self.send(None)
        assert self.host.room("ward").get(f"{ALICE}/phone").nick == "Alice"  # type: ignore[union-attr]

    def test_every_session_of_the_person_moves_to_the_new_nick(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.join(f"{ALICE}/tablet", "Alice")
        self.recv_settled(f'<presence from="{ALICE}/tablet" to="{WARD}/Ally"/>')
        self.drain()
        assert {o.nick for o in self.host.room("ward").sessions()} == {"Ally"}


class TestNickRules(ThreadStanzaTest):
    def refused(
        self, nick: str, condition: str, etype: str, text: str, who: str = f"{BOB}/pc"
    ) -> None:
        self.recv_settled(
            f'<presence from="{who}" to="{WARD}/{nick}"><x xmlns="{MUC}"/></presence>'
        )
        self.send(refusal(nick, who, condition, etype, text))
        self.send(None)

    def test_a_cyrillic_lookalike_of_a_present_nick_is_refused(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.refused(
            "\u0410lice",
            "conflict",
            "cancel",
            "That nickname looks like 'Alice', the nickname of another member of this thread. Choose one that cannot be mistaken for it.",
        )

    def test_an_accented_lookalike_is_refused(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.refused(
            "\u00c1lice",
            "conflict",
            "cancel",
            "That nickname looks like 'Alice', the nickname of another member of this thread. Choose one that cannot be mistaken for it.",
        )

    def test_a_capital_i_for_a_small_l_is_refused(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.refused(
            "AIice",
            "conflict",
            "cancel",
            "That nickname looks like 'Alice', the nickname of another member of this thread. Choose one that cannot be mistaken for it.",
        )

    def test_another_case_of_a_present_nick_is_in_use(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.refused("ALICE", "conflict", "cancel", "That nickname is in use.")

    def test_a_nick_stays_bound_to_its_person_after_they_leave(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.recv_settled(f'<presence from="{ALICE}/phone" to="{WARD}/Alice" type="unavailable"/>')
        self.drain()
        self.refused(
            "alice", "conflict", "cancel", "That nickname belongs to another member of this thread."
        )

    def test_the_holder_gets_the_bound_nick_back(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.recv_settled(f'<presence from="{ALICE}/phone" to="{WARD}/Alice" type="unavailable"/>')
        self.drain()
        self.recv_settled(
            f'<presence from="{ALICE}/laptop" to="{WARD}/Alice"><x xmlns="{MUC}"/></presence>'
        )
        self.send(presence("Alice", f"{ALICE}/laptop", f"{ALICE}/laptop", codes="100 170 110"))

    def test_a_nick_with_a_trailing_space_is_refused_with_the_form_to_use(self) -> None:
        self.refused(
            "Bob ",
            "not-acceptable",
            "modify",
            "That nickname is not in its normal form: use 'Bob' (no spaces at the ends, no repeated spaces, no special forms of letters).",
        )

    def test_a_nick_over_the_limit_is_refused_with_the_limit(self) -> None:
        self.refused(
            "B" * 65,
            "not-acceptable",
            "modify",
            "That nickname is too long: at most 64 characters.",
        )

    def test_a_nick_with_an_invisible_character_is_refused_not_silently_changed(self) -> None:
        self.refused(
            "Bo\u200bb",
            "not-acceptable",
            "modify",
            "That nickname has characters that cannot be shown safely (control or invisible characters) or is empty.",
        )

    def test_a_distinct_nick_is_welcome(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.recv_settled(
            f'<presence from="{CAROL}/pc" to="{WARD}/Alicia"><x xmlns="{MUC}"/></presence>'
        )
        self.send(presence("Alice", f"{CAROL}/pc", f"{ALICE}/phone"))


class TestReservedNick(ThreadStanzaTest):
    def test_a_member_can_discover_the_nick_bound_to_them(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.recv_settled(
            f'<iq type="get" id="r1" from="{ALICE}/laptop" to="{WARD}"><query xmlns="http://jabber.org/protocol/disco#info" node="x-roomuser-item"/></iq>'
        )
        self.send(
            f'<iq type="result" id="r1" from="{WARD}" to="{ALICE}/laptop"><query xmlns="http://jabber.org/protocol/disco#info" node="x-roomuser-item"><identity category="conference" type="text" name="Alice"/></query></iq>'
        )

    def test_a_member_without_a_bound_nick_gets_no_identity(self) -> None:
        self.recv_settled(
            f'<iq type="get" id="r2" from="{BOB}/pc" to="{WARD}"><query xmlns="http://jabber.org/protocol/disco#info" node="x-roomuser-item"/></iq>'
        )
        self.send(
            f'<iq type="result" id="r2" from="{WARD}" to="{BOB}/pc"><query xmlns="http://jabber.org/protocol/disco#info" node="x-roomuser-item"/></iq>'
        )
