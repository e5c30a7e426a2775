# ruff: noqa: E501  (literal XML reads best on one line)
"""Delivery tracking at stanza level: the relay's and MAM's hooks, displayed markers, the
not-delivered notice, "who has my message?" (II.2)."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from slixmpp.plugins.xep_0004 import Form

from tests.unit.test_threads_relay import OMEMO_MESSAGE
from tests.unit.threads_stanza_base import ALICE, BOB, CAROL, WARD, EncryptedOnly, ThreadStanzaTest
from xmpp_clinic.archive.messages import ArchiveQuery
from xmpp_clinic.completeness.delivery_store import Deliveries
from xmpp_clinic.policy.verdict import MessagePolicy
from xmpp_clinic.settings.completeness import DeliverySettings
from xmpp_clinic.xmpp.adhoc import Request
from xmpp_clinic.xmpp.delivery import BATCH_SECONDS, DeliveryTracker, WhoHasMyMessage
from xmpp_clinic.xmpp.errors import FormError

pytestmark = pytest.mark.requirement("II.2")

START = datetime(2026, 3, 2, 14, 2, tzinfo=UTC)


def form(**values: str) -> Form:
    answer = Form()  # type: ignore[no-untyped-call]
    answer["type"] = "submit"
    for var, value in values.items():
        answer.add_field(var=var, value=value)  # type: ignore[no-untyped-call]
    return answer


class TestDelivery(ThreadStanzaTest):
    @property
    def policy(self) -> MessagePolicy:  # type: ignore[override]
        self.at = START
        self.deliveries = Deliveries(self.store)
        self.tracker = DeliveryTracker(
            self.host, self.deliveries, DeliverySettings(notify_after_minutes=30),
            clock=lambda: self.at,
        )  # fmt: skip
        return self.tracker.gate(EncryptedOnly())

    def setUp(self) -> None:
        super().setUp()
        self.join(f"{ALICE}/phone", "Alice")
        self.join(f"{BOB}/pc", "Bob")
        self.recv_settled(OMEMO_MESSAGE)  # archived as sid-1, seq 1
        self.drain()
        # What the relay tells the tracker after the fan-out: Bob was joined, Carol not.
        thread = self.host.book.get("ward")
        assert thread is not None
        self.thread = thread
        [entry] = self.run_coro(self.archive.query(ArchiveQuery(thread_id=1))).entries
        archived = ET.fromstring(entry.stanza.replace(" ", ' xmlns="jabber:component:accept" ', 1))
        self.archived = archived
        self.tracker.relayed(thread, 1, "sid-1", ALICE, {ALICE, BOB}, archived)
        self.run_coro(self.tracker.flush())

    def status(self) -> dict[str, str]:
        rows = self.run_coro(self.deliveries.of_message("sid-1"))
        return {row.member: str(row.status) for row in rows}

    def ask(self, requester: str = ALICE, **values: str) -> list[str]:
        command = WhoHasMyMessage(self.host, self.tracker)
        return self.run_coro(command.run(Request(requester, form(thread="ward", **values))))

    def test_messages_relayed_meanwhile_are_written_in_one_insert_in_order(self) -> None:
        """Issue 13: not one transaction per relayed message; a MAM fetch queued after
        them still finds their rows (writes keep their order)."""
        inserts: list[int] = []
        original = self.deliveries.insert

        async def counting(rows: list[dict[str, object]]) -> None:
            inserts.append(len(rows))
            await original(rows)  # type: ignore[arg-type]

        self.deliveries.insert = counting  # type: ignore[method-assign]
        for seq in (2, 3, 4):
            self.tracker.relayed(self.thread, seq, f"sid-{seq}", ALICE, {ALICE}, self.archived)
        self.tracker.fetched(self.thread, BOB, ["sid-2", "sid-4"])
        self.run_coro(self.tracker.flush())
        assert inserts == [6]  # Bob and Carol for each of the three messages
        rows = {(r.stanza_id, r.member): str(r.status) for s in (2, 3, 4)
                for r in self.run_coro(self.deliveries.of_message(f"sid-{s}"))}  # fmt: skip
        assert rows[("sid-2", BOB)] == rows[("sid-4", BOB)] == "fetched"
        assert rows[("sid-3", BOB)] == rows[("sid-3", CAROL)] == "not yet"

    def test_rows_of_messages_relayed_moments_apart_share_one_insert(self) -> None:
        """Issue 13: at 200 msg/s messages arrive 5 ms apart, each alone; their rows wait
        BATCH_SECONDS for the next ones instead of a write transaction each."""
        inserts: list[int] = []
        original = self.deliveries.insert

        async def counting(rows: list[dict[str, object]]) -> None:
            inserts.append(len(rows))
            await original(rows)  # type: ignore[arg-type]

        async def five_ms_apart() -> None:
            for seq in (2, 3, 4):
                self.tracker.relayed(self.thread, seq, f"sid-{seq}", ALICE, {ALICE}, self.archived)
                await asyncio.sleep(BATCH_SECONDS / 10)

        self.deliveries.insert = counting  # type: ignore[method-assign]
        self.run_coro(five_ms_apart())
        self.run_coro(self.tracker.flush())
        assert inserts == [6]

    def test_who_has_my_message_sees_a_message_relayed_just_now(self) -> None:
        self.tracker.relayed(self.thread, 2, "sid-2", ALICE, {ALICE, BOB}, self.archived)
        lines = self.ask(message="sid-2")  # no flush: the command waits for queued rows
        assert lines[0] == "Message sid-2:"
        assert lines[1].startswith(f"{BOB}: delivered ")

    def test_members_joined_at_the_fan_out_have_it_delivered_the_others_not_yet(self) -> None:
        assert self.status() == {BOB: "delivered", CAROL: "not yet"}

    def test_a_member_offline_during_the_message_gets_one_content_free_notice(self) -> None:
        self.at = START + timedelta(minutes=29)
        assert self.run_coro(self.tracker.notify_due()) == 0
        self.at = START + timedelta(minutes=31)
        assert self.run_coro(self.tracker.notify_due()) == 1
        self.send(
            f'<message from="clinic.hospital.test" to="{CAROL}" type="chat"><body>There are unread messages in Ward 3.</body></message>'
        )
        assert self.run_coro(self.tracker.notify_due()) == 0  # one notice, not one a minute

    def test_a_member_who_fetched_it_by_mam_gets_no_notice(self) -> None:
        self.tracker.fetched(self.thread, CAROL, ["sid-1"])
        self.run_coro(self.tracker.flush())
        self.at = START + timedelta(hours=1)
        assert self.run_coro(self.tracker.notify_due()) == 0
        assert self.status()[CAROL] == "fetched"

    def test_a_displayed_marker_to_the_room_marks_the_message_read(self) -> None:
        self.recv_settled(
            f'<message from="{BOB}/pc" to="{WARD}" type="groupchat" id="d1"><displayed xmlns="urn:xmpp:chat-markers:0" id="sid-1"/></message>'
        )
        self.run_coro(self.tracker.flush())  # queued behind the rows it marks
        assert self.status()[BOB] == "read"

    def test_the_sender_asks_who_has_the_message(self) -> None:
        self.tracker.fetched(self.thread, CAROL, ["sid-1"])
        self.run_coro(self.tracker.flush())
        lines = self.ask()
        assert lines[0] == "Message sid-1:"
        assert lines[1].startswith(f"{BOB}: delivered 2026-03-02 ")
        assert lines[2].startswith(f"{CAROL}: fetched ")

    def test_only_the_sender_may_ask(self) -> None:
        try:
            self.ask(BOB, message="sid-1")
        except FormError as exc:
            assert "only the sender" in str(exc)
        else:
            raise AssertionError("another member learned who has Alice's message")

    def test_a_message_without_payload_is_not_tracked(self) -> None:
        chat_state = ET.fromstring(
            '<message xmlns="jabber:component:accept"><active xmlns="http://jabber.org/protocol/chatstates"/></message>'
        )
        self.tracker.relayed(self.thread, 2, "sid-2", ALICE, set(), chat_state)
        self.run_coro(self.tracker.flush())
        assert self.run_coro(self.deliveries.of_message("sid-2")) == []
