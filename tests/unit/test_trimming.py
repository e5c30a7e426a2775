# ruff: noqa: E501  (literal XML reads best on one line)
"""Per-recipient key trimming (issue 13; II.3, I.4): each member's copy carries only that
member's keys, the header fields everyone needs, and everything else unchanged."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

import pytest

from xmpp_clinic import namespaces as ns
from xmpp_clinic.trimming import split, trim
from xmpp_clinic.xmpp import muc_stanzas as ms

pytestmark = pytest.mark.requirement("II.3", "I.4")

LEGACY = "eu.siacs.conversations.axolotl"
OMEMO2 = "urn:xmpp:omemo:2"
C = ns.COMPONENT
ALICE, BOB, CAROL = "alice@h.test", "bob@h.test", "carol@h.test"
# The devices each member may read with: legacy rids are resolved through the registry.
KEX = ' kex="true"'
DEVICES = {ALICE: {11, 12}, BOB: {21}, CAROL: {31, 32, 33}}


def key(rid: int, extra: str = "") -> str:
    return f'<key rid="{rid}"{extra}>K{rid}</key>'


LEGACY_MESSAGE = (
    f'<message xmlns="{C}" from="ward@gw/Alice" type="groupchat" id="m1"><body>fallback</body>'
    f'<encrypted xmlns="{LEGACY}"><header sid="10">'
    + key(11) + key(21, ' prekey="true"') + key(21) + key(31) + key(32) + key(99)
    + '<iv>SVY=</iv></header><payload>UA==</payload></encrypted>'
    '<stanza-id xmlns="urn:xmpp:sid:0" id="s1" by="ward@gw"/></message>'
)  # fmt: skip
OMEMO2_MESSAGE = (
    f'<message xmlns="{C}" from="ward@gw/Alice" type="groupchat" id="m2">'
    f'<encrypted xmlns="{OMEMO2}"><header sid="10">'
    f'<keys jid="{ALICE}">{key(12)}</keys>'
    f'<keys jid="{BOB}">{key(21, KEX)}{key(22)}</keys>'
    f'<keys jid="{CAROL}">{key(31)}{key(33)}</keys>'
    f'<keys jid="{CAROL.upper()}">{key(32)}</keys>'
    '</header><payload>UA==</payload></encrypted></message>'
)  # fmt: skip


def rids(xml: ET.Element) -> list[tuple[str | None, str | None]]:
    """(group JID or None, rid) of every key, in document order."""
    found: list[tuple[str | None, str | None]] = []
    for element in xml.iter():
        if element.tag == f"{{{LEGACY}}}key":
            found.append((None, element.get("rid")))
        if element.tag == f"{{{OMEMO2}}}keys":
            found += [(element.get("jid"), k.get("rid")) for k in element]
    return found


def canonical(xml: ET.Element) -> str:
    for element in xml.iter():  # whitespace between elements is not significant
        element.tail = None if not (element.tail or "").strip() else element.tail
        if len(element) and not (element.text or "").strip():
            element.text = None
    return ET.tostring(xml, encoding="unicode")


def copies(message: str, member: str, ids: set[int]) -> tuple[ET.Element, ET.Element]:
    """The member's copy built both ways: from the pre-split text and by trimming a tree."""
    root = ET.fromstring(message)
    before = ET.tostring(root)
    cut = split(root, ms.serialise)
    assert cut is not None
    assert ET.tostring(root) == before  # split leaves the message as it was
    text = cut.for_member(member, ids)
    assert text.startswith("<message ")  # the stream namespace stays implicit (ms.address)
    built = ET.fromstring(text.replace("<message ", f'<message xmlns="{C}" ', 1))
    trimmed = ET.fromstring(message)
    trim(trimmed, member, ids)
    return built, trimmed


def test_legacy_copy_has_only_the_members_rids_and_every_copy_of_them() -> None:
    built, trimmed = copies(LEGACY_MESSAGE, BOB, DEVICES[BOB])
    assert rids(built) == [(None, "21"), (None, "21")]  # Profanity's two keys stay
    assert canonical(built) == canonical(trimmed)
    header = built.find(f"{{{LEGACY}}}encrypted/{{{LEGACY}}}header")
    assert header is not None and header.get("sid") == "10"
    assert header.findtext(f"{{{LEGACY}}}iv") == "SVY="
    assert built.findtext(f"{{{LEGACY}}}encrypted/{{{LEGACY}}}payload") == "UA=="
    assert built.findtext(f"{{{C}}}body") == "fallback"
    assert built.find("{urn:xmpp:sid:0}stanza-id") is not None
    assert built.get("id") == "m1" and built.get("from") == "ward@gw/Alice"


def test_legacy_key_attributes_and_text_are_kept_as_they_were() -> None:
    built, _ = copies(LEGACY_MESSAGE, BOB, {21})
    keys = built.findall(f".//{{{LEGACY}}}key")
    assert [(k.get("prekey"), k.text) for k in keys] == [("true", "K21"), (None, "K21")]


