"""OMEMO headers read without decrypting; keys removed without touching anything else."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from xmpp_clinic.omemo import (
    LEGACY_NS,
    MAX_KEYS,
    OMEMO2_NS,
    MalformedOmemo,
    OmemoHeader,
    RecipientKey,
    parse_header,
    strip_keys,
)

LEGACY = """<message xmlns="jabber:component:accept" type="groupchat"
  to="ward@clinic.hospital.test" from="alice@hospital.test/phone">
  <encrypted xmlns="eu.siacs.conversations.axolotl">
    <header sid="111">
      <key rid="201">QUJD</key>
      <key prekey="true" rid="202">REVG</key>
      <key rid="112">R0hJ</key>
      <iv>SVZJVg==</iv>
    </header>
    <payload>UEFZ</payload>
  </encrypted>
  <body>I sent you an OMEMO encrypted message.</body>
  <store xmlns="urn:xmpp:hints"/>
</message>"""

OMEMO2 = """<message xmlns="jabber:component:accept" type="groupchat"
  to="ward@clinic.hospital.test" from="kai@hospital.test/kaidan">
  <encrypted xmlns="urn:xmpp:omemo:2">
    <header sid="501">
      <keys jid="bob@hospital.test">
        <key rid="601">QQ==</key>
        <key kex="true" rid="602">Qg==</key>
      </keys>
      <keys jid="kai@hospital.test"><key rid="502">Qw==</key></keys>
    </header>
    <payload>UA==</payload>
  </encrypted>
