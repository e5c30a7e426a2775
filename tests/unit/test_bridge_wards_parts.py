"""Pure parts of the bridge: case thread names, ward config, part sets put back (I.6, II.2)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from tests.unit.test_bridge_support import ALICE, BOB, T0
from xmpp_clinic.bridge import fhir
from xmpp_clinic.bridge.documentation import reassemble, without_keys
from xmpp_clinic.bridge.records import DocumentedMessage
from xmpp_clinic.bridge.wards import thread_name, thread_title
from xmpp_clinic.completeness.parts import PartMarker
from xmpp_clinic.settings.bridge import BridgeSettings
from xmpp_clinic.threads.model import check_name

pytestmark = pytest.mark.requirement("I.6", "II.2")


def test_a_case_thread_is_named_after_the_ward_group_and_the_visit() -> None:
    assert thread_name("ward-4b", "V100") == "ward-4b-v100"
    assert thread_title("4B", "V100") == "Ward 4B, case V100"


@pytest.mark.parametrize("visit", ["V/1", "v-1", "A:B.C", "X" * 64, "..."])
def test_visit_numbers_that_do_not_fit_get_a_digest_and_still_make_a_valid_name(
    visit: str,
) -> None:
    name = thread_name("ward-" + "g" * 59, visit)
    assert check_name(name) == name and len(name) <= 64


def test_visit_numbers_spelled_alike_get_different_names() -> None:
    assert thread_name("ward-4b", "V/1") != thread_name("ward-4b", "v-1")


@pytest.mark.requirement("I.12")
@pytest.mark.parametrize(
    ("wards", "says"),
    [
        ({"4 B": "ward-4b"}, "ward code"),
        ({"4B": "Ward 4B"}, "invalid group name"),
        ({"4B": 7}, "valid string"),
        ({"": "ward-4b"}, "ward code"),
    ],
)
def test_ward_threads_are_checked_when_the_config_loads(
    wards: dict[str, object], says: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        BridgeSettings.model_validate({"adt": {"ward_threads": wards}})
    assert says in str(caught.value)


def test_push_interval_is_optional_and_bounded() -> None:
    assert BridgeSettings().hl7.push_interval_minutes is None
    with pytest.raises(ValidationError):
        BridgeSettings.model_validate({"hl7": {"push_interval_minutes": 0}})


def copy(seq: int, body: str, sender: str = ALICE, gap: bool = False) -> DocumentedMessage:
    return DocumentedMessage(seq, f"s{seq}", sender, T0 + timedelta(minutes=seq), body, gap=gap)


def test_a_part_set_stands_where_its_first_part_arrived_in_part_order() -> None:
    copies = [copy(1, "before"), copy(2, "A"), copy(3, "between", BOB), copy(4, "C"), copy(5, "B")]
    markers = {f"s{s}": PartMarker("set1", n, 3) for s, n in ((2, 1), (4, 3), (5, 2))}
    out = reassemble(copies, markers)
    assert [(m.seq, m.body, m.parts, m.missing_parts) for m in out] == [
        (1, "before", 1, ()),
        (2, "ABC", 3, ()),
        (3, "between", 1, ()),
    ]
    assert out[1].through_seq == 5


def test_a_missing_part_is_named_in_the_message_the_transcript_and_fhir() -> None:
    copies = [copy(1, "A"), copy(2, "", gap=True), copy(3, "other")]
    markers = {"s1": PartMarker("set1", 1, 3), "s2": PartMarker("set1", 3, 3)}
    [whole, other] = reassemble(copies, markers)
    assert (whole.body, whole.missing_parts, whole.parts_missing, whole.gap) == (
        "A",
        (2, 3),
        2,
        False,
    )
    assert other.body == "other"
    assert "(parts 2, 3 of 3 never arrived)" in fhir.transcript("t", "T", [whole])
    resource = fhir.communication("t", None, whole)
    assert resource.note is not None and resource.note[0].text == "parts 2, 3 of 3 never arrived"


def test_sets_of_two_senders_with_the_same_set_id_stay_apart() -> None:
    copies = [copy(1, "a1"), copy(2, "b1", BOB), copy(3, "a2"), copy(4, "b2", BOB)]
    markers = {f"s{s}": PartMarker("same", 1 + (s > 2), 2) for s in range(1, 5)}
    assert [m.body for m in reassemble(copies, markers)] == ["a1a2", "b1b2"]


@pytest.mark.requirement("II.1")
def test_the_key_of_a_shared_file_never_leaves_with_the_text() -> None:
    text = "Swab aesgcm://up.h/a/swab.pdf#00ff11, see (AESGCM://up.h/b.png#aa). Done"
    assert without_keys(text) == "Swab aesgcm://up.h/a/swab.pdf, see (AESGCM://up.h/b.png). Done"
    assert without_keys("no links # here") == "no links # here"
