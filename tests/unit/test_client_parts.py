"""The client library's splitting and reassembly, without a server (II.2)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from xmpp_clinic.client import Reassembly, part_marker, split_text
from xmpp_clinic.completeness.parts import PartMarker, read_marker

pytestmark = pytest.mark.requirement("II.2")

LAB = "lab@hospital.test"


def test_a_short_text_is_one_part() -> None:
    assert split_text("K+ 4.1", 4000) == ["K+ 4.1"]


def test_a_20_kb_text_is_split_under_the_limit_and_joins_back_exactly() -> None:
    text = "".join(f"line {n}: Hb 13.2 g/dl, Leukozyten 7.4/nl, Größe µm\n" for n in range(400))
    assert len(text.encode()) > 20_000
    parts = split_text(text, 4000)
    assert len(parts) >= 6
    assert all(len(p.encode()) <= 4000 for p in parts)
    assert "".join(parts) == text


def test_splitting_never_cuts_a_character() -> None:
    parts = split_text("ö" * 11, 5)  # two bytes each: a cut after 5 bytes would halve one
    assert parts == ["öö"] * 5 + ["ö"]


def test_the_marker_the_library_writes_is_the_one_the_gateway_reads() -> None:
    message = ET.Element("{jabber:client}message")
    message.append(part_marker(PartMarker("abc123", 2, 3)))
    assert read_marker(message, 50) == PartMarker("abc123", 2, 3)


def test_parts_in_any_order_reassemble_in_part_order() -> None:
    reader = Reassembly()
    assert reader.add(LAB, PartMarker("s", 3, 3), "c") is None
    assert reader.add(LAB, PartMarker("s", 1, 3), "a") is None
    assert reader.missing() == ["part 2 of 3 missing"]
    whole = reader.add(LAB, PartMarker("s", 2, 3), "b")
    assert whole is not None and (whole.text, whole.of) == ("abc", 3)
    assert whole.arrived == (3, 1, 2)  # the order they came in, for a reader to show
    assert reader.missing() == []


def test_an_unsplit_message_is_whole_at_once() -> None:
    whole = Reassembly().add(LAB, None, "BP 120/80")
    assert whole is not None and whole.text == "BP 120/80" and whole.set_id == ""
    assert (whole.of, whole.arrived) == (1, ())


def test_a_repeated_or_resized_part_is_ignored() -> None:
    reader = Reassembly()
    reader.add(LAB, PartMarker("s", 1, 2), "a")
    assert reader.add(LAB, PartMarker("s", 1, 2), "x") is None
    assert reader.add(LAB, PartMarker("s", 2, 3), "x") is None
    assert reader.missing() == ["part 2 of 2 missing"]


@pytest.mark.parametrize("limit", [0, 3])
def test_a_limit_below_one_character_is_an_error(limit: int) -> None:
    with pytest.raises(ValueError):
        split_text("abc", limit)