</message>"""


def parse(xml: str) -> OmemoHeader | MalformedOmemo | None:
    return parse_header(ET.fromstring(xml))


def legacy(header_inner: str, payload: str = "<payload>UA==</payload>") -> str:
    return (
        '<message xmlns="jabber:client"><encrypted xmlns="eu.siacs.conversations.axolotl">'
        f"{header_inner}{payload}</encrypted></message>"
    )


def test_legacy_header_lists_sender_and_recipient_devices() -> None:
    header = parse(LEGACY)
    assert header == OmemoHeader(
        namespace=LEGACY_NS,
        sid=111,
        keys=(RecipientKey(201), RecipientKey(202, prekey=True), RecipientKey(112)),
        has_payload=True,
    )


def test_omemo2_header_groups_keys_by_jid() -> None:
    header = parse(OMEMO2)
    assert isinstance(header, OmemoHeader)
    assert header.namespace == OMEMO2_NS
    assert header.sid == 501
    assert header.keys == (
        RecipientKey(601, "bob@hospital.test"),
        RecipientKey(602, "bob@hospital.test", prekey=True),
        RecipientKey(502, "kai@hospital.test"),
    )


def test_message_without_encryption_has_no_header() -> None:
    assert parse('<message xmlns="jabber:client"><body>hi</body></message>') is None


def test_key_transport_without_payload_is_read() -> None:
    header = parse(legacy('<header sid="5"><key rid="6">QQ==</key><iv>SQ==</iv></header>', ""))
    assert isinstance(header, OmemoHeader)
    assert header.has_payload is False


def test_missing_sid_is_malformed() -> None:
    result = parse(legacy('<header><key rid="6">QQ==</key></header>'))
    assert result == MalformedOmemo("missing-sid", "the OMEMO header has no 'sid' attribute")


def test_non_numeric_rid_is_malformed() -> None:
    result = parse(legacy('<header sid="5"><key rid="6x">QQ==</key></header>'))
    assert isinstance(result, MalformedOmemo) and result.code == "bad-rid"


def test_signed_or_padded_numbers_are_malformed() -> None:
    for sid in ("+5", " 5", "5_0", "0", "4294967296", "-1", "٣"):
        result = parse(legacy(f'<header sid="{sid}"><key rid="6">QQ==</key></header>'))
        assert isinstance(result, MalformedOmemo) and result.code == "bad-sid", sid


def test_duplicate_keys_are_malformed() -> None:
    result = parse(
        legacy('<header sid="5"><key rid="6">QQ==</key><key rid="6">Qg==</key></header>')
    )
    assert isinstance(result, MalformedOmemo) and result.code == "duplicate-key"


def test_same_device_id_for_two_people_is_fine_in_omemo2() -> None:
    xml = (
        '<message xmlns="jabber:client"><encrypted xmlns="urn:xmpp:omemo:2"><header sid="1">'
        '<keys jid="a@h.test"><key rid="7">QQ==</key></keys>'
        '<keys jid="b@h.test"><key rid="7">QQ==</key></keys></header></encrypted></message>'
    )
    assert isinstance(parse(xml), OmemoHeader)


def test_huge_key_list_is_refused_without_reading_it_all() -> None:
    keys = "".join(f'<key rid="{n}">QQ==</key>' for n in range(1, MAX_KEYS + 2))
    result = parse(legacy(f'<header sid="5">{keys}</header>'))
    assert isinstance(result, MalformedOmemo) and result.code == "too-many-keys"


def test_exactly_the_key_cap_is_accepted() -> None:
    keys = "".join(f'<key rid="{n}">QQ==</key>' for n in range(1, MAX_KEYS + 1))
    assert isinstance(parse(legacy(f'<header sid="5">{keys}</header>')), OmemoHeader)


def test_two_encrypted_elements_are_malformed() -> None:
    inner = '<header sid="5"><key rid="6">QQ==</key></header>'
    xml = legacy(inner).replace("</message>", f'<encrypted xmlns="{OMEMO2_NS}"/></message>')
    result = parse(xml)
    assert isinstance(result, MalformedOmemo) and result.code == "multiple-encrypted"


def test_unknown_encryption_namespace_is_malformed() -> None:
    result = parse('<message xmlns="jabber:client"><encrypted xmlns="urn:example:x"/></message>')
    assert isinstance(result, MalformedOmemo) and result.code == "unknown-namespace"


def test_missing_header_is_malformed() -> None:
    result = parse(legacy("", "<payload>UA==</payload>"))
    assert isinstance(result, MalformedOmemo) and result.code == "missing-header"


def test_header_without_any_key_is_malformed() -> None:
    result = parse(legacy('<header sid="5"><iv>SQ==</iv></header>'))
    assert isinstance(result, MalformedOmemo) and result.code == "no-keys"


def test_omemo2_keys_need_a_bare_jid() -> None:
    xml = (
        '<message xmlns="jabber:client"><encrypted xmlns="urn:xmpp:omemo:2"><header sid="1">'
        '<keys jid="a@h.test/phone"><key rid="7">QQ==</key></keys></header></encrypted></message>'
    )
    result = parse(xml)
    assert isinstance(result, MalformedOmemo) and result.code == "bad-jid"


def test_omemo2_keys_without_jid_are_malformed() -> None:
    xml = (
        '<message xmlns="jabber:client"><encrypted xmlns="urn:xmpp:omemo:2"><header sid="1">'
        '<keys><key rid="7">QQ==</key></keys></header></encrypted></message>'
    )
    result = parse(xml)
    assert isinstance(result, MalformedOmemo) and result.code == "bad-jid"


def test_stripping_a_legacy_key_leaves_every_other_byte() -> None:
    message = ET.fromstring(LEGACY)
    stripped = strip_keys(message, [RecipientKey(202)])
    expected = LEGACY.replace('<key prekey="true" rid="202">REVG</key>', "")
    assert ET.tostring(stripped) == ET.tostring(ET.fromstring(expected))


def test_stripping_does_not_touch_the_original() -> None:
    message = ET.fromstring(LEGACY)
    before = ET.tostring(message)
    strip_keys(message, [RecipientKey(201)])
    assert ET.tostring(message) == before


def test_stripping_an_omemo2_key_keeps_the_others_of_that_person() -> None:
    stripped = strip_keys(ET.fromstring(OMEMO2), [RecipientKey(602, "bob@hospital.test")])
    expected = OMEMO2.replace('<key kex="true" rid="602">Qg==</key>', "")
    assert ET.tostring(stripped) == ET.tostring(ET.fromstring(expected))


def test_stripping_keeps_the_bytes_around_the_removed_key() -> None:
    stripped = strip_keys(ET.fromstring(LEGACY), [RecipientKey(201), RecipientKey(112)])
    expected = LEGACY.replace('<key rid="201">QUJD</key>', "").replace(
        '<key rid="112">R0hJ</key>', ""
    )
    assert ET.tostring(stripped) == ET.tostring(ET.fromstring(expected))


def test_stripping_the_last_omemo2_key_of_a_person_drops_the_group() -> None:
    stripped = strip_keys(ET.fromstring(OMEMO2), [RecipientKey(502, "kai@hospital.test")])
    expected = OMEMO2.replace('<keys jid="kai@hospital.test"><key rid="502">Qw==</key></keys>', "")
    assert ET.tostring(stripped) == ET.tostring(ET.fromstring(expected))


def test_omemo2_strip_only_matches_the_right_person() -> None:
    stripped = strip_keys(ET.fromstring(OMEMO2), [RecipientKey(601, "kai@hospital.test")])
    assert ET.tostring(stripped) == ET.tostring(ET.fromstring(OMEMO2))
