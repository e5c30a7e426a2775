# ruff: noqa: E501  (literal XML reads best on one line)
"""History on join (XEP-0045 7.2.14/7.2.15; issue 9 point 3): limits, window, keys, seq."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest

from tests.unit.threads_stanza_base import ALICE, BOB, EVE, WARD, ThreadStanzaTest, oid, with_ward
from xmpp_clinic.archive.messages import MessageArchive, NewMessage
from xmpp_clinic.store import Store, StoreUnavailable
from xmpp_clinic.xmpp.history import JoinHistory, history_request

pytestmark = pytest.mark.requirement("I.6", "IV.2", "II.3")

AXOLOTL = "eu.siacs.conversations.axolotl"
MUC = "http://jabber.org/protocol/muc"
T0 = datetime(2030, 1, 1, 8, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=30)
COUNT = 30


def encrypted(n: int) -> str:
    keys = "".join(f'<key rid="{rid}">K</key>' for rid in (11, 21, 12))
    return (
        f'<message from="{WARD}/ali" type="groupchat" id="m{n}"><body>enc</body>'
        f'<encrypted xmlns="{AXOLOTL}"><header sid="10">{keys}<iv>SVY=</iv></header><payload>UA==</payload></encrypted>'
        f'<stanza-id xmlns="urn:xmpp:sid:0" id="s{n}" by="{WARD}"/>'
        f'<occupant-id xmlns="urn:xmpp:occupant-id:0" id="{oid(ALICE)}"/></message>'
    )


async def with_messages(store: Store) -> None:
    """``ward`` and 30 messages from Alice, one a minute from T0 + 1 min to T0 + 30 min."""
    await with_ward(store)
    archive = MessageArchive(store)
    for n in range(1, COUNT + 1):
        at = T0 + timedelta(minutes=n)
        await archive.append(
            NewMessage(1, f"s{n}", at, ALICE, "phone", "ali", oid(ALICE), encrypted(n))
        )


class Devices:
    async def snapshot(self, persons: object = ()) -> Devices:
        return self

    def usable_ids(self, jid: str, namespace: str, now: object) -> frozenset[int]:
        return frozenset({ALICE: {11, 12}, BOB: {21}}.get(jid, set()))


class HistoryTest(ThreadStanzaTest):
    seed = staticmethod(with_messages)

    def setUp(self) -> None:
        super().setUp()
        self.joiner = JoinHistory(self.host, self.archive, devices=Devices(), clock=lambda: NOW)
        self.joiner.attach()
        self.join(f"{BOB}/pc", "Bob")

    def history_for(self, x: str | None, who: str = f"{BOB}/pc") -> list[ET.Element]:
        """Run the room host's call for ``who`` with the join's ``<x>`` (literal XML)."""
        thread = self.host.book.get("ward")
        occupant = self.host.room("ward").get(who)
        assert thread is not None and occupant is not None
        element = ET.fromstring(x) if x is not None else None
        self.run_coro(self.joiner.send(thread, occupant, element))
        self.settle()
        sent: list[ET.Element] = []
        while self.xmpp.socket.send_queue.qsize():  # type: ignore[union-attr]
            sent.append(self.next_sent())
        return sent

    @staticmethod
    def ids(sent: list[ET.Element]) -> list[str]:
        return [s.find("{urn:xmpp:sid:0}stanza-id").get("id", "") for s in sent]  # type: ignore[union-attr]


class TestJoinHistory(HistoryTest):
    history = "all"

    def test_attach_makes_it_the_room_hosts_history_sender(self) -> None:
        assert self.host.history_sender == self.joiner.send

    def test_one_message_as_bob_would_have_received_it_with_delay(self) -> None:
        thread = self.host.book.get("ward")
        occupant = self.host.room("ward").get(f"{BOB}/pc")
        assert thread is not None and occupant is not None
        self.run_coro(
            self.joiner.send(
                thread, occupant, ET.fromstring(f'<x xmlns="{MUC}"><history maxstanzas="1"/></x>')
            )
        )
        self.send(
            f"""<message from="{WARD}/ali" type="groupchat" id="m30" to="{BOB}/pc"><body>enc</body>
              <encrypted xmlns="{AXOLOTL}"><header sid="10"><key rid="21">K</key><iv>SVY=</iv></header><payload>UA==</payload></encrypted>
              <stanza-id xmlns="urn:xmpp:sid:0" id="s30" by="{WARD}"/>
              <occupant-id xmlns="urn:xmpp:occupant-id:0" id="{oid(ALICE)}"/>
              <seq xmlns="urn:xmpp-clinic:seq:0" n="30"/>
              <x xmlns="http://jabber.org/protocol/muc#user"><item affiliation="member" role="none" jid="{ALICE}/phone"/></x>
              <delay xmlns="urn:xmpp:delay" from="{WARD}" stamp="2030-01-01T08:30:00Z"/>
            </message>"""
        )
        self.send(None)

    def test_no_history_element_sends_the_configured_default_oldest_first(self) -> None:
        assert self.settings.threads.join_history == 20
        assert self.ids(self.history_for(f'<x xmlns="{MUC}"/>')) == [f"s{n}" for n in range(11, 31)]
        assert len(self.history_for(None)) == 20  # a join without <x> (an old client)

    def test_an_empty_history_element_is_asking_nothing(self) -> None:
        assert len(self.history_for(f'<x xmlns="{MUC}"><history/></x>')) == 20

    def test_maxstanzas_zero_and_maxchars_zero_send_nothing(self) -> None:
        assert self.history_for(f'<x xmlns="{MUC}"><history maxstanzas="0"/></x>') == []
        assert self.history_for(f'<x xmlns="{MUC}"><history maxchars="0"/></x>') == []

    def test_maxstanzas_above_the_default_and_beyond_the_archive(self) -> None:
        assert len(self.history_for(f'<x xmlns="{MUC}"><history maxstanzas="25"/></x>')) == 25
        assert (
            len(self.history_for(f'<x xmlns="{MUC}"><history maxstanzas="100000"/></x>')) == COUNT
        )

    def test_seconds_and_since_bound_the_start_together(self) -> None:
        last_5_min = self.history_for(f'<x xmlns="{MUC}"><history seconds="300"/></x>')
        assert self.ids(last_5_min) == [f"s{n}" for n in range(25, 31)]
        since = self.history_for(f'<x xmlns="{MUC}"><history since="2030-01-01T08:27:00Z"/></x>')
        assert self.ids(since) == ["s27", "s28", "s29", "s30"]
        both = self.history_for(
            f'<x xmlns="{MUC}"><history seconds="300" since="2030-01-01T08:28:00Z" maxstanzas="2"/></x>'
        )
        assert self.ids(both) == ["s29", "s30"]

    def test_maxchars_counts_the_whole_stanzas_newest_kept(self) -> None:
        two = self.history_for(f'<x xmlns="{MUC}"><history maxstanzas="2"/></x>')
        raw = [len(ET.tostring(s)) for s in two]  # about the serialised size
        limit = sum(raw) + 100  # room for two, not three
        sent = self.history_for(f'<x xmlns="{MUC}"><history maxchars="{limit}"/></x>')
        assert self.ids(sent) == ["s29", "s30"]

    def test_malformed_limits_are_ignored_not_an_error(self) -> None:
        sent = self.history_for(
            f'<x xmlns="{MUC}"><history maxstanzas="-1" seconds="soon" since="yesterday"/></x>'
        )
        assert len(sent) == 20

    def test_every_message_has_only_the_joining_members_keys_and_its_seq(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        for who, rids in ((f"{BOB}/pc", ["21"]), (f"{ALICE}/phone", ["11", "12"])):
            sent = self.history_for(f'<x xmlns="{MUC}"><history maxstanzas="3"/></x>', who)
            assert [[k.get("rid") for k in s.iter(f"{{{AXOLOTL}}}key")] for s in sent] == [rids] * 3
            assert [s.find("{urn:xmpp-clinic:seq:0}seq").get("n") for s in sent] == [
                "28",
                "29",
                "30",
            ]  # type: ignore[union-attr]
            assert {s.get("to") for s in sent} == {who}

    def test_long_histories_are_read_in_keyset_pages(self) -> None:
        with mock.patch("xmpp_clinic.xmpp.history.MAX_PAGE", 4):
            sent = self.history_for(f'<x xmlns="{MUC}"><history maxstanzas="10"/></x>')
        assert self.ids(sent) == [f"s{n}" for n in range(21, 31)]

    def test_an_unreadable_archive_sends_nothing_and_does_not_raise(self) -> None:
        with mock.patch.object(self.archive, "query", side_effect=StoreUnavailable("down")):
            assert self.history_for(f'<x xmlns="{MUC}"/>') == []


class TestJoinHistoryMembershipWindow(HistoryTest):
    history = "none"

    def test_a_new_member_gets_nothing_from_before_they_became_one(self) -> None:
        self.run_coro(self.service.add_member("ward", EVE))
        self.run_coro(self.host.reload())
        self.drain()
        thread = self.host.book.get("ward")
        assert thread is not None
        bob, eve = thread.member(BOB), thread.member(EVE)
        assert bob is not None and eve is not None and bob.since < eve.since
        before = bob.since + (eve.since - bob.since) / 2  # Bob was a member, Eve not yet
        self.run_coro(
            self.archive.append(
                NewMessage(1, "s0", before, ALICE, "phone", "ali", oid(ALICE), encrypted(0))
            )
        )
        self.join(f"{EVE}/pc", "Eve")
        assert "s0" not in self.ids(
            self.history_for(f'<x xmlns="{MUC}"><history maxstanzas="50"/></x>', f"{EVE}/pc")
        )
        assert "s0" in self.ids(
            self.history_for(f'<x xmlns="{MUC}"><history maxstanzas="50"/></x>')
        )


def test_history_request_reads_every_attribute() -> None:
    x = ET.fromstring(
        f'<x xmlns="{MUC}"><history maxchars="65000" maxstanzas="7" seconds="60"/></x>'
    )
    request = history_request(x, 20, NOW)
    assert (request.maxstanzas, request.maxchars, request.since) == (
        7,
        65000,
        NOW - timedelta(seconds=60),
    )
    assert history_request(None, 20, NOW).maxstanzas == 20
    assert history_request(None, 9999, NOW).maxstanzas == 500


class TestHistoryInTheJoin(HistoryTest):
    """The room host sends it between the self-presence and the subject (XEP-0045 7.2)."""

    history = "all"

    def test_a_join_asking_two_stanzas_gets_them_after_its_presence_before_the_subject(
        self,
    ) -> None:
        self.recv_settled(
            f'<presence from="{ALICE}/phone" to="{WARD}/Alice"><x xmlns="{MUC}"><history maxstanzas="2"/></x></presence>'
        )
        sent = []
        while self.xmpp.socket.send_queue.qsize():  # type: ignore[union-attr]
            sent.append(self.next_sent())
        mine = [s for s in sent if s.get("to") == f"{ALICE}/phone"]
        kinds = [
            "self" if s.find(".//{http://jabber.org/protocol/muc#user}status[@code='110']") is not None
            else "subject" if s.find("{jabber:component:accept}subject") is not None
            else "history" if s.find("{urn:xmpp:delay}delay") is not None
            else "presence"
            for s in mine
        ]  # fmt: skip
        assert kinds == ["presence", "self", "history", "history", "subject"]
        assert self.ids([s for s in mine if s.find("{urn:xmpp:delay}delay") is not None]) == [
            "s29",
            "s30",
        ]