def test_omemo2_copy_has_only_the_members_group_and_usable_devices() -> None:
    built, trimmed = copies(OMEMO2_MESSAGE, BOB, {21})
    assert rids(built) == [(BOB, "21")]  # 22 is not usable (revoked since)
    assert canonical(built) == canonical(trimmed)
    assert built.find(f".//{{{OMEMO2}}}key").get("kex") == "true"  # type: ignore[union-attr]


def test_omemo2_groups_are_matched_on_the_normalised_jid() -> None:
    built, trimmed = copies(OMEMO2_MESSAGE, CAROL, DEVICES[CAROL])
    assert [rid for _, rid in rids(built)] == ["31", "33", "32"]
    assert canonical(built) == canonical(trimmed)


def test_a_member_without_usable_devices_gets_the_header_without_keys() -> None:
    for message, namespace in ((LEGACY_MESSAGE, LEGACY), (OMEMO2_MESSAGE, OMEMO2)):
        built, trimmed = copies(message, "dave@h.test", set())
        assert rids(built) == []
        assert canonical(built) == canonical(trimmed)
        assert built.find(f".//{{{namespace}}}header").get("sid") == "10"  # type: ignore[union-attr]


@pytest.mark.parametrize("message", [LEGACY_MESSAGE, OMEMO2_MESSAGE])
def test_every_member_and_device_subset_both_ways_agree_and_leak_nothing(message: str) -> None:
    """Exhaustive over members and subsets of their devices (and devices of others)."""
    every = sorted(set().union(*DEVICES.values()) | {22, 99})
    for member in (ALICE, BOB, CAROL):
        for size in range(len(every) + 1):
            for ids in itertools.combinations(every, size):
                built, trimmed = copies(message, member, set(ids))
                assert canonical(built) == canonical(trimmed)
                for jid, rid in rids(built):
                    assert int(rid or 0) in ids
                    assert jid is None or jid.lower() == member


def test_the_split_text_is_what_the_relay_would_serialise() -> None:
    """Keeping every key rebuilds the message exactly (whitespace between keys aside)."""
    for message in (LEGACY_MESSAGE, OMEMO2_MESSAGE):
        root = ET.fromstring(message)
        cut = split(root, ms.serialise)
        assert cut is not None
        everyone = set().union(*DEVICES.values()) | {22, 99}
        assert cut.whole == ms.serialise(root)  # what the archive keeps
        if cut.namespace == LEGACY:
            assert cut.for_member(ALICE, everyone) == ms.serialise(root)


def test_pretty_printed_headers_are_cut_cleanly() -> None:
    pretty = LEGACY_MESSAGE.replace("<key", "\n  <key").replace("<iv>", "\n  <iv>")
    built, trimmed = copies(pretty, ALICE, {11})
    assert rids(built) == [(None, "11")]
    assert canonical(built) == canonical(trimmed)


def test_keys_after_the_iv_move_before_it_and_nothing_else_changes() -> None:
    message = LEGACY_MESSAGE.replace("<iv>SVY=</iv>", "").replace(
        '<header sid="10">', '<header sid="10"><iv>SVY=</iv>'
    )
    built, _ = copies(message, ALICE, {11})
    header = built.find(f".//{{{LEGACY}}}header")
    assert header is not None
    assert [child.tag.rsplit("}", 1)[1] for child in header] == ["iv", "key"]


def test_messages_without_one_omemo_element_are_not_split_or_trimmed() -> None:
    plain = f'<message xmlns="{C}" from="ward@gw/A" type="groupchat"><body>x</body></message>'
    assert split(ET.fromstring(plain), ms.serialise) is None
    twice = LEGACY_MESSAGE.replace("</message>", f'<encrypted xmlns="{LEGACY}"/></message>')
    assert split(ET.fromstring(twice), ms.serialise) is None
    root = ET.fromstring(twice)
    trim(root, ALICE, set())
    assert len(root.findall(f".//{{{LEGACY}}}key")) == 6
    unknown = LEGACY_MESSAGE.replace(LEGACY, "urn:example:other")
    assert split(ET.fromstring(unknown), ms.serialise) is None
    no_keys = f'<message xmlns="{C}"><encrypted xmlns="{LEGACY}"><header sid="1"><iv>SVY=</iv></header></encrypted></message>'
    assert split(ET.fromstring(no_keys), ms.serialise) is None


def test_malformed_rids_and_group_jids_are_never_kept() -> None:
    message = LEGACY_MESSAGE.replace('rid="99"', 'rid="099"')
    built, trimmed = copies(message, ALICE, {99, 11})
    assert rids(built) == [(None, "11")] and canonical(built) == canonical(trimmed)
    bad_group = OMEMO2_MESSAGE.replace(f'jid="{BOB}"', 'jid="bob@h.test/phone"')
    built, trimmed = copies(bad_group, "bob@h.test/phone", {21, 22})
    assert rids(built) == [] and canonical(built) == canonical(trimmed)


def test_marker_text_in_the_message_cannot_confuse_the_cut() -> None:
    tricky = LEGACY_MESSAGE.replace(
        "<body>fallback</body>",
        f'<body>&lt;clinic-trim n="0" /&gt;</body><clinic-trim xmlns="{LEGACY}" n="0"/>',
    )
    built, trimmed = copies(tricky, BOB, {21})
    assert canonical(built) == canonical(trimmed)
