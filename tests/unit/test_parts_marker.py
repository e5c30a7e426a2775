"""Part markers, judged without content: range, duplicates, changed sets, notices (II.2)."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from xmpp_clinic.completeness.parts import (
    MarkerError,
    PartMarker,
    PartSet,
    complete_notice,
    in_set_order,
    judge,
    missing_notice,
    read_marker,
    receive,
)
from xmpp_clinic.omemo import parse_header
from xmpp_clinic.policy.e2e import check_e2e
from xmpp_clinic.policy.verdict import REFUSALS, ReasonCode
from xmpp_clinic.settings.completeness import DeliverySettings, PartsSettings

pytestmark = pytest.mark.requirement("II.2")

ALICE = "alice@hospital.test"
AT = datetime(2026, 3, 2, 14, 2, tzinfo=UTC)
KEY = base64.b64encode(b"\x33" + bytes(97)).decode()
IV = base64.b64encode(bytes(12)).decode()


def message(*markers: str) -> ET.Element:
    return ET.fromstring(
        '<message xmlns="jabber:client" type="groupchat" id="m1">'
        '<encrypted xmlns="eu.siacs.conversations.axolotl"><header sid="111">'
        f'<key rid="222" prekey="true">{KEY}</key><iv>{IV}</iv></header>'
        "<payload>cGF5</payload></encrypted>" + "".join(markers) + "</message>"
    )


def part(n: str, of: str, set_id: str = "s1", extra: str = "") -> str:
    return f"<part xmlns='urn:xmpp-clinic:parts:0' set='{set_id}' n='{n}' of='{of}'{extra}/>"


def test_a_message_without_marker_is_no_part() -> None:
    assert read_marker(message(), 50) is None


def test_a_marker_is_read() -> None:
    assert read_marker(message(part("2", "3")), 50) == PartMarker("s1", 2, 3)


@pytest.mark.parametrize(("n", "of"), [("4", "3"), ("0", "3"), ("1", "51"), ("2", "1"), ("x", "3")])
def test_numbers_out_of_range_are_refused(n: str, of: str) -> None:
    with pytest.raises(MarkerError) as found:
        read_marker(message(part(n, of)), 50)
    assert found.value.reason is ReasonCode.PART_OUT_OF_RANGE


def test_a_set_of_one_part_is_allowed() -> None:
    assert read_marker(message(part("1", "1")), 50) == PartMarker("s1", 1, 1)


def test_two_markers_on_one_message_are_refused() -> None:
    with pytest.raises(MarkerError):
        read_marker(message(part("1", "3"), part("2", "3")), 50)


def test_the_marker_passes_the_e2e_allowlist_beside_omemo() -> None:
    stanza = message(part("1", "3"))
    assert not check_e2e(stanza, parse_header(stanza)).rejected


def test_a_marker_with_an_attribute_nobody_defined_is_refused() -> None:
    stanza = message(part("1", "3", extra=" text='BP 120/80'"))
    assert check_e2e(stanza, parse_header(stanza)).reason is ReasonCode.PLAINTEXT_REFUSED


def test_a_marker_with_text_inside_is_refused() -> None:
    marker = "<part xmlns='urn:xmpp-clinic:parts:0' set='s1' n='1' of='2'>BP</part>"
    stanza = message(marker)
    assert check_e2e(stanza, parse_header(stanza)).rejected


def first(n: int = 1, of: int = 3) -> PartSet:
    return receive(
        PartMarker("s1", n, of), None, thread="ward", sender=ALICE, nick="Dr Alice", at=AT
    )


def test_a_new_set_is_accepted_and_remembers_its_sender() -> None:
    assert judge(PartMarker("s1", 1, 3), None, ALICE) is None
    assert first().received == {1} and first().sender == ALICE


def test_a_duplicate_part_is_refused() -> None:
    assert judge(PartMarker("s1", 1, 3), first(), ALICE) is ReasonCode.PART_DUPLICATE


def test_a_set_whose_size_changes_is_refused() -> None:
    assert judge(PartMarker("s1", 2, 4), first(), ALICE) is ReasonCode.PART_SET_CHANGED


def test_a_set_continued_by_someone_else_is_refused() -> None:
    assert judge(PartMarker("s1", 2, 3), first(), "bob@hospital.test") is (
        ReasonCode.PART_SET_CHANGED
    )


def test_the_three_refusals_have_distinct_codes_and_their_own_sentences() -> None:
    codes = {ReasonCode.PART_DUPLICATE, ReasonCode.PART_OUT_OF_RANGE, ReasonCode.PART_SET_CHANGED}
    assert len({REFUSALS[c].text for c in codes}) == 3
    assert all(REFUSALS[c].condition == "policy-violation" for c in codes)


def test_a_set_complete_in_time_owes_no_notice() -> None:
    done = receive(PartMarker("s1", 2, 2), first(1, 2), thread="ward", sender=ALICE, nick="", at=AT)
    assert done.complete and done.complete_noticed
    assert not done.overdue(AT + timedelta(hours=1), 2)


def test_an_incomplete_set_is_overdue_after_the_timeout_once() -> None:
    started = first()
    assert not started.overdue(AT + timedelta(seconds=1), 2)
    assert started.overdue(AT + timedelta(seconds=2), 2)
    noticed = PartSet(**{**started.__dict__, "missing_noticed": True})
    assert not noticed.overdue(AT + timedelta(seconds=9), 2)


def test_a_late_last_part_owes_the_complete_notice() -> None:
    noticed = PartSet(**{**first(1, 2).__dict__, "missing_noticed": True})
    done = receive(PartMarker("s1", 2, 2), noticed, thread="ward", sender=ALICE, nick="", at=AT)
    assert done.late_complete


def test_the_missing_notice_names_the_part_the_nick_and_the_time() -> None:
    two_of_three = PartSet(**{**first().__dict__, "received": frozenset({1, 3})})
    clock = AT.astimezone().strftime("%H:%M")
    assert missing_notice(two_of_three) == (
        f"Part 2 of 3 of Dr Alice's message of {clock} has not arrived."
    )
    assert missing_notice(first(1, 4)) == (
        f"Parts 2, 3 and 4 of 4 of Dr Alice's message of {clock} have not arrived."
    )
    assert complete_notice(first()) == (
        f"All 3 parts of Dr Alice's message of {clock} have now arrived; it is complete."
    )


def test_settings_defaults_and_strict_types() -> None:
    assert PartsSettings().max_parts == 50
    assert DeliverySettings().notify_after_minutes == 30
    assert PartsSettings(timeout_seconds=2).timeout_seconds == 2
    with pytest.raises(ValueError):
        PartsSettings(max_parts="5")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        PartsSettings(max_parts=1)


def test_a_view_puts_each_set_back_in_part_order_where_it_began() -> None:
    arrived = ["s:1", "note", "s:3", "t:2", "s:2", "t:1"]

    def marker_of(item: str) -> PartMarker | None:
        set_id, _, n = item.partition(":")
        return PartMarker(set_id, int(n), 3) if n else None

    assert in_set_order(arrived, marker_of) == ["s:1", "s:2", "s:3", "note", "t:1", "t:2"]
