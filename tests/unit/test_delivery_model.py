"""Delivery status per message and member, and who is owed a notice (II.2)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from xmpp_clinic.completeness.delivery import (
    Delivery,
    Status,
    notices_due,
    report_lines,
    unread_notice,
)

pytestmark = pytest.mark.requirement("II.2")

AT = datetime(2026, 3, 2, 14, 2, tzinfo=UTC)
ROW = Delivery("ward4b", 1, "sid-1", "alice@h.test", "bob@h.test", AT)


def test_the_furthest_step_is_the_status() -> None:
    assert ROW.status is Status.NOT_YET
    assert replace(ROW, delivered_at=AT).status is Status.DELIVERED
    assert replace(ROW, delivered_at=AT, fetched_at=AT).status is Status.FETCHED
    assert replace(ROW, fetched_at=AT, read_at=AT).status is Status.READ


def test_a_member_who_has_nothing_after_the_delay_is_owed_one_notice_per_thread() -> None:
    second = replace(ROW, seq=2, stanza_id="sid-2", at=AT + timedelta(minutes=1))
    assert notices_due([ROW, second], AT + timedelta(minutes=29), 30) == []
    assert notices_due([ROW, second], AT + timedelta(minutes=31), 30) == [("ward4b", "bob@h.test")]


def test_received_fetched_read_or_notified_owe_nothing() -> None:
    later = AT + timedelta(hours=2)
    done = [
        replace(ROW, delivered_at=AT),
        replace(ROW, fetched_at=AT),
        replace(ROW, read_at=AT),
        replace(ROW, notified_at=AT),
    ]
    for row in done:
        assert notices_due([row], later, 30) == []


def test_the_notice_names_only_the_title() -> None:
    assert unread_notice("Ward 4B") == "There are unread messages in Ward 4B."


def test_the_report_has_one_line_per_member() -> None:
    rows = [replace(ROW, member="carol@h.test"), replace(ROW, read_at=AT)]
    assert report_lines(rows) == [
        "bob@h.test: read 2026-03-02 14:02 UTC",
        "carol@h.test: not yet",
    ]
