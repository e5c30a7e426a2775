# ruff: noqa: E501  (literal XML reads best on one line)
"""Part sets through the relay: refusals, the room's notices, state in the store (II.2)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from tests.unit.test_threads_relay import IV, KEY
from tests.unit.threads_stanza_base import ALICE, BOB, WARD, EncryptedOnly, ThreadStanzaTest
from xmpp_clinic.archive.messages import ArchiveQuery
from xmpp_clinic.completeness.part_store import PartSets
from xmpp_clinic.policy.verdict import MessagePolicy
from xmpp_clinic.settings.completeness import PartsSettings
from xmpp_clinic.xmpp.parts import PartTracker

pytestmark = pytest.mark.requirement("II.2")

START = datetime(2026, 3, 2, 14, 2, tzinfo=UTC)
CLOCK = START.astimezone().strftime("%H:%M")
POLICY = "urn:xmpp-clinic:policy:0"


def part(n: int, of: int = 3, set_id: str = "s1", mid: str = "") -> str:
    return f"""
      <message from="{ALICE}/phone" to="{WARD}" type="groupchat" id="{mid or f"p{n}"}">
        <encrypted xmlns="eu.siacs.conversations.axolotl"><header sid="111"><key rid="222" prekey="true">{KEY}</key><iv>{IV}</iv></header><payload>cGF5</payload></encrypted>
        <part xmlns="urn:xmpp-clinic:parts:0" set="{set_id}" n="{n}" of="{of}"/>
      </message>"""


class TestPartSets(ThreadStanzaTest):
    @property
    def policy(self) -> MessagePolicy:  # type: ignore[override]
        # Built when the relay is: the tracker needs the host and the archive.
        self.at = START
        self.tracker = PartTracker(
            self.host,
            self.archive,
            PartSets(self.store),
            PartsSettings(timeout_seconds=2),
            clock=lambda: self.at,
        )
        return self.tracker.gate(EncryptedOnly())

    def setUp(self) -> None:
        super().setUp()
        self.join(f"{ALICE}/phone", "Dr Alice")
        self.join(f"{BOB}/pc", "Bob")

    def archived(self) -> list[ET.Element]:
        page = self.run_coro(self.archive.query(ArchiveQuery(thread_id=1)))
        return [
            ET.fromstring(e.stanza.replace(" ", ' xmlns="jabber:component:accept" ', 1))
            for e in page.entries
        ]

    def markers(self) -> list[str | None]:
        found = [m.find("{urn:xmpp-clinic:parts:0}part") for m in self.archived()]
        return [m.get("n") if m is not None else None for m in found]

    def relayed_ids(self) -> list[tuple[str | None, str | None]]:
        """(to, id) of everything sent since the last look."""
        sent: list[tuple[str | None, str | None]] = []
        while True:
            self.settle()
            raw = self.xmpp.socket.next_sent()  # type: ignore[union-attr]
            if raw is None:
                return sent
            text = raw if isinstance(raw, str) else raw.decode()
            root = ET.fromstring(text.replace(" ", ' xmlns="jabber:component:accept" ', 1))
            sent.append((root.get("to"), root.get("id")))

    def expect_part_refusal(self, code: str, mid: str) -> None:
        error = self.expect_error(f"{ALICE}/phone", WARD, "policy-violation", mid)
        assert error.find(f"{{jabber:component:accept}}error/{{{POLICY}}}{code}") is not None
        assert self.relayed_ids() == []  # nobody else gets anything

    def test_parts_are_relayed_with_their_marker_and_archived_in_arrival_order(self) -> None:
        for n in (1, 3, 2):
            self.recv_settled(part(n))
        assert self.markers() == ["1", "3", "2"]
        assert self.run_coro(self.tracker.post_due()) == 0  # complete in time: no notice

    def test_a_duplicate_part_is_refused_and_neither_archived_nor_delivered(self) -> None:
        self.recv_settled(part(1))
        self.drain()
        self.recv_settled(part(1, mid="again"))
        self.expect_part_refusal("part-duplicate", "again")
        assert self.markers() == ["1"]

    def test_a_part_beyond_its_set_is_refused(self) -> None:
        self.recv_settled(part(4, of=3))
        self.expect_part_refusal("part-out-of-range", "p4")
        assert self.markers() == []

    def test_a_set_whose_size_changes_is_refused(self) -> None:
        self.recv_settled(part(1))
        self.drain()
        self.recv_settled(part(2, of=4))
        self.expect_part_refusal("part-set-changed", "p2")
        assert self.markers() == ["1"]

    def test_a_missing_part_is_announced_by_the_room_to_everyone_and_archived(self) -> None:
        self.recv_settled(part(1))
        self.recv_settled(part(3))
        self.drain()
        self.at = START + timedelta(seconds=1)
        assert self.run_coro(self.tracker.post_due()) == 0  # not yet overdue
        self.at = START + timedelta(seconds=2)
        assert self.run_coro(self.tracker.post_due()) == 1
        notice = f"Part 2 of 3 of Dr Alice's message of {CLOCK} has not arrived."
        for to in (f"{ALICE}/phone", f"{BOB}/pc"):
            sent = self.next_sent()
            assert (sent.get("from"), sent.get("to"), sent.get("type")) == (WARD, to, "groupchat")
            assert sent.findtext("{jabber:component:accept}body") == notice
            assert sent.find("{urn:xmpp-clinic:seq:0}seq").get("n") == "3"  # type: ignore[union-attr]
        assert self.archived()[-1].findtext("{jabber:component:accept}body") == notice
        assert self.run_coro(self.tracker.post_due()) == 0  # once only

    def test_the_late_part_is_relayed_and_a_complete_notice_follows(self) -> None:
        self.recv_settled(part(1))
        self.recv_settled(part(3))
        self.at = START + timedelta(seconds=3)
        self.run_coro(self.tracker.post_due())
        self.drain()
        self.recv_settled(part(2))
        assert [i for _to, i in self.relayed_ids()] == ["p2", "p2"]
        assert self.run_coro(self.tracker.post_due()) == 1
        complete = f"All 3 parts of Dr Alice's message of {CLOCK} have now arrived; it is complete."
        assert self.next_sent().findtext("{jabber:component:accept}body") == complete
        assert self.markers() == ["1", "3", None, "2", None]

    def test_a_set_outlives_a_restart_of_the_tracker(self) -> None:
        self.recv_settled(part(1))
        self.drain()
        later = PartTracker(self.host, self.archive, PartSets(self.store), PartsSettings())
        self.tracker.sets = later.sets  # a new gateway reads the same rows
        self.recv_settled(part(1, mid="again"))
        self.expect_part_refusal("part-duplicate", "again")

    def test_a_gateway_restarted_meanwhile_still_announces_the_missing_part(self) -> None:
        self.recv_settled(part(1))
        self.drain()
        restarted = PartTracker(
            self.host, self.archive, PartSets(self.store), PartsSettings(timeout_seconds=2),
            clock=lambda: START + timedelta(seconds=5),
        )  # fmt: skip
        assert self.run_coro(restarted.post_due()) == 1
        body = self.next_sent().findtext("{jabber:component:accept}body")
        assert body == f"Parts 2 and 3 of 3 of Dr Alice's message of {CLOCK} have not arrived."
